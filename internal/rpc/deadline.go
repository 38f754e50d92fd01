package rpc

import (
	"container/heap"
	"sync"
	"time"
)

// deadlines holds the deadlines of a connection's calls, in both
// directions, and arms a single timer for the earliest.
//
// # Why not a timer per call?
//
// Arming a timer that fires before the Go runtime's netpoller would wake
// makes the runtime interrupt epoll_wait: one extra context switch per call,
// on each side, measured at about 40% of a small call's cost on a 2-vCPU VM.
// Here a call adds its deadline to a heap and the timer is re-armed only when
// that deadline is earlier than the armed one, so calls with similar
// timeouts (the common case) arm nothing. A call that completes leaves the
// timer armed; when it fires for a deadline nobody holds any more, it just
// re-arms for the earliest remaining one.
type deadlines struct {
	mu      sync.Mutex
	items   dlHeap
	timer   *time.Timer
	armed   time.Time // when the timer fires; zero while stopped
	stopped bool
}

// deadline is one call's deadline in the heap.
type deadline struct {
	at    time.Time
	index int    // position in the heap; -1 when not in it
	id    uint64 // the call
	out   bool   // an outgoing call (else one this side serves)
	ctx   bool   // an outgoing call's context deadline, not its own timeout
}

type dlHeap []*deadline

func (h dlHeap) Len() int           { return len(h) }
func (h dlHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h dlHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *dlHeap) Push(x any) {
	d := x.(*deadline)
	d.index = len(*h)
	*h = append(*h, d)
}
func (h *dlHeap) Pop() any {
	old := *h
	d := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	d.index = -1
	return d
}

// add puts d in the heap and arms the timer if d is due first. fire is what
// the timer calls; it is fixed for a connection.
func (t *deadlines) add(d *deadline, fire func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	heap.Push(&t.items, d)
	if !t.stopped && (t.armed.IsZero() || d.at.Before(t.armed)) {
		t.arm(d.at, fire)
	}
}

// remove takes d out of the heap if it is still there. The timer is left as
// it is: re-arming costs more than one spurious wake at the old deadline.
func (t *deadlines) remove(d *deadline) {
	t.mu.Lock()
	if d.index >= 0 {
		heap.Remove(&t.items, d.index)
	}
	t.mu.Unlock()
}

func (t *deadlines) arm(at time.Time, fire func()) {
	t.armed = at
	wait := time.Until(at)
	if t.timer == nil {
		t.timer = time.AfterFunc(wait, fire)
		return
	}
	t.timer.Reset(wait)
}

// due pops every deadline that has passed, re-arms the timer for the next
// one, and returns the ids of the expired calls.
func (t *deadlines) due(now time.Time, fire func(), into []deadline) []deadline {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.armed = time.Time{}
	for len(t.items) > 0 && !t.items[0].at.After(now) {
		d := heap.Pop(&t.items).(*deadline)
		into = append(into, *d) // a copy: the call may reuse d once popped
	}
	if len(t.items) > 0 && !t.stopped {
		t.arm(t.items[0].at, fire)
	}
	return into
}

// stop stops the timer for good.
func (t *deadlines) stop() {
	t.mu.Lock()
	if t.timer != nil {
		t.timer.Stop()
	}
	t.armed = time.Time{}
	t.stopped = true
	for _, d := range t.items {
		d.index = -1
	}
	t.items = nil
	t.mu.Unlock()
}
