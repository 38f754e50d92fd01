//go:build unix

package manifest

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestLoad_RefusesFIFO(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, FileName), 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	// A FIFO with no writer would block a plain read forever.
	_, err := Load(dir)
	checkErr(t, err, "airlock.toml: not a regular file (p---------) (fix: make airlock.toml a plain text file)")
	if _, err := Digest(filepath.Join(dir, FileName)); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("Digest of a FIFO: %v", err)
	}
}
