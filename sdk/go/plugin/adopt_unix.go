//go:build unix && !linux

package plugin

import (
	"fmt"
	"io"
	"net"
	"os"

	"github.com/airlockhq/airlock/internal/sockio"
)

// adoptHostSocket adopts fd 3 through the runtime's poller.
func adoptHostSocket() (io.ReadWriteCloser, error) {
	f := os.NewFile(3, "airlock-host")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, &exitCodeError{code: exitProtocol, err: fmt.Errorf("adopt fd 3: %w", err)}
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, &exitCodeError{code: exitNotHosted, err: fmt.Errorf("fd 3 is not a Unix socket: %w", ErrNotHosted)}
	}
	sc, err := sockio.New(uc)
	if err != nil {
		uc.Close()
		return nil, &exitCodeError{code: exitProtocol, err: fmt.Errorf("adopt fd 3: %w", err)}
	}
	return sc, nil
}
