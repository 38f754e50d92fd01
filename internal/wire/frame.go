package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Frame layout (all integers little-endian):
//
//	offset size field
//	0      4    length: bytes that follow this field (12 + body length)
//	4      1    kind
//	5      1    flags (zero in v1; receivers ignore unknown bits)
//	6      2    reserved (zero when sent, ignored when received)
//	8      8    id: the call this frame concerns, 0 for connection-level frames
//	16     ...  body, laid out per kind
const (
	// HeaderSize is the fixed size of a frame header.
	HeaderSize = 16

	// DefaultMaxFrame is the largest frame, header included, either side
	// accepts unless the host configures another size. It fits a 4 MiB
	// payload with room for the call's own fields.
	DefaultMaxFrame = 4<<20 + 4<<10

	// MinMaxFrame and MaxMaxFrame bound what a peer may propose as its
	// maximum frame size in HELLO or WELCOME.
	MinMaxFrame = 64 << 10
	MaxMaxFrame = 64 << 20

	// HandshakeMaxFrame caps frames before negotiation has finished (HELLO,
	// WELCOME and a version-mismatch ERROR).
	HandshakeMaxFrame = 64 << 10
)

// Kind identifies what a frame carries.
type Kind uint8

// The kinds of protocol version 1. Values not listed are reserved:
// 0x0E–0x3F for later core kinds, 0x40–0x7F for extensions, 0x80–0xFF never used (so a
// future version can widen the field). A receiver ignores a frame whose kind
// it does not know.
const (
	KindHello    Kind = 0x01 // host → plugin, id 0: opens negotiation
	KindWelcome  Kind = 0x02 // plugin → host, id 0: chosen version and exports
	KindCall     Kind = 0x03 // host → plugin: invoke an exported function
	KindResult   Kind = 0x04 // either way: successful reply to CALL or HOSTCALL
	KindError    Kind = 0x05 // either way: failed reply, or id 0 for a fatal connection error
	KindCancel   Kind = 0x06 // either way: the caller no longer wants call id
	KindPing     Kind = 0x07 // either way: liveness probe
	KindPong     Kind = 0x08 // either way: answer to PING with the same id
	KindLog      Kind = 0x09 // plugin → host: one structured log record
	KindShutdown Kind = 0x0A // host → plugin, id 0: drain and exit
	KindGoodbye  Kind = 0x0B // plugin → host, id 0: drained, about to exit
	KindHostCall Kind = 0x0C // plugin → host: invoke a host capability
	KindGrant    Kind = 0x0D // host → plugin, id 0: capability tokens (activation, rotation)
)

var kindNames = [...]string{
	KindHello:    "hello",
	KindWelcome:  "welcome",
	KindCall:     "call",
	KindResult:   "result",
	KindError:    "error",
	KindCancel:   "cancel",
	KindPing:     "ping",
	KindPong:     "pong",
	KindLog:      "log",
	KindShutdown: "shutdown",
	KindGoodbye:  "goodbye",
	KindHostCall: "hostcall",
	KindGrant:    "grant",
}

