package rpc

import (
	"io"
	"net"
	"slices"
	"sync"
)

// copyLimit is the largest payload copied into the frame buffer. Larger
// payloads are written straight from the sender's slice, and the sender
// waits until that write is done before reusing it.
const copyLimit = 32 << 10

// holdFrames and holdBytes bound the replies held back in a batch (see
// writer.hold) before they are written anyway.
const (
	holdFrames = 32
	holdBytes  = 64 << 10
)

// combineRounds bounds how many batches one sender writes for others before
// it hands the rest to the flusher goroutine and goes back to its own call.
const combineRounds = 4

// outFrame is one frame waiting to be written.
type outFrame struct {
	buf     *[]byte    // header and fixed fields (and a copied small payload); pooled
	payload []byte     // large payload written from the sender's slice, or nil
	written chan error // when non-nil, receives the write's outcome
	call    uint64     // the outgoing call this frame starts, or 0
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) > 64<<10 {
		return // do not keep buffers grown by one large frame
	}
	*b = (*b)[:0]
	bufPool.Put(b)
}

// writer serialises frames onto the connection without holding a lock
// across I/O. Senders append to a queue under a short lock; the first sender
// to find nobody writing becomes the writer ("flat combining"): it takes the
// whole queue, writes it with one writev, and repeats, so concurrent frames
// are batched and an uncontended sender writes its own frame with no
// goroutine hand-off. After combineRounds batches it wakes the flusher
// goroutine to finish, so no sender writes for others indefinitely.
type writer struct {
	w io.Writer

	mu      sync.Mutex
	queue   []outFrame
	spare   []outFrame
	current []outFrame // the batch being written, while it is
	writing bool
	held    int // bytes queued by hold since the queue was last taken
	err     error

	bufs  net.Buffers
	wake  chan struct{} // flusher: continue writing the queue
	start sync.Once     // starts the flusher the first time it is needed
	onErr func(error)   // called once with the first write error
	done  chan struct{} // closed by the connection: the flusher exits
}

func newWriter(w io.Writer, onErr func(error), done chan struct{}) *writer {
	return &writer{w: w, wake: make(chan struct{}, 1), onErr: onErr, done: done}
}

// send queues f and, when nobody is writing, writes the queue. It returns
// the connection's error if the connection already failed; in that case f
// was not queued and its buffer is released.
func (w *writer) send(f outFrame) error {
	w.mu.Lock()
	if w.err != nil {
		err := w.err
		w.mu.Unlock()
		putBuf(f.buf)
		return err
	}
	w.queue = append(w.queue, f)
	w.write()
	return nil
}

// sendAsync queues f without ever writing on the calling goroutine: when
// nobody is writing it wakes the flusher. The reading goroutine uses it
// (for PONG) so that it can never block in a write while the peer, blocked
// writing to us, waits for it to read.
func (w *writer) sendAsync(f outFrame) {
	if w.enqueue(f) {
		w.handOver()
	}
}

// hold queues f without writing it: the reply of a call run in a batch,
// written with the replies of the calls after it by flush (or by any
// sender meanwhile). Once holdFrames frames or holdBytes bytes wait, it
// writes them at once.
func (w *writer) hold(f outFrame) {
	if !w.enqueue(f) {
		return
	}
	w.held += len(*f.buf) + len(f.payload)
	if len(w.queue) < holdFrames && w.held < holdBytes {
		w.mu.Unlock()
		return
	}
	w.write()
}

// enqueue queues f, or finishes it with the writer's error if the
// connection failed. It returns with mu held only when it queued f.
func (w *writer) enqueue(f outFrame) bool {
	w.mu.Lock()
	if w.err != nil {
		err := w.err
		w.mu.Unlock()
		finish(f, err)
		return false
	}
	w.queue = append(w.queue, f)
	return true
}

// flush writes the frames held back, unless someone is writing already
// (who then writes them).
func (w *writer) flush() {
	w.mu.Lock()
	w.write()
}

// kick has the flusher goroutine write the frames held back: flush for a
// goroutine that must not block in a write.
func (w *writer) kick() {
	w.mu.Lock()
	w.handOver()
}

