package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/airlockhq/airlock/internal/proc"
	"github.com/airlockhq/airlock/internal/rpc"
	"github.com/airlockhq/airlock/internal/wire"
)

// instance is one run of the plugin's process.
type instance struct {
	id        string
	proc      *proc.Process
	conn      *rpc.Conn
	version   uint16
	sdk       string
	exports   []string
	startedAt time.Time
	ended     chan struct{} // closed when the process exited and the connection closed
}

func (i *instance) kill(reason string) { i.proc.Kill(reason) }

// exitWait bounds how long a plugin may keep running after its connection
// closed before the host kills it.
const exitWait = time.Second

// StageError says which lifecycle stage failed to start the plugin.
type StageError struct {
	Plugin string
	Stage  State
	Err    error
}

func (e *StageError) Error() string {
	return fmt.Sprintf("start plugin %s: %s: %v", e.Plugin, e.Stage, e.Err)
}

func (e *StageError) Unwrap() error { return e.Err }

// startInstance runs init, negotiate and activate. On failure everything it
// started is stopped and reaped.
func (s *Supervisor) startInstance(ctx context.Context) (*instance, error) {
	m := s.m
	s.mu.Lock()
	s.instSeq++
	seq := s.instSeq
	s.mu.Unlock()
	s.rateMu.Lock()
	id := fmt.Sprintf("%s-%d-%08x", m.Name, seq, s.rnd.Uint32())
	s.rateMu.Unlock()
	fail := func(stage State, err error) (*instance, error) {
		return nil, &StageError{Plugin: m.Name, Stage: stage, Err: err}
	}

	// 1. init: verify the exact file we will run, then start it.
	s.publish(StateInit, nil, nil)
	program := filepath.Join(m.Dir, filepath.FromSlash(m.Entry.Program))
	exe, err := s.cfg.Digests.Open(program, m.Entry.SHA256)
	if err != nil {
		return fail(StateInit, err)
	}
	pcfg := proc.Config{
		Name:    m.Name,
		Program: program,
		Exec:    exe,
		Args:    m.Entry.Args,
		Dir:     m.Dir,
		Env:     s.env(id),
		Output:  &proc.Output{Logger: s.log.With("source", "output"), Budget: s.budget, Drops: &s.counts.logDropped},
	}
	if s.cfg.Contain != nil {
		pcfg.Contain = func(ctx context.Context, cmd *exec.Cmd, exe *os.File) (proc.Containment, error) {
			return s.cfg.Contain(ctx, cmd, exe, id)
		}
	}
	p, err := proc.Start(ctx, pcfg)
	exe.Close()
	if err != nil {
		return fail(StateInit, err)
	}
	inst := &instance{id: id, proc: p, ended: make(chan struct{})}
	// The tokens are minted while the plugin's runtime starts, which takes
	// the host's waiting time anyway: done after WELCOME, minting (policy,
	// signatures, audit records) delayed the GRANT and the first call.
	minted := s.mint(id)
	undo := func() {
		p.Kill("start failed")
		<-p.Done()
		p.Conn().Close()
		if r := minted(); r.err == nil && s.cfg.Ended != nil {
			s.cfg.Ended(id) // revoke what was minted for an instance that never ran
		}
	}

	// 2. negotiate.
	s.publish(StateNegotiate, nil, nil)
	r, welcome, err := s.negotiate(ctx, inst)
	if err != nil {
		stage := StateNegotiate
		var se *stageErr
		if errors.As(err, &se) {
			stage = se.stage
		}
		if connGone(err) {
			// The plugin hung up: let it finish exiting so the error can
			// say how it ended and what it printed.
			select {
			case <-p.Done():
			case <-time.After(exitWait):
			}
			undo()
			err = fmt.Errorf("the plugin closed its connection during the handshake: %v", p.Exit())
		} else {
			undo()
		}
		return fail(stage, err)
	}
	inst.version, inst.sdk, inst.exports = welcome.Version, welcome.SDK, welcome.Functions

	// 3. activate: the connection starts serving and the plugin gets its
	// tokens before the first call.
	s.publish(StateActivate, nil, nil)
	var hostCalls rpc.Handler
	if s.cfg.HostCalls != nil {
		hostCalls = s.cfg.HostCalls(id)
	}
	inst.conn = rpc.New(p.Conn(), r, rpc.Options{
		Role:        rpc.RoleHost,
		MaxSend:     int(welcome.MaxFrame),
		MaxInFlight: s.m.Limits.MaxConcurrency,
		Handler:     hostCalls,
		OnLog:       s.pluginLog,
		CloseError:  func(cause error) error { return s.closeError(inst, cause) },
		Logger:      s.log,
		Now:         s.clk.Now,
		Watcher:     s.cfg.Watcher,
	})
	grant := minted()
	if grant.err != nil {
		undo()
		inst.conn.Close(grant.err)
		return fail(StateActivate, fmt.Errorf("mint capability tokens: %w", grant.err))
	}
	if err := inst.conn.Send(wire.Grant{Tokens: grant.tokens}.AppendFrame(nil)); err != nil {
		undo()
		inst.conn.Close(err)
		return fail(StateActivate, fmt.Errorf("send grant: %w", err))
	}
	go s.track(inst)
	return inst, nil
}

