package rpc

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/airlockhq/airlock/internal/wire"
)

type reply struct {
	payload []byte
	err     error
}

// call is an outgoing call in flight. It is pooled: whoever removes it from
// Conn.pending is the only one who sends on ch, and the caller always
// receives that send before putting the call back.
type call struct {
	ch      chan reply // capacity 1
	written chan error // capacity 1; used for payloads written from the caller's slice
	dl      deadline   // in the connection's heap when timeout ends the call
}

var callPool = sync.Pool{New: func() any {
	return &call{ch: make(chan reply, 1), written: make(chan error, 1)}
}}

// Call sends a call to the peer and waits for its reply.
//
// timeout is the callee's own limit for this function (0: none); the call
// ends at the earlier of it and ctx's deadline, and the peer is told the
// time left. Call resolves exactly once: it returns the peer's RESULT, the
// peer's ERROR as an *Error, the context's error (after sending CANCEL), an
// *Error with CodeDeadlineExceeded when timeout passed first, or an error
// matching ErrClosed (or the one Options.CloseError made) when the
// connection ended first.
func (c *Conn) Call(ctx context.Context, function string, timeout time.Duration, token, payload []byte) ([]byte, error) {
	if c.dog != nil {
		c.leaveBatch() // a handler of a batch must not hold the reading role while it waits
	}
	now := time.Now()
	end, hasEnd := ctx.Deadline()
	ownDeadline := false // timeout ends the call before ctx does
	if timeout > 0 && (!hasEnd || now.Add(timeout).Before(end)) {
		end, hasEnd, ownDeadline = now.Add(timeout), true, true
	}
	if hasEnd && !end.After(now) {
		return nil, c.expired(ctx, ownDeadline)
	}

	// Check the frame fits before taking a slot or an id.
	fixed := 8 + 2 + len(function) + 4
	if c.outK == wire.KindHostCall {
		fixed += 4 + len(token)
	}
	if size := wire.HeaderSize + fixed + len(payload); size > c.opts.MaxSend {
		return nil, Errorf(wire.CodeTooLarge, "call to %q is a %d-byte frame; the peer accepts at most %d", function, size, c.opts.MaxSend)
	}

	if err := c.acquire(ctx, end, ownDeadline); err != nil {
		return nil, err
	}
	cl := callPool.Get().(*call)
	defer callPool.Put(cl)

	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		c.release()
		return nil, c.closedErr()
	}
	c.nextID++
	id := c.nextID
	c.pending[id] = cl
	c.mu.Unlock()
	if hasEnd {
		// The connection's deadline heap ends the call: no timer of its own.
		// A context deadline is in the heap too, for the one case the
		// caller cannot watch its context: while it is still sending.
		cl.dl = deadline{at: end, id: id, out: true, ctx: !ownDeadline, index: -1}
		c.dls.add(&cl.dl, c.fire)
		defer c.dls.remove(&cl.dl)
	}

	// Encode and send. Time already spent waiting for a slot is taken off
	// the timeout the peer is told.
	left := time.Duration(0)
	if hasEnd {
		if left = time.Until(end); left <= 0 {
			left = time.Nanosecond
		}
	}
	b := getBuf()
	if c.outK == wire.KindCall {
		*b = wire.AppendCallPrefix((*b)[:0], id, left, function, len(payload))
	} else {
		*b = wire.AppendHostCallPrefix((*b)[:0], id, left, function, token, len(payload))
	}
	f := outFrame{buf: b, call: id}
	if len(payload) <= copyLimit {
		*b = append(*b, payload...)
	} else {
		f.payload, f.written = payload, cl.written
	}
	// Nobody reads: take the reading role now, to read the reply ourselves
	// (no goroutine hand-off), and stop the watch before the frame goes
	// out, not after. If the write has to wait for the plugin to read,
	// releaseSendRole gives the role up again.
	early := c.takeFirst && c.role.CompareAndSwap(roleFree, roleHeld)
	if early {
		c.sendHeld.Store(true)
		_ = c.watch.disarm(c.fd)
	}
	if err := c.w.send(f); err != nil {
		if early {
			c.releaseSendRole() // give the role up: nothing will be read for us
		}
		// Not queued, so nothing will arrive on cl.written.
		if c.take(id) {
			c.release()
			return nil, c.closedErr()
		}
		r := <-cl.ch
		return r.payload, r.err
	}
	if f.written != nil {
		// The payload is the caller's: do not return before it is written.
		if err := <-cl.written; err != nil {
			if early {
				c.releaseSendRole() // give the role up: nothing will be read for us
			}
			if c.take(id) {
				c.release()
				return nil, c.closedErr()
			}
			r := <-cl.ch
			return r.payload, r.err
		}
	}

	if early && c.sendHeld.CompareAndSwap(true, false) {
		return c.readOwn(ctx, cl, id)
	}
	if c.watch != nil && c.opts.Role == RoleHost && c.role.CompareAndSwap(roleFree, roleHeld) {
		// Nobody reads: read the reply ourselves, no goroutine hand-off.
		_ = c.watch.disarm(c.fd)
		return c.readOwn(ctx, cl, id)
	}
	select {
	case r := <-cl.ch:
		return r.payload, r.err
	case <-ctx.Done():
		return c.giveUp(ctx, cl, id)
	}
}

