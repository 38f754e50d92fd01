// Package rpc runs calls in both directions over one framed connection:
// ids, the table of calls in flight, exactly-once resolution, deadlines,
// cancellation, heartbeats, and a pool of goroutines that serves the peer's
// calls. The host (calls go out as CALL, come in as HOSTCALL) and the Go
// plugin SDK (the other way round) share it, so both ends of the protocol
// behave the same.
//
// # Performance
//
// The call path is what Airlock is measured on, so: no goroutine is started
// per call on either side; a sender writes its own frame when nobody else is
// writing and batches with others when someone is (see writer); the
// goroutine that reads an incoming call runs its handler itself after
// handing the reading role to an idle peer (leader/follower), so a call
// reaches its handler without a goroutine switch; calls that arrive in a
// burst run one after another on the reading goroutine and their replies go
// out in one write (see Conn.batch); no lock is held across I/O;
// frame buffers are pooled; payloads above 32 KiB are written from the
// caller's own slice.
//
// The package imports only the standard library and internal/wire because
// the plugin SDK uses it.
package rpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlockhq/airlock/internal/wire"
)

// Role says which end of the protocol a Conn is.
type Role uint8

// The two ends.
const (
	RoleHost   Role = 1 // sends CALL, serves HOSTCALL
	RolePlugin Role = 2 // sends HOSTCALL, serves CALL
)

// Request is an incoming call as a Handler sees it.
type Request struct {
	ID       uint64
	Function string
	Timeout  time.Duration // 0: none
	Token    []byte        // HOSTCALL only
	Payload  []byte        // owned by the handler
}

// Handler serves one incoming call. Its result is written after it returns;
// the handler must not modify the slice afterwards. Return an *Error to
// choose the ERROR code; a panic becomes code panic.
type Handler func(ctx context.Context, req *Request) ([]byte, error)

// Options configure a Conn. The zero value of each field is a safe default.
type Options struct {
	Role Role
	// MaxSend is the largest frame the peer accepts (from negotiation).
	MaxSend int
	// MaxInFlight bounds this side's calls in flight; further calls wait for
	// a slot until their deadline. A call holds its slot until the peer
	// answers it, even after its caller gave up, so a peer that ignores
	// cancellation cannot be handed unbounded work. 0 means unlimited.
	MaxInFlight int
	// Handler serves the peer's calls; nil answers unknown_function.
	Handler Handler
	// MaxServing bounds the peer's calls running at once; beyond it calls
	// are answered overloaded. 0 means 1024.
	MaxServing int
	// OnLog receives each LOG frame body (RoleHost). The slice is valid only
	// during the call. It runs on the reading goroutine: keep it cheap.
	OnLog func(callID uint64, body []byte)
	// OnShutdown is called for SHUTDOWN (RolePlugin) with the grace period.
	OnShutdown func(grace time.Duration)
	// OnGrant is called for GRANT (RolePlugin); the slice is valid only
	// during the call.
	OnGrant func(body []byte)
	// OnGoodbye is called for GOODBYE (RoleHost).
	OnGoodbye func()
	// CloseError, when set, turns the reason the connection failed into the
	// error every pending call receives (the host adds the plugin's exit
	// status). It runs once, on the goroutine that saw the failure.
	CloseError func(cause error) error
	Logger     *slog.Logger
	// Now tells the time for OldestAbandoned (tests inject a fake clock);
	// nil means time.Now.
	Now func() time.Time
	// Watcher, when set, watches the socket while nobody reads it (see
	// Watcher): host callers then read their own replies. A host shares one
	// among its connections. The plugin side makes its own.
	Watcher *Watcher

	// batchPatience replaces the package's batchPatience (tests).
	batchPatience time.Duration
}

