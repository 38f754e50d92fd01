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

// pair returns both ends of a real AF_UNIX socketpair wrapped in Conns.
func pair(t *testing.T) (*sockio.Conn, *sockio.Conn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	wrap := func(fd int) *sockio.Conn {
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
		t.Cleanup(func() { c.Close() })
		return c
	}
	return wrap(fds[0]), wrap(fds[1])
}

func TestConn_RoundTripAndEOF(t *testing.T) {
	a, b := pair(t)
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
}

// A write larger than the socket's buffer must wait in the poller for the
// reader (EAGAIN partway) and resume where it stopped; buffers of every
// size, empty ones and more than one writev takes must arrive in order.
func TestConn_WriteBuffersLargerThanTheSocket(t *testing.T) {
	a, b := pair(t)
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
}

func TestConn_ReadWaitsAndIsWokenByData(t *testing.T) {
	a, b := pair(t)
	go func() {
		time.Sleep(20 * time.Millisecond) // the Read is waiting in the poller by now
		a.Write([]byte("late"))
	}()
	buf := make([]byte, 8)
	if n, err := b.Read(buf); string(buf[:n]) != "late" || err != nil {
		t.Fatalf("Read = %q, %v", buf[:n], err)
	}
}

func TestConn_DeadlineAndCloseEndAWaitingRead(t *testing.T) {
	_, b := pair(t)
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
}

func TestConn_WriteToAClosedPeerIsEPIPE(t *testing.T) {
	a, b := pair(t)
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
}

func TestConn_WriteDeadline(t *testing.T) {
	a, _ := pair(t)
	a.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := a.Write(make([]byte, 16<<20)) // nobody reads: the socket fills
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write past its deadline: %v, want os.ErrDeadlineExceeded", err)
	}
}

// The point of the package: reads and writes allocate nothing.
func TestConn_NoAllocations(t *testing.T) {
	a, b := pair(t)
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
