//go:build !linux

package attack

import "syscall"

var errnoNames = map[syscall.Errno]string{}

// The attacks use Linux syscalls; elsewhere there are none.
func table() map[string]attackFunc { return map[string]attackFunc{} }
