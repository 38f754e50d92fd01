package attack

import (
	"fmt"
	"net/netip"
	"strconv"

	"golang.org/x/sys/unix"
)

// netTCPLoopback connects to 127.0.0.1:args[0]. Count is 1 if it got a
// connection.
func netTCPLoopback(args []string) (Result, error) {
	port, err := argString(args, 0, "the loopback TCP port to connect to")
	if err != nil {
		return Result{}, err
	}
	return tcpConnect("127.0.0.1:" + port)
}

// netTCPExternal connects to args[0] (default 192.0.2.1:80, a documentation
// address no network routes).
func netTCPExternal(args []string) (Result, error) {
	addr := "192.0.2.1:80"
	if len(args) > 0 && args[0] != "" {
		addr = args[0]
	}
	return tcpConnect(addr)
}

func tcpConnect(addr string) (Result, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().Is4() {
		return Result{}, fmt.Errorf("%q is not an IPv4 address:port", addr)
	}
	var r Result
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		r.failed(err)
		return r, nil
	}
	defer unix.Close(fd)
	sa := &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	err = unix.Connect(fd, sa)
	if err == unix.EINPROGRESS {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		n, perr := unix.Poll(pfd, 3000)
		switch {
		case perr != nil:
			err = perr
		case n == 0:
			err = unix.ETIMEDOUT
		default:
			soerr, gerr := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
			err = gerr
			if gerr == nil && soerr != 0 {
				err = unix.Errno(soerr)
			}
		}
	}
	if err != nil {
		r.failed(err)
		return r, nil
	}
	r.Count = 1
	r.Detail = "connected to " + addr
	return r, nil
}

// netUDP sends one datagram to 127.0.0.1:args[0]. Count is the bytes sent.
func netUDP(args []string) (Result, error) {
	ps, err := argString(args, 0, "the loopback UDP port to send to")
	if err != nil {
		return Result{}, err
	}
	port, err := strconv.Atoi(ps)
	if err != nil {
		return Result{}, fmt.Errorf("%q is not a port", ps)
	}
	var r Result
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		r.failed(err)
		return r, nil
	}
	defer unix.Close(fd)
	msg := []byte("airlock-udp-escape")
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		r.failed(err)
		return r, nil
	}
	r.Count = int64(len(msg))
	return r, nil
}
