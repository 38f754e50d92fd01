//go:build !linux

package seccomp

// Available reports that seccomp is Linux-only.
func Available() (bool, string) { return false, "seccomp is Linux-only" }
