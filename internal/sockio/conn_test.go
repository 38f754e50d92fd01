package sockio_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/airlockhq/airlock/internal/sockio"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// socket is what both kinds, Conn and Dedicated, offer.
type socket interface {
	io.ReadWriteCloser
	WriteBuffers([][]byte) (int64, error)
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

// kinds wrap one end of a socketpair in each kind of socket. Dedicated
// ends linger, so that the tests cover both of its waits.
var kinds = []struct {
	name string
	wrap func(t *testing.T, fd int) socket
}{
	{"Conn", func(t *testing.T, fd int) socket {
		f := os.NewFile(uintptr(fd), "socketpair")
		nc, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		c, err := sockio.New(nc.(*net.UnixConn))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}},
	{"Dedicated", func(t *testing.T, fd int) socket {
		c, err := sockio.NewDedicated(fd, 5*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}},
}

// socketpair returns both ends of a real AF_UNIX stream socketpair.
func socketpair(t *testing.T) [2]int {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	return fds
}

// eachKind runs f for each kind of socket; pair returns both ends of a
// socketpair wrapped in that kind, closed when the test ends.
func eachKind(t *testing.T, f func(t *testing.T, pair func() (socket, socket))) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			f(t, func() (socket, socket) {
				fds := socketpair(t)
				a, b := k.wrap(t, fds[0]), k.wrap(t, fds[1])
				t.Cleanup(func() { a.Close(); b.Close() })
				return a, b
			})
		})
	}
}

func TestSocket_RoundTripAndEOF(t *testing.T) {
	eachKind(t, func(t *testing.T, pair func() (socket, socket)) {
		a, b := pair()
		if n, err := a.Write([]byte("hello")); n != 5 || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
		buf := make([]byte, 16)
		if n, err := b.Read(buf); string(buf[:n]) != "hello" || err != nil {
			t.Fatalf("Read = %q, %v", buf[:n], err)
		}
		if n, err := b.Read(nil); n != 0 || err != nil {
			t.Fatalf("empty Read = %d, %v; want 0, nil without touching the socket", n, err)
		}
		a.Close()
		if n, err := b.Read(buf); n != 0 || err != io.EOF {
			t.Fatalf("Read after the peer closed = %d, %v; want io.EOF", n, err)
		}
	})
}

// A write larger than the socket's buffer must wait in the poller for the
// reader (EAGAIN partway) and resume where it stopped; buffers of every
// size, empty ones and more than one writev takes must arrive in order.
func TestSocket_WriteBuffersLargerThanTheSocket(t *testing.T) {
	eachKind(t, func(t *testing.T, pair func() (socket, socket)) {
		a, b := pair()
		var bufs [][]byte
		var want []byte
		for i := range 3000 { // more than IOV_MAX (1024) buffers
			size := i % 700
			if i == 1500 {
				size = 3 << 20 // far more than the socket buffer
			}
			p := bytes.Repeat([]byte{byte(i)}, size)
			bufs = append(bufs, p)
			want = append(want, p...)
		}
		got := make(chan []byte)
		go func() {
			b, _ := io.ReadAll(io.LimitReader(b, int64(len(want))))
			got <- b
		}()
		n, err := a.WriteBuffers(bufs)
		if err != nil || n != int64(len(want)) {
			t.Fatalf("WriteBuffers = %d, %v; want %d, nil", n, err, len(want))
		}
		if g := <-got; !bytes.Equal(g, want) {
			t.Fatalf("read %d bytes that differ from the %d written", len(g), len(want))
		}
		if n, err := a.WriteBuffers([][]byte{nil, {}}); n != 0 || err != nil {
			t.Fatalf("WriteBuffers of empty buffers = %d, %v", n, err)
		}
	})
}

func TestSocket_ReadWaitsAndIsWokenByData(t *testing.T) {
	eachKind(t, func(t *testing.T, pair func() (socket, socket)) {
		a, b := pair()
		go func() {
			time.Sleep(20 * time.Millisecond) // the Read is waiting in the poller by now
			a.Write([]byte("late"))
		}()
		buf := make([]byte, 8)
		if n, err := b.Read(buf); string(buf[:n]) != "late" || err != nil {
			t.Fatalf("Read = %q, %v", buf[:n], err)
		}
	})
}

func TestSocket_DeadlineAndCloseEndAWaitingRead(t *testing.T) {
	eachKind(t, func(t *testing.T, pair func() (socket, socket)) {
		_, b := pair()
		buf := make([]byte, 8)
		b.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		if _, err := b.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Read past its deadline: %v, want os.ErrDeadlineExceeded", err)
		}
		b.SetReadDeadline(time.Time{})
		done := make(chan error)
		go func() {
			_, err := b.Read(buf)
			done <- err
		}()
		time.Sleep(10 * time.Millisecond)
		b.Close()
		if err := <-done; !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read when closed: %v, want net.ErrClosed", err)
		}
	})
}

func TestSocket_WriteToAClosedPeerIsEPIPE(t *testing.T) {
	eachKind(t, func(t *testing.T, pair func() (socket, socket)) {
		a, b := pair()
		b.Close()
		var err error
		for range 10 { // the first write may still be accepted
			if _, err = a.Write([]byte("x")); err != nil {
				break
			}
		}
		if !errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("Write to a closed peer: %v, want EPIPE or ECONNRESET", err)
		}
		var oe *net.OpError
		if !errors.As(err, &oe) || oe.Op != "write" {
			t.Fatalf("Write error %v is not a *net.OpError naming the write", err)
		}
	})
}

func TestSocket_WriteDeadline(t *testing.T) {
	eachKind(t, func(t *testing.T, pair func() (socket, socket)) {
		a, _ := pair()
		a.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
		_, err := a.Write(make([]byte, 16<<20)) // nobody reads: the socket fills
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Write past its deadline: %v, want os.ErrDeadlineExceeded", err)
		}
	})
}

// The point of the package: reads and writes allocate nothing.
func TestSocket_NoAllocations(t *testing.T) {
	eachKind(t, func(t *testing.T, pair func() (socket, socket)) {
		a, b := pair()
		msg := []byte("ping")
		buf := make([]byte, 64)
		bufs := [][]byte{msg, msg}
		allocs := testing.AllocsPerRun(200, func() {
			a.WriteBuffers(bufs)
			io.ReadFull(b, buf[:8])
			b.Write(msg)
			io.ReadFull(a, buf[:4])
		})
		if allocs != 0 {
			t.Fatalf("%v allocations per exchange, want 0", allocs)
		}
	})
}

// BenchmarkPingPong is a 64-byte exchange between two goroutines over one
// socketpair, through this package and through net.Conn.
func BenchmarkPingPong(b *testing.B) {
	for _, mode := range []string{"sockio", "net"} {
		b.Run(mode, func(b *testing.B) {
			fds, _ := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
			ends := make([]io.ReadWriteCloser, 2)
			for i, fd := range fds {
				f := os.NewFile(uintptr(fd), "s")
				nc, _ := net.FileConn(f)
				f.Close()
				ends[i] = nc
				if mode == "sockio" {
					ends[i], _ = sockio.New(nc.(*net.UnixConn))
				}
			}
			defer ends[0].Close()
			go func() {
				buf := make([]byte, 64)
				for {
					if _, err := io.ReadFull(ends[1], buf); err != nil {
						ends[1].Close()
						return
					}
					ends[1].Write(buf)
				}
			}()
			msg, buf := make([]byte, 64), make([]byte, 64)
			for b.Loop() {
				ends[0].Write(msg)
				io.ReadFull(ends[0], buf)
			}
		})
	}
}