// giveUp resolves a call whose caller's context ended. If the reply (or
// the deadline) won the race, that is returned instead.
func (c *Conn) giveUp(ctx context.Context, cl *call, id uint64) ([]byte, error) {
	if !c.abandon(id) {
		r := <-cl.ch
		return r.payload, r.err
	}
	return nil, c.expired(ctx, false)
}

// expireCall resolves call id because its deadline passed: its own
// timeout, or (ctxEnd) its context's deadline, which the heap handles only
// while the call's frame is not yet sent (otherwise the caller watches its
// context itself).
//
// A frame still queued is taken out: the peer never hears of the call and
// its slot is free at once. A frame being written when the deadline passes
// means the peer has not read it in all that time; the caller may be the
// goroutine blocked writing it, and half a frame cannot be taken back, so
// the connection fails (ErrNotReading): the caller gets its deadline error,
// and the host's supervisor kills the plugin and starts it afresh.
func (c *Conn) expireCall(id uint64, ctxEnd bool) {
	c.mu.Lock()
	cl := c.pending[id]
	c.mu.Unlock()
	if cl == nil {
		return
	}
	var expired error = Errorf(wire.CodeDeadlineExceeded, "the function's timeout passed before the plugin answered")
	if ctxEnd {
		expired = context.DeadlineExceeded
	}
	f, state := c.w.unsend(id)
	switch {
	case state == sendQueued:
		if c.take(id) {
			c.release()
			cl.ch <- reply{err: expired}
		} else if c.unabandon(id) {
			// Its caller gave up first and kept the slot for the peer's
			// answer, which will never come for a frame never sent.
			c.release()
		}
		finish(f, errUnsent)
		return
	case state == sendDone && ctxEnd:
		return // sent: the caller sees its context end
	}
	if c.abandon(id) {
		cl.ch <- reply{err: expired}
		if c.readerCall.Load() == id {
			c.interrupt() // its caller is reading: stop the read
		}
	}
	if state == sendInFlight {
		c.fail(ErrNotReading)
	}
}

// errUnsent finishes a frame taken out of the queue before it was written.
var errUnsent = errors.New("rpc: the call ended before its frame was written")

// ErrNotReading is why a connection failed whose peer did not read a
// call's frame before the call's deadline.
var ErrNotReading = errors.New("a call's deadline passed while its frame was still being written: the plugin is not reading its connection")

// unabandon forgets abandoned call id, reporting whether it was one.
func (c *Conn) unabandon(id uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.abandoned[id]
	delete(c.abandoned, id)
	return ok
}

// abandon takes call id out of pending, keeps it as abandoned (its slot
// stays taken until the peer answers) and tells the peer to cancel it. It
// reports whether it took the call: false when someone else resolved it.
func (c *Conn) abandon(id uint64) bool {
	c.mu.Lock()
	_, mine := c.pending[id]
	if mine {
		delete(c.pending, id)
		c.abandoned[id] = c.opts.Now()
	}
	c.mu.Unlock()
	if mine {
		b := getBuf()
		*b = wire.AppendEmpty((*b)[:0], wire.KindCancel, id)
		c.w.sendAsync(outFrame{buf: b}) // best effort: a dead connection needs no cancel
	}
	return mine
}

func (c *Conn) expired(ctx context.Context, timedOut bool) error {
	if timedOut {
		return Errorf(wire.CodeDeadlineExceeded, "the function's timeout passed before the plugin answered")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return context.DeadlineExceeded
}

// take removes call id from pending. It reports whether the caller now owns
// the call's resolution.
func (c *Conn) take(id uint64) bool {
	c.mu.Lock()
	_, ok := c.pending[id]
	delete(c.pending, id)
	c.mu.Unlock()
	return ok
}

func (c *Conn) closedErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return &ClosedError{Cause: c.cause}
}

// acquire takes an in-flight slot, waiting until ctx is done or, when
// ownDeadline, until end.
func (c *Conn) acquire(ctx context.Context, end time.Time, ownDeadline bool) error {
	if c.slots == nil {
		return nil
	}
	select {
	case c.slots <- struct{}{}:
		return nil
	default:
	}
	// All slots are taken: wait, with a timer of our own (a rare path).
	var timerC <-chan time.Time
	if ownDeadline {
		t := time.NewTimer(time.Until(end))
		defer t.Stop()
		timerC = t.C
	}
	select {
	case c.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-timerC:
		return Errorf(wire.CodeOverloaded, "all %d call slots stayed busy until the function's timeout", cap(c.slots))
	case <-c.done:
		return c.closedErr()
	}
}

// resolve delivers a reply to call id. A reply to a call given up on frees
// its slot; one to an unknown id is counted and dropped.
func (c *Conn) resolve(id uint64, r reply) {
	c.mu.Lock()
	cl, ok := c.pending[id]
	if ok {
		delete(c.pending, id)
	} else if _, ok := c.abandoned[id]; ok {
		delete(c.abandoned, id)
		c.mu.Unlock()
		c.release()
		c.stats.LateReplies.Add(1)
		return
	}
	c.mu.Unlock()
	if !ok {
		c.stats.LateReplies.Add(1)
		return
	}
	c.release()
	cl.ch <- r
}
