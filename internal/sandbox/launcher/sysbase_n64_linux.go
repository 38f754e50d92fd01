//go:build linux && (mips64 || mips64le)

package launcher

// sysBase offsets the syscall numbers that every architecture shares (n64).
const sysBase = 5000
