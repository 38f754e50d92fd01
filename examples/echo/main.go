// Command echo is the smallest useful plugin: it returns its input. The
// benchmarks use it to measure the host's call path, and it shows the
// least a plugin needs.
package main

import (
	"context"

	"github.com/airlockhq/airlock/sdk/go/plugin"
)

func main() {
	p := plugin.New("echo", "1.0.0")
	p.Handle("echo", func(_ context.Context, in []byte) ([]byte, error) { return in, nil })
	p.Main()
}
