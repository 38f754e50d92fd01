//go:build linux && !mips && !mipsle && !mips64 && !mips64le

package launcher

// sysBase offsets the syscall numbers that every architecture shares.
const sysBase = 0
