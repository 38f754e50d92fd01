//go:build linux && (amd64 || arm64)

package launcher

import "golang.org/x/sys/unix"

// sysSeccomp is known (and checked) where package seccomp builds filters.
var (
	_ [sysSeccomp - unix.SYS_SECCOMP]struct{}
	_ [unix.SYS_SECCOMP - sysSeccomp]struct{}
)
