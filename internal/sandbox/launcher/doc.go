// Package launcher is the child side of the process-tier sandbox: the
// program that runs between the clone and the plugin's execve, builds the
// mount tree, applies Landlock, drops capabilities, installs seccomp, sets
// rlimits and execs the plugin. Package sandbox (the host side) starts it
// and tells it what to do over a socket; the messages are defined here.
//
// # Why a package of its own, and why so few imports?
//
// The launcher is a fresh process on every spawn, and a Go process runs
// the init functions of every package it links before any of its own code.
// The launcher's entry point is this package's init function, and Go
// initialises packages in dependency order, then by import path. This
// package therefore imports only syscall, strconv, errors and slices (and
// what they import): not os, fmt, time or golang.org/x/sys/unix, which
// bring internal/godebug, reflect and unicode, whose inits and first heap
// pages cost every launcher ~80 µs (measured with a stub binary per import
// set). In the host binary re-executed as a launcher, its init then runs
// right after package syscall's, before the heavier inits of the host's
// other packages (regular expressions compiled at init, the net and
// testing packages); a dedicated launcher binary (sandbox.Spec.Launcher)
// that imports only this package is 2.1 MB and starts fast. The price is
// sys_linux.go: the constants package syscall lacks, each checked against
// x/sys/unix at compile time by the tests. Keep it that way: an import
// added here runs its inits in every launcher.
package launcher
