package attack

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// memoryBalloon allocates and touches args[0] MiB (default 1024) in 1 MiB
// pieces. Count is the MiB it got; a memory limit ends it with SIGKILL.
func memoryBalloon(args []string) (Result, error) {
	mib, err := argInt(args, 0, 1024)
	if err != nil {
		return Result{}, err
	}
	var r Result
	keep := make([][]byte, 0, mib)
	for range mib {
		b := make([]byte, 1<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		keep = append(keep, b)
		r.Count++
	}
	runtime.KeepAlive(keep)
	return r, nil
}

// forkBomb forks up to args[0] children (default 100000), each of which
// waits forever. Count is the forks that succeeded; Errno the one that
// stopped it.
func forkBomb(args []string) (Result, error) {
	max, err := argInt(args, 0, 100000)
	if err != nil {
		return Result{}, err
	}
	var r Result
	for r.Count < max {
		pid, errno := rawFork()
		if pid == 0 && errno == 0 {
			waitForever()
		}
		if errno != 0 {
			r.failed(errno)
			break
		}
		r.Count++
	}
	return r, nil
}

// rawFork forks with raw syscalls only. In the child only the calling
// thread exists, so it must call nothing but raw syscalls (waitForever).
//
//go:nosplit
func rawFork() (int, syscall.Errno) {
	pid, _, errno := syscall.RawSyscall6(syscall.SYS_CLONE, uintptr(syscall.SIGCHLD), 0, 0, 0, 0, 0)
	return int(pid), errno
}

// waitForever blocks the calling thread until a signal kills the process.
//
//go:nosplit
func waitForever() {
	for {
		syscall.RawSyscall6(syscall.SYS_PPOLL, 0, 0, 0, 0, 0, 0)
	}
}

// exitNow ends the process at once, from a raw-forked child.
//
//go:nosplit
func exitNow(code int) {
	syscall.RawSyscall(syscall.SYS_EXIT_GROUP, uintptr(code), 0, 0)
}

// threadBomb starts up to args[0] OS threads (default 100000), each parked
// in a blocking syscall. When the kernel refuses a thread the Go runtime
// aborts the process ("failed to create new OS thread"); Count is only
// reported if the limit was never hit.
func threadBomb(args []string) (Result, error) {
	max, err := argInt(args, 0, 100000)
	if err != nil {
		return Result{}, err
	}
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		return Result{}, fmt.Errorf("create pipe: %w", err)
	}
	started := make(chan struct{})
	for range max {
		go func() {
			runtime.LockOSThread()
			started <- struct{}{}
			var b [1]byte
			_, _ = unix.Read(fds[0], b[:]) // blocks this thread forever
		}()
		<-started
	}
	return Result{Count: max}, nil
}

// cpuSpin burns CPU on args[1] threads (default 4) for args[0] seconds
// (default: until killed). Count is the loop iterations of the first.
func cpuSpin(args []string) (Result, error) {
	secs, err := argInt(args, 0, 0)
	if err != nil {
		return Result{}, err
	}
	threads, err := argInt(args, 1, 4)
	if err != nil {
		return Result{}, err
	}
	deadline := time.Now().Add(time.Duration(secs) * time.Second)
	spin := func() int64 {
		var n int64
		for secs == 0 || time.Now().Before(deadline) {
			for range 1 << 20 {
				n++
			}
		}
		return n
	}
	for range threads - 1 {
		go spin()
	}
	return Result{Count: spin()}, nil
}

// fdExhaust opens /dev/null (or, where that is missing, a pipe) until the
// kernel refuses. Count is the descriptors it got.
func fdExhaust([]string) (Result, error) {
	var r Result
	usePipes := false
	for r.Count < 1<<20 {
		var err error
		if !usePipes {
			_, err = unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if r.Count == 0 && (errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EACCES)) {
				usePipes = true
				continue
			}
		} else {
			var p [2]int
			if err = unix.Pipe2(p[:], unix.O_CLOEXEC); err == nil {
				r.Count++ // a pipe is two descriptors
			}
		}
		if err != nil {
			r.failed(err)
			break
		}
		r.Count++
	}
	return r, nil
}

// diskFill writes 1 MiB blocks into files of up to 16 MiB each under
// args[0] (default /tmp) until a write fails or args[1] MiB (default 4096)
// are written. Count is the bytes written.
func diskFill(args []string) (Result, error) {
	dir := "/tmp"
	if len(args) > 0 && args[0] != "" {
		dir = args[0]
	}
	max, err := argInt(args, 1, 4096)
	if err != nil {
		return Result{}, err
	}
	var r Result
	block := make([]byte, 1<<20)
	for i := range block {
		block[i] = byte(i)
	}
	for file := 0; r.Count < max<<20; file++ {
		f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("airlock-fill-%d", file)), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			r.failed(err)
			return r, nil
		}
		for range 16 {
			n, err := f.Write(block)
			r.Count += int64(n)
			if err != nil {
				f.Close()
				r.failed(err)
				return r, nil
			}
		}
		f.Close()
	}
	return r, nil
}

// flood writes to fd (1 or 2) args[0] bytes (default: until killed or the
// reader goes away).
func flood(fd int) attackFunc {
	return func(args []string) (Result, error) {
		max, err := argInt(args, 0, 0)
		if err != nil {
			return Result{}, err
		}
		var r Result
		line := make([]byte, 64<<10)
		for i := range line {
			line[i] = 'A' + byte(i%26)
			if i%100 == 99 {
				line[i] = '\n'
			}
		}
		for max == 0 || r.Count < max {
			n, err := unix.Write(fd, line)
			r.Count += int64(max0(n))
			if err != nil {
				r.failed(err)
				break
			}
		}
		return r, nil
	}
}

func max0(n int) int {
	if n < 0 {
		return 0
	}
	return n
}

// sleep waits args[0] seconds (default: forever).
func sleep(args []string) (Result, error) {
	secs, err := argInt(args, 0, 0)
	if err != nil {
		return Result{}, err
	}
	if secs == 0 {
		for {
			time.Sleep(time.Hour)
		}
	}
	time.Sleep(time.Duration(secs) * time.Second)
	return Result{Count: secs}, nil
}
