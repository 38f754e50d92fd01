// Package sockio reads and writes a connected Unix stream socket with as
// little of the Go runtime between the program and the kernel as waiting
// allows. Both ends of a plugin connection use it: the host's process tier
// (Conn, which waits in the runtime's network poller) and the Go SDK
// (Blocking, which blocks a thread).
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
// # Two kinds: Conn for the host, Blocking for a plugin
//
// Conn waits in the poller, which is what a host needs: one process, many
// plugin connections, and no thread to spare for each.
//
// A plugin has one connection, and there the poller is the slow way to
// wait. A wake through it takes the kernel's epoll wake of the thread
// parked in epoll_wait, the runtime's scheduling of the goroutine, and
// then the read; a thread blocked in read(2) has its data when it wakes.
// A socket in the poller also wakes the poller's thread on every frame
// that arrives, even while no goroutine waits for it (it is registered
// edge-triggered), so a blocking read on such a socket pays for two
// wakes. Blocking therefore takes the socket out of the poller
// altogether: it adopts the raw descriptor, switches it to blocking mode,
// and reads with one system call through the runtime's bookkeeping
// (syscall.Syscall), so that a thread blocked there hands its processor
// on. Sends try first without waiting, as a raw system call, and block
// only when the socket is full. Measured against a Go echo plugin on the
// poller (docs/performance.md), the same plugin on Blocking answered a
// 64-byte call in 12.2–12.9 µs against 16.0–19.8 µs at the median, the
// floor's 12.4–15.8, in the same interleaved runs. Between two goroutines
// of one process the poller is faster (BenchmarkPingPong), which is why the
// host keeps it.
//
// The package imports only the standard library because the plugin SDK
// uses it. Off Linux, Conn simply delegates to net.UnixConn, and so does
// Blocking, which is Conn there (and on 386, which lacks a sendmsg system
// call of its own).
package sockio
