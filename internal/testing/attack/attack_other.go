//go:build !linux

package attack

// The attacks use Linux syscalls; elsewhere there are none.
func table() map[string]attackFunc { return map[string]attackFunc{} }
