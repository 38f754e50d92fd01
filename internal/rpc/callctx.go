package rpc

import (
	"context"
	"sync"
	"time"
)

// callCtx is the context a handler runs with: the call's deadline, and
// cancellation by CANCEL, by the deadline, or by the connection closing.
//
// # Why not context.WithTimeout?
//
// WithTimeout arms a timer per call, and arming a timer costs a context
// switch (see deadlines). callCtx keeps its deadline in the connection's
// deadline heap instead, and makes its Done channel only if the handler
// asks for it, so a handler that never waits on ctx pays for neither. It
// implements AfterFunc, so contexts derived from it with the context package
// need no goroutine either.
type callCtx struct {
	dl  deadline // in the connection's heap while the call has a deadline
	req *Request

	mu    sync.Mutex
	done  chan struct{}
	err   error
	funcs map[*afterFunc]struct{}
}

type afterFunc struct{ f func() }

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Deadline returns the call's deadline, if it has one.
func (c *callCtx) Deadline() (time.Time, bool) { return c.dl.at, !c.dl.at.IsZero() }

// Done returns a channel closed when the call is cancelled or its deadline
// passes.
func (c *callCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		if c.err != nil {
			c.done = closedChan
		} else {
			c.done = make(chan struct{})
		}
	}
	return c.done
}

// Err returns context.Canceled or context.DeadlineExceeded once Done is
// closed, and nil before.
func (c *callCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil && !c.dl.at.IsZero() && !time.Now().Before(c.dl.at) {
		// The deadline passed before the timer got round to it.
		c.endLocked(context.DeadlineExceeded)
	}
	return c.err
}

// Value returns the call's *Request for RequestKey, nil otherwise.
func (c *callCtx) Value(key any) any {
	if key == (requestKey{}) {
		return c.req
	}
	return nil
}

// AfterFunc arranges for f to run in its own goroutine once the context
// ends; the context package uses it for derived contexts.
func (c *callCtx) AfterFunc(f func()) (stop func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		go f()
		return func() bool { return false }
	}
	a := &afterFunc{f: f}
	if c.funcs == nil {
		c.funcs = map[*afterFunc]struct{}{}
	}
	c.funcs[a] = struct{}{}
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		_, ok := c.funcs[a]
		delete(c.funcs, a)
		return ok
	}
}

// end ends the context with err (the first end wins).
func (c *callCtx) end(err error) {
	c.mu.Lock()
	c.endLocked(err)
	c.mu.Unlock()
}

func (c *callCtx) endLocked(err error) {
	if c.err != nil {
		return
	}
	c.err = err
	if c.done != nil {
		close(c.done)
	}
	for a := range c.funcs {
		go a.f()
	}
	c.funcs = nil
}

type requestKey struct{}

// RequestFrom returns the incoming call a handler's context belongs to.
func RequestFrom(ctx context.Context) (*Request, bool) {
	r, ok := ctx.Value(requestKey{}).(*Request)
	return r, ok
}

var _ context.Context = (*callCtx)(nil)
