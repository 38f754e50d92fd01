//go:build unix

package plugin

import (
	"fmt"
	"io"
	"os"
	"syscall"
)

// hostConn adopts fd 3, the process tier's socketpair end.
func hostConn() (io.ReadWriteCloser, error) {
	if os.Getenv("AIRLOCK_PROTOCOL") == "" {
		return nil, &exitCodeError{code: exitNotHosted, err: ErrNotHosted}
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(3, &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFSOCK {
		return nil, &exitCodeError{code: exitNotHosted, err: fmt.Errorf("fd 3 is not the host's socket: %w", ErrNotHosted)}
	}
	return adoptHostSocket()
}
