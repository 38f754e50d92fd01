//go:build linux

package fscap

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"go.uber.org/goleak"

	"github.com/airlockhq/airlock/internal/capability"
	"github.com/airlockhq/airlock/policy"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const secret = "TOP SECRET host file"

// tree builds:
//
//	tmp/secret/secret.txt        outside every grant
//	tmp/data/hello.txt           inside
//	tmp/data/sub/inner.txt       inside
//	tmp/data/top.txt             inside data, outside data/sub
//	tmp/data/esc -> ../secret/secret.txt       relative symlink out
//	tmp/data/abs -> tmp/secret/secret.txt      absolute symlink out
//	tmp/data/escdir -> ../secret               directory symlink out
//	tmp/data/ok -> hello.txt                   symlink that stays inside
//	tmp/data/sub/up -> ../top.txt              inside data, but leaves data/sub
//	tmp/data/dangling -> ../secret/new.txt     create through it?
func tree(t *testing.T) (tmp string) {
	t.Helper()
	tmp = t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(tmp, "secret"), 0o755))
	must(os.MkdirAll(filepath.Join(tmp, "data", "sub"), 0o755))
	must(os.WriteFile(filepath.Join(tmp, "secret", "secret.txt"), []byte(secret), 0o644))
	must(os.WriteFile(filepath.Join(tmp, "data", "hello.txt"), []byte("hello"), 0o644))
	must(os.WriteFile(filepath.Join(tmp, "data", "top.txt"), []byte("top"), 0o644))
	must(os.WriteFile(filepath.Join(tmp, "data", "sub", "inner.txt"), []byte("inner"), 0o644))
	must(os.Symlink("../secret/secret.txt", filepath.Join(tmp, "data", "esc")))
	must(os.Symlink(filepath.Join(tmp, "secret", "secret.txt"), filepath.Join(tmp, "data", "abs")))
	must(os.Symlink("../secret", filepath.Join(tmp, "data", "escdir")))
	must(os.Symlink("hello.txt", filepath.Join(tmp, "data", "ok")))
	must(os.Symlink("../top.txt", filepath.Join(tmp, "data", "sub", "up")))
	must(os.Symlink("../secret/new.txt", filepath.Join(tmp, "data", "dangling")))
	return tmp
}

func call(f *FS, tmp string, scopePaths []string, fn string, req Request) ([]byte, error) {
	p, _ := json.Marshal(req)
	return f.Call(context.Background(), &capability.Call{
		Plugin: "p", Instance: "i", Function: fn, Payload: p,
		Grant: policy.Grant{Paths: []string{"data"}, Roots: map[string]string{"data": filepath.Join(tmp, "data")}},
		Scope: capability.Scope{Paths: scopePaths, MaxFile: 64},
	})
}

func modes(t *testing.T) map[string]func() (*FS, *FS) {
	m := map[string]func() (*FS, *FS){
		"walk": func() (*FS, *FS) {
			r, w := NewRead(), NewWrite()
			r.noOpenat2, w.noOpenat2 = true, true
			return r, w
		},
	}
	if openat2Available() {
		m["openat2"] = func() (*FS, *FS) { return NewRead(), NewWrite() }
	} else {
		t.Log("openat2 unavailable on this kernel: testing the O_NOFOLLOW walk only")
	}
	return m
}