// minting is the outcome of minting an instance's tokens.
type minting struct {
	tokens []wire.Token
	err    error
}

// mint starts minting instance's tokens (cfg.Grant) on a goroutine of its
// own. The function it returns waits for the outcome; every call returns
// the same one.
func (s *Supervisor) mint(instance string) func() minting {
	if s.cfg.Grant == nil {
		return func() minting { return minting{} }
	}
	done := make(chan minting, 1)
	go func() {
		tokens, err := s.cfg.Grant(instance)
		done <- minting{tokens, err}
	}()
	return sync.OnceValue(func() minting { return <-done })
}

// stageErr tags a negotiation error with the stage whose timeout expired.
type stageErr struct {
	stage State
	err   error
}

func (e *stageErr) Error() string { return e.err.Error() }
func (e *stageErr) Unwrap() error { return e.err }

// negotiate sends HELLO and reads WELCOME, within startup_timeout for the
// plugin's first bytes and negotiate_timeout for the rest.
func (s *Supervisor) negotiate(ctx context.Context, inst *instance) (*wire.Reader, wire.Welcome, error) {
	m := s.m
	conn := inst.proc.Conn()
	// The deadlines below bound each read; ctx (a caller's Load deadline)
	// cuts them short by closing the connection.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	hello := wire.Hello{Versions: s.cfg.Versions, MaxFrame: uint32(s.cfg.MaxFrame), Host: s.cfg.Host, Plugin: m.Name, Instance: inst.id}
	_ = conn.SetDeadline(time.Now().Add(time.Duration(m.Limits.StartupTimeout)))
	if _, err := conn.Write(hello.AppendFrame(nil)); err != nil {
		return nil, wire.Welcome{}, &stageErr{StateInit, fmt.Errorf("send hello: %w", err)}
	}
	r := wire.NewReader(conn, 64<<10, wire.HandshakeMaxFrame)
	h, err := r.Next()
	if err != nil {
		var we *wire.Error
		if errors.As(err, &we) {
			return nil, wire.Welcome{}, &stageErr{StateInit, &rpc.ProtocolError{
				Detail: "the plugin's first frame is invalid, so it does not speak the Airlock protocol (is entry.program an Airlock plugin?)", Err: err}}
		}
		if isTimeout(err) {
			err = fmt.Errorf("no answer to hello within limits.startup_timeout (%v): is the entry program an Airlock plugin serving on fd 3?", m.Limits.StartupTimeout)
		} else if ctx.Err() != nil {
			err = ctx.Err()
		} else {
			err = fmt.Errorf("read welcome: %w", err)
		}
		return nil, wire.Welcome{}, &stageErr{StateInit, err}
	}
	_ = conn.SetDeadline(time.Now().Add(time.Duration(m.Limits.NegotiateTimeout)))
	body, err := r.View()
	if err != nil {
		if isTimeout(err) {
			err = fmt.Errorf("welcome not complete within limits.negotiate_timeout (%v)", m.Limits.NegotiateTimeout)
		}
		return nil, wire.Welcome{}, err
	}
	switch h.Kind {
	case wire.KindError:
		f, err := wire.DecodeFailure(body)
		if err != nil {
			return nil, wire.Welcome{}, fmt.Errorf("decode the plugin's error: %w", err)
		}
		if f.Code == wire.CodeVersionMismatch {
			return nil, wire.Welcome{}, &rpc.Error{Code: f.Code, Message: fmt.Sprintf("the plugin refused every version: %s", f.Message), Remote: true}
		}
		return nil, wire.Welcome{}, &rpc.Error{Code: f.Code.Normalize(), Message: f.Message, Remote: true}
	case wire.KindWelcome:
	default:
		return nil, wire.Welcome{}, &rpc.ProtocolError{Detail: fmt.Sprintf("expected welcome, got a %v frame: the plugin does not speak the Airlock protocol", h.Kind)}
	}
	w, err := wire.DecodeWelcome(body)
	if err != nil {
		return nil, wire.Welcome{}, &rpc.ProtocolError{Detail: "decode welcome", Err: err}
	}
	if !s.cfg.Versions.Contains(w.Version) || !w.Versions.Contains(w.Version) {
		return nil, wire.Welcome{}, &wire.VersionError{Host: s.cfg.Versions, Plugin: w.Versions}
	}
	if w.MaxFrame < wire.MinMaxFrame || w.MaxFrame > wire.MaxMaxFrame {
		return nil, wire.Welcome{}, &rpc.ProtocolError{Detail: fmt.Sprintf("welcome max_frame %d is outside %d..%d", w.MaxFrame, wire.MinMaxFrame, wire.MaxMaxFrame)}
	}
	var missing []string
	for name := range m.Functions {
		if !slices.Contains(w.Functions, name) {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return nil, wire.Welcome{}, fmt.Errorf("the manifest declares functions the plugin does not export: %s (it exports: %s); register them in the plugin or remove them from [functions]",
			strings.Join(missing, ", "), strings.Join(w.Functions, ", "))
	}
	for _, name := range w.Functions {
		if _, ok := m.Functions[name]; !ok {
			s.log.Warn("plugin exports a function its manifest does not declare; it cannot be called", "function", name)
		}
	}
	r.SetMaxFrame(s.cfg.MaxFrame)
	_ = conn.SetDeadline(time.Time{})
	return r, w, nil
}

func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// connGone reports whether err means the peer closed or reset the
// connection.
func connGone(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// env is the plugin's complete environment: a fixed minimum, never the
// host's, plus what the host configuration adds.
func (s *Supervisor) env(instance string) []string {
	env := []string{
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"HOME=/tmp",
		"TMPDIR=/tmp",
		"LANG=C.UTF-8",
		"AIRLOCK_PROTOCOL=1",
		"AIRLOCK_PLUGIN=" + s.m.Name,
		"AIRLOCK_INSTANCE=" + instance,
	}
	if mem := int64(s.m.Limits.Memory); mem > 0 {
		// A hint for the plugin's runtime (the Go SDK sizes its garbage
		// collector to it); the sandbox enforces the limit either way.
		env = append(env, "AIRLOCK_MEMORY_LIMIT="+strconv.FormatInt(mem, 10))
	}
	return append(env, s.cfg.Env...)
}

// track ends the instance when either its process or its connection ends.
func (s *Supervisor) track(inst *instance) {
	select {
	case <-inst.proc.Done():
	case <-inst.conn.Done():
		// The plugin closed its end or broke the protocol: closeError has
		// already made sure the process goes.
		<-inst.proc.Done()
	}
	inst.conn.Close(inst.proc.Exit())
	if s.cfg.Ended != nil {
		s.cfg.Ended(inst.id)
	}
	close(inst.ended)
}

// Regrant sends tokens to the running instance called instance, replacing
// the tokens it holds (after a key rotation or before they expire). It does
// nothing if that instance is no longer the one running.
func (s *Supervisor) Regrant(instance string, tokens []wire.Token) error {
	c := s.cur.Load()
	if c.inst == nil || c.inst.id != instance {
		return nil
	}
	return c.inst.conn.Send(wire.Grant{Tokens: tokens}.AppendFrame(nil))
}

// Instance returns the id of the instance serving calls, or "".
func (s *Supervisor) Instance() string {
	if c := s.cur.Load(); c.inst != nil {
		return c.inst.id
	}
	return ""
}

// closeError builds the error every call pending on inst receives when its
// connection ends: the exit status and last stderr lines. It makes sure the
// process is gone first.
func (s *Supervisor) closeError(inst *instance, cause error) error {
	var pe *rpc.ProtocolError
	if errors.As(cause, &pe) {
		s.counts.protocolErrors.Add(1)
		s.log.Error("plugin broke the protocol; killing it", "instance", inst.id, "err", cause)
		inst.kill(pe.Error())
	}
	if errors.Is(cause, rpc.ErrNotReading) {
		// A call is stuck half-written: waiting for the plugin to exit on
		// its own would keep that call's caller waiting too.
		s.log.Warn("plugin stopped reading its connection; killing it", "instance", inst.id, "err", cause)
		inst.kill(cause.Error())
	}
	select {
	case <-inst.proc.Done():
	case <-time.After(exitWait):
		inst.kill(fmt.Sprintf("closed its connection (%v) but kept running", cause))
		<-inst.proc.Done()
	}
	return &ExitedError{Plugin: s.m.Name, Instance: inst.id, Exit: inst.proc.Exit()}
}

// ExitedError is what calls pending on a plugin process receive when it
// ends. It matches proc.ErrExited.
type ExitedError struct {
	Plugin, Instance string
	Exit             *proc.ExitError
}

func (e *ExitedError) Error() string {
	return fmt.Sprintf("plugin %s (%s) ended while the call was in flight: %v", e.Plugin, e.Instance, e.Exit)
}

func (e *ExitedError) Unwrap() error { return e.Exit }

// watchdog pings inst every heartbeat_interval and kills it when a ping
// stays unanswered for heartbeat_timeout, or when a call it was told to
// cancel keeps running past cancel_grace.
func (s *Supervisor) watchdog(inst *instance) {
	lim := s.m.Limits
	for {
		t := s.clk.NewTimer(time.Duration(lim.HeartbeatInterval))
		select {
		case <-t.C():
		case <-inst.ended:
			t.Stop()
			return
		}
		now := s.clk.Now()
		since, err := inst.conn.Ping(now)
		if err != nil {
			return // the connection is gone; track handles it
		}
		if !since.IsZero() && now.Sub(since) >= time.Duration(lim.HeartbeatTimeout) {
			s.watchdogKill(inst, fmt.Sprintf("watchdog: no answer to a heartbeat for %v (limits.heartbeat_timeout)", now.Sub(since).Round(time.Millisecond)))
			return
		}
		if n, oldest := inst.conn.OldestAbandoned(); n > 0 && now.Sub(oldest) >= time.Duration(lim.CancelGrace) {
			s.watchdogKill(inst, fmt.Sprintf("watchdog: %d cancelled call(s) still running %v after cancellation (limits.cancel_grace is %v)",
				n, now.Sub(oldest).Round(time.Millisecond), lim.CancelGrace))
			return
		}
	}
}

func (s *Supervisor) watchdogKill(inst *instance, reason string) {
	s.counts.watchdogKills.Add(1)
	s.log.Error("killing wedged plugin", "instance", inst.id, "reason", reason)
	inst.kill(reason)
}
