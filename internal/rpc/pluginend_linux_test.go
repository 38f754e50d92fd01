package rpc

import (
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/sockio"
)

// pluginEnd adopts fd as the Go SDK adopts its end on Linux: a
// sockio.Dedicated whose reads linger.
func pluginEnd(t testing.TB, fd int) pluginSocket {
	t.Helper()
	c, err := sockio.NewDedicated(fd, 250*time.Microsecond)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
