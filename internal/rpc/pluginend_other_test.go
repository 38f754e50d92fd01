//go:build !linux

package rpc

import (
	"testing"

	"github.com/airlockhq/airlock/internal/sockio"
)

// pluginEnd adopts fd as the Go SDK adopts its end off Linux.
func pluginEnd(t testing.TB, fd int) pluginSocket {
	t.Helper()
	c, err := sockio.New(unixConn(t, fd))
	if err != nil {
		t.Fatal(err)
	}
	return c
}
