//! The crate's only unsafe code: taking ownership of file descriptor 3, the
//! socket the host hands the plugin, and (on Linux) the epoll calls of
//! `Poller`.
//!
//! Standard Rust has no safe way to adopt a descriptor it did not open, so
//! this module checks what it can first (that descriptor 3 is open, that it
//! was inherited rather than opened by this process, that it is taken only
//! once) and then wraps it in an `OwnedFd`. It declares the few libc
//! functions it needs itself, so the crate keeps zero dependencies.

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

/// Wakes a waiting thread when the host socket becomes readable, but only
/// while armed: the thread that reads the socket arms it before it runs a
/// call itself and disarms it after, so another thread takes over reading
/// only when a frame arrives during the call (see `serve`, "Why does the
/// reader role move?"). A second socket, `wake`, lets the serving loop wake
/// the watcher directly.
///
/// Linux only (epoll); elsewhere `Poller::new` fails and the serving loop
/// hands the reader role on eagerly instead.
#[cfg(target_os = "linux")]
pub(crate) struct Poller {
    epoll: OwnedFd,
    /// The watcher's end of the wake channel, registered in `epoll`.
    wake_rx: UnixStream,
    wake_tx: UnixStream,
    /// A descriptor of the host socket of our own, so that the number we
    /// name in epoll_ctl stays ours however the serving loop's are closed.
    socket: UnixStream,
}

#[cfg(target_os = "linux")]
mod epoll {
    use std::os::raw::c_int;

    pub const CTL_ADD: c_int = 1;
    pub const CTL_MOD: c_int = 3;
    pub const IN: u32 = 0x001;
    pub const ONESHOT: u32 = 1 << 30;
    /// EPOLL_CLOEXEC is O_CLOEXEC, which SPARC numbers differently.
    #[cfg(any(target_arch = "sparc", target_arch = "sparc64"))]
    pub const CLOEXEC: c_int = 0x0040_0000;
    #[cfg(not(any(target_arch = "sparc", target_arch = "sparc64")))]
    pub const CLOEXEC: c_int = 0o2_000_000;

    /// `struct epoll_event`: packed on x86-64 only, as the kernel declares
    /// it.
    #[cfg_attr(target_arch = "x86_64", repr(C, packed))]
    #[cfg_attr(not(target_arch = "x86_64"), repr(C))]
    #[derive(Clone, Copy)]
    pub struct Event {
        pub events: u32,
        pub data: u64,
    }

    extern "C" {
        pub fn epoll_create1(flags: c_int) -> c_int;
        pub fn epoll_ctl(epfd: c_int, op: c_int, fd: c_int, event: *mut Event) -> c_int;
        pub fn epoll_wait(
            epfd: c_int,
            events: *mut Event,
            maxevents: c_int,
            timeout: c_int,
        ) -> c_int;
    }
}

#[cfg(target_os = "linux")]
impl Poller {
    const SOCKET: u64 = 0;
    const WAKE: u64 = 1;

    /// A poller for `socket`, registered disarmed.
    pub(crate) fn new(socket: &UnixStream) -> io::Result<Poller> {
        use std::os::fd::AsRawFd;
        // SAFETY: epoll_create1 takes no pointers; a negative result is an
        // error, anything else a new descriptor that only we own.
        let fd = unsafe { epoll::epoll_create1(epoll::CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd was just returned by epoll_create1 and is owned by no
        // one else.
        let epoll = unsafe { OwnedFd::from_raw_fd(fd) };
        let (wake_rx, wake_tx) = UnixStream::pair()?;
        // Neither end ever blocks: a full channel already holds a wake-up.
        wake_rx.set_nonblocking(true)?;
        wake_tx.set_nonblocking(true)?;
        let p = Poller {
            epoll,
            wake_rx,
            wake_tx,
            socket: socket.try_clone()?,
        };
        p.ctl(
            epoll::CTL_ADD,
            p.socket.as_raw_fd(),
            epoll::ONESHOT,
            Poller::SOCKET,
        )?;
        p.ctl(
            epoll::CTL_ADD,
            p.wake_rx.as_raw_fd(),
            epoll::IN,
            Poller::WAKE,
        )?;
        Ok(p)
    }

    fn ctl(&self, op: c_int, fd: RawFd, events: u32, data: u64) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let mut ev = epoll::Event { events, data };
        // SAFETY: ev is a valid epoll_event that outlives the call, which
        // only reads it; both descriptors are open (owned by self, or by
        // the session that owns self).
        if unsafe { epoll::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut ev) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Reports the socket's next readiness (a frame, or its end) once.
    pub(crate) fn arm(&self) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        self.ctl(
            epoll::CTL_MOD,
            self.socket.as_raw_fd(),
            epoll::IN | epoll::ONESHOT,
            Poller::SOCKET,
        )
    }

    /// Stops reporting the socket's readiness. (A hang-up is still reported
    /// once: the kernel always adds it.)
    pub(crate) fn disarm(&self) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        self.ctl(
            epoll::CTL_MOD,
            self.socket.as_raw_fd(),
            epoll::ONESHOT,
            Poller::SOCKET,
        )
    }

    /// Wakes the thread in `wait`.
    pub(crate) fn wake(&self) -> io::Result<()> {
        use std::io::Write;
        match (&self.wake_tx).write(&[1]) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()), // one is pending
            Err(e) => Err(e),
        }
    }

    /// Blocks until the armed socket is readable or `wake` is called.
    pub(crate) fn wait(&self) -> io::Result<()> {
        use std::io::Read;
        use std::os::fd::AsRawFd;
        let mut ev = epoll::Event { events: 0, data: 0 };
        loop {
            // SAFETY: ev has room for the one event maxevents allows, and
            // outlives the call; the epoll descriptor is open.
            let n = unsafe { epoll::epoll_wait(self.epoll.as_raw_fd(), &mut ev, 1, -1) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if n == 0 {
                continue;
            }
            let data = ev.data;
            if data == Poller::WAKE {
                // Take the pending wake-ups (up to 64 at once; any left
                // report the channel readable again, harmlessly).
                let mut buf = [0u8; 64];
                match (&self.wake_rx).read(&mut buf) {
                    Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
            return Ok(());
        }
    }
}

/// Elsewhere there is no poller: the serving loop hands the reader role on
/// eagerly.
#[cfg(not(target_os = "linux"))]
pub(crate) struct Poller(std::convert::Infallible);

#[cfg(not(target_os = "linux"))]
impl Poller {
    pub(crate) fn new(_socket: &UnixStream) -> io::Result<Poller> {
        Err(io::ErrorKind::Unsupported.into())
    }
    pub(crate) fn arm(&self) -> io::Result<()> {
        match self.0 {}
    }
    pub(crate) fn disarm(&self) -> io::Result<()> {
        match self.0 {}
    }
    pub(crate) fn wake(&self) -> io::Result<()> {
        match self.0 {}
    }
    pub(crate) fn wait(&self) -> io::Result<()> {
        match self.0 {}
    }
}
