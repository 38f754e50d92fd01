package supervisor

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// DigestCache verifies entry programs against their manifest sha256 before
// every start. It returns the opened file that was hashed, and the process
// is started from that descriptor, so the file cannot be swapped between
// the check and the exec.
//
// Hashing a Go binary takes milliseconds, a large share of a plugin's cold
// start, so a digest is remembered for the file identity that produced it:
// device, inode, size, modification and change times. Any write to the file
// changes its ctime, which user space cannot set back, so a remembered
// digest is only reused for bytes that cannot have changed.
type DigestCache struct {
	mu sync.Mutex
	m  map[fileID]string
}

type fileID struct {
	dev, ino     uint64
	size         int64
	mtime, ctime unix.Timespec
}

// NewDigestCache returns an empty cache.
func NewDigestCache() *DigestCache { return &DigestCache{m: map[fileID]string{}} }

// DigestError reports an entry program whose sha256 is not the manifest's.
type DigestError struct {
	File      string
	Want, Got string
}

func (e *DigestError) Error() string {
	return fmt.Sprintf("entry %s has sha256 %s but the manifest says %s: if you rebuilt it on purpose, run `airlock build DIR` (or update entry.sha256); otherwise the file was changed by someone else and must not run",
		e.File, e.Got, e.Want)
}

// Open opens path, checks its sha256 is want, and returns the open file.
func (c *DigestCache) Open(path, want string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open entry program: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("stat entry program: %w", os.NewSyscallError("fstat", err))
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		f.Close()
		return nil, fmt.Errorf("entry program %s is not a regular file", path)
	}
	id := fileID{dev: st.Dev, ino: st.Ino, size: st.Size, mtime: st.Mtim, ctime: st.Ctim}
	c.mu.Lock()
	got, ok := c.m[id]
	c.mu.Unlock()
	if !ok {
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			f.Close()
			return nil, fmt.Errorf("hash entry program: %w", err)
		}
		got = hex.EncodeToString(h.Sum(nil))
		c.mu.Lock()
		c.m[id] = got
		c.mu.Unlock()
	}
	if got != want {
		f.Close()
		return nil, &DigestError{File: path, Want: want, Got: got}
	}
	return f, nil
}
