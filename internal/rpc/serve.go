package rpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"time"

	"github.com/airlockhq/airlock/internal/wire"
)

// maxIdleWorkers bounds the goroutines kept waiting for the reading role.
const maxIdleWorkers = 64

// worker is one goroutine of the serving pool. Exactly one worker at a time
// holds the reading role. When it reads a call for this side to serve, it
// hands the role to an idle worker (or starts one) and runs the handler
// itself, so the call needs no goroutine switch to reach its handler.
func (c *Conn) worker(reading bool) {
	written := make(chan error, 1)
	for {
		if !reading {
			select {
			case <-c.turn:
				c.idle.Add(-1)
			case <-c.done:
				c.idle.Add(-1)
				return
			}
		}
		reading = false
		req, ok := c.read()
		if !ok {
			close(c.readerDone)
			return
		}
		if c.inline(req, written) {
			reading = true // this goroutine took the reading role back
			continue
		}
		if c.idle.Add(1) > maxIdleWorkers {
			c.idle.Add(-1)
			return
		}
	}
}

// Reading role: held by one goroutine, or left free while a call runs
// inline with the socket watched (see watcher).
const (
	roleHeld int32 = iota
	roleFree
)

// inline runs req on this goroutine. It reports whether this goroutine
// still holds the reading role afterwards.
//
// With a watcher and nothing more already buffered, the role is left free
// while the call runs; otherwise it is handed to an idle worker (or a new
// one) first, so frames keep being read during the call.
func (c *Conn) inline(req *Request, written chan error) bool {
	if c.watch != nil && c.r.Buffered() == 0 {
		c.role.Store(roleFree)
		if c.watch.arm() == nil {
			c.serve(req, written)
			if c.role.CompareAndSwap(roleFree, roleHeld) {
				_ = c.watch.disarm()
				return true
			}
			return false // the watcher gave the role to a worker meanwhile
		}
		c.role.Store(roleHeld)
	}
	select {
	case c.turn <- struct{}{}:
	default:
		go c.worker(true)
	}
	c.serve(req, written)
	return false
}

// watch runs for the connection's life: when a frame arrives while every
// reader is busy with a call, it hands the reading role to a worker. When
// the connection closes it makes sure one goroutine sees it.
func (c *Conn) watchLoop() {
	defer c.watch.close()
	for c.watch.wait() {
		if c.role.CompareAndSwap(roleFree, roleHeld) {
			select {
			case c.turn <- struct{}{}:
			default:
				go c.worker(true)
			}
		}
	}
	// Stopped: the connection failed. If nobody holds the role, take it so
	// a worker reads the failure and closes readerDone.
	if c.role.CompareAndSwap(roleFree, roleHeld) {
		go c.worker(true)
	}
}

// read reads frames, handling each inline, until one is a call for this
// side to serve. It returns false when the connection failed.
func (c *Conn) read() (*Request, bool) {
	for {
		h, err := c.r.Next()
		if err != nil {
			c.readFailed(err)
			return nil, false
		}
		switch h.Kind {
		case c.inK:
			body, err := c.r.Body(nil) // the handler owns its input
			if err != nil {
				c.readFailed(err)
				return nil, false
			}
			req, err := c.decodeRequest(h, body)
			if err != nil {
				c.protocolError("decode "+h.Kind.String(), err)
				return nil, false
			}
			return req, true

		case wire.KindResult:
			body, err := c.r.Body(nil) // the caller owns the result
			if err != nil {
				c.readFailed(err)
				return nil, false
			}
			m, err := wire.DecodeResult(body)
			if err != nil || h.ID == 0 {
				c.protocolError("decode result", err)
				return nil, false
			}
			c.resolve(h.ID, reply{payload: m.Payload})

		case wire.KindError:
			m, ok := view(c, h, wire.DecodeFailure)
			if !ok {
				return nil, false
			}
			e := &Error{Code: m.Code.Normalize(), Message: m.Message, Remote: true}
			if m.Code != e.Code {
				e.Message = fmt.Sprintf("%s (peer sent unknown error code %d)", m.Message, m.Code)
			}
			if h.ID == 0 {
				c.fail(e) // a fatal, connection-level error from the peer
				return nil, false
			}
			c.resolve(h.ID, reply{err: e})

		case wire.KindCancel:
			c.mu.Lock()
			cc := c.serving[h.ID]
			c.mu.Unlock()
			if cc != nil {
				cc.end(context.Canceled)
			}

		case wire.KindPing:
			b := getBuf()
			*b = wire.AppendEmpty((*b)[:0], wire.KindPong, h.ID)
			c.w.sendAsync(outFrame{buf: b})

		case wire.KindPong:
			if h.ID == c.pingSeq.Load() {
				c.pingSent.Store(0)
			}

		case wire.KindLog:
			if c.opts.Role != RoleHost {
				c.protocolError("log frame sent to a plugin", nil)
				return nil, false
			}
			if c.opts.OnLog == nil {
				continue // Next skips the body
			}
			body, err := c.r.View()
			if err != nil {
				c.readFailed(err)
				return nil, false
			}
			c.opts.OnLog(h.ID, body)

		case wire.KindGoodbye:
			if c.opts.Role != RoleHost {
				c.protocolError("goodbye frame sent to a host", nil)
				return nil, false
			}
			if c.opts.OnGoodbye != nil {
				c.opts.OnGoodbye()
			}

		case wire.KindShutdown:
			if c.opts.Role != RolePlugin {
				c.protocolError("shutdown frame sent to a host", nil)
				return nil, false
			}
			m, ok := view(c, h, wire.DecodeShutdown)
			if !ok {
				return nil, false
			}
			if c.opts.OnShutdown != nil {
				c.opts.OnShutdown(m.Grace)
			}

		case wire.KindGrant:
			if c.opts.Role != RolePlugin {
				c.protocolError("grant frame sent to a host", nil)
				return nil, false
			}
			body, err := c.r.View()
			if err != nil {
				c.readFailed(err)
				return nil, false
			}
			if c.opts.OnGrant != nil {
				c.opts.OnGrant(body)
			}

		default:
			if !h.Kind.Known() {
				c.stats.UnknownKinds.Add(1) // forward compatibility: skip it
				continue
			}
			c.protocolError(fmt.Sprintf("%v frame is not allowed after negotiation in this direction", h.Kind), nil)
			return nil, false
		}
	}
}