// Conn is one side of a connection. It is safe for concurrent use.
type Conn struct {
	opts   Options
	rwc    io.ReadWriteCloser
	r      *wire.Reader
	w      *writer
	outK   wire.Kind // kind of the calls this side starts
	inK    wire.Kind // kind of the calls this side serves
	logger *slog.Logger

	mu        sync.Mutex
	pending   map[uint64]*call
	abandoned map[uint64]time.Time // calls given up on but not yet answered
	nextID    uint64
	closed    bool
	cause     error // why the connection closed
	serving   map[uint64]*callCtx
	draining  bool

	dls  deadlines // deadlines of calls in both directions
	fire func()    // c.expire, made once

	slots    chan struct{} // outgoing in-flight limit; nil when unlimited
	done     chan struct{}
	failOnce sync.Once

	// reading
	watch      *Watcher      // nil: a goroutine always reads
	ownWatch   bool          // the watcher is this connection's (plugin side)
	fd         int           // the socket, for the watcher
	deadline   deadliner     // interrupts a reading caller
	role       atomic.Int32  // roleHeld or roleFree
	readerCall atomic.Uint64 // the host call whose caller reads, or 0
	takeFirst  bool          // a host caller may take the role before sending (see Call)
	sendHeld   atomic.Bool   // the role is held by a host caller still sending
	bg         sync.WaitGroup
	calls      chan *Request // incoming calls for idle call workers

	// batches (plugin side; see batch)
	batchGen atomic.Uint64 // counts batch calls started
	dogSeen  atomic.Uint64 // batchGen at the watchdog's previous tick
	dogArmed atomic.Bool
	dog      *time.Timer // the batch watchdog; nil where workers never read (a host with a watcher)

	// serving pool
	turn       chan struct{} // hands the reading role to an idle worker
	idle       atomic.Int32
	running    sync.WaitGroup // handlers running
	nServing   atomic.Int32
	readerDone chan struct{} // closed when no goroutine will read again

	// heartbeats
	pingSeq     atomic.Uint64
	pingSent    atomic.Int64 // unix ns of the oldest unanswered ping, 0 if none
	lastPongSeq atomic.Uint64

	stats Stats
}

// Stats are counters a Conn keeps; read them with Conn.Stats.
type Stats struct {
	UnknownKinds atomic.Uint64 // frames of kinds this version does not know, skipped
	LateReplies  atomic.Uint64 // replies to calls already given up on
	BatchCuts    atomic.Uint64 // batch calls the watchdog took the reading role from
}

