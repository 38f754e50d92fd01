package sandbox

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// Default host uid range for plugins: 65536 ids from 0x70000000, a block
// systemd documents as unused (above the range it gives containers).
const (
	DefaultIDFirst = 0x70000000
	DefaultIDCount = 65536
	// DefaultIDLockFile records which uids are in use, machine-wide.
	DefaultIDLockFile = "/run/airlock/ids.lock"
)

// overflowID is the kernel's "nobody": the uid plugins share without a pool.
const overflowID = 65534

// IDPool hands out host uids, one per running plugin instance, so that no
// two plugins (of this host or another on the machine) share a uid: a
// plugin's files, signals and ptrace rights then reach nobody else's even
// where a namespace is missing.
//
// A uid in use is a one-byte lock at offset uid in the lock file (an open
// file description lock, F_OFD_SETLK): pools in other processes, or other
// pools in this one, see it, and the kernel drops it when its holder exits,
// so a crashed host leaks nothing. Uids are handed out round-robin from a
// random start, so a uid is not reused the moment its plugin exits: not by
// the same pool, which moves on, and seldom by another host's, which would
// otherwise start from the same lowest free uid and take each one freed.
// A pool is safe for concurrent use; Close it when its host shuts down.
type IDPool struct {
	first, count uint32

	mu   sync.Mutex
	lock *os.File
	held map[uint32]bool
	next uint32
}

// NewIDPool returns a pool of count uids from first, locked in lockFile
// (created, with its directory, if missing). The uid doubles as the
// plugin's gid.
func NewIDPool(first, count uint32, lockFile string) (*IDPool, error) {
	switch {
	case first == 0:
		return nil, errors.New("new uid pool: first uid is 0: plugins must never run as root")
	case count == 0:
		return nil, errors.New("new uid pool: count is 0")
	case uint64(first)+uint64(count) > 1<<32-1:
		return nil, fmt.Errorf("new uid pool: %d uids from %d pass 2^32-1, the invalid uid", count, first)
	case !filepath.IsAbs(lockFile):
		return nil, fmt.Errorf("new uid pool: lock file %q is not absolute", lockFile)
	}
	if err := os.MkdirAll(filepath.Dir(lockFile), 0o700); err != nil {
		return nil, fmt.Errorf("new uid pool: %w", err)
	}
	f, err := os.OpenFile(lockFile, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("new uid pool: %w", err)
	}
	return &IDPool{first: first, count: count, lock: f, held: map[uint32]bool{}, next: rand.Uint32N(count)}, nil
}

// Close releases every uid the pool holds.
func (p *IDPool) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lock == nil {
		return nil
	}
	err := p.lock.Close()
	p.lock, p.held = nil, map[uint32]bool{}
	return err
}

// acquire returns a free uid and the function that frees it.
func (p *IDPool) acquire() (int, func(), error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lock == nil {
		return 0, nil, errors.New("acquire a plugin uid: the pool is closed")
	}
	for i := range p.count {
		idx := (p.next + i) % p.count
		id := p.first + idx
		if id == overflowID || id == 65535 || p.held[id] {
			continue
		}
		lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: int64(id), Len: 1}
		err := unix.FcntlFlock(p.lock.Fd(), unix.F_OFD_SETLK, &lk)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
			continue // another pool holds it
		}
		if err != nil {
			return 0, nil, fmt.Errorf("acquire a plugin uid: lock %d in %s: %w", id, p.lock.Name(), err)
		}
		p.held[id] = true
		p.next = idx + 1
		return int(id), sync.OnceFunc(func() { p.release(id) }), nil
	}
	return 0, nil, fmt.Errorf("acquire a plugin uid: all %d uids from %d are in use", p.count, p.first)
}

func (p *IDPool) release(id uint32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lock == nil || !p.held[id] {
		return
	}
	lk := unix.Flock_t{Type: unix.F_UNLCK, Whence: 0, Start: int64(id), Len: 1}
	_ = unix.FcntlFlock(p.lock.Fd(), unix.F_OFD_SETLK, &lk)
	delete(p.held, id)
}
