// Package airlock runs plugins you do not trust: third-party code written
// in Go or Rust, loaded into your service with the extensibility of dynamic
// loading and the containment of a sandbox. A plugin can crash, hang, leak
// or flood; the host keeps serving, loses no call, and records what
// happened.
//
// A plugin is a folder with an airlock.toml manifest (see
// docs/manifest.md) and a program built with the Go SDK
// (sdk/go/plugin) or the Rust SDK (sdk/rust). The host starts it as a
// supervised child process and talks to it over a private socketpair in a
// small binary protocol (docs/protocol.md):
//
//	host, err := airlock.NewHost(ctx)
//	if err != nil { … }
//	defer host.Close(ctx)
//
//	md, err := host.Load(ctx, "plugins/markdown")
//	if err != nil { … } // a *LoadError names the stage that failed
//
//	html, err := md.Call(ctx, "render", []byte("# Hello"))
//	var ce *airlock.CallError
//	if errors.As(err, &ce) { … } // ce.Code says why
//
// # Promises
//
//   - Every call resolves exactly once: an output or a *CallError.
//   - The caller's deadline and cancellation reach the plugin's handler.
//   - A handler panic fails only its own call.
//   - When a plugin dies, its calls in flight fail at once with its exit
//     status and last stderr lines, and the plugin restarts per its
//     manifest.
//   - Hosts share no state: several can live in one process.
//   - Bad manifests, frames and configuration get errors that name the
//     problem and how to fix it, never a panic.
package airlock