// New starts a Conn over rwc. r must read from rwc; it is passed in because
// negotiation has already used it and may have buffered bytes.
func New(rwc io.ReadWriteCloser, r *wire.Reader, opts Options) *Conn {
	if opts.MaxSend == 0 {
		opts.MaxSend = wire.DefaultMaxFrame
	}
	if opts.MaxServing == 0 {
		opts.MaxServing = 1024
	}
	if opts.batchPatience == 0 {
		opts.batchPatience = batchPatience
	}
	c := &Conn{
		opts:       opts,
		rwc:        rwc,
		r:          r,
		logger:     opts.Logger,
		pending:    make(map[uint64]*call),
		abandoned:  make(map[uint64]time.Time),
		serving:    make(map[uint64]*callCtx),
		done:       make(chan struct{}),
		turn:       make(chan struct{}),
		readerDone: make(chan struct{}),
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	if c.opts.Now == nil {
		c.opts.Now = time.Now
	}
	switch opts.Role {
	case RoleHost:
		c.outK, c.inK = wire.KindCall, wire.KindHostCall
	case RolePlugin:
		c.outK, c.inK = wire.KindHostCall, wire.KindCall
	default:
		panic("rpc: Options.Role must be RoleHost or RolePlugin")
	}
	if opts.MaxInFlight > 0 {
		c.slots = make(chan struct{}, opts.MaxInFlight)
	}
	c.fire = c.expire
	c.calls = make(chan *Request)
	c.w = newWriter(rwc, func(err error) { c.fail(fmt.Errorf("write frame: %w", err)) }, c.done)
	c.setUpWatch(rwc)
	if c.watch != nil && opts.Role == RoleHost {
		// Nobody reads until a caller or the watcher needs to.
		close(c.readerDone)
		c.role.Store(roleHeld)
		if !c.leaveRole() {
			c.startBackground() // cannot watch: read as without a watcher
		}
		return c
	}
	c.dog = time.AfterFunc(time.Hour, c.watchdog)
	c.dog.Stop()
	go c.worker(true)
	return c
}

// deadliner is what interrupting a reader needs of the connection.
type deadliner interface{ SetReadDeadline(time.Time) error }

// setUpWatch registers the socket with a watcher: the host's shared one, or
// on the plugin side one of its own. Without one (no socket, no epoll, no
// read deadlines) a goroutine always reads, as everywhere but Linux.
func (c *Conn) setUpWatch(rwc io.ReadWriteCloser) {
	fd, ok := socketFD(rwc)
	dl, hasDeadline := rwc.(deadliner)
	if !ok || !hasDeadline {
		return
	}
	w := c.opts.Watcher
	own := false
	if w == nil && c.opts.Role == RolePlugin {
		var err error
		if w, err = NewWatcher(); err != nil {
			return
		}
		own = true
	}
	if w == nil {
		return
	}
	if w.add(c, fd) != nil {
		if own {
			w.Close()
		}
		return
	}
	c.watch, c.ownWatch, c.fd, c.deadline = w, own, fd, dl
	if ww, ok := rwc.(writeWaiter); ok && c.opts.Role == RoleHost {
		ww.OnWriteWait(c.releaseSendRole)
		c.takeFirst = true
	}
}

// writeWaiter is a connection that says when a write is about to wait for
// the peer to read (sockio.Conn on Linux).
type writeWaiter interface{ OnWriteWait(func()) }

// Done is closed when the connection has failed or been closed.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns why the connection closed, or nil while it is open.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cause
}

// Stats returns the connection's counters.
func (c *Conn) Stats() *Stats { return &c.stats }

// Close closes the connection with cause (nil for a plain close): pending
// calls fail, running handlers are cancelled. It waits for the reading
// goroutine to stop, not for handlers to return.
func (c *Conn) Close(cause error) {
	if cause == nil {
		cause = errors.New("closed locally")
	}
	c.fail(cause)
	<-c.readerDone
	c.bg.Wait()
}

// fail closes the connection once. Every pending call receives the error
// CloseError makes of cause.
func (c *Conn) fail(cause error) {
	c.failOnce.Do(func() {
		// Refuse new calls at once, then let the owner shape the error (the
		// host kills a plugin that broke the protocol here, before the
		// socket closes, so the kill's reason is what the plugin dies of),
		// and only then close the socket.
		c.mu.Lock()
		c.closed = true
		c.cause = cause
		c.mu.Unlock()
		delivered := error(&ClosedError{Cause: cause})
		if c.opts.CloseError != nil {
			delivered = c.opts.CloseError(cause)
		}
		if c.watch != nil {
			// Before the socket closes: its number may be reused at once,
			// by a connection that registers with the same watcher.
			c.watch.remove(c.fd)
		}
		_ = c.rwc.Close()
		c.mu.Lock()
		pending := c.pending
		c.pending = make(map[uint64]*call)
		abandoned := len(c.abandoned)
		clear(c.abandoned)
		serving := c.serving
		c.serving = make(map[uint64]*callCtx)
		c.mu.Unlock()

		c.dls.stop()
		if c.dog != nil {
			c.dog.Stop()
		}
		if c.watch != nil {
			if c.ownWatch {
				c.watch.Close()
			}
			// A plugin whose role was free has no goroutine to see the
			// failure: give the role to one so readerDone closes.
			if c.opts.Role == RolePlugin && c.role.CompareAndSwap(roleFree, roleHeld) {
				go c.worker(true)
			}
		}
		c.w.fail(&ClosedError{Cause: cause})
		close(c.done)
		for _, cl := range pending {
			c.release()
			cl.ch <- reply{err: delivered}
		}
		for range abandoned {
			c.release()
		}
		for _, cc := range serving {
			cc.end(context.Canceled)
		}
	})
}