func TestFS_ReadWrite(t *testing.T) {
	for mode, mk := range modes(t) {
		t.Run(mode, func(t *testing.T) {
			tmp := tree(t)
			r, w := mk()
			scope := []string{"data"}
			out, err := call(r, tmp, scope, "fs.read.file", Request{Path: "data/hello.txt"})
			if err != nil || !strings.Contains(string(out), `"data":"aGVsbG8="`) {
				t.Fatalf("read: %s %v", out, err)
			}
			if _, err := call(w, tmp, scope, "fs.write.file", Request{Path: "data/new.txt", Data: []byte("abc")}); err != nil {
				t.Fatal(err)
			}
			if out, err := call(w, tmp, scope, "fs.write.file", Request{Path: "data/new.txt", Data: []byte("de"), Append: true}); err != nil || string(out) != `{"size":5}` {
				t.Fatalf("append: %s %v", out, err)
			}
			if got, _ := os.ReadFile(filepath.Join(tmp, "data", "new.txt")); string(got) != "abcde" {
				t.Errorf("file = %q", got)
			}
			if _, err := call(w, tmp, scope, "fs.write.file", Request{Path: "data/new.txt", Data: []byte("x")}); err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(filepath.Join(tmp, "data", "new.txt")); string(got) != "x" {
				t.Errorf("replace: file = %q", got)
			}
			if _, err := call(w, tmp, scope, "fs.write.mkdir", Request{Path: "data/d"}); err != nil {
				t.Fatal(err)
			}
			if _, err := call(w, tmp, scope, "fs.write.file", Request{Path: "data/d/f", Data: []byte("1")}); err != nil {
				t.Fatal(err)
			}
			out, err = call(r, tmp, scope, "fs.read.list", Request{Path: "data"})
			var l ListResult
			json.Unmarshal(out, &l)
			if err != nil || len(l.Entries) != 10 || l.Entries[0].Name != "abs" || l.Entries[5].Name != "hello.txt" || l.Entries[5].Size != 5 {
				t.Errorf("list: %s %v", out, err)
			}
			out, err = call(r, tmp, scope, "fs.read.stat", Request{Path: "data/d"})
			if err != nil || !strings.Contains(string(out), `"dir":true`) {
				t.Errorf("stat: %s %v", out, err)
			}
			for _, p := range []string{"data/d/f", "data/d", "data/new.txt"} {
				if _, err := call(w, tmp, scope, "fs.write.remove", Request{Path: p}); err != nil {
					t.Errorf("remove %s: %v", p, err)
				}
			}
			if _, err := os.Stat(filepath.Join(tmp, "data", "d")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("directory not removed: %v", err)
			}
			if _, err := call(r, tmp, scope, "fs.read.file", Request{Path: "data/missing"}); !errors.Is(err, capability.ErrNotFound) {
				t.Errorf("missing file: %v", err)
			}
		})
	}
}

func TestFS_Escapes(t *testing.T) {
	for mode, mk := range modes(t) {
		t.Run(mode, func(t *testing.T) {
			tmp := tree(t)
			r, w := mk()
			tests := []struct {
				name  string
				f     *FS
				fn    string
				scope []string
				req   Request
			}{
				{"dotdot", r, "fs.read.file", []string{"data"}, Request{Path: "data/../secret/secret.txt"}},
				{"leading dotdot", r, "fs.read.file", []string{"data"}, Request{Path: "../secret/secret.txt"}},
				{"absolute", r, "fs.read.file", []string{"data"}, Request{Path: filepath.Join(tmp, "secret", "secret.txt")}},
				{"outside grant", r, "fs.read.file", []string{"data"}, Request{Path: "secret/secret.txt"}},
				{"relative symlink out", r, "fs.read.file", []string{"data"}, Request{Path: "data/esc"}},
				{"absolute symlink out", r, "fs.read.file", []string{"data"}, Request{Path: "data/abs"}},
				{"directory symlink out", r, "fs.read.file", []string{"data"}, Request{Path: "data/escdir/secret.txt"}},
				{"list through symlink out", r, "fs.read.list", []string{"data"}, Request{Path: "data/escdir"}},
				{"stat through symlink out", r, "fs.read.stat", []string{"data"}, Request{Path: "data/escdir/secret.txt"}},
				{"write through symlink out", w, "fs.write.file", []string{"data"}, Request{Path: "data/esc", Data: []byte("pwned")}},
				{"create through dangling symlink", w, "fs.write.file", []string{"data"}, Request{Path: "data/dangling", Data: []byte("pwned")}},
				{"write into symlinked dir", w, "fs.write.file", []string{"data"}, Request{Path: "data/escdir/x", Data: []byte("pwned")}},
				{"mkdir through symlink", w, "fs.write.mkdir", []string{"data"}, Request{Path: "data/escdir/newdir"}},
				{"remove through symlink", w, "fs.write.remove", []string{"data"}, Request{Path: "data/escdir/secret.txt"}},
				{"attenuated scope, symlink up", r, "fs.read.file", []string{"data/sub"}, Request{Path: "data/sub/up"}},
				{"attenuated scope, sibling", r, "fs.read.file", []string{"data/sub"}, Request{Path: "data/top.txt"}},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					out, err := call(tt.f, tmp, tt.scope, tt.fn, tt.req)
					if !errors.Is(err, capability.ErrPermissionDenied) {
						t.Errorf("got %s, %v; want permission denied", out, err)
					}
					if strings.Contains(string(out), "VE9QIFNFQ1JFVC") { // base64 of the secret
						t.Error("secret leaked")
					}
				})
			}
			if got, _ := os.ReadFile(filepath.Join(tmp, "secret", "secret.txt")); string(got) != secret {
				t.Errorf("secret file changed: %q", got)
			}
			if _, err := os.Lstat(filepath.Join(tmp, "secret", "new.txt")); !errors.Is(err, os.ErrNotExist) {
				t.Error("a file was created outside the grant")
			}
			if _, err := os.Lstat(filepath.Join(tmp, "secret", "newdir")); !errors.Is(err, os.ErrNotExist) {
				t.Error("a directory was created outside the grant")
			}
			// A symlink that stays inside: followed by openat2, refused by
			// the stricter walk.
			_, err := call(r, tmp, []string{"data"}, "fs.read.file", Request{Path: "data/ok"})
			if mode == "openat2" && err != nil {
				t.Errorf("inside symlink under openat2: %v", err)
			}
			if mode == "walk" && !errors.Is(err, capability.ErrPermissionDenied) {
				t.Errorf("inside symlink under the walk: %v", err)
			}
		})
	}
}

