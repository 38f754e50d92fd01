// Package floor is the benchmark's reference point: what a plugin call costs
// when nothing but a socketpair, a length prefix and an echo loop stand
// between a Go parent and a Go child. Airlock's targets are ratios to these
// numbers, measured in the same run.
//
// Two clients share one child program (plugins/floorecho):
//
//   - floor: the caller writes a frame and reads its own reply; no goroutine,
//     no id, no map. It is the floor for sequential latency, cold start and
//     idle memory.
//   - floor-mux: callers tag frames with ids, one reader goroutine hands each
//     reply to the caller waiting on its channel. It is the fair floor for
//     throughput with many concurrent callers, because any host that lets
//     calls overlap on one connection needs this much machinery.
//
// Frames are a little-endian u32 length followed by that many bytes. The child
// echoes every frame unchanged, so floor-mux's 8-byte id comes back with it.
package floor

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/airlockhq/airlock/bench/system"
)

// childPackage is the echo child, in the main module (the root package's
// own benchmark uses the same floor).
const childPackage = "./internal/testing/floorecho"

// maxFrame bounds what a reply's length prefix may claim, so a broken child
// cannot make the parent allocate without limit.
const maxFrame = 64 << 20

// Specs returns the two floor systems.
func Specs() []system.Spec {
	return []system.Spec{
		{Name: system.Floor, Role: system.RoleFloor, New: newFloor},
		{Name: system.FloorMux, Role: system.RoleFloor, Concurrent: true, New: newMux},
	}
}

type host struct {
	bin string
	mux bool
}

func newFloor(ctx context.Context, env *system.Env) (system.System, error) {
	bin, err := env.GoBuild(ctx, env.RepoDir(), childPackage)
	if err != nil {
		return nil, err
	}
	return &host{bin: bin}, nil
}

func newMux(ctx context.Context, env *system.Env) (system.System, error) {
	bin, err := env.GoBuild(ctx, env.RepoDir(), childPackage)
	if err != nil {
		return nil, err
	}
	return &host{bin: bin, mux: true}, nil
}

func (h *host) Load(ctx context.Context) (system.Plugin, error) {
	c, err := startChild(h.bin)
	if err != nil {
		return nil, err
	}
	if h.mux {
		return newMuxPlugin(c), nil
	}
	return newSeqPlugin(c), nil
}

func (h *host) Close(context.Context) error { return nil }

// child is an echo process and the parent's end of its socketpair.
type child struct {
	cmd  *exec.Cmd
	conn net.Conn
}

// startChild creates a socketpair, starts bin with one end as fd 3 and keeps
// the other end, in the netpoller, for the parent.
func startChild(bin string) (*child, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socketpair: %w", err)
	}
	parent := os.NewFile(uintptr(fds[0]), "floor-parent")
	childEnd := os.NewFile(uintptr(fds[1]), "floor-child")
	defer childEnd.Close()

	cmd := exec.Command(bin)
	cmd.ExtraFiles = []*os.File{childEnd} // becomes fd 3
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		parent.Close()
		return nil, fmt.Errorf("start floor child %s: %w", bin, err)
	}
	conn, err := net.FileConn(parent)
	parent.Close() // FileConn holds its own duplicate
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("wrap floor socket: %w", err)
	}
	return &child{cmd: cmd, conn: conn}, nil
}

// close ends the session: the child reads EOF and exits. If it has not exited
// when ctx is done, it is killed.
func (c *child) close(ctx context.Context) error {
	cerr := c.conn.Close()
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	select {
	case err := <-done:
		return errors.Join(cerr, exitError(err))
	case <-ctx.Done():
		_ = c.cmd.Process.Kill()
		<-done
		return fmt.Errorf("floor child %d did not exit after EOF: %w", c.cmd.Process.Pid, ctx.Err())
	}
}

func exitError(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("floor child: %w", err)
}

// readFrameLen reads a u32 length prefix and checks it against maxFrame.
func readFrameLen(r io.Reader, hdr []byte) (int, error) {
	if _, err := io.ReadFull(r, hdr); err != nil {
		return 0, err
	}
	n := binary.LittleEndian.Uint32(hdr[:4])
	if n > maxFrame {
		return 0, fmt.Errorf("floor child sent a %d-byte frame, over the %d-byte limit", n, maxFrame)
	}
	return int(n), nil
}

// deadlineSetter applies a context's deadline to a connection, calling
// SetDeadline only when the deadline changes: the harness gives every call of
// a turn the same deadline, so the floor pays for it once a turn.
type deadlineSetter struct {
	conn net.Conn
	last time.Time
}

func (d *deadlineSetter) apply(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	dl, _ := ctx.Deadline() // zero when none: clears the deadline
	if dl.Equal(d.last) {
		return nil
	}
	d.last = dl
	return d.conn.SetDeadline(dl)
}