// expire resolves the calls whose deadlines passed; the deadline timer
// calls it.
func (c *Conn) expire() {
	var buf [8]deadline
	for _, d := range c.dls.due(time.Now(), c.fire, buf[:0]) {
		if d.out {
			c.expireCall(d.id, d.ctx)
			continue
		}
		c.mu.Lock()
		cc := c.serving[d.id]
		c.mu.Unlock()
		if cc != nil {
			cc.end(context.DeadlineExceeded)
		}
	}
}

// Drain stops serving new incoming calls (they are answered unavailable) and
// waits until those running return or ctx is done; then it cancels those
// still running.
func (c *Conn) Drain(ctx context.Context) error {
	c.mu.Lock()
	c.draining = true
	c.mu.Unlock()
	idle := make(chan struct{})
	go func() { c.running.Wait(); close(idle) }()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		c.mu.Lock()
		for _, cc := range c.serving {
			cc.end(context.Canceled)
		}
		c.mu.Unlock()
		return ctx.Err()
	}
}

// Send writes a complete frame that needs no reply (SHUTDOWN, GOODBYE,
// GRANT) and returns once it has been written. It copies frame.
func (c *Conn) Send(frame []byte) error {
	f, err := c.control(frame)
	if err != nil {
		return err
	}
	written := make(chan error, 1)
	f.written = written
	if err := c.w.send(f); err != nil {
		return err
	}
	return <-written
}

// Post queues a complete frame that needs no reply (LOG) without waiting for
// it to be written. It copies frame.
func (c *Conn) Post(frame []byte) error {
	f, err := c.control(frame)
	if err != nil {
		return err
	}
	return c.w.send(f)
}

func (c *Conn) control(frame []byte) (outFrame, error) {
	if len(frame) > c.opts.MaxSend {
		return outFrame{}, Errorf(wire.CodeTooLarge, "frame of %d bytes exceeds the peer's limit of %d", len(frame), c.opts.MaxSend)
	}
	b := getBuf()
	*b = append((*b)[:0], frame...)
	return outFrame{buf: b}, nil
}

// Ping sends a PING unless one is still unanswered. It returns when the
// oldest unanswered ping was sent (zero if none was outstanding).
func (c *Conn) Ping(now time.Time) (outstandingSince time.Time, err error) {
	if sent := c.pingSent.Load(); sent != 0 {
		return time.Unix(0, sent), nil
	}
	seq := c.pingSeq.Add(1)
	c.pingSent.Store(now.UnixNano())
	b := getBuf()
	*b = wire.AppendEmpty((*b)[:0], wire.KindPing, seq)
	return time.Time{}, c.w.send(outFrame{buf: b})
}

// OldestAbandoned reports how many calls this side gave up on are still
// unanswered by the peer, and since when the oldest has waited.
func (c *Conn) OldestAbandoned() (n int, since time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.abandoned {
		if since.IsZero() || t.Before(since) {
			since = t
		}
	}
	return len(c.abandoned), since
}

// InFlight returns the number of this side's calls holding a slot.
func (c *Conn) InFlight() int {
	if c.slots == nil {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.pending) + len(c.abandoned)
	}
	return len(c.slots)
}

func (c *Conn) release() {
	if c.slots != nil {
		<-c.slots
	}
}

// protocolError closes the connection because the peer broke the protocol.
// It returns errFailed, for frame to return.
func (c *Conn) protocolError(detail string, err error) error {
	c.fail(&ProtocolError{Detail: detail, Err: err})
	return errFailed
}
