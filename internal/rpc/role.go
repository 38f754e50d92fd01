package rpc

import (
	"context"
	"errors"
	"os"
	"time"
)

// The reading role. Exactly one goroutine reads a connection at a time; the
// role says whether one does.
//
//	roleHeld  a goroutine reads (or is about to): a plugin worker, a host
//	          caller waiting for its own reply, or the background reader
//	roleFree  nobody reads; the socket is armed in the Watcher, which hands
//	          the role to a goroutine when a frame arrives
//	roleBatch a plugin worker holds the role but is running a call of a
//	          batch (see Conn.batch); the batch watchdog, or the handler
//	          itself when it makes a call of its own, may take the role
//	          from it with a compare-and-swap and hand it on
//
// Whoever sets roleFree arms the watch afterwards; whoever takes the role
// with a compare-and-swap from roleFree disarms it (a watch that fires in
// between finds the role held and does nothing).
const (
	roleHeld int32 = iota
	roleFree
	roleBatch
)

// handOff gives the reading role, which the calling goroutine took and
// will not use, to an idle worker, or to a new one if none is idle.
func (c *Conn) handOff() {
	select {
	case c.turn <- struct{}{}:
	default:
		go c.worker(true)
	}
}

// readable is called by the Watcher when the socket became readable while
// the role was free: it gives the role to a goroutine that reads. It runs
// on the watcher's goroutine and must not block.
func (c *Conn) readable() {
	if !c.role.CompareAndSwap(roleFree, roleHeld) {
		return // someone took the role meanwhile
	}
	if c.opts.Role == RolePlugin {
		c.handOff()
		return
	}
	c.startBackground()
}

// readOwn is a host call's wait for its reply when the caller took the
// reading role (and disarmed the watch): it reads frames itself, handling
// the ones for others, until its own reply has come, then leaves the role.
// ctx and the call's own deadline interrupt the read through a past read
// deadline.
func (c *Conn) readOwn(ctx context.Context, cl *call, id uint64) ([]byte, error) {
	c.readerCall.Store(id)
	var stop func() bool
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, c.interrupt)
	}
	defer func() {
		if stop != nil {
			stop()
		}
		c.readerCall.Store(0)
		if !c.leaveRole() {
			c.startBackground() // frames are buffered already: keep reading them
		}
	}()
	for {
		select {
		case r := <-cl.ch:
			return r.payload, r.err
		default:
		}
		if ctx.Err() != nil {
			return c.giveUp(ctx, cl, id)
		}
		req, err := c.frame()
		switch {
		case err == nil && req != nil:
			c.dispatch(req)
		case err != nil && c.interrupted(err):
			// Loop: the checks above say whether this caller is done.
		case err != nil:
			c.readFailed(err) // fails every pending call, this one included
			r := <-cl.ch
			return r.payload, r.err
		}
	}
}

// releaseSendRole gives up the reading role a host caller took before
// sending its call (see Call), if the caller still holds it for that send.
// It runs when a write of this connection must wait for the peer to read
// (sockio's OnWriteWait hook) and when the caller's send fails: while a
// caller waits in a write nobody would read, and a plugin blocked writing
// to us (replies, logs) would never drain the socket we wait on. The
// caller then waits for its reply as any caller does, reading only if the
// role is still free when its send returns.
func (c *Conn) releaseSendRole() {
	if !c.sendHeld.CompareAndSwap(true, false) {
		return
	}
	if !c.leaveRole() {
		c.startBackground() // frames are buffered already: read them
	}
}

// startBackground starts a goroutine that holds the role, reads until no
// call waits for a frame and nothing is buffered, and leaves the role.
func (c *Conn) startBackground() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.bg.Add(1)
	c.mu.Unlock()
	go c.background()
}

func (c *Conn) background() {
	defer c.bg.Done()
	for {
		req, err := c.frame()
		if err != nil {
			if c.interrupted(err) {
				continue
			}
			c.readFailed(err)
			return
		}
		if req != nil {
			c.dispatch(req)
		}
		c.mu.Lock()
		waiting := len(c.pending)
		c.mu.Unlock()
		if waiting == 0 && c.leaveRole() {
			return
		}
	}
}

// leaveRole frees the role and arms the watch, unless frames are already
// buffered (the watch would not see them): then the caller keeps the role
// and must go on reading. It reports whether the role was left.
func (c *Conn) leaveRole() bool {
	if c.r.Buffered() > 0 {
		return false
	}
	c.role.Store(roleFree)
	if c.watch.arm(c.fd) != nil {
		// Cannot watch: keep reading, unless someone took the role already.
		return !c.role.CompareAndSwap(roleFree, roleHeld)
	}
	return true
}

// interrupt makes the goroutine reading the connection return from its
// read with os.ErrDeadlineExceeded.
func (c *Conn) interrupt() {
	if c.deadline != nil {
		_ = c.deadline.SetReadDeadline(time.Unix(1, 0))
	}
}

// interrupted reports whether err is an interruption (not a failure), and
// clears the past read deadline that caused it.
func (c *Conn) interrupted(err error) bool {
	if c.deadline == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	_ = c.deadline.SetReadDeadline(time.Time{})
	return true
}

// dispatch runs an incoming call read by a goroutine that must go on
// reading (a host caller or the background reader) on a worker of its own:
// an idle one if there is one, else a new one. The pool grows to the peak
// of concurrent incoming calls.
func (c *Conn) dispatch(req *Request) {
	select {
	case c.calls <- req:
	default:
		go c.callWorker(req)
	}
}

func (c *Conn) callWorker(req *Request) {
	written := make(chan error, 1)
	for {
		c.serve(req, written)
		select {
		case req = <-c.calls:
		case <-c.done:
			return
		}
	}
}
