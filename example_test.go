package airlock_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/testing/fixture"
)

// A host loads a plugin folder and calls one of its functions.
func Example() {
	ctx := context.Background()
	host, err := airlock.NewHostWithConfig(ctx, airlock.NewHostConfig().WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		panic(err)
	}
	defer host.Close(ctx)

	echo, err := host.Load(ctx, fixture.ExamplePluginDir(fixture.Module+"/examples/echo", echoManifest))
	if err != nil {
		panic(err)
	}
	out, err := echo.Call(ctx, "echo", []byte("hello, plugin"))
	fmt.Println(string(out), err)
	st := echo.Status()
	fmt.Println(st.State, st.Protocol, st.Exports)
	// Output:
	// hello, plugin <nil>
	// operate 1 [echo]
}

// A host whose binary is large, or linked with cgo, starts its sandboxed
// plugins through the small static launcher, cmd/airlock-launcher, instead
// of re-executing itself: one line, and every plugin starts about 1 ms
// sooner, with the same protections.
func ExampleHostConfig_WithLauncher() {
	ctx := context.Background()
	launcher := fixture.ExampleBinary(fixture.Module + "/cmd/airlock-launcher") // e.g. /usr/local/libexec/airlock-launcher
	host, err := airlock.NewHostWithConfig(ctx, airlock.NewHostConfig().
		WithLogger(slog.New(slog.DiscardHandler)).
		WithLauncher(launcher))
	if err != nil {
		panic(err)
	}
	defer host.Close(ctx)

	echo, err := host.Load(ctx, fixture.ExamplePluginDir(fixture.Module+"/examples/echo", echoManifest))
	if err != nil {
		panic(err)
	}
	out, err := echo.Call(ctx, "echo", []byte("started by the dedicated launcher"))
	fmt.Println(string(out), err)
	// Output:
	// started by the dedicated launcher <nil>
}

// A caller's deadline reaches the plugin: a handler that would sleep for
// ten seconds is stopped after fifty milliseconds, and the error says so.
func ExamplePlugin_Call_deadline() {
	ctx := context.Background()
	host, _ := airlock.NewHostWithConfig(ctx, airlock.NewHostConfig().WithLogger(slog.New(slog.DiscardHandler)))
	defer host.Close(ctx)
	p, err := host.Load(ctx, fixture.ExamplePluginDir(fixture.Module+"/internal/testing/misbehave", fmt.Sprintf(misbehaveManifest, "serve")))
	if err != nil {
		panic(err)
	}

	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err = p.Call(short, "sleep", []byte("10000"))
	var ce *airlock.CallError
	fmt.Println(errors.Is(err, context.DeadlineExceeded), errors.As(err, &ce) && ce.Code == airlock.CodeDeadlineExceeded)

	// The plugin is unharmed.
	out, _ := p.Call(ctx, "echo", []byte("still serving"))
	fmt.Println(string(out))
	// Output:
	// true true
	// still serving
}

// CallJSON encodes the input and decodes the output as JSON.
func ExampleCallJSON() {
	ctx := context.Background()
	host, _ := airlock.NewHostWithConfig(ctx, airlock.NewHostConfig().WithLogger(slog.New(slog.DiscardHandler)))
	defer host.Close(ctx)
	pricing, err := host.Load(ctx, fixture.ExamplePluginDir(fixture.Module+"/examples/pricing", `
name = "pricing"
version = "1.0.0"
[entry]
program = "plugin"
sha256 = "$SHA256"
[functions.quote]
`))
	if err != nil {
		panic(err)
	}
	type quote struct {
		Subtotal int64 `json:"subtotal_cents"`
		Total    int64 `json:"total_cents"`
	}
	q, err := airlock.CallJSON[quote](ctx, pricing, "quote", map[string]any{
		"items":  []map[string]any{{"sku": "widget", "quantity": 10}},
		"region": "us-ca",
	})
	fmt.Println(q.Subtotal, q.Total, err)

	_, err = airlock.CallJSON[quote](ctx, pricing, "quote", map[string]any{"region": "mars"})
	fmt.Println(errors.Is(err, airlock.ErrBadInput))
	// Output:
	// 17990 19474 <nil>
	// true
}
