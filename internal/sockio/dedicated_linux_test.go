package sockio_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/sockio"
)

// dedicatedPair returns a blocking socket (the host's end) and a Dedicated
// with the given linger (the plugin's), closed when the test ends. The
// host's end blocks in the kernel rather than waiting in this process's
// poller, so that what the test sees of the plugin's end does not depend
// on how the runtime schedules a host in the same process.
func dedicatedPair(t *testing.T, linger time.Duration) (io.ReadWriteCloser, *sockio.Dedicated) {
	t.Helper()
	fds := socketpair(t)
	host := os.NewFile(uintptr(fds[0]), "host") // blocking: not in the poller
	plugin, err := sockio.NewDedicated(fds[1], linger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Close(); plugin.Close() })
	return host, plugin
}

// exchange has the host send n messages of size bytes, each answered by
// the plugin with the same bytes, one after another.
func exchange(t *testing.T, host io.ReadWriter, plugin *sockio.Dedicated, n, size int) {
	t.Helper()
	msg := bytes.Repeat([]byte{'m'}, size)
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, size)
		for range n {
			if _, err := io.ReadFull(plugin, buf); err != nil {
				done <- err
				return
			}
			if _, err := plugin.Write(buf); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	buf := make([]byte, size)
	for i := range n {
		if _, err := host.Write(msg); err != nil {
			t.Fatalf("message %d: host write: %v", i, err)
		}
		if _, err := io.ReadFull(host, buf); err != nil || !bytes.Equal(buf, msg) {
			t.Fatalf("message %d: host read %d bytes, %v", i, len(buf), err)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("plugin: %v", err)
	}
}

// exchangeUntilLingered exchanges 64 B messages until one has been
// waited for in the kernel. Whether a given read finds the socket empty
// depends on the scheduler, so it allows 10 s.
func exchangeUntilLingered(t *testing.T, host io.ReadWriter, plugin *sockio.Dedicated) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		exchange(t, host, plugin, 20, 64)
		opened, _, lingered := sockio.WindowsOf(plugin)
		if lingered > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("10 s of exchanges in a row: %d windows opened, no message waited for in the kernel", opened)
		}
	}
}

// atLeastTwoProcs makes sure the runtime has a spare processor, which
// lingering needs, for the test's duration.
func atLeastTwoProcs(t *testing.T) {
	if prev := runtime.GOMAXPROCS(0); prev < 2 {
		runtime.GOMAXPROCS(2)
		t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
	}
}

// While messages come close together the plugin's reads wait in the
// kernel; once a whole linger passes without one, a waiting read goes back
// to the poller by itself, and the next message still reaches it.
func TestDedicated_LingersOnlyWhileMessagesComeClose(t *testing.T) {
	atLeastTwoProcs(t)
	host, plugin := dedicatedPair(t, 20*time.Millisecond)
	exchangeUntilLingered(t, host, plugin)
	_, closed, _ := sockio.WindowsOf(plugin)

	got := make(chan string, 1)
	go func() {
		buf := make([]byte, 16)
		n, err := plugin.Read(buf)
		if err != nil {
			got <- err.Error()
			return
		}
		got <- string(buf[:n])
	}()
	for deadline := time.Now().Add(10 * time.Second); sockio.WindowsClosed(plugin) == closed; {
		if time.Now().After(deadline) {
			t.Fatal("the window is still open 10 s after the last message, with a linger of 20 ms")
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := host.Write([]byte("late")); err != nil {
		t.Fatal(err)
	}
	if g := <-got; g != "late" {
		t.Fatalf("read after the window closed = %q, want \"late\"", g)
	}
}

// A lingering read keeps its processor, so with only one it would stall
// every other goroutine: reads then always wait in the poller.
func TestDedicated_NeverLingersWithOneProcessor(t *testing.T) {
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	host, plugin := dedicatedPair(t, 20*time.Millisecond)
	exchange(t, host, plugin, 50, 64)
	if opened, _, lingered := sockio.WindowsOf(plugin); opened != 0 || lingered != 0 {
		t.Fatalf("GOMAXPROCS 1: %d windows opened, %d messages waited for in the kernel; want none", opened, lingered)
	}
}

// After a large message the next read parks: waiting in the kernel, it
// would wake on the first part of the next one and take the CPU from the
// peer still writing it.
func TestDedicated_DoesNotLingerAfterALargeMessage(t *testing.T) {
	atLeastTwoProcs(t)
	host, plugin := dedicatedPair(t, 20*time.Millisecond)
	exchange(t, host, plugin, 30, 64<<10)
	if _, _, lingered := sockio.WindowsOf(plugin); lingered != 0 {
		t.Fatalf("64 KiB exchanges: %d messages waited for in the kernel, want 0", lingered)
	}
	exchangeUntilLingered(t, host, plugin) // and small ones do again
}

// A read waiting in the kernel is ended at once by a read deadline and by
// Close: with a linger of an hour, nothing else would end it.
func TestDedicated_DeadlineAndCloseEndALingeringRead(t *testing.T) {
	atLeastTwoProcs(t)
	host, plugin := dedicatedPair(t, time.Hour)
	read := func() chan error {
		done := make(chan error, 1)
		go func() {
			_, err := plugin.Read(make([]byte, 8))
			done <- err
		}()
		return done
	}
	wait := func(done chan error, want error, what string) {
		t.Helper()
		select {
		case err := <-done:
			if !errors.Is(err, want) {
				t.Fatalf("%s: Read = %v, want %v", what, err, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the lingering read did not return in 10 s", what)
		}
	}

	exchangeUntilLingered(t, host, plugin)
	done := read()
	time.Sleep(10 * time.Millisecond) // lingering by now
	plugin.SetReadDeadline(time.Now())
	wait(done, os.ErrDeadlineExceeded, "read deadline")

	plugin.SetReadDeadline(time.Time{})
	_, _, before := sockio.WindowsOf(plugin)
	for deadline := time.Now().Add(10 * time.Second); ; {
		exchange(t, host, plugin, 20, 64)
		if _, _, lingered := sockio.WindowsOf(plugin); lingered > before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no message waited for in the kernel in 10 s once the deadline was cleared")
		}
	}
	done = read()
	time.Sleep(10 * time.Millisecond)
	plugin.Close()
	wait(done, net.ErrClosed, "Close")
}

func TestNewDedicated_RejectsWhatIsNotAUnixStreamSocket(t *testing.T) {
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(p[0])
	defer syscall.Close(p[1])
	if _, err := sockio.NewDedicated(p[0], 0); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("NewDedicated(pipe) = %v, want an error saying it is not a socket", err)
	}
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fds[0])
	defer syscall.Close(fds[1])
	if _, err := sockio.NewDedicated(fds[0], 0); err == nil || !strings.Contains(err.Error(), "not a Unix stream socket") {
		t.Fatalf("NewDedicated(datagram socket) = %v, want an error saying it is not a Unix stream socket", err)
	}
}
