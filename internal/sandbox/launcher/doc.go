// Package launcher is the child side of the process-tier sandbox: the
// program that runs between the clone and the plugin's execve, builds the
// mount tree, applies Landlock, drops capabilities, installs seccomp, sets
// rlimits and execs the plugin. Package sandbox (the host side) starts it
// and tells it what to do over a socket; the messages are defined here.
//
// # Why a package of its own?
//
// The launcher is a fresh process on every spawn, and a Go process runs
// the init functions of every package it links before any of its own code.
// The launcher's entry point is this package's init function, and Go
// initialises packages in dependency order, then by import path. This
// package therefore depends on nothing beyond the standard library's
// basics and golang.org/x/sys/unix: in the host binary re-executed as a
// launcher, its init runs before the heavier inits of the host's other
// packages (regular expressions compiled at init, the net and testing
// packages) instead of after them, and a dedicated launcher binary
// (sandbox.Spec.Launcher) that imports only this package is small and
// starts fast. Keep it that way: an import added here runs its inits in
// every launcher.
package launcher
