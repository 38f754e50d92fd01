//go:build !linux

package seccomp

import "errors"

// Install is unavailable outside Linux.
func Install(raw []Raw) error { return errors.New("install seccomp filter: seccomp is Linux-only") }

// Available reports that seccomp is Linux-only.
func Available() (bool, string) { return false, "seccomp is Linux-only" }
