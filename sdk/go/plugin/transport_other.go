//go:build !unix

package plugin

import (
	"errors"
	"io"
)

// hostConn reports that this build target has no transport yet: the wasm
// tier's transport arrives with the wasm tier itself. Handlers still
// compile, so plugin code can be shared across tiers.
func hostConn() (io.ReadWriteCloser, error) {
	return nil, errors.New("this build target has no Airlock transport in this SDK version; build the plugin for linux to run it in the process tier")
}
