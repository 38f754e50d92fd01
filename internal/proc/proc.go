// Package proc starts a process-tier plugin and watches it: a private
// socketpair as fd 3, its stdout and stderr captured line by line into the
// host's log under a budget, its exit status and last stderr lines kept for
// the error its pending calls receive, and kills that reach its whole
// process tree.
//
// # Why a socketpair on fd 3?
//
// A socketpair has no name: no other process can connect to it, nothing is
// left on disk, and the plugin's stdout stays plain output instead of
// carrying a handshake (hashicorp/go-plugin's design, which forces plugins
// to keep stdout clean). It is also the fastest local transport Go can poll.
package proc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/airlockhq/airlock/internal/sockio"
)

// Containment is what a sandbox does around one process. Prepare has
// already rewritten the command; proc calls the methods at the right
// moments. A nil Containment means a plain child in its own process group.
type Containment interface {
	// Started runs after the process started and before it may run the
	// plugin (the sandbox's launcher waits for it).
	Started() error
	// Kill kills the whole process tree.
	Kill() error
	// Close releases what the containment holds, after the process exited.
	Close() error
	// Applied lists the protections actually applied.
	Applied() []string
	// Limit names the envelope limit that ended the process ("memory",
	// "seccomp", "cpu_time", "disk"), given the signal that ended it and
	// the CPU time it had used; "" when no limit did.
	Limit(sig syscall.Signal, cpu time.Duration) string
}

// Config describes one plugin process.
type Config struct {
	Name    string // plugin name, for logs
	Program string // absolute path of the entry program
	// Exec, when set, is the already opened and verified entry program: the
	// process is started from this descriptor (via /proc/self/fd), so the
	// file that runs is the file that was checked.
	Exec *os.File
	Args []string // arguments after the program
	Dir  string   // working directory: the plugin folder
	Env  []string // the complete environment; never the host's
	// Output receives the plugin's stdout and stderr lines.
	Output *Output
	// Contain, when set, wraps the command in a sandbox: it may rewrite cmd
	// (path, args, extra files, SysProcAttr) and returns the containment.
	// ctx bounds the containment's setup, through Started. exe is Exec:
	// the sandbox should run that file, not look the program up again.
	Contain func(ctx context.Context, cmd *exec.Cmd, exe *os.File) (Containment, error)
}

// Process is a running plugin process. Its methods are safe for concurrent
// use.
type Process struct {
	cmd     *exec.Cmd
	conn    *sockio.Conn
	contain Containment
	out     *Output
	pid     int

	done    chan struct{} // closed when the process has exited and its output is read
	exit    *ExitError
	killMu  sync.Mutex
	reason  string // why the host killed it, if it did
	readers sync.WaitGroup
	pipes   []*os.File
}

// sendBuffer is the send buffer Start asks for on each end of the plugin's
// socket. The kernel grants twice the smaller of this and the sysctl
// net.core.wmem_max (212992 bytes on a stock kernel, so 416 KiB there).
//
// # Why?
//
// On a Unix stream socket the sender's send buffer bounds the bytes in
// flight in that direction. The default (net.core.wmem_default, 208 KiB)
// cuts a 1 MiB payload into half a dozen rounds of "write until full, sleep,
// wake when the peer has read", each a pair of context switches on both
// sides. Measured on a 2-vCPU VM, interleaved runs of sequential 1 MiB
// echoes to a Go plugin went from 0.85 of the raw socketpair floor's call
// rate to 1.0–1.08, and a grant capped at the stock 416 KiB gave the same;
// 64 KiB and smaller payloads were unchanged. The buffer is a limit, not an
// allocation: the kernel holds only the bytes actually queued.
const sendBuffer = 1 << 20

// sizeSendBuffers asks for sendBuffer on both ends: the host's end carries
// calls, the plugin's end replies. A kernel that refuses leaves the default,
// which is slower for large payloads but correct, so errors are dropped.
func sizeSendBuffers(fds [2]int) {
	for _, fd := range fds {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, sendBuffer)
	}
}

