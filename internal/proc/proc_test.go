package proc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
	"golang.org/x/time/rate"

	"github.com/airlockhq/airlock/internal/testing/fixture"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// records is a slog handler that keeps messages and attributes.
type records struct {
	mu    sync.Mutex
	lines []string
}

func (r *records) Enabled(context.Context, slog.Level) bool { return true }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	b.WriteString(rec.Message)
	rec.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%s", a.Key, a.Value); return true })
	r.mu.Lock()
	r.lines = append(r.lines, b.String())
	r.mu.Unlock()
	return nil
}
func (r *records) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *records) WithGroup(string) slog.Handler      { return r }

func run(t *testing.T, script string, out *Output) *Process {
	t.Helper()
	p, err := Start(context.Background(), Config{Name: "sh", Program: "/bin/sh", Args: []string{"-c", script}, Dir: t.TempDir(), Output: out})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Conn().Close() })
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		p.Kill("test timeout")
		t.Fatal("process did not end")
	}
	return p
}

func TestProcess_ExitStatusAndStderrTail(t *testing.T) {
	rec := &records{}
	p := run(t, `for i in $(seq 1 30); do echo "line $i" >&2; done; printf 'esc \033[31m red\n' >&2; exit 4`, &Output{Logger: slog.New(rec)})
	e := p.Exit()
	if e.Code != 4 || e.Signal != 0 || !errors.Is(e, ErrExited) {
		t.Fatalf("exit = %+v", e)
	}
	if len(e.Stderr) != tailLines || e.Stderr[0] != "line 12" {
		t.Fatalf("stderr tail = %q; want the last %d lines", e.Stderr, tailLines)
	}
	if last := e.Stderr[len(e.Stderr)-1]; last != `esc \u001b[31m red` {
		t.Fatalf("control characters are not escaped in the tail: %q", last)
	}
	if !strings.Contains(e.Error(), "exited with status 4") {
		t.Fatalf("Error() = %q", e.Error())
	}
}

func TestProcess_OutputBudgetDropsAndSays(t *testing.T) {
	rec := &records{}
	out := &Output{Logger: slog.New(rec), Budget: rate.NewLimiter(rate.Every(time.Hour), 5)}
	run(t, `yes flood | head -n 10000; sleep 0.1; echo after`, out)
	if out.Dropped() < 9990 {
		t.Fatalf("dropped %d lines; the budget allows 5", out.Dropped())
	}
	rec.mu.Lock()
	n := len(rec.lines)
	rec.mu.Unlock()
	if n > 6 {
		t.Fatalf("%d records reached the log", n)
	}
}

func TestProcess_LongLinesAreCut(t *testing.T) {
	rec := &records{}
	run(t, `head -c 100000 /dev/zero | tr '\0' 'a'; echo; echo next`, &Output{Logger: slog.New(rec)})
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.lines) != 2 || !strings.Contains(rec.lines[0], "cut_bytes=") || len(rec.lines[0]) > maxLine+200 || !strings.Contains(rec.lines[1], "line=next") {
		t.Fatalf("records: %d, first %d bytes", len(rec.lines), len(rec.lines[0]))
	}
}

