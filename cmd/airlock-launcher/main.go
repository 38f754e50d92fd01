// Command airlock-launcher is Airlock's sandbox launcher as a program of
// its own: the process a sandboxed plugin starts as, which applies the
// sandbox between fork and exec and then execs the plugin.
//
// A host does not need it: by default the host re-executes its own binary
// as the launcher, and the init function of package
// internal/sandbox/launcher takes over. But every spawn then starts the
// host's whole binary (its size, its cgo start-up, the init functions of
// its packages that come first), where this one starts a 2 MB static
// program that imports nothing else. On a 2-vCPU VM a sandboxed start
// took 4.5 ms (/bin/true) with it against 5.4 ms re-executing a test
// binary (docs/security.md). Build it static and point the host at it:
//
//	CGO_ENABLED=0 go build -o /usr/local/libexec/airlock-launcher github.com/airlockhq/airlock/cmd/airlock-launcher
//	cfg := airlock.NewHostConfig().WithLauncher("/usr/local/libexec/airlock-launcher")
//
// It runs with the host's privileges until it has applied the sandbox, so
// install it where only the host's owner can write. Run by hand it does
// nothing and says so.
//
// It imports package syscall and nothing else beyond the launcher: every
// package linked in is initialised at every plugin start.
package main

import (
	"syscall"

	_ "github.com/airlockhq/airlock/internal/sandbox/launcher"
)

func main() {
	_, _ = syscall.Write(2, []byte("airlock-launcher: an Airlock host starts this program (HostConfig.WithLauncher) to sandbox a plugin; it does nothing on its own\n"))
	syscall.Exit(2)
}
