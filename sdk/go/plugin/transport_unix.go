//go:build unix

package plugin

import (
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/airlockhq/airlock/internal/sockio"
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
	// The plugin's only connection: its reads block a thread in the kernel
	// rather than wait in the runtime's poller (see sockio.Blocking).
	sc, err := sockio.NewBlocking(3)
	if err != nil {
		return nil, &exitCodeError{code: exitNotHosted, err: fmt.Errorf("adopt fd 3: %v: %w", err, ErrNotHosted)}
	}
	return sc, nil
}
