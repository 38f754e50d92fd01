//go:build linux && (mips || mipsle)

package launcher

// sysBase offsets the syscall numbers that every architecture shares (o32).
const sysBase = 4000
