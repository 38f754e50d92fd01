package wire

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// Reader reads frames from a stream. It is not safe for concurrent use: one
// goroutine at a time reads a connection.
//
// Reading a frame takes two steps, Next for the header and Body or View for
// the body, so that a caller can size or choose the destination of a large
// body (a result payload) before a single body byte is copied.
//
// Every method may be called again after it returns an error that is not
// final (a read deadline, os.ErrDeadlineExceeded): no byte read before the
// error is lost, even in the middle of a frame. This lets a reader be
// interrupted by a deadline and resume.
type Reader struct {
	br       *bufio.Reader
	maxFrame int
	left     int    // body bytes of the current frame still in the stream
	scratch  []byte // reused by View for bodies larger than the buffer

	// A body being read by Body, resumed after an error.
	inBody bool
	body   []byte
	got    int
}

// NewReader returns a Reader with a buffer of size bytes that accepts frames
// up to maxFrame bytes.
func NewReader(r io.Reader, size, maxFrame int) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, size), maxFrame: maxFrame}
}

// SetMaxFrame changes the largest frame accepted, as agreed in negotiation.
func (r *Reader) SetMaxFrame(n int) { r.maxFrame = n }

// Buffered returns how many bytes are read from the stream but not yet
// taken: the start of frames that need no read to arrive.
func (r *Reader) Buffered() int { return r.br.Buffered() }

// Complete reports whether the next frame is entirely buffered, so that
// reading it needs no read from the stream (a frame whose header is
// invalid counts: reading it fails at once).
func (r *Reader) Complete() bool {
	n := r.br.Buffered()
	if r.left > 0 || r.inBody || n < HeaderSize {
		return false
	}
	b, _ := r.br.Peek(HeaderSize) // buffered: no read
	h, err := ParseHeader(b, r.maxFrame)
	return err != nil || n >= h.FrameLen()
}

// MaxFrame returns the largest frame accepted.
func (r *Reader) MaxFrame() int { return r.maxFrame }

// Next reads the next frame header, skipping whatever body of the previous
// frame was not read. At a clean end of stream it returns io.EOF; a stream
// that ends inside a frame gives io.ErrUnexpectedEOF.
func (r *Reader) Next() (Header, error) {
	r.inBody, r.body, r.got = false, nil, 0 // a body left unfinished is dropped
	if r.left > 0 {
		n, err := r.br.Discard(r.left)
		r.left -= n
		if err != nil {
			return Header{}, truncated(err)
		}
	}
	b, err := r.br.Peek(HeaderSize)
	if err != nil {
		if errors.Is(err, io.EOF) && len(b) > 0 {
			return Header{}, io.ErrUnexpectedEOF
		}
		return Header{}, err
	}
	h, err := ParseHeader(b, r.maxFrame)
	if err != nil {
		return Header{}, err
	}
	_, _ = r.br.Discard(HeaderSize) // cannot fail: the bytes were peeked
	r.left = h.BodyLen
	return h, nil
}

// Body reads the rest of the current frame's body into dst, reusing its
// capacity or allocating exactly the body's size, and returns it. The
// result belongs to the caller.
//
// After an error Body may be called again (with any dst) and continues
// where it stopped.
func (r *Reader) Body(dst []byte) ([]byte, error) {
	if !r.inBody {
		n := r.left
		if cap(dst) < n {
			dst = make([]byte, n)
		}
		r.inBody, r.body, r.got = true, dst[:n], 0
	}
	for r.got < len(r.body) {
		m, err := r.br.Read(r.body[r.got:])
		r.got += m
		r.left -= m
		if err != nil {
			return nil, truncated(err)
		}
	}
	b := r.body
	r.inBody, r.body, r.got = false, nil, 0
	return b, nil
}

// View returns the current frame's body without copying when it fits in the
// read buffer. The slice is valid only until the next call on r; copy what
// must outlive it.
func (r *Reader) View() ([]byte, error) {
	n := r.left
	if !r.inBody && n <= r.br.Size() {
		b, err := r.br.Peek(n)
		if err != nil {
			return nil, truncated(err)
		}
		_, _ = r.br.Discard(n)
		r.left = 0
		return b, nil
	}
	b, err := r.Body(r.scratch)
	if err != nil {
		return nil, err
	}
	r.scratch = b[:0]
	return b, nil
}

func truncated(err error) error {
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("read frame body: %w", io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("read frame body: %w", err)
}
