package rpc

import "time"

// batchPatience is how long one call of a batch may run before the batch
// watchdog hands the reading role to another goroutine. A call is taken
// from its batch after between one and two periods.
const batchPatience = 100 * time.Microsecond

// batch runs req, read while the next frame had begun to arrive (some of
// it is in the read buffer), on the reading goroutine without giving up the
// reading role, and holds its reply back to be written with the replies of
// the calls after it. It reports whether this goroutine still holds the
// role afterwards.
//
// # Why?
//
// When calls arrive faster than they are answered (many callers on one
// plugin), the host writes them in bursts and the plugin finds several in
// one read. Handing the role to another goroutine for each of them, as a
// lone call does, wakes a goroutine (and often a thread) per call, and
// writing each reply on its own costs a system call per call: measured,
// these were half of a Go plugin's CPU per call under 64 callers, twice a
// bare echo loop's. Run in a batch, the burst costs one read and one write.
//
// The next frame need not be whole. Calls too large for two to fit in the
// read buffer (64 KiB payloads) never find the next one whole, yet under
// many callers it is always on its way: handing the role on for each cost
// a goroutine wake per call, and the Go plugin 57 µs of CPU per 64 KiB
// echo against 47 µs run in batches (the bare echo loop: 25).
//
// # What keeps it safe
//
// A handler may block: on a call of its own to the host, on a lock, on
// work that takes long. While it runs the role is roleBatch, held but open
// to be taken: a handler that calls the host hands the role on before it
// waits for the reply (Call), and the batch watchdog hands it on when the
// same call has run for at least batchPatience. The other calls of the
// burst then go on as without a batch; replies held back are written by
// whoever writes next, or by the flusher. When the handler returns to a
// role taken from it, its goroutine writes the held replies and becomes an
// idle worker.
func (c *Conn) batch(req *Request, written chan error) bool {
	c.batchGen.Add(1)
	c.role.Store(roleBatch)
	c.armWatchdog()
	out, err, ok := c.run(req)
	// A large reply may wait for the host to read it: write it while the
	// role can still be taken, so frames go on being read meanwhile.
	large := ok && err == nil && len(out) > copyLimit
	if large {
		c.answer(req.ID, out, err, written, false)
	}
	kept := c.role.CompareAndSwap(roleBatch, roleHeld)
	if ok && !large {
		c.answer(req.ID, out, err, written, true)
	}
	// The reader's buffer is only this goroutine's while it holds the role.
	if !kept || !c.r.Complete() {
		c.w.flush() // the burst is over (or this goroutine's part of it)
	}
	return kept
}

// leaveBatch takes the reading role from a batch whose current call is
// about to wait (for its own call to the peer) and hands it on. It is a
// no-op unless a batch call is running.
func (c *Conn) leaveBatch() {
	if c.role.Load() == roleBatch && c.role.CompareAndSwap(roleBatch, roleHeld) {
		c.handOff()
		c.w.kick()
	}
}

// armWatchdog makes sure the batch watchdog's timer runs.
func (c *Conn) armWatchdog() {
	if c.dogArmed.Load() || !c.dogArmed.CompareAndSwap(false, true) {
		return
	}
	c.dog.Reset(c.opts.batchPatience)
}

// watchdog runs every batchPatience while batches run. A batch call that
// was running at the previous tick and still is (the count of batch calls
// has not moved, and the role is still roleBatch) has run at least one
// period: the role is taken from it and handed on, and its batch's held
// replies are written.
func (c *Conn) watchdog() {
	gen := c.batchGen.Load()
	if c.role.Load() == roleBatch && gen == c.dogSeen.Load() && c.role.CompareAndSwap(roleBatch, roleHeld) {
		c.stats.BatchCuts.Add(1)
		c.handOff()
		c.w.kick()
	}
	c.dogSeen.Store(gen)
	c.dogArmed.Store(false)
	// A batch call started after the load above re-arms by itself; one
	// already running is watched on.
	if c.role.Load() == roleBatch {
		c.armWatchdog()
	}
}
