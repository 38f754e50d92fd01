package token

import (
	"bytes"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"testing"
)

func root(t testing.TB) []byte {
	t.Helper()
	claims, _ := json.Marshal(Claims{ID: "0123456789abcdef0123456789abcdef", Plugin: "p", Instance: "i", Capability: "kv",
		Scope: Scope{Ops: []string{"kv.get", "kv.put"}}, Expiry: 1 << 50})
	tok, err := Encode(7, claims, nil, func(signed []byte) []byte { return Chain([]byte("key"), signed, nil) })
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestParse_RoundTrip(t *testing.T) {
	tok := root(t)
	r, err := Parse(tok)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Encode(r.KeyID, r.Claims, r.Caveats, func([]byte) []byte { return r.Sig })
	if err != nil || !bytes.Equal(again, tok) {
		t.Fatalf("re-encoding differs: %v", err)
	}
	if ID(tok) != "0123456789abcdef0123456789abcdef" {
		t.Fatalf("ID = %q", ID(tok))
	}
}

func TestParse_RejectsEveryTruncation(t *testing.T) {
	tok := root(t)
	for n := range len(tok) {
		_, err := Parse(tok[:n])
		var fe *FormatError
		if !errors.As(err, &fe) {
			t.Fatalf("truncated to %d bytes: %v, want a *FormatError", n, err)
		}
	}
	if _, err := Parse(append(bytes.Clone(tok), 0)); err == nil {
		t.Fatal("a trailing byte was accepted")
	}
}

func TestAttenuate_ExtendsTheChain(t *testing.T) {
	tok := root(t)
	narrowed, err := Attenuate(tok, Caveat{Ops: []string{"kv.get"}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := Parse(narrowed)
	if err != nil || len(r.Caveats) != 1 {
		t.Fatalf("parse attenuated: %v, %d caveats", err, len(r.Caveats))
	}
	// The holder's new signature is the key holder's chain over the caveat.
	if want := Chain([]byte("key"), r.Signed, r.Caveats); !hmac.Equal(r.Sig, want) {
		t.Fatal("attenuated signature is not the chain's next link")
	}
	_, cavs, err := Inspect(narrowed)
	if err != nil || len(cavs) != 1 || cavs[0].Ops[0] != "kv.get" {
		t.Fatalf("Inspect = %+v %v", cavs, err)
	}
	for range MaxCaveats - 1 {
		if narrowed, err = Attenuate(narrowed, Caveat{Keys: []string{"a"}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Attenuate(narrowed, Caveat{Keys: []string{"a"}}); err == nil {
		t.Fatalf("a %d-th caveat was accepted", MaxCaveats+1)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(root(f))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Parse(b)
		if err != nil {
			return
		}
		again, err := Encode(r.KeyID, r.Claims, r.Caveats, func([]byte) []byte { return r.Sig })
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("a parsed token does not re-encode to itself: %v", err)
		}
		_, _, _ = Inspect(b)
	})
}