func TestFS_Limits(t *testing.T) {
	for mode, mk := range modes(t) {
		t.Run(mode, func(t *testing.T) {
			tmp := tree(t)
			r, w := mk()
			os.WriteFile(filepath.Join(tmp, "data", "big"), make([]byte, 65), 0o644)
			if _, err := call(r, tmp, []string{"data"}, "fs.read.file", Request{Path: "data/big"}); !errors.Is(err, capability.ErrTooLarge) {
				t.Errorf("read over max_file: %v", err)
			}
			if _, err := call(w, tmp, []string{"data"}, "fs.write.file", Request{Path: "data/w", Data: make([]byte, 65)}); !errors.Is(err, capability.ErrTooLarge) {
				t.Errorf("write over max_file: %v", err)
			}
			call(w, tmp, []string{"data"}, "fs.write.file", Request{Path: "data/w", Data: make([]byte, 60)})
			if _, err := call(w, tmp, []string{"data"}, "fs.write.file", Request{Path: "data/w", Data: make([]byte, 5), Append: true}); !errors.Is(err, capability.ErrTooLarge) {
				t.Errorf("append over max_file: %v", err)
			}
			// A FIFO is refused, and opening it does not hang.
			if err := syscall.Mkfifo(filepath.Join(tmp, "data", "fifo"), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := call(r, tmp, []string{"data"}, "fs.read.file", Request{Path: "data/fifo"}); !errors.Is(err, capability.ErrBadInput) {
				t.Errorf("read FIFO: %v", err)
			}
			if _, err := call(w, tmp, []string{"data"}, "fs.write.file", Request{Path: "data", Data: []byte("x")}); !errors.Is(err, capability.ErrBadInput) {
				t.Errorf("write to the root itself: %v", err)
			}
		})
	}
}

// TestFS_SymlinkSwapRace swaps data/swap between a regular file inside the
// grant and a symlink to the secret while reads run; no read may ever
// return the secret.
func TestFS_SymlinkSwapRace(t *testing.T) {
	for mode, mk := range modes(t) {
		t.Run(mode, func(t *testing.T) {
			tmp := tree(t)
			r, _ := mk()
			data := filepath.Join(tmp, "data")
			inside := filepath.Join(data, "inside.tmp")
			link := filepath.Join(data, "link.tmp")
			swap := filepath.Join(data, "swap")
			os.WriteFile(swap, []byte("benign"), 0o644)
			var stop atomic.Bool
			var wg sync.WaitGroup
			wg.Go(func() {
				for !stop.Load() {
					os.WriteFile(inside, []byte("benign"), 0o644)
					os.Rename(inside, swap)
					os.Symlink(filepath.Join(tmp, "secret", "secret.txt"), link)
					os.Rename(link, swap)
				}
			})
			benign, refused := 0, 0
			for range 3000 {
				out, err := call(r, tmp, []string{"data"}, "fs.read.file", Request{Path: "data/swap"})
				switch {
				case err == nil && strings.Contains(string(out), "YmVuaWdu"):
					benign++
				case err == nil:
					stop.Store(true)
					wg.Wait()
					t.Fatalf("read returned something else: %s", out)
				case errors.Is(err, capability.ErrPermissionDenied), errors.Is(err, capability.ErrNotFound):
					refused++
				default:
					stop.Store(true)
					wg.Wait()
					t.Fatalf("unexpected error: %v", err)
				}
			}
			stop.Store(true)
			wg.Wait()
			t.Logf("%d benign reads, %d refused, 0 leaks", benign, refused)
		})
	}
}

func TestMode(t *testing.T) {
	if m := Mode(); m != "openat2" && m != "o_nofollow-walk" {
		t.Errorf("Mode() = %q", m)
	}
	t.Logf("path resolution on this machine: %s", Mode())
}
