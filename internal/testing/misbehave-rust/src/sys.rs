//! The two system calls the misbehaving plugin needs that the standard
//! library does not offer: duplicating the host socket (to write bytes
//! behind the SDK's back) and stopping the whole process with SIGSTOP. Both
//! are declared here rather than pulled from a crate; this module is the
//! only unsafe code in the plugin.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::raw::c_int;

extern "C" {
    fn dup(fd: c_int) -> c_int;
    fn raise(sig: c_int) -> c_int;
}

/// SIGSTOP's number: 19 on most Linux targets (x86, Arm, RISC-V, PowerPC,
/// s390x), 23 on Linux MIPS, 17 on Linux SPARC, macOS and the BSDs.
#[cfg(all(
    target_os = "linux",
    not(any(target_arch = "mips", target_arch = "mips64", target_arch = "sparc64"))
))]
const SIGSTOP: c_int = 19;
#[cfg(all(target_os = "linux", any(target_arch = "mips", target_arch = "mips64")))]
const SIGSTOP: c_int = 23;
#[cfg(any(
    not(target_os = "linux"),
    all(target_os = "linux", target_arch = "sparc64")
))]
const SIGSTOP: c_int = 17;

/// A second descriptor for `fd`, owned by the returned file.
pub fn dup_fd(fd: RawFd) -> io::Result<File> {
    // SAFETY: dup reads no memory of ours; it fails with EBADF when fd is
    // not open.
    let new = unsafe { dup(fd) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `new` was just returned by dup, so it is open and nothing else
    // in this process owns it.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(new) }))
}

/// Stops this process, every thread of it, until someone sends SIGCONT
/// (or SIGKILL).
///
/// `raise` directs SIGSTOP at the calling thread, which therefore stops
/// before `raise` returns, and the stop takes every other thread with it.
/// `kill(getpid(), SIGSTOP)`, as the Go plugin does, directs it at the
/// process: the kernel may hand it to another thread, and the caller runs
/// on meanwhile, long enough for the SDK to send the call's reply before
/// the process stops (seen here on most runs).
pub fn stop_self() -> io::Result<()> {
    // SAFETY: raise reads no memory of ours; SIGSTOP cannot be caught, so
    // no handler of ours runs.
    if unsafe { raise(SIGSTOP) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
