package supervisor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlockhq/airlock/internal/rpc"
	"github.com/airlockhq/airlock/internal/wire"
)

// Call calls function with input on the current instance, waiting for a
// restart to finish if one is under way (up to the call's deadline). It
// resolves exactly once. Errors are *rpc.Error (codes from the plugin or
// the host's own checks), *ExitedError when the process ended mid-call,
// *NotServingError, or context errors.
func (s *Supervisor) Call(ctx context.Context, function string, input []byte) ([]byte, error) {
	fn, ok := s.m.Functions[function]
	if !ok {
		return nil, rpc.Errorf(wire.CodeUnknownFunction, "plugin %s has no function %q; it exports: %s",
			s.m.Name, function, strings.Join(s.exportNames(), ", "))
	}
	if max := int64(fn.MaxInput); int64(len(input)) > max {
		return nil, rpc.Errorf(wire.CodeTooLarge, "input of %d bytes exceeds %s's max_input of %d bytes", len(input), function, max)
	}
	if !s.gate.enter() {
		return nil, &NotServingError{Plugin: s.m.Name, State: StateDraining, Err: errClosing}
	}
	defer s.gate.leave()
	s.counts.calls.Add(1)
	if err := s.allow(function); err != nil {
		s.counts.rateLimited.Add(1)
		s.counts.failed.Add(1)
		return nil, err
	}
	timeout := s.fnTimeout[function]
	// Waiting for a restart counts against the function's timeout too.
	deadline := time.Now().Add(timeout)
	retried := false
	for {
		inst, err := s.await(ctx, deadline)
		if err != nil {
			s.counts.failed.Add(1)
			return nil, err
		}
		out, err := inst.conn.Call(ctx, function, time.Until(deadline), nil, input)
		if err == nil {
			if max := int64(fn.MaxOutput); int64(len(out)) > max {
				s.counts.failed.Add(1)
				return nil, rpc.Errorf(wire.CodeTooLarge, "%s returned %d bytes, more than its max_output of %d", function, len(out), max)
			}
			return out, nil
		}
		var closed *rpc.ClosedError
		if errors.As(err, &closed) {
			// The connection was already gone: the call never reached the
			// plugin. Wait for the next instance.
			s.waitChange(ctx, inst)
			continue
		}
		var exited *ExitedError
		if errors.As(err, &exited) && fn.Idempotent && !retried && ctx.Err() == nil && time.Now().Before(deadline) {
			// The manifest says this function is safe to run twice: try once
			// more on the restarted instance.
			retried = true
			s.counts.retried.Add(1)
			s.waitChange(ctx, inst)
			continue
		}
		s.counts.failed.Add(1)
		return nil, err
	}
}

func (s *Supervisor) allow(function string) error {
	if s.limiter != nil && !s.limiter.Allow() {
		return rpc.Errorf(wire.CodeRateLimited, "plugin %s is over its call rate (limits.rate %v)", s.m.Name, s.m.Limits.Rate)
	}
	if l := s.fnLimiter[function]; l != nil && !l.Allow() {
		return rpc.Errorf(wire.CodeRateLimited, "%s.%s is over its call rate (functions.%s.rate %v)", s.m.Name, function, function, s.m.Functions[function].Rate)
	}
	return nil
}

// await returns the serving instance, waiting through a restart until ctx
// is done or deadline passes.
func (s *Supervisor) await(ctx context.Context, deadline time.Time) (*instance, error) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		c := s.cur.Load()
		switch c.state {
		case StateOperate:
			return c.inst, nil
		case StateFailed, StateStopped, StateDraining:
			return nil, &NotServingError{Plugin: s.m.Name, State: c.state, Err: c.err}
		}
		if timer == nil {
			timer = time.NewTimer(time.Until(deadline))
		}
		select {
		case <-c.ready:
		case <-ctx.Done():
			return nil, &NotServingError{Plugin: s.m.Name, State: c.state, Err: c.err, Wait: ctx.Err()}
		case <-timer.C:
			return nil, &NotServingError{Plugin: s.m.Name, State: c.state, Err: c.err, Wait: context.DeadlineExceeded}
		}
	}
}

// waitChange waits until the routing snapshot no longer points at inst.
func (s *Supervisor) waitChange(ctx context.Context, inst *instance) {
	for {
		c := s.cur.Load()
		if c.inst != inst {
			return
		}
		select {
		case <-c.ready:
		case <-ctx.Done():
			return
		}
	}
}

func (s *Supervisor) exportNames() []string {
	names := make([]string, 0, len(s.m.Functions))
	for n := range s.m.Functions {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// NotServingError is returned to calls made while the plugin cannot serve:
// it failed, stopped, is draining, or a restart outlasted the call.
type NotServingError struct {
	Plugin string
	State  State
	Err    error // why it is not serving (last failure), if known
	Wait   error // context error when the call gave up waiting for a restart
}

func (e *NotServingError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "plugin %s is %s", e.Plugin, e.State)
	if e.Wait != nil {
		fmt.Fprintf(&b, " and the call gave up waiting (%v)", e.Wait)
	}
	if e.Err != nil && !errors.Is(e.Err, errClosing) {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

// Unwrap exposes both the wait's context error and the cause.
func (e *NotServingError) Unwrap() []error {
	var errs []error
	if e.Wait != nil {
		errs = append(errs, e.Wait)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// gate counts calls in flight and refuses new ones once closed, without a
// lock on the call path: the high bit of n marks "closed".
type gate struct {
	n        atomic.Int64
	once     sync.Once
	closedCh chan struct{}
	idle     chan struct{}
	initOnce sync.Once
}

const gateClosed = int64(1) << 62

func (g *gate) init() {
	g.initOnce.Do(func() {
		g.closedCh = make(chan struct{})
		g.idle = make(chan struct{})
	})
}

func (g *gate) enter() bool {
	if g.n.Add(1)&gateClosed != 0 {
		g.leave()
		return false
	}
	return true
}

func (g *gate) leave() {
	if g.n.Add(-1) == gateClosed {
		g.init()
		g.once.Do(func() { close(g.idle) })
	}
}

// close refuses new calls and returns a channel closed when none remain.
func (g *gate) close() <-chan struct{} {
	g.init()
	select {
	case <-g.closedCh:
	default:
		close(g.closedCh)
	}
	if g.n.Or(gateClosed) == 0 {
		g.once.Do(func() { close(g.idle) })
	}
	return g.idle
}

func (g *gate) closingCh() <-chan struct{} {
	g.init()
	return g.closedCh
}