// Start starts the plugin process. The returned connection is the host's end
// of the socketpair; the plugin holds the other as fd 3.
//
// Only what the child inherits is made before the fork. The host's ends
// (the socket and the read ends of the output pipes) are put into the
// runtime's poller after it, while the plugin's runtime starts: done
// before, that work sat on every cold start's path to the first call.
func Start(ctx context.Context, cfg Config) (*Process, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("create socketpair: %w", os.NewSyscallError("socketpair", err))
	}
	childEnd := os.NewFile(uintptr(fds[1]), "airlock-plugin")
	defer childEnd.Close()
	var outFDs, errFDs [2]int
	if err := unix.Pipe2(outFDs[:], unix.O_CLOEXEC); err != nil {
		unix.Close(fds[0])
		return nil, fmt.Errorf("create stdout pipe: %w", os.NewSyscallError("pipe2", err))
	}
	if err := unix.Pipe2(errFDs[:], unix.O_CLOEXEC); err != nil {
		closeFDs(fds[0], outFDs[0], outFDs[1])
		return nil, fmt.Errorf("create stderr pipe: %w", os.NewSyscallError("pipe2", err))
	}
	// The write ends stay blocking: the plugin writes to them as they are.
	stdoutW := os.NewFile(uintptr(outFDs[1]), "airlock-stdout-w")
	stderrW := os.NewFile(uintptr(errFDs[1]), "airlock-stderr-w")
	hostFDs := []int{fds[0], outFDs[0], errFDs[0]} // the host's ends, not wrapped yet

	cmd := exec.Command(cfg.Program, cfg.Args...)
	if cfg.Exec != nil && execByFD(cfg.Exec) {
		cmd.Path = fmt.Sprintf("/proc/self/fd/%d", cfg.Exec.Fd())
		cmd.Err = nil // exec.Command's lookup of the plain path does not apply
	}
	cmd.Dir = cfg.Dir
	cmd.Env = cfg.Env
	if cmd.Env == nil {
		cmd.Env = []string{} // nil would mean "inherit the host's"
	}
	cmd.Stdin = nil // /dev/null
	cmd.Stdout = stdoutW
	cmd.Stderr = stderrW
	cmd.ExtraFiles = []*os.File{childEnd}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:   true,            // its own group, so a group kill cannot reach the host
		Pdeathsig: syscall.SIGKILL, // it dies if the host dies
	}

	p := &Process{cmd: cmd, out: cfg.Output, done: make(chan struct{})}
	if cfg.Contain != nil {
		c, err := cfg.Contain(ctx, cmd, cfg.Exec)
		if err != nil {
			stdoutW.Close()
			stderrW.Close()
			closeFDs(hostFDs...)
			return nil, err
		}
		p.contain = c
	}
	err = cmd.Start()
	stdoutW.Close()
	stderrW.Close()
	if err != nil {
		closeFDs(hostFDs...)
		if p.contain != nil {
			_ = p.contain.Close()
		}
		return nil, fmt.Errorf("start %s: %w", cfg.Program, err)
	}
	p.pid = cmd.Process.Pid
	sizeSendBuffers(fds) // the child's end is still open here (closed on return)
	reason := "start failed"
	p.conn, p.pipes, err = wrapHostEnds(hostFDs)
	if err == nil && p.contain != nil {
		if err = p.contain.Started(); err != nil {
			reason, err = "sandbox setup failed", fmt.Errorf("contain %s: %w", cfg.Program, err)
		}
	}
	if err != nil {
		p.killWith(reason)
		_ = cmd.Wait()
		if p.conn != nil {
			p.conn.Close()
		}
		for _, f := range p.pipes {
			f.Close()
		}
		if p.contain != nil {
			_ = p.contain.Close()
		}
		return nil, err
	}
	p.readers.Add(2)
	go p.capture(p.pipes[0], "stdout")
	go p.capture(p.pipes[1], "stderr")
	go p.wait()
	return p, nil
}

