// Package sockio reads and writes a connected Unix stream socket with raw
// system calls, waiting in the Go runtime's network poller only when the
// socket is not ready. Both ends of a plugin connection use it: the host's
// process tier and the Go SDK.
//
// # Why?
//
// A read or write through net.Conn enters the kernel through the runtime's
// system call bookkeeping (entersyscall), which exists so that a call that
// blocks can hand its processor to another thread. Between two calls of a
// request/response exchange every processor of a plugin is idle, so the
// runtime's monitor thread (sysmon) has gone to sleep, and the first system
// call after the pause wakes it: a futex wake that puts a second thread on a
// CPU, on both sides of the connection, for every call. perf on a 2-vCPU VM
// showed that wake in 8–10% of the Go echo plugin's samples, and a minimal
// Go plugin answered a 64-byte call at 0.96× the floor's latency through
// this package against 1.48× through net.Conn, in the same interleaved run
// (docs/performance.md).
//
// A read or write of a non-blocking socket never blocks, so it needs none of
// that bookkeeping: Conn makes it a raw system call and, when the socket is
// not ready (EAGAIN), waits in the poller through syscall.RawConn, which
// keeps deadlines and Close working as they do for net.Conn. The price is
// that a long copy (a 1 MiB write fills the socket buffer, a few hundred
// KiB, per system call) runs without telling the scheduler, as a cgo-free
// memmove of the same size would.
//
// # Two kinds
//
// Conn is for a process with many connections, the host: every wait is in
// the poller. Dedicated (Linux) is for a process's one busy connection, a
// Go plugin's to its host: while messages come close together its reads
// wait in the kernel, holding a thread, as a Rust or C plugin's do, which
// is what brought the Go plugin's 64-byte call to the floor's latency; the
// rest of the time they wait in the poller, so an idle or sparsely called
// plugin costs what it did (see Dedicated).
//
// The package imports only the standard library because the plugin SDK
// uses it. Off Linux, Conn simply delegates to net.UnixConn, and there is
// no Dedicated.
package sockio
