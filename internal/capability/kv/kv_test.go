package kv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/airlockhq/airlock/internal/capability"
)

func openStore(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func call(t *testing.T, s *Store, plugin, fn string, req Request, quota int64) ([]byte, error) {
	t.Helper()
	p, _ := json.Marshal(req)
	return s.Call(context.Background(), &capability.Call{Plugin: plugin, Instance: "i", Function: fn, Payload: p, Scope: capability.Scope{Quota: quota}})
}

func TestStore_PersistsAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", FileName)
	s := openStore(t, path)
	if _, err := call(t, s, "weather", "kv.put", Request{Key: "city", Value: []byte("Oslo")}, 1024); err != nil {
		t.Fatal(err)
	}
	if _, err := call(t, s, "weather", "kv.put", Request{Key: "units", Value: []byte("metric")}, 1024); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, path)
	defer s.Close()
	out, err := call(t, s, "weather", "kv.get", Request{Key: "city"}, 1024)
	if err != nil {
		t.Fatal(err)
	}
	var g GetResult
	if err := json.Unmarshal(out, &g); err != nil || !g.Found || string(g.Value) != "Oslo" {
		t.Errorf("after reopen: %s, %v", out, err)
	}
	if u, _ := s.Usage("weather"); u != int64(len("city")+len("Oslo")+len("units")+len("metric")) {
		t.Errorf("usage after reopen = %d", u)
	}
}

func TestStore_Quota(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s := openStore(t, path)
	const quota = 100
	if _, err := s.Put("p", "a", make([]byte, 60), quota); err != nil {
		t.Fatal(err)
	}
	_, err := s.Put("p", "b", make([]byte, 60), quota)
	if !errors.Is(err, capability.ErrQuotaExceeded) || !errors.Is(err, capability.ErrBudgetExceeded) {
		t.Fatalf("over quota: %v", err)
	}
	if capability.CodeOf(err).String() != "budget_exceeded" {
		t.Errorf("code = %v", capability.CodeOf(err))
	}
	if !strings.Contains(err.Error(), `plugin "p"`) || !strings.Contains(err.Error(), "of 100 bytes") {
		t.Errorf("message should name plugin and quota: %v", err)
	}
	if _, found, _ := s.Get("p", "b"); found {
		t.Error("refused put was stored")
	}
	// Overwriting counts the difference, not the sum.
	if used, err := s.Put("p", "a", make([]byte, 99), quota); err != nil || used != 100 {
		t.Errorf("overwrite to exactly the quota: used %d, %v", used, err)
	}
	if deleted, err := s.Delete("p", "a"); err != nil || !deleted {
		t.Fatal(err)
	}
	if u, _ := s.Usage("p"); u != 0 {
		t.Errorf("usage after delete = %d", u)
	}
	// Quota survives reopen.
	s.Put("p", "x", make([]byte, 90), quota)
	s.Close()
	s = openStore(t, path)
	defer s.Close()
	if _, err := s.Put("p", "y", make([]byte, 20), quota); !errors.Is(err, capability.ErrQuotaExceeded) {
		t.Errorf("quota forgotten after reopen: %v", err)
	}
}

func TestStore_NamespacesAreIsolated(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), FileName))
	defer s.Close()
	s.Put("alice", "secret", []byte("a"), 100)
	for _, fn := range []string{"kv.get", "kv.delete"} {
		out, err := call(t, s, "mallory", fn, Request{Key: "secret"}, 100)
		if err != nil || strings.Contains(string(out), "true") {
			t.Errorf("%s from another plugin: %s %v", fn, out, err)
		}
	}
	if _, found, _ := s.Get("alice", "secret"); !found {
		t.Error("alice's key is gone")
	}
	out, _ := call(t, s, "mallory", "kv.list", Request{}, 100)
	if string(out) != `{"keys":[],"more":false}` {
		t.Errorf("list from another plugin = %s", out)
	}
}

func TestStore_List(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), FileName))
	defer s.Close()
	for i := range 25 {
		s.Put("p", fmt.Sprintf("user/%02d", i), []byte("x"), 1<<20)
	}
	s.Put("p", "zzz", []byte("x"), 1<<20)
	var all []string
	after := ""
	for {
		out, err := call(t, s, "p", "kv.list", Request{Prefix: "user/", After: after, Limit: 10}, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		var lr ListResult
		json.Unmarshal(out, &lr)
		all = append(all, lr.Keys...)
		if !lr.More {
			break
		}
		after = lr.Keys[len(lr.Keys)-1]
	}
	if len(all) != 25 || all[0] != "user/00" || all[24] != "user/24" || !slices.IsSorted(all) {
		t.Errorf("paged list = %v", all)
	}
}

func TestStore_BadInput(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), FileName))
	defer s.Close()
	for name, payload := range map[string]string{
		"not json": "{", "unknown field": `{"kee":"x"}`, "empty key": `{"key":""}`,
		"long key": `{"key":"` + strings.Repeat("k", MaxKey+1) + `"}`, "bad base64": `{"key":"k","value":"%%%"}`,
	} {
		fn := "kv.put"
		_, err := s.Call(context.Background(), &capability.Call{Plugin: "p", Function: fn, Payload: []byte(payload), Scope: capability.Scope{Quota: 1 << 20}})
		if !errors.Is(err, capability.ErrBadInput) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := call(t, s, "p", "kv.list", Request{Limit: MaxList + 1}, 1); !errors.Is(err, capability.ErrBadInput) {
		t.Errorf("list limit: %v", err)
	}
}

func TestOpen_HeldByAnotherStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s := openStore(t, path)
	defer s.Close()
	if _, err := Open(path); err == nil || !strings.Contains(err.Error(), "another process holds it") {
		t.Errorf("second open: %v", err)
	}
}
