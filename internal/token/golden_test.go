package token

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/token/attenuate.json")

// goldenFile holds attenuation vectors that the Rust SDK is checked against
// too (sdk/rust/src/token.rs): a token, the caveat's JSON as this package
// encodes it, and the attenuated token.
var goldenFile = filepath.Join("..", "..", "testdata", "token", "attenuate.json")

type vector struct {
	Name   string `json:"name"`
	Token  string `json:"token"`  // hex
	Caveat string `json:"caveat"` // the caveat's JSON, as Attenuate encodes it
	Want   string `json:"want"`   // hex
}

func goldenVectors(t *testing.T) []vector {
	t.Helper()
	key := bytes.Repeat([]byte{7}, 32)
	claims := []byte(`{"jti":"0123456789abcdef0123456789abcdef","plugin":"misbehave","instance":"misbehave-1-00000000","cap":"kv","scope":{"ops":["kv.get","kv.set"],"quota":1024},"env":{},"iat":1700000000000,"exp":1700000600000}`)
	root, err := Encode(3, claims, nil, func(signed []byte) []byte { return Chain(key, signed, nil) })
	if err != nil {
		t.Fatal(err)
	}
	var out []vector
	add := func(name string, tok []byte, c Caveat) []byte {
		cb, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Attenuate(tok, c)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, vector{Name: name, Token: hex.EncodeToString(tok), Caveat: string(cb), Want: hex.EncodeToString(got)})
		return got
	}
	once := add("ops narrowed", root, Caveat{Ops: []string{"kv.get"}})
	add("a second caveat: every field", once, Caveat{
		Ops: []string{"kv.get"}, Hosts: []string{"api.example"}, Methods: []string{"GET"}, NoPrivate: true,
		MaxResponse: 4096, TimeoutMS: 500, Paths: []string{"/data"}, MaxFile: 10, Keys: []string{"k\"1", "ü"},
		Names: []string{"books"}, Envelope: &Envelope{Rate: 2.5, Burst: 3, Budget: 100}, Expiry: 1700000300000,
	})
	add("an empty caveat", root, Caveat{})
	return out
}

// TestAttenuate_Golden checks the shared vectors still describe this
// package's attenuation; -update rewrites them.
func TestAttenuate_Golden(t *testing.T) {
	want := goldenVectors(t)
	if *update {
		b, err := json.MarshalIndent(want, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(goldenFile, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(goldenFile)
	if err != nil {
		t.Fatalf("%v (go test ./internal/token -update writes it)", err)
	}
	var got []vector
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%s has %d vectors, want %d: run go test ./internal/token -update", goldenFile, len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("vector %q differs from what this package computes: run go test ./internal/token -update\n got %+v\nwant %+v", want[i].Name, got[i], want[i])
		}
	}
}
