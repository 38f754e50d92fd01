package floor

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
)

// seqPlugin is the floor: one call at a time, the caller writes its frame and
// reads its own reply. The mutex only makes misuse safe; the harness never
// contends for it.
type seqPlugin struct {
	c  *child
	mu sync.Mutex
	r  *bufio.Reader
	dl deadlineSetter
	// broken is set when a call failed part-way: the stream is out of step
	// and every later call fails with the same error.
	broken error
	// hdr is reused for every frame header, in both directions.
	hdr [4]byte
}

func newSeqPlugin(c *child) *seqPlugin {
	return &seqPlugin{c: c, r: bufio.NewReaderSize(c.conn, 64<<10), dl: deadlineSetter{conn: c.conn}}
}

func (p *seqPlugin) Call(ctx context.Context, payload []byte) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.broken != nil {
		return nil, p.broken
	}
	if err := p.dl.apply(ctx); err != nil {
		return nil, err
	}
	reply, err := p.roundTrip(payload)
	if err != nil {
		p.broken = err
	}
	return reply, err
}

func (p *seqPlugin) roundTrip(payload []byte) ([]byte, error) {
	binary.LittleEndian.PutUint32(p.hdr[:], uint32(len(payload)))
	bufs := net.Buffers{p.hdr[:], payload} // one writev for header and payload
	if _, err := bufs.WriteTo(p.c.conn); err != nil {
		return nil, fmt.Errorf("floor write: %w", err)
	}
	n, err := readFrameLen(p.r, p.hdr[:])
	if err != nil {
		return nil, fmt.Errorf("floor read: %w", err)
	}
	reply := make([]byte, n)
	if _, err := io.ReadFull(p.r, reply); err != nil {
		return nil, fmt.Errorf("floor read: %w", err)
	}
	return reply, nil
}

func (p *seqPlugin) PID() int { return p.c.cmd.Process.Pid }

func (p *seqPlugin) Close(ctx context.Context) error { return p.c.close(ctx) }
