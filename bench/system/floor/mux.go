package floor

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// idSize is the request id floor-mux puts before each payload.
const idSize = 8

// errClosed fails calls made after Close.
var errClosed = errors.New("floor-mux plugin closed")

// muxPlugin lets many callers share one connection: each call gets an id and
// a channel, writes go out under a lock, and one reader goroutine routes each
// reply to the channel its id names. This is the least machinery a host needs
// to overlap calls on one connection, so it is the throughput floor.
type muxPlugin struct {
	c *child

	wmu sync.Mutex // serialises frames on the connection

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]chan muxReply
	err     error // why the reader stopped; set once

	readerDone chan struct{}
}

type muxReply struct {
	payload []byte
	err     error
}

func newMuxPlugin(c *child) *muxPlugin {
	p := &muxPlugin{c: c, pending: map[uint64]chan muxReply{}, readerDone: make(chan struct{})}
	go p.readLoop()
	return p
}

func (p *muxPlugin) Call(ctx context.Context, payload []byte) ([]byte, error) {
	ch := make(chan muxReply, 1)
	p.mu.Lock()
	if p.err != nil {
		err := p.err
		p.mu.Unlock()
		return nil, err
	}
	p.nextID++
	id := p.nextID
	p.pending[id] = ch
	p.mu.Unlock()

	var hdr [4 + idSize]byte
	binary.LittleEndian.PutUint32(hdr[:4], uint32(idSize+len(payload)))
	binary.LittleEndian.PutUint64(hdr[4:], id)
	bufs := net.Buffers{hdr[:], payload}
	p.wmu.Lock()
	_, err := bufs.WriteTo(p.c.conn)
	p.wmu.Unlock()
	if err != nil {
		p.forget(id)
		return nil, fmt.Errorf("floor-mux write: %w", err)
	}

	select {
	case r := <-ch:
		return r.payload, r.err
	case <-ctx.Done():
		p.forget(id)
		return nil, ctx.Err()
	}
}

func (p *muxPlugin) forget(id uint64) {
	p.mu.Lock()
	delete(p.pending, id)
	p.mu.Unlock()
}

// readLoop routes replies until the connection fails, then fails every
// pending call and every later one with the reason.
func (p *muxPlugin) readLoop() {
	defer close(p.readerDone)
	r := bufio.NewReaderSize(p.c.conn, 64<<10)
	var hdr [4 + idSize]byte
	err := func() error {
		for {
			n, err := readFrameLen(r, hdr[:])
			if err != nil {
				return err
			}
			if n < idSize {
				return fmt.Errorf("floor-mux reply of %d bytes has no id", n)
			}
			id := binary.LittleEndian.Uint64(hdr[4:])
			payload := make([]byte, n-idSize)
			if _, err := io.ReadFull(r, payload); err != nil {
				return err
			}
			p.mu.Lock()
			ch := p.pending[id]
			delete(p.pending, id)
			p.mu.Unlock()
			if ch != nil { // nil: the caller gave up
				ch <- muxReply{payload: payload}
			}
		}
	}()
	if errors.Is(err, net.ErrClosed) {
		err = errClosed
	}
	p.mu.Lock()
	p.err = fmt.Errorf("floor-mux read: %w", err)
	for id, ch := range p.pending {
		ch <- muxReply{err: p.err}
		delete(p.pending, id)
	}
	p.mu.Unlock()
}

func (p *muxPlugin) PID() int { return p.c.cmd.Process.Pid }

func (p *muxPlugin) Close(ctx context.Context) error {
	err := p.c.close(ctx)
	<-p.readerDone
	return err
}
