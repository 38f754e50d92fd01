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

// inline runs req on this goroutine. It reports whether this goroutine
// still holds the reading role afterwards.
//
// When the next frame has begun to arrive (some of it is buffered), the
// call runs as part of a batch (see batch). Otherwise, with a watcher, the
// role is left free while the handler runs; else it is handed to an idle
// worker (or a new one) first, so frames keep being read during the call.
//
// A small reply is written after the role is taken back: taken back
// after the write, it raced the caller's next call, and when that frame
// came before the disarm the watcher woke and handed the role to another
// goroutine (a thread wake and a goroutine switch). A large reply is
// written with the role still free, so frames keep being read while the
// socket drains, however long that takes.
func (c *Conn) inline(req *Request, written chan error) bool {
	if c.r.Buffered() > 0 {
		return c.batch(req, written)
	}
	if c.watch != nil {
		c.role.Store(roleFree)
		if c.watch.arm(c.fd) == nil {
			out, err, ok := c.run(req)
			large := ok && err == nil && len(out) > copyLimit
			if large {
				c.answer(req.ID, out, err, written, false)
			}
			held := c.role.CompareAndSwap(roleFree, roleHeld)
			if held {
				_ = c.watch.disarm(c.fd)
			}
			if ok && !large {
				c.answer(req.ID, out, err, written, false)
			}
			return held // false: the watcher gave the role to a worker meanwhile
		}
		if !c.role.CompareAndSwap(roleFree, roleHeld) {
			c.serve(req, written) // the stopping watcher handed the role on
			return false
		}
	}
	c.handOff()
	c.serve(req, written)
	return false
}

// read reads frames, handling each inline, until one is a call for this
// side to serve. It returns false when the connection failed.
func (c *Conn) read() (*Request, bool) {
	for {
		req, err := c.frame()
		if err != nil {
			if c.interrupted(err) {
				continue
			}
			c.readFailed(err)
			return nil, false
		}
		if req != nil {
			return req, true
		}
		// The frame was not a call (a reply to a call of ours, a ping, a
		// cancel). If it ended a burst, replies a batch held back would
		// otherwise wait until this goroutine's next read returns, which
		// may be never: have the flusher write them.
		if !c.r.Complete() {
			c.w.kick()
		}
	}
}

// errFailed reports a frame that made frame fail the connection itself.
var errFailed = errors.New("connection failed")

// frame reads one frame and handles it: a reply resolves its call, a ping
// is answered, a log record is passed on. An incoming call is returned to
// be served. The error is the read's (a deadline interruption can be
// retried) or errFailed when the frame broke the protocol.
func (c *Conn) frame() (*Request, error) {
	{
		h, err := c.r.Next()
		if err != nil {
			return nil, err
		}
		switch h.Kind {
		case c.inK:
			body, err := c.r.Body(nil) // the handler owns its input
			if err != nil {
				return nil, err
			}
			req, err := c.decodeRequest(h, body)
			if err != nil {
				return nil, c.protocolError("decode "+h.Kind.String(), err)
			}
			return req, nil

		case wire.KindResult:
			body, err := c.r.Body(nil) // the caller owns the result
			if err != nil {
				return nil, err
			}
			m, err := wire.DecodeResult(body)
			if err != nil || h.ID == 0 {
				return nil, c.protocolError("decode result", err)
			}
			c.resolve(h.ID, reply{payload: m.Payload})

		case wire.KindError:
			m, err := view(c, h, wire.DecodeFailure)
			if err != nil {
				return nil, err
			}
			e := &Error{Code: m.Code.Normalize(), Message: m.Message, Remote: true}
			if m.Code != e.Code {
				e.Message = fmt.Sprintf("%s (peer sent unknown error code %d)", m.Message, m.Code)
			}
			if h.ID == 0 {
				c.fail(e) // a fatal, connection-level error from the peer
				return nil, errFailed
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
				return nil, c.protocolError("log frame sent to a plugin", nil)
			}
			if c.opts.OnLog == nil {
				return nil, nil // Next skips the body
			}
			body, err := c.r.View()
			if err != nil {
				return nil, err
			}
			c.opts.OnLog(h.ID, body)

		case wire.KindGoodbye:
			if c.opts.Role != RoleHost {
				return nil, c.protocolError("goodbye frame sent to a host", nil)
			}
			if c.opts.OnGoodbye != nil {
				c.opts.OnGoodbye()
			}

		case wire.KindShutdown:
			if c.opts.Role != RolePlugin {
				return nil, c.protocolError("shutdown frame sent to a host", nil)
			}
			m, err := view(c, h, wire.DecodeShutdown)
			if err != nil {
				return nil, err
			}
			if c.opts.OnShutdown != nil {
				c.opts.OnShutdown(m.Grace)
			}

		case wire.KindGrant:
			if c.opts.Role != RolePlugin {
				return nil, c.protocolError("grant frame sent to a host", nil)
			}
			body, err := c.r.View()
			if err != nil {
				return nil, err
			}
			if c.opts.OnGrant != nil {
				c.opts.OnGrant(body)
			}

		default:
			if !h.Kind.Known() {
				c.stats.UnknownKinds.Add(1) // forward compatibility: skip it
				return nil, nil
			}
			return nil, c.protocolError(fmt.Sprintf("%v frame is not allowed after negotiation in this direction", h.Kind), nil)
		}
		return nil, nil
	}
}

