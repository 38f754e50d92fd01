package proc

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	"golang.org/x/time/rate"
)

// Output limits.
const (
	maxLine      = 4 << 10 // longer lines are cut, and the cut is said
	tailLines    = 20      // stderr lines kept for exit errors
	maxTailLine  = 512     // bytes kept of each of those lines
	readBufBytes = maxLine
)

// Output turns a plugin's stdout and stderr into log records. Every line
// costs one token of Budget, the same budget the plugin's LOG frames spend;
// lines over budget are dropped and counted, and a summary record says how
// many when output resumes. The last stderr lines are kept (bounded) for the
// error pending calls receive when the plugin dies. Memory use is fixed
// whatever the plugin writes.
type Output struct {
	Logger *slog.Logger
	Budget *rate.Limiter // nil: unlimited
	// Drops, when set, also counts every line dropped for budget: the
	// supervisor's LogDropped, shared by all of a plugin's instances and
	// with its LOG frames.
	Drops *atomic.Uint64

	mu      sync.Mutex
	tail    []string
	dropped map[string]uint64 // per stream, since the last summary
	total   uint64            // every line dropped so far
}

// Dropped returns how many output lines were dropped for budget so far.
func (o *Output) Dropped() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.total
}

func (o *Output) stderrTail() []string {
	if o == nil {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	// Escaped here, once, rather than for every line of a flood.
	out := make([]string, len(o.tail))
	for i, l := range o.tail {
		out[i] = Sanitize(l)
	}
	return out
}

// capture reads one stream until EOF or until its read deadline passes.
func (p *Process) capture(f *os.File, stream string) {
	defer p.readers.Done()
	o := p.out
	br := bufio.NewReaderSize(f, readBufBytes)
	for {
		line, err := br.ReadSlice('\n')
		cut := 0
		if errors.Is(err, bufio.ErrBufferFull) {
			// Discard the rest of an overlong line, counting it.
			for errors.Is(err, bufio.ErrBufferFull) {
				var more []byte
				more, err = br.ReadSlice('\n')
				cut += len(more)
			}
		}
		if len(line) > 0 && o != nil {
			o.line(stream, line, cut)
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(err, os.ErrClosed) && o != nil {
				o.Logger.Warn("read plugin output", "stream", stream, "err", err)
			}
			return
		}
	}
}

func (o *Output) line(stream string, raw []byte, cut int) {
	text := strings.TrimRight(string(raw), "\r\n")
	if stream == "stderr" {
		o.mu.Lock()
		if len(o.tail) == tailLines {
			copy(o.tail, o.tail[1:])
			o.tail = o.tail[:tailLines-1]
		}
		o.tail = append(o.tail, truncate(text, maxTailLine))
		o.mu.Unlock()
	}
	if o.Budget != nil && !o.Budget.Allow() {
		o.mu.Lock()
		if o.dropped == nil {
			o.dropped = map[string]uint64{}
		}
		o.dropped[stream]++
		o.total++
		o.mu.Unlock()
		if o.Drops != nil {
			o.Drops.Add(1)
		}
		return
	}
	o.mu.Lock()
	dropped := o.dropped[stream]
	delete(o.dropped, stream)
	o.mu.Unlock()
	if dropped > 0 {
		o.Logger.Warn("plugin output over its log budget was dropped", "stream", stream, "dropped_lines", dropped)
	}
	// slog's handlers quote control characters, so untrusted text cannot
	// forge records or drive a terminal.
	if cut > 0 {
		o.Logger.Info("plugin output", "stream", stream, "line", text, "cut_bytes", cut)
		return
	}
	o.Logger.Info("plugin output", "stream", stream, "line", text)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// Sanitize makes untrusted plugin text safe to put in an error message:
// control characters (such as the ESC that starts terminal escape
// sequences) and invalid UTF-8 bytes are written as Go escapes.
func Sanitize(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unicode.IsControl(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}
