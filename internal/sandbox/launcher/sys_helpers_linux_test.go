package launcher

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

func TestArgvIs(t *testing.T) {
	if !argvIs(os.Args...) {
		t.Errorf("argvIs(%q) = false for this process", os.Args)
	}
	if argvIs(os.Args[0]) && len(os.Args) > 1 {
		t.Error("argvIs matched a prefix of argv")
	}
	if argvIs(Arg0, "3") {
		t.Error("argvIs matched another argv")
	}
}

func TestDirnameAndMkdirAll(t *testing.T) {
	for p, want := range map[string]string{"/a/b/c": "/a/b", "/a": "/", "/": "/", "/tmp/x/": "/tmp/x"} {
		if got := dirname(p); got != want {
			t.Errorf("dirname(%q) = %q, want %q", p, got, want)
		}
	}
	dir := filepath.Join(t.TempDir(), "a", "b", "c")
	if err := mkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := mkdirAll(dir, 0o755); err != nil {
		t.Errorf("mkdirAll of an existing directory: %v", err)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Errorf("stat %s: %v", dir, err)
	}
	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := mkdirAll(filepath.Join(file, "x"), 0o755); err == nil {
		t.Error("mkdirAll under a file succeeded")
	}
}

func TestCloexecFrom(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	// Clear close-on-exec, then let cloexecFrom set it again.
	if _, _, e := rawFcntl(int(w.Fd()), 2 /* F_SETFD */, 0); e != 0 {
		t.Fatal(e)
	}
	if err := cloexecFrom(int(w.Fd())); err != nil {
		t.Fatal(err)
	}
	flags, _, e := rawFcntl(int(w.Fd()), 1 /* F_GETFD */, 0)
	if e != 0 || flags&1 == 0 {
		t.Errorf("descriptor %d not close-on-exec after cloexecFrom (flags %d, %v)", w.Fd(), flags, e)
	}
}

func rawFcntl(fd, cmd, arg int) (uintptr, uintptr, syscall.Errno) {
	return syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), uintptr(cmd), uintptr(arg))
}

// TestInheritedVariableIgnored: a program that merely inherited EnvVar
// (another argv) runs as itself; the launcher's init stays out of its way.
func TestInheritedVariableIgnored(t *testing.T) {
	if os.Getenv("LAUNCHER_TEST_CHILD") == "1" {
		return // reached: init returned
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestInheritedVariableIgnored$")
	cmd.Env = append(os.Environ(), EnvVar+"=3", "LAUNCHER_TEST_CHILD=1")
	cmd.ExtraFiles = []*os.File{os.Stdin}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("a test binary with %s set and another argv failed: %v\n%s", EnvVar, err, out)
	}
}