func TestProcess_KillReachesTheGroupAndRecordsWhy(t *testing.T) {
	p, err := Start(context.Background(), Config{Program: "/bin/sh", Args: []string{"-c", "sleep 60 & sleep 60"}, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Conn().Close()
	time.Sleep(50 * time.Millisecond)
	p.Kill("test says so")
	<-p.Done()
	e := p.Exit()
	if e.Signal != syscall.SIGKILL || e.Reason != "test says so" {
		t.Fatalf("exit = %+v", e)
	}
	// Killed members may linger as zombies until init reaps them; none may
	// still be running.
	deadline := time.Now().Add(5 * time.Second)
	for live := liveInGroup(p.Pid()); len(live) > 0; live = liveInGroup(p.Pid()) {
		if time.Now().After(deadline) {
			t.Fatalf("processes of the group survived: %v", live)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// liveInGroup lists processes of process group pgid that are not zombies.
func liveInGroup(pgid int) []int {
	var live []int
	for _, p := range fixture.Procs() {
		if p.PGRP == pgid && p.State != "Z" {
			live = append(live, p.PID)
		}
	}
	return live
}

// TestStart_SizesTheSocketSendBuffers checks both ends of the plugin's
// socket: the host's end by asking the kernel, the plugin's end by what it
// can queue. A child that writes without pause while nobody reads fills
// the socket to about its end's send buffer: a little over wmem_default
// bytes with the default buffer, about the grant with sendBuffer.
func TestStart_SizesTheSocketSendBuffers(t *testing.T) {
	wmemMax, wmemDefault := sysctlInt(t, "net/core/wmem_max"), sysctlInt(t, "net/core/wmem_default")
	grant := 2 * min(sendBuffer, wmemMax)
	if grant <= wmemDefault {
		t.Skipf("the kernel grants %d bytes (net.core.wmem_max %d), no more than its default %d", grant, wmemMax, wmemDefault)
	}
	p, err := Start(context.Background(), Config{Program: "/bin/sh", Args: []string{"-c", "exec cat /dev/zero >&3"}, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		p.Kill("test over")
		<-p.Done()
		p.Conn().Close()
	}()
	raw, err := p.Conn().SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	sockopt := func(get func(fd int) (int, error)) int {
		t.Helper()
		var v int
		var gerr error
		if err := raw.Control(func(fd uintptr) { v, gerr = get(int(fd)) }); err != nil || gerr != nil {
			t.Fatal(err, gerr)
		}
		return v
	}
	if got := sockopt(func(fd int) (int, error) { return unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF) }); got != grant {
		t.Fatalf("host end's send buffer is %d bytes; want %d (twice the smaller of sendBuffer and wmem_max)", got, grant)
	}
	// Wait for the child's writes to stop: the socket is full.
	queued, deadline := 0, time.Now().Add(10*time.Second)
	for {
		time.Sleep(20 * time.Millisecond)
		n := sockopt(func(fd int) (int, error) { return unix.IoctlGetInt(fd, unix.SIOCINQ) })
		if n == queued && n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the child's writes did not stop (%d bytes queued)", n)
		}
		queued = n
	}
	if queued <= (wmemDefault+grant)/2 {
		t.Fatalf("the plugin's end queued %d bytes; its send buffer should hold about %d, the default about %d", queued, grant, wmemDefault)
	}
}

func sysctlInt(t *testing.T, name string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/" + name)
	if err != nil {
		t.Skipf("cannot read %s: %v", name, err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return n
}

// TestProcess_WaitingForExitHoldsNoThread starts many long-lived children
// and checks that watching them for exit does not cost one blocked OS
// thread each: the wait is in the runtime's poller (a pidfd), not in a
// blocking waitid, which would also keep a processor from the rest of the
// host until the runtime's monitor noticed.
func TestProcess_WaitingForExitHoldsNoThread(t *testing.T) {
	if fd, err := unix.PidfdOpen(os.Getpid(), 0); err != nil {
		t.Skipf("this kernel has no pidfd_open (%v): the blocking fallback holds a thread per plugin by design", err)
	} else {
		unix.Close(fd)
	}
	const children = 24
	before := threads(t)
	var ps []*Process
	for range children {
		p, err := Start(context.Background(), Config{Program: "/bin/sleep", Args: []string{"60"}, Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	defer func() {
		for _, p := range ps {
			p.Kill("test over")
			<-p.Done()
			p.Conn().Close()
		}
	}()
	// A blocking wait shows up once the runtime's monitor hands the
	// waiting threads' processors on: give it time to.
	time.Sleep(200 * time.Millisecond)
	grew := threads(t) - before
	if grew >= children/2 {
		t.Fatalf("the host grew %d threads while waiting for %d children", grew, children)
	}
	t.Logf("the host grew %d threads while waiting for %d children", grew, children)
	// The wait must not reap: the exit status is still the process's own.
	ps[0].Kill("first")
	<-ps[0].Done()
	if e := ps[0].Exit(); e.Signal != syscall.SIGKILL || e.Reason != "first" {
		t.Fatalf("exit = %+v", e)
	}
}

// threads counts this process's threads.
func threads(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no Threads line in /proc/self/status")
	return 0
}
