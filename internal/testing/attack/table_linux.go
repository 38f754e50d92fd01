package attack

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

func table() map[string]attackFunc {
	return map[string]attackFunc{
		// Resources.
		"memory-balloon": memoryBalloon,
		"fork-bomb":      forkBomb,
		"thread-bomb":    threadBomb,
		"cpu-spin":       cpuSpin,
		"fd-exhaust":     fdExhaust,
		"disk-fill":      diskFill,
		"stdout-flood":   flood(1),
		"stderr-flood":   flood(2),
		// Network.
		"net-tcp-loopback": netTCPLoopback,
		"net-tcp-external": netTCPExternal,
		"net-udp":          netUDP,
		// Filesystem.
		"read-shadow":       readShadow,
		"read-host-environ": readHostEnviron,
		"write-outside":     writeOutside,
		"path-traversal":    pathTraversal,
		"symlink-escape":    symlinkEscape,
		"setuid-exec":       setuidExec,
		"dev-shm-leftover":  devShmLeftover,
		// Other processes.
		"ptrace-host":           ptraceHost,
		"pidfd-getfd-host":      pidfdGetfdHost,
		"process-vm-readv-host": processVMReadvHost,
		"kill-host":             killHost,
		"kill-all":              killAll,
		"setsid-orphan":         setsidOrphan,
		// Syscalls and self-inspection.
		"try-syscalls":   trySyscalls,
		"seccomp-status": seccompStatus,
		"ids":            ids,
		"fds":            fds,
		"env":            env,
		// Harmless helpers: a plugin that exits at once, and one that waits.
		"true":  func([]string) (Result, error) { return Result{}, nil },
		"sleep": sleep,
	}
}

// env reports the environment, one variable a line, in Detail.
func env([]string) (Result, error) {
	return Result{Detail: strings.Join(os.Environ(), "\n")}, nil
}

// argInt returns args[i] as an int, or def when absent.
func argInt(args []string, i int, def int64) (int64, error) {
	if i >= len(args) {
		return def, nil
	}
	n, err := strconv.ParseInt(args[i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("argument %d: %q is not an integer", i+1, args[i])
	}
	return n, nil
}

// argString returns args[i], or an error naming what is missing.
func argString(args []string, i int, what string) (string, error) {
	if i >= len(args) || args[i] == "" {
		return "", fmt.Errorf("missing argument %d: %s", i+1, what)
	}
	return args[i], nil
}

// argPID returns args[i] as a positive pid.
func argPID(args []string, i int) (int, error) {
	s, err := argString(args, i, "the pid of the process to attack")
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(s)
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("argument %d: %q is not a pid", i+1, s)
	}
	return pid, nil
}