// view decodes a small body in place.
func view[M any](c *Conn, h wire.Header, decode func([]byte) (M, error)) (M, bool) {
	var zero M
	body, err := c.r.View()
	if err != nil {
		c.readFailed(err)
		return zero, false
	}
	m, err := decode(body)
	if err != nil {
		c.protocolError("decode "+h.Kind.String(), err)
		return zero, false
	}
	return m, true
}

func (c *Conn) decodeRequest(h wire.Header, body []byte) (*Request, error) {
	if h.ID == 0 {
		return nil, errors.New("call id 0 is reserved")
	}
	if h.Kind == wire.KindCall {
		m, err := wire.DecodeCall(body)
		if err != nil {
			return nil, err
		}
		return &Request{ID: h.ID, Function: m.Function, Timeout: m.Timeout, Payload: m.Payload}, nil
	}
	m, err := wire.DecodeHostCall(body)
	if err != nil {
		return nil, err
	}
	return &Request{ID: h.ID, Function: m.Function, Timeout: m.Timeout, Token: m.Token, Payload: m.Payload}, nil
}

// readFailed closes the connection for a read error, telling a clean end of
// stream, a broken protocol and an I/O failure apart.
func (c *Conn) readFailed(err error) {
	var we *wire.Error
	switch {
	case errors.As(err, &we):
		c.protocolError("read frame", err)
	case errors.Is(err, io.EOF):
		c.fail(io.EOF)
	default:
		c.fail(err)
	}
}

// serve runs one incoming call and writes its reply.
func (c *Conn) serve(req *Request, written chan error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	if c.draining {
		c.mu.Unlock()
		c.replyError(req.ID, wire.CodeUnavailable, "the plugin is shutting down")
		return
	}
	if int(c.nServing.Load()) >= c.opts.MaxServing {
		c.mu.Unlock()
		c.replyError(req.ID, wire.CodeOverloaded, fmt.Sprintf("%d calls are already running", c.opts.MaxServing))
		return
	}
	cc := &callCtx{req: req, dl: deadline{index: -1}}
	if req.Timeout > 0 {
		cc.dl = deadline{at: time.Now().Add(req.Timeout), id: req.ID, index: -1}
	}
	c.serving[req.ID] = cc
	c.running.Add(1)
	c.nServing.Add(1)
	c.mu.Unlock()
	if req.Timeout > 0 {
		c.dls.add(&cc.dl, c.fire)
	}

	out, err := c.invoke(cc, req)

	c.mu.Lock()
	delete(c.serving, req.ID)
	c.mu.Unlock()
	if req.Timeout > 0 {
		c.dls.remove(&cc.dl)
	}
	cc.end(context.Canceled) // derived contexts and AfterFuncs end with the call

	if err != nil {
		code, msg := codeOf(err)
		c.replyError(req.ID, code, msg)
	} else {
		c.replyResult(req.ID, out, written)
	}
	c.nServing.Add(-1)
	c.running.Done()
}

// invoke runs the handler, turning a panic into a panic error.
func (c *Conn) invoke(ctx context.Context, req *Request) (out []byte, err error) {
	if c.opts.Handler == nil {
		return nil, Errorf(wire.CodeUnknownFunction, "%q: nothing is served on this side", req.Function)
	}
	defer func() {
		if v := recover(); v != nil {
			c.logger.Error("handler panicked", "function", req.Function, "call", req.ID, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			out, err = nil, Errorf(wire.CodePanic, "%s panicked: %v", req.Function, v)
		}
	}()
	return c.opts.Handler(ctx, req)
}

func (c *Conn) replyResult(id uint64, out []byte, written chan error) {
	if size := wire.HeaderSize + 4 + len(out); size > c.opts.MaxSend {
		c.replyError(id, wire.CodeTooLarge, fmt.Sprintf("result of %d bytes exceeds the peer's %d-byte frame limit", len(out), c.opts.MaxSend))
		return
	}
	b := getBuf()
	*b = wire.AppendResultPrefix((*b)[:0], id, len(out))
	f := outFrame{buf: b}
	if len(out) <= copyLimit {
		*b = append(*b, out...)
	} else {
		f.payload, f.written = out, written
	}
	if err := c.w.send(f); err == nil && f.written != nil {
		<-written
	}
}

func (c *Conn) replyError(id uint64, code wire.Code, msg string) {
	b := getBuf()
	*b = wire.Failure{Code: code, Message: msg}.AppendFrame((*b)[:0], id)
	_ = c.w.send(outFrame{buf: b})
}
