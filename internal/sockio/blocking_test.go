//go:build linux && !386

package sockio_test

import (
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/sockio"
)

func TestBlocking_CloseEndsAWaitingReadAndWrite(t *testing.T) {
	for _, op := range []string{"read", "write"} {
		t.Run(op, func(t *testing.T) {
			a, b := blockingPair(t)
			done := make(chan error)
			go func() {
				var err error
				if op == "read" {
					_, err = a.Read(make([]byte, 8))
				} else {
					_, err = a.Write(make([]byte, 16<<20)) // nobody reads: the socket fills
				}
				done <- err
			}()
			select {
			case err := <-done:
				t.Fatalf("the %s returned (%v) before Close", op, err)
			case <-time.After(20 * time.Millisecond): // it is blocked in the kernel by now
			}
			if err := a.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			select {
			case err := <-done:
				if !errors.Is(err, net.ErrClosed) {
					t.Fatalf("the waiting %s returned %v, want net.ErrClosed", op, err)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("Close did not wake the waiting %s", op)
			}
			if op == "read" {
				// The peer sees the end of the stream, as for a close.
				if _, err := b.Read(make([]byte, 8)); err != io.EOF {
					t.Fatalf("the peer read %v, want io.EOF", err)
				}
			}
			if _, err := a.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("Read after Close: %v, want net.ErrClosed", err)
			}
			if _, err := a.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("Write after Close: %v, want net.ErrClosed", err)
			}
			if err := a.Close(); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("second Close: %v, want net.ErrClosed", err)
			}
		})
	}
}

func TestNewBlocking_PutsTheSocketInBlockingMode(t *testing.T) {
	fds := socketpair(t)
	syscall.Close(fds[1])
	if err := syscall.SetNonblock(fds[0], true); err != nil {
		t.Fatal(err)
	}
	c, err := sockio.NewBlocking(fds[0])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	flags, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fds[0]), syscall.F_GETFL, 0)
	if errno != 0 {
		t.Fatal(errno)
	}
	if flags&syscall.O_NONBLOCK != 0 {
		t.Fatal("the socket is still non-blocking: a read would spin instead of waiting in the kernel")
	}
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	got := -1
	if err := raw.Control(func(fd uintptr) { got = int(fd) }); err != nil || got != fds[0] {
		t.Fatalf("Control gave fd %d, %v; want %d", got, err, fds[0])
	}
	if err := raw.Read(func(uintptr) bool { return true }); err == nil {
		t.Fatal("RawConn.Read succeeded on a socket no poller waits for")
	}
	c.Close()
	if err := raw.Control(func(uintptr) {}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Control after Close: %v, want net.ErrClosed", err)
	}
}

func TestNewBlocking_RefusesWhatIsNotAUnixStreamSocket(t *testing.T) {
	cases := []struct {
		name string
		open func() (int, error)
		want string
	}{
		{"pipe", func() (int, error) {
			var p [2]int
			err := syscall.Pipe2(p[:], syscall.O_CLOEXEC)
			syscall.Close(p[1])
			return p[0], err
		}, "is not a socket"},
		{"unix datagram", func() (int, error) {
			return syscall.Socket(syscall.AF_UNIX, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
		}, "not a Unix stream socket"},
		{"tcp", func() (int, error) {
			return syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		}, "not a Unix stream socket"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fd, err := tc.open()
			if err != nil {
				t.Fatal(err)
			}
			defer syscall.Close(fd)
			_, err = sockio.NewBlocking(fd)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewBlocking = %v, want an error saying it %s", err, tc.want)
			}
		})
	}
}