// wrapHostEnds puts the host's end of the socketpair and the read ends of
// the stdout and stderr pipes into the runtime's poller. On failure it
// closes every descriptor it has not wrapped.
func wrapHostEnds(fds []int) (*sockio.Conn, []*os.File, error) {
	sock := os.NewFile(uintptr(fds[0]), "airlock-host")
	fc, err := net.FileConn(sock) // a duplicate, in the poller
	sock.Close()
	if err != nil {
		closeFDs(fds[1:]...)
		return nil, nil, fmt.Errorf("wrap socketpair: %w", err)
	}
	conn, err := sockio.New(fc.(*net.UnixConn))
	if err != nil {
		fc.Close()
		closeFDs(fds[1:]...)
		return nil, nil, fmt.Errorf("wrap socketpair: %w", err)
	}
	pipes := make([]*os.File, 0, 2)
	for i, fd := range fds[1:] {
		if err := unix.SetNonblock(fd, true); err != nil { // so that os.NewFile polls it
			conn.Close()
			for _, f := range pipes {
				f.Close()
			}
			closeFDs(fds[1+i:]...)
			return nil, nil, fmt.Errorf("output pipe: %w", os.NewSyscallError("fcntl", err))
		}
		pipes = append(pipes, os.NewFile(uintptr(fd), "airlock-output"))
	}
	return conn, pipes, nil
}

func closeFDs(fds ...int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// Conn returns the host's end of the plugin's socketpair.
func (p *Process) Conn() *sockio.Conn { return p.conn }

// Pid returns the process id.
func (p *Process) Pid() int { return p.pid }

// Done is closed when the process has exited and its output has been read.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exit returns how the process ended; it is valid after Done is closed.
func (p *Process) Exit() *ExitError { return p.exit }

// outputGrace is how long output may still be read after the process
// exited: a descendant holding the pipes open cannot keep Done from closing.
const outputGrace = 500 * time.Millisecond

func (p *Process) wait() {
	// Wait for the exit without reaping: while the zombie exists its pid,
	// which is also its process group id, cannot be reused, so the group
	// kill below cannot reach a stranger.
	awaitExit(p.pid)
	cpu := cpuTime(p.pid) // the zombie's, before it is reaped
	// The plugin's tree must not outlive it: kill what is left, then give
	// the readers a moment to drain what was written before the exit.
	if p.contain != nil {
		_ = p.contain.Kill()
	} else {
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	}
	deadline := time.Now().Add(outputGrace)
	for _, f := range p.pipes {
		_ = f.SetReadDeadline(deadline)
	}
	err := p.cmd.Wait()
	p.readers.Wait()
	for _, f := range p.pipes {
		f.Close()
	}
	if p.contain != nil {
		_ = p.contain.Close()
	}
	p.killMu.Lock()
	reason := p.reason
	p.killMu.Unlock()
	p.exit = newExitError(p.pid, p.cmd.ProcessState, err, reason, p.out.stderrTail())
	if p.contain != nil {
		if reason != "" {
			// The host sent the SIGKILL itself: however much CPU time the
			// process had used, its CPU limit did not end it.
			cpu = 0
		}
		p.exit.Limit = p.contain.Limit(p.exit.Signal, cpu)
	}
	close(p.done)
}

// Applied lists the protections applied to the process; nil without
// containment.
func (p *Process) Applied() []string {
	if p.contain == nil {
		return nil
	}
	return p.contain.Applied()
}

// cpuTime reads the user plus system CPU time of process pid (a zombie is
// fine) from /proc; 0 when it cannot.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	// Fields after the command: state ppid pgrp session tty tpgid flags
	// minflt cminflt majflt cmajflt utime stime.
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(ut+st) * (time.Second / clockTicks)
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// Terminate asks the plugin to exit (SIGTERM to its process group).
func (p *Process) Terminate() {
	_ = syscall.Kill(-p.pid, syscall.SIGTERM)
}

// Kill kills the plugin's whole process tree. reason is recorded in the
// exit error ("watchdog: no heartbeat for 5s"). Killing a process that
// already exited is harmless.
func (p *Process) Kill(reason string) { p.killWith(reason) }

func (p *Process) killWith(reason string) {
	p.killMu.Lock()
	if p.reason == "" {
		p.reason = reason
	}
	p.killMu.Unlock()
	if p.contain != nil {
		if err := p.contain.Kill(); err == nil {
			return
		}
	}
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
}

// execByFD reports whether f can be started through /proc/self/fd: it can
// for binaries, not for scripts (their interpreter would have to reopen the
// descriptor, which exec closes), and not where /proc is missing.
func execByFD(f *os.File) bool {
	var magic [2]byte
	if n, _ := f.ReadAt(magic[:], 0); n == 2 && magic == [2]byte{'#', '!'} {
		return false
	}
	_, err := os.Stat(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
	return err == nil
}

// ErrExited is matched by every *ExitError.
var ErrExited = errors.New("plugin process exited")
