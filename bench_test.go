package airlock_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/testing/fixture"
)

// floorClient is the floor a plugin call is measured against: a raw
// socketpair echo with a Go child (internal/testing/floorecho), where the
// caller writes a length-prefixed payload and reads its own reply.
type floorClient struct {
	cmd  *exec.Cmd
	conn *net.UnixConn
	r    *bufio.Reader
	buf  []byte
}

func newFloor(b *testing.B) *floorClient { return newFloorT(b) }

func newFloorT(b testing.TB) *floorClient {
	b.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	parent, child := os.NewFile(uintptr(fds[0]), "floor"), os.NewFile(uintptr(fds[1]), "floor-child")
	cmd := exec.Command(fixture.GoBinary(b, fixture.Module+"/internal/testing/floorecho"))
	cmd.ExtraFiles = []*os.File{child}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	child.Close()
	c, err := net.FileConn(parent)
	parent.Close()
	if err != nil {
		b.Fatal(err)
	}
	f := &floorClient{cmd: cmd, conn: c.(*net.UnixConn)}
	f.r = bufio.NewReaderSize(f.conn, 64<<10)
	b.Cleanup(func() { f.conn.Close(); _ = cmd.Wait() })
	return f
}

func (f *floorClient) call(payload []byte) ([]byte, error) {
	f.buf = binary.LittleEndian.AppendUint32(f.buf[:0], uint32(len(payload)))
	f.buf = append(f.buf, payload...)
	if _, err := f.conn.Write(f.buf); err != nil {
		return nil, err
	}
	var hdr [4]byte
	if _, err := io.ReadFull(f.r, hdr[:]); err != nil {
		return nil, err
	}
	out := make([]byte, binary.LittleEndian.Uint32(hdr[:]))
	_, err := io.ReadFull(f.r, out)
	return out, err
}

// BenchmarkCall_Process_vsSocketpair measures one sequential call to a Go
// echo plugin against the raw socketpair floor, in the same run with their
// turns interleaved call by call so the machine's slow spells hit both. It
// reports each side's median and the ratio (the target is ≤ 1.2× up to
// 64 KiB, ≤ 1.1× at 1 MiB). bench/ has the full suite.
func BenchmarkCall_Process_vsSocketpair(b *testing.B) {
	h, err := airlock.NewHostWithConfig(context.Background(), airlock.NewHostConfig().WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close(context.Background())
	p, err := h.Load(context.Background(), fixture.PluginDir(b, fixture.GoBinary(b, fixture.Module+"/examples/echo"), echoManifest))
	if err != nil {
		b.Fatal(err)
	}
	floor := newFloor(b)
	ctx := context.Background()
	for _, size := range []int{64, 4 << 10, 64 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			payload := bytes.Repeat([]byte{'x'}, size)
			var tf, ta []time.Duration
			b.SetBytes(int64(size))
			for b.Loop() {
				t0 := time.Now()
				if out, err := floor.call(payload); err != nil || len(out) != size {
					b.Fatalf("floor: %d bytes, %v", len(out), err)
				}
				t1 := time.Now()
				if out, err := p.Call(ctx, "echo", payload); err != nil || len(out) != size {
					b.Fatalf("airlock: %d bytes, %v", len(out), err)
				}
				t2 := time.Now()
				tf, ta = append(tf, t1.Sub(t0)), append(ta, t2.Sub(t1))
			}
			mf, ma := median(tf), median(ta)
			b.ReportMetric(float64(mf.Nanoseconds()), "floor-p50-ns")
			b.ReportMetric(float64(ma.Nanoseconds()), "airlock-p50-ns")
			b.ReportMetric(float64(ma)/float64(mf), "ratio")
		})
	}
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