// write writes the queue on the calling goroutine, unless it is empty or
// someone is writing already. It is entered with mu held and releases it.
func (w *writer) write() {
	if w.writing || len(w.queue) == 0 {
		w.mu.Unlock()
		return
	}
	w.writing = true
	w.drain(combineRounds)
}

// handOver has the flusher goroutine write the queue, unless it is empty or
// someone is writing already. It is entered with mu held and releases it.
func (w *writer) handOver() {
	start := !w.writing && len(w.queue) > 0
	w.writing = w.writing || start
	w.mu.Unlock()
	if start {
		w.wakeFlusher()
	}
}

// wakeFlusher has the flusher goroutine write the queue, starting it the
// first time: most connections never need it (a writer that finds nobody
// writing writes itself), and a goroutine started with every connection
// woke an idle thread on the cold start's path to the first call.
func (w *writer) wakeFlusher() {
	w.start.Do(func() { go w.flusher() })
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// drain writes queued batches. It is entered with mu held and writing set,
// and returns with mu released. rounds < 0 means until the queue is empty.
func (w *writer) drain(rounds int) {
	for n := 0; len(w.queue) > 0; n++ {
		if rounds >= 0 && n == rounds {
			w.mu.Unlock()
			w.wakeFlusher()
			return // writing stays set: the flusher owns the queue now
		}
		batch := w.queue
		w.queue = w.spare[:0]
		w.held = 0
		w.current = batch
		w.mu.Unlock()

		err := w.writeBatch(batch)

		w.mu.Lock()
		w.current = nil
		clear(batch)
		w.spare = batch[:0]
		if err != nil && w.err == nil {
			w.err = err
			failed := w.queue
			w.queue = nil
			w.mu.Unlock()
			for _, f := range failed {
				finish(f, err)
			}
			w.onErr(err)
			w.mu.Lock()
		}
	}
	w.writing = false
	w.mu.Unlock()
}

func (w *writer) writeBatch(batch []outFrame) error {
	w.bufs = w.bufs[:0]
	for _, f := range batch {
		w.bufs = append(w.bufs, *f.buf)
		if len(f.payload) > 0 {
			w.bufs = append(w.bufs, f.payload)
		}
	}
	var err error
	if bw, ok := w.w.(buffersWriter); ok {
		_, err = bw.WriteBuffers(w.bufs)
	} else {
		bufs := w.bufs // WriteTo consumes its receiver
		_, err = bufs.WriteTo(w.w)
	}
	for _, f := range batch {
		finish(f, err)
	}
	clear(w.bufs[:cap(w.bufs)])
	return err
}

// buffersWriter writes several buffers with one system call where it can
// (sockio.Conn does); other writers get net.Buffers' WriteTo, which does the
// same for a net.Conn.
type buffersWriter interface {
	WriteBuffers(bufs [][]byte) (int64, error)
}

func finish(f outFrame, err error) {
	putBuf(f.buf)
	if f.written != nil {
		f.written <- err
	}
}

func (w *writer) flusher() {
	for {
		select {
		case <-w.wake:
			w.mu.Lock()
			w.drain(-1)
		case <-w.done:
			return
		}
	}
}

// sendState says how far the frame of an outgoing call got.
type sendState uint8

const (
	sendDone     sendState = iota // written, or never queued
	sendQueued                    // still queued: unsend took it out
	sendInFlight                  // in the batch being written right now
)

// unsend takes call's frame out of the queue if its write has not started
// and returns it, unfinished: the caller resolves the call first and then
// finishes the frame (which releases a sender waiting on written).
func (w *writer) unsend(call uint64) (outFrame, sendState) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, f := range w.queue {
		if f.call == call {
			w.queue = slices.Delete(w.queue, i, i+1) // zeroes the vacated slot: no payload kept alive
			return f, sendQueued
		}
	}
	for _, f := range w.current {
		if f.call == call {
			return outFrame{}, sendInFlight
		}
	}
	return outFrame{}, sendDone
}

// fail marks the writer failed so later sends return err. Frames still
// queued are finished with err.
func (w *writer) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	failed := w.queue
	w.queue, w.held = nil, 0
	w.mu.Unlock()
	for _, f := range failed {
		finish(f, err)
	}
}