// view decodes a small body in place.
func view[M any](c *Conn, h wire.Header, decode func([]byte) (M, error)) (M, error) {
	var zero M
	body, err := c.r.View()
	if err != nil {
		return zero, err
	}
	m, err := decode(body)
	if err != nil {
		return zero, c.protocolError("decode "+h.Kind.String(), err)
	}
	return m, nil
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
	if out, err, ok := c.run(req); ok {
		c.answer(req.ID, out, err, written, false)
	}
}

// run runs one incoming call's handler. ok is false when the call was not
// run and needs no answer (the connection closed) or was answered already
// (draining, overloaded); otherwise the caller must answer it, which ends
// the call.
func (c *Conn) run(req *Request) (out []byte, err error, ok bool) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, nil, false
	}
	if c.draining {
		c.mu.Unlock()
		c.replyError(req.ID, wire.CodeUnavailable, "the plugin is shutting down")
		return nil, nil, false
	}
	if int(c.nServing.Load()) >= c.opts.MaxServing {
		c.mu.Unlock()
		c.replyError(req.ID, wire.CodeOverloaded, fmt.Sprintf("%d calls are already running", c.opts.MaxServing))
		return nil, nil, false
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

	out, err = c.invoke(cc, req)

	c.mu.Lock()
	delete(c.serving, req.ID)
	c.mu.Unlock()
	if req.Timeout > 0 {
		c.dls.remove(&cc.dl)
	}
	cc.end(context.Canceled) // derived contexts and AfterFuncs end with the call
	return out, err, true
}

// answer writes the reply of a call run returned, and ends the call.
// hold queues a small result to be written with the rest of a batch.
func (c *Conn) answer(id uint64, out []byte, err error, written chan error, hold bool) {
	if err != nil {
		code, msg := codeOf(err)
		c.replyError(id, code, msg)
	} else {
		c.replyResult(id, out, written, hold)
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

func (c *Conn) replyResult(id uint64, out []byte, written chan error, hold bool) {
	if size := wire.HeaderSize + 4 + len(out); size > c.opts.MaxSend {
		c.replyError(id, wire.CodeTooLarge, fmt.Sprintf("result of %d bytes exceeds the peer's %d-byte frame limit", len(out), c.opts.MaxSend))
		return
	}
	b := getBuf()
	*b = wire.AppendResultPrefix((*b)[:0], id, len(out))
	f := outFrame{buf: b}
	if len(out) <= copyLimit {
		*b = append(*b, out...)
		if hold {
			c.w.hold(f)
			return
		}
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