// String returns the kind's lowercase name, or "kind(0xNN)" when unknown.
func (k Kind) String() string {
	if k.Known() {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(0x%02x)", uint8(k))
}

// Known reports whether k is a kind of protocol version 1.
func (k Kind) Known() bool { return int(k) < len(kindNames) && kindNames[k] != "" }

// KindByName returns the kind called name, as printed by Kind.String.
func KindByName(name string) (Kind, bool) {
	for k, n := range kindNames {
		if n != "" && n == name {
			return Kind(k), true
		}
	}
	return 0, false
}

// Header is a decoded frame header.
type Header struct {
	Kind  Kind
	Flags uint8
	ID    uint64
	// BodyLen is the number of body bytes that follow the header.
	BodyLen int
}

// FrameLen is the size of the whole frame the header describes.
func (h Header) FrameLen() int { return HeaderSize + h.BodyLen }

// Frame is a decoded frame whose body has not been interpreted yet.
type Frame struct {
	Kind  Kind
	Flags uint8
	ID    uint64
	Body  []byte
}

var (
	// ErrIncomplete means the buffer holds the start of a frame but not all
	// of it: read more bytes and try again. It is not a protocol error.
	ErrIncomplete = errors.New("incomplete frame: need more bytes")

	// ErrTooLarge is matched by an *Error for a frame whose length prefix
	// exceeds the maximum frame size.
	ErrTooLarge = errors.New("frame too large")

	// ErrMalformed is matched by an *Error for a frame or body that does
	// not follow the layout of docs/protocol.md.
	ErrMalformed = errors.New("malformed frame")
)

// Error describes an invalid frame. It matches ErrTooLarge or ErrMalformed
// with errors.Is.
type Error struct {
	Err    error  // ErrTooLarge or ErrMalformed
	Kind   Kind   // the frame's kind, when the header was readable
	Detail string // what exactly is wrong
}

func (e *Error) Error() string {
	if e.Kind != 0 {
		return fmt.Sprintf("wire: %v (%v frame): %s", e.Err, e.Kind, e.Detail)
	}
	return fmt.Sprintf("wire: %v: %s", e.Err, e.Detail)
}

func (e *Error) Unwrap() error { return e.Err }

func malformed(k Kind, format string, args ...any) *Error {
	return &Error{Err: ErrMalformed, Kind: k, Detail: fmt.Sprintf(format, args...)}
}

// ParseHeader decodes the first HeaderSize bytes of b. maxFrame is the
// largest whole frame accepted; the length prefix is checked against it
// before anything else, so callers may allocate BodyLen bytes safely.
func ParseHeader(b []byte, maxFrame int) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, ErrIncomplete
	}
	n := binary.LittleEndian.Uint32(b[0:4])
	if n < HeaderSize-4 {
		return Header{}, malformed(0, "length prefix %d is shorter than the %d-byte header remainder", n, HeaderSize-4)
	}
	if uint64(n)+4 > uint64(maxFrame) {
		return Header{}, &Error{Err: ErrTooLarge, Kind: Kind(b[4]),
			Detail: fmt.Sprintf("length prefix announces %d bytes, limit is %d", uint64(n)+4, maxFrame)}
	}
	return Header{
		Kind:    Kind(b[4]),
		Flags:   b[5],
		ID:      binary.LittleEndian.Uint64(b[8:16]),
		BodyLen: int(n) - (HeaderSize - 4),
	}, nil
}

// AppendHeader appends the 16-byte header for a frame of kind k and id with
// a body of bodyLen bytes.
func AppendHeader(dst []byte, k Kind, id uint64, bodyLen int) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(HeaderSize-4+bodyLen))
	dst = append(dst, byte(k), 0, 0, 0)
	return binary.LittleEndian.AppendUint64(dst, id)
}

// Decode decodes one frame from the start of buf. It returns the frame and
// the number of bytes it used. When buf holds only part of a frame it
// returns ErrIncomplete; an invalid frame gives an *Error. The frame's Body
// aliases buf.
func Decode(buf []byte, maxFrame int) (Frame, int, error) {
	h, err := ParseHeader(buf, maxFrame)
	if err != nil {
		return Frame{}, 0, err
	}
	end := h.FrameLen()
	if len(buf) < end {
		return Frame{}, 0, ErrIncomplete
	}
	return Frame{Kind: h.Kind, Flags: h.Flags, ID: h.ID, Body: buf[HeaderSize:end:end]}, end, nil
}

// AppendFrame appends f, header and body, to dst.
func AppendFrame(dst []byte, f Frame) []byte {
	start := len(dst)
	dst = AppendHeader(dst, f.Kind, f.ID, len(f.Body))
	dst[start+5] = f.Flags
	return append(dst, f.Body...)
}
