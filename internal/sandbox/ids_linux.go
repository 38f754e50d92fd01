package sandbox

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// Default host uid range for plugins: 65536 ids from 0x70000000, a block
// systemd documents as unused (above the range it gives containers).
const (
	DefaultIDFirst = 0x70000000
	DefaultIDCount = 65536
	// DefaultIDLockDir holds one lock file per uid in use.
	DefaultIDLockDir = "/run/airlock/ids"
)

// overflowID is the kernel's "nobody": the uid plugins share without a pool.
const overflowID = 65534

// IDPool hands out host uids, one per running plugin instance, so that no
// two plugins (of this host or another on the machine) share a uid: a
// plugin's files, signals and ptrace rights then reach nobody else's even
// where a namespace is missing. Each uid in use is an exclusive flock on a
// file in the lock directory; the kernel drops it when the holder exits, so
// a crashed host leaks nothing. A pool is safe for concurrent use.
type IDPool struct {
	first, count uint32
	lockDir      string
}

// NewIDPool returns a pool of count uids from first, locked in lockDir
// (created mode 0700 if missing). The uid doubles as the plugin's gid.
func NewIDPool(first, count uint32, lockDir string) (*IDPool, error) {
	switch {
	case first == 0:
		return nil, errors.New("new uid pool: first uid is 0: plugins must never run as root")
	case count == 0:
		return nil, errors.New("new uid pool: count is 0")
	case uint64(first)+uint64(count) > 1<<32-1:
		return nil, fmt.Errorf("new uid pool: %d uids from %d pass 2^32-1, the invalid uid", count, first)
	case !filepath.IsAbs(lockDir):
		return nil, fmt.Errorf("new uid pool: lock directory %q is not absolute", lockDir)
	}
	if err := os.MkdirAll(lockDir, 0o700); err != nil {
		return nil, fmt.Errorf("new uid pool: %w", err)
	}
	return &IDPool{first: first, count: count, lockDir: lockDir}, nil
}

// acquire returns a free uid and the function that frees it.
func (p *IDPool) acquire() (int, func(), error) {
	start := rand.Uint32N(p.count)
	for i := range p.count {
		id := p.first + (start+i)%p.count
		if id == overflowID || id == 65535 {
			continue
		}
		path := filepath.Join(p.lockDir, strconv.FormatUint(uint64(id), 10))
		fd, err := unix.Open(path, unix.O_CREAT|unix.O_RDWR|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
		if err != nil {
			return 0, nil, fmt.Errorf("acquire a plugin uid: %w", &os.PathError{Op: "open", Path: path, Err: err})
		}
		if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
			unix.Close(fd)
			if errors.Is(err, unix.EWOULDBLOCK) {
				continue
			}
			return 0, nil, fmt.Errorf("acquire a plugin uid: lock %s: %w", path, err)
		}
		return int(id), func() { unix.Close(fd) }, nil
	}
	return 0, nil, fmt.Errorf("acquire a plugin uid: all %d uids from %d are in use", p.count, p.first)
}
