// Command floorecho is the benchmarks' floor plugin: it reads frames (a
// little-endian u32 length, then that many bytes) from the socket on fd 3 and
// writes each one back unchanged, until end-of-file. It imports nothing but the
// standard library so that its cost and its memory are the least a Go plugin
// process can have.
package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
)

// maxFrame bounds the length prefix the child accepts (64 MiB).
const maxFrame = 64 << 20

func main() {
	f := os.NewFile(3, "floor-socket")
	conn, err := net.FileConn(f)
	if err != nil {
		fmt.Fprintln(os.Stderr, "floorecho: fd 3 is not a socket (this program is started by the airlock benchmark):", err)
		os.Exit(2)
	}
	f.Close()
	if err := echo(conn); err != nil {
		fmt.Fprintln(os.Stderr, "floorecho:", err)
		os.Exit(1)
	}
}

// echo copies frames back until the parent closes its end.
func echo(conn net.Conn) error {
	r := bufio.NewReaderSize(conn, 64<<10)
	buf := make([]byte, 4, 64<<10)
	for {
		if _, err := io.ReadFull(r, buf[:4]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		n := int(binary.LittleEndian.Uint32(buf[:4]))
		if n > maxFrame {
			return fmt.Errorf("frame of %d bytes is over the %d-byte limit", n, maxFrame)
		}
		if cap(buf) < 4+n {
			grown := make([]byte, 4+n)
			copy(grown, buf[:4])
			buf = grown
		}
		buf = buf[:4+n]
		if _, err := io.ReadFull(r, buf[4:]); err != nil {
			return err
		}
		if _, err := conn.Write(buf); err != nil {
			return err
		}
	}
}
