package sandbox

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// SealInheritedFDs marks every descriptor from 3 up close-on-exec. A host
// calls it once at start: descriptors it inherited without close-on-exec
// (from a shell, a supervisor, a test runner) would otherwise reach every
// plugin it starts. Descriptors the host opens later are close-on-exec
// already (Go opens everything that way).
func SealInheritedFDs() error {
	err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	if err == nil {
		return nil
	}
	// Before Linux 5.11: one by one.
	entries, rerr := os.ReadDir("/proc/self/fd")
	if rerr != nil {
		return fmt.Errorf("seal inherited descriptors: %w (close_range: %v)", rerr, err)
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd >= 3 {
			unix.CloseOnExec(fd)
		}
	}
	return nil
}
