//! The crate's only unsafe code: taking ownership of file descriptor 3, the
//! socket the host hands the plugin.
//!
//! Standard Rust has no safe way to adopt a descriptor it did not open, so
//! this module checks what it can first (that descriptor 3 is open, that it
//! was inherited rather than opened by this process, that it is taken only
//! once) and then wraps it in an `OwnedFd`. It declares the one libc function
//! it needs itself, so the crate keeps zero dependencies.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::raw::c_int;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};

/// The descriptor the host passes the socket on (`docs/protocol.md`, section 1).
pub(crate) const PROTOCOL_FD: RawFd = 3;

// Same values on Linux, the BSDs and macOS.
const F_GETFD: c_int = 1;
const F_SETFD: c_int = 2;
const FD_CLOEXEC: c_int = 1;

extern "C" {
    fn fcntl(fd: c_int, cmd: c_int, ...) -> c_int;
}

static ADOPTED: AtomicBool = AtomicBool::new(false);

/// Takes ownership of descriptor 3 as a `UnixStream`, marking it
/// close-on-exec so that processes the plugin starts do not inherit the
/// channel.
///
/// # Errors
///
/// When descriptor 3 is closed, was opened by this process (it is
/// close-on-exec, so it did not come from the parent), was already adopted,
/// or is not a Unix socket.
pub(crate) fn adopt_protocol_fd() -> io::Result<UnixStream> {
    if ADOPTED.swap(true, Ordering::SeqCst) {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "descriptor 3 was already taken by an earlier serve() in this process",
        ));
    }
    // SAFETY: F_GETFD reads the descriptor's flags; the call touches no
    // memory of ours and fails with EBADF when the descriptor is not open.
    let flags = unsafe { fcntl(PROTOCOL_FD, F_GETFD) };
    if flags < 0 {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("descriptor 3 is not open ({})", io::Error::last_os_error()),
        ));
    }
    if flags & FD_CLOEXEC != 0 {
        // Everything the standard library opens is close-on-exec, so a
        // descriptor with the flag set belongs to code in this process.
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "descriptor 3 was opened by this process, not inherited from a host",
        ));
    }
    // SAFETY: F_SETFD with an int argument sets the descriptor's flags; it
    // touches no memory of ours. The descriptor is open (checked above).
    if unsafe { fcntl(PROTOCOL_FD, F_SETFD, flags | FD_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: OwnedFd::from_raw_fd needs an open descriptor that nothing
    // else owns. Descriptor 3 is open (F_GETFD succeeded). It was not
    // close-on-exec, so it was inherited across exec rather than opened by
    // Rust code in this process (std opens every descriptor with
    // O_CLOEXEC), and ADOPTED guarantees this function takes it only once.
    let fd = unsafe { OwnedFd::from_raw_fd(PROTOCOL_FD) };
    let stream = UnixStream::from(fd);
    // getsockname fails (ENOTSOCK) unless this is a socket, and std refuses
    // an address that is not AF_UNIX.
    stream.local_addr().map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("descriptor 3 is not a Unix socket ({e})"),
        )
    })?;
    Ok(stream)
}
