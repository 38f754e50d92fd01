//go:build linux && !amd64 && !arm64

package launcher

// sysExecveat is not wired up here: the launcher execs the plugin by path
// (and says so in its report) on the architectures the seccomp filter does
// not cover either.
const sysExecveat = -1
