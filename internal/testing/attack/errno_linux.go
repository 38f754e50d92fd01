package attack

import "syscall"

var errnoNames = map[syscall.Errno]string{
	syscall.EPERM: "EPERM", syscall.ENOENT: "ENOENT", syscall.ESRCH: "ESRCH", syscall.EINTR: "EINTR",
	syscall.EIO: "EIO", syscall.EBADF: "EBADF", syscall.ECHILD: "ECHILD", syscall.EAGAIN: "EAGAIN",
	syscall.ENOMEM: "ENOMEM", syscall.EACCES: "EACCES", syscall.EFAULT: "EFAULT", syscall.EBUSY: "EBUSY",
	syscall.EEXIST: "EEXIST", syscall.EXDEV: "EXDEV", syscall.ENODEV: "ENODEV", syscall.ENOTDIR: "ENOTDIR",
	syscall.EISDIR: "EISDIR", syscall.EINVAL: "EINVAL", syscall.ENFILE: "ENFILE", syscall.EMFILE: "EMFILE",
	syscall.ENOTTY: "ENOTTY", syscall.EFBIG: "EFBIG", syscall.ENOSPC: "ENOSPC", syscall.EROFS: "EROFS",
	syscall.EPIPE: "EPIPE", syscall.ENOSYS: "ENOSYS", syscall.ELOOP: "ELOOP", syscall.ENOKEY: "ENOKEY",
	syscall.EAFNOSUPPORT: "EAFNOSUPPORT", syscall.EADDRNOTAVAIL: "EADDRNOTAVAIL",
	syscall.ENETUNREACH: "ENETUNREACH", syscall.ECONNREFUSED: "ECONNREFUSED", syscall.ETIMEDOUT: "ETIMEDOUT",
	syscall.EHOSTUNREACH: "EHOSTUNREACH", syscall.EOPNOTSUPP: "EOPNOTSUPP", syscall.ENOEXEC: "ENOEXEC",
	syscall.E2BIG: "E2BIG", syscall.EPROTONOSUPPORT: "EPROTONOSUPPORT", syscall.ENXIO: "ENXIO",
}
