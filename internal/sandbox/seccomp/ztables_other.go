//go:build !amd64 && !arm64

package seccomp

// No generated table for this architecture: Build reports the filter
// unavailable, and the sandbox runs without it, saying so.
const auditArch = 0

var syscallTable = [0]syscallEntry{}
