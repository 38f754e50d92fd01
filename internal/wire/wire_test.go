package wire

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func TestNegotiate(t *testing.T) {
	tests := []struct {
		name         string
		host, plugin VersionRange
		want         uint16
		wantErr      string
	}{
		{"same", VersionRange{1, 1}, VersionRange{1, 1}, 1, ""},
		{"plugin newer, overlapping", VersionRange{1, 2}, VersionRange{2, 5}, 2, ""},
		{"host newer, overlapping", VersionRange{1, 4}, VersionRange{1, 2}, 2, ""},
		{"plugin too new", VersionRange{1, 1}, VersionRange{2, 3}, 0, "host speaks v1, plugin speaks v2–v3 (upgrade Airlock"},
		{"plugin too old", VersionRange{3, 4}, VersionRange{1, 2}, 0, "host speaks v3–v4, plugin speaks v1–v2 (upgrade the plugin's SDK)"},
		{"inverted plugin range", VersionRange{1, 1}, VersionRange{2, 1}, 0, "no common protocol version"},
		{"version zero", VersionRange{1, 1}, VersionRange{0, 0}, 0, "no common protocol version"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Negotiate(tc.host, tc.plugin)
			if tc.wantErr != "" {
				var ve *VersionError
				if !errors.As(err, &ve) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want a *VersionError containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Negotiate = %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}

func TestMessages_RoundTrip(t *testing.T) {
	big := bytes.Repeat([]byte{0xab}, 100_000)
	tests := []struct {
		name   string
		frame  []byte
		decode func([]byte) (any, error)
		want   any
	}{
		{"hello", Hello{Versions: VersionRange{1, 3}, MaxFrame: 1 << 20, Host: "h", Plugin: "p", Instance: "i"}.AppendFrame(nil),
			func(b []byte) (any, error) { return DecodeHello(b) },
			Hello{Versions: VersionRange{1, 3}, MaxFrame: 1 << 20, Host: "h", Plugin: "p", Instance: "i"}},
		{"welcome", Welcome{Version: 1, Versions: VersionRange{1, 1}, MaxFrame: 99, SDK: "s", Functions: []string{"a", "", "ccc"}}.AppendFrame(nil),
			func(b []byte) (any, error) { return DecodeWelcome(b) },
			Welcome{Version: 1, Versions: VersionRange{1, 1}, MaxFrame: 99, SDK: "s", Functions: []string{"a", "", "ccc"}}},
		{"call big payload", Call{Timeout: time.Hour, Function: "f", Payload: big}.AppendFrame(nil, 1<<63),
			func(b []byte) (any, error) { return DecodeCall(b) },
			Call{Timeout: time.Hour, Function: "f", Payload: big}},
		{"hostcall", HostCall{Timeout: 1, Function: "kv.put", Token: []byte{1, 2}, Payload: []byte("x")}.AppendFrame(nil, 3),
			func(b []byte) (any, error) { return DecodeHostCall(b) },
			HostCall{Timeout: 1, Function: "kv.put", Token: []byte{1, 2}, Payload: []byte("x")}},
		{"log", Log{Level: -8, Message: "m", Attrs: []Attr{{"k", "v"}, {"", ""}}}.AppendFrame(nil, 0),
			func(b []byte) (any, error) { return DecodeLog(b) },
			Log{Level: -8, Message: "m", Attrs: []Attr{{"k", "v"}, {"", ""}}}},
		{"failure", Failure{Code: CodePanic, Message: strings.Repeat("x", MaxString+10)}.AppendFrame(nil, 5),
			func(b []byte) (any, error) { return DecodeFailure(b) },
			Failure{Code: CodePanic, Message: strings.Repeat("x", MaxString)}},
		{"grant", Grant{Tokens: []Token{{"kv", []byte{1}}, {"fs.read", nil}}}.AppendFrame(nil),
			func(b []byte) (any, error) { return DecodeGrant(b) },
			Grant{Tokens: []Token{{"kv", []byte{1}}, {"fs.read", []byte{}}}}},
		{"shutdown", Shutdown{Grace: 3 * time.Second}.AppendFrame(nil),
			func(b []byte) (any, error) { return DecodeShutdown(b) },
			Shutdown{Grace: 3 * time.Second}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, n, err := Decode(tc.frame, MaxMaxFrame)
			if err != nil || n != len(tc.frame) {
				t.Fatalf("Decode: n=%d err=%v", n, err)
			}
			got, err := tc.decode(f.Body)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestCode_Normalize(t *testing.T) {
	if got := Code(999).Normalize(); got != CodeInternal {
		t.Fatalf("unknown code normalizes to %v, want internal", got)
	}
	for c := Code(1); c.Known(); c++ {
		byName, ok := CodeByName(c.String())
		if !ok || byName != c || c.Normalize() != c {
			t.Fatalf("code %d (%v) does not round-trip by name", c, c)
		}
	}
}

// readAll reads every frame from r, returning each as re-encoded bytes.
func readAll(r *Reader, useView bool) ([][]byte, error) {
	var out [][]byte
	for {
		h, err := r.Next()
		if err != nil {
			return out, err
		}
		var b []byte
		if useView {
			b, err = r.View()
		} else {
			b, err = r.Body(nil)
		}
		if err != nil {
			return out, err
		}
		out = append(out, AppendFrame(nil, Frame{Kind: h.Kind, ID: h.ID, Body: b}))
	}
}

func goldenStream(t *testing.T) ([]byte, [][]byte) {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(goldenDir, "*.bin"))
	var stream []byte
	var frames [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		stream = append(stream, b...)
		frames = append(frames, b)
	}
	return stream, frames
}

func TestReader_SplitsAtEveryByte(t *testing.T) {
	stream, want := goldenStream(t)
	for _, useView := range []bool{false, true} {
		// OneByteReader makes every frame arrive a byte at a time; a tiny
		// buffer forces View down its copying path.
		r := NewReader(iotest.OneByteReader(bytes.NewReader(stream)), 16, DefaultMaxFrame)
		got, err := readAll(r, useView)
		if !errors.Is(err, io.EOF) {
			t.Fatalf("view=%v: stream ended with %v, want io.EOF", useView, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("view=%v: frames differ", useView)
		}
	}
}

func TestReader_SkipsUnreadBodies(t *testing.T) {
	stream, want := goldenStream(t)
	r := NewReader(bytes.NewReader(stream), 64, DefaultMaxFrame)
	for i := range want {
		h, err := r.Next()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if h.FrameLen() != len(want[i]) {
			t.Fatalf("frame %d: length %d, want %d", i, h.FrameLen(), len(want[i]))
		}
	}
	if _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("got %v, want io.EOF", err)
	}
}

func TestReader_Truncated(t *testing.T) {
	frame := Call{Function: "f", Payload: []byte("payload")}.AppendFrame(nil, 1)
	for cut := 1; cut < len(frame); cut++ {
		r := NewReader(bytes.NewReader(frame[:cut]), 4096, DefaultMaxFrame)
		_, err := r.Next()
		if err == nil {
			_, err = r.Body(nil)
		}
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("cut at %d: got %v, want io.ErrUnexpectedEOF", cut, err)
		}
	}
}

func TestReader_Complete(t *testing.T) {
	one := Call{Function: "f", Payload: []byte("payload")}.AppendFrame(nil, 1)
	two := append(append([]byte(nil), one...), one...)
	seen := map[bool]bool{}
	// A chunked reader hands out what a socket would: part of the stream per read.
	for cut := 1; cut < len(two); cut++ {
		r := NewReader(io.MultiReader(bytes.NewReader(two[:cut]), bytes.NewReader(two[cut:])), 4096, DefaultMaxFrame)
		if r.Complete() {
			t.Fatalf("cut at %d: complete before anything was read", cut)
		}
		if _, err := r.Next(); err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		if r.Complete() {
			t.Fatalf("cut at %d: complete with the body of the first frame unread", cut)
		}
		if _, err := r.Body(nil); err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		// The second frame is whole only when all of its bytes are buffered.
		want := r.Buffered() == len(one)
		if got := r.Complete(); got != want {
			t.Fatalf("cut at %d (%d buffered): Complete = %v, want %v", cut, r.Buffered(), got, want)
		}
		seen[want] = true
	}
	if !seen[true] || !seen[false] {
		t.Fatalf("the cuts did not give both a whole and a partial second frame: %v", seen)
	}
	// A header no frame can have counts as complete: reading it fails without waiting.
	bad := AppendHeader(nil, KindResult, 1, 10<<20)
	r := NewReader(bytes.NewReader(bad), 4096, 1<<20)
	if _, err := r.br.Peek(HeaderSize); err != nil {
		t.Fatal(err)
	}
	if !r.Complete() {
		t.Fatal("an oversized header is not reported complete")
	}
}

func TestReader_RefusesOversizedBeforeReadingBody(t *testing.T) {
	hdr := AppendHeader(nil, KindResult, 1, 10<<20)
	r := NewReader(io.MultiReader(bytes.NewReader(hdr), failingReader{}), 4096, 1<<20)
	_, err := r.Next()
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
}

// failingReader fails the test's expectation if the reader ever asks for body bytes.
type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("read past the header") }

func TestDecode_IncompleteAtEveryPrefix(t *testing.T) {
	frame := Log{Level: 1, Message: "hello", Attrs: []Attr{{"a", "b"}}}.AppendFrame(nil, 9)
	for cut := 0; cut < len(frame); cut++ {
		if _, _, err := Decode(frame[:cut], DefaultMaxFrame); !errors.Is(err, ErrIncomplete) {
			t.Fatalf("prefix of %d bytes: got %v, want ErrIncomplete", cut, err)
		}
	}
}

func TestDecode_BodyTruncationIsMalformed(t *testing.T) {
	frame := HostCall{Function: "fs.read", Token: []byte("tok"), Payload: []byte("p")}.AppendFrame(nil, 2)
	body := frame[HeaderSize:]
	for cut := 0; cut < len(body); cut++ {
		_, err := DecodeHostCall(body[:cut])
		var we *Error
		if !errors.As(err, &we) || !errors.Is(err, ErrMalformed) {
			t.Fatalf("body cut at %d: got %v, want a malformed *Error", cut, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join(goldenDir, "*.bin"))
	inv, _ := filepath.Glob(filepath.Join(goldenDir, "invalid", "*.bin"))
	for _, p := range append(paths, inv...) {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		const limit = 1 << 16
		fr, n, err := Decode(data, limit)
		if err != nil {
			var we *Error
			if !errors.Is(err, ErrIncomplete) && !errors.As(err, &we) {
				t.Fatalf("error %v is neither ErrIncomplete nor *Error", err)
			}
			return
		}
		if n > len(data) || n > limit {
			t.Fatalf("Decode consumed %d bytes of %d (limit %d)", n, len(data), limit)
		}
		// The frame layer round-trips exactly, flags included, except for
		// the reserved bytes, which receivers ignore and senders zero.
		want := bytes.Clone(data[:n])
		want[6], want[7] = 0, 0
		if re := AppendFrame(nil, fr); !bytes.Equal(re, want) {
			t.Fatalf("re-encoding differs:\n%x\n%x", re, want)
		}
		// Body decoders never panic, and what decodes re-encodes to a body
		// that decodes to the same message.
		switch fr.Kind {
		case KindHello:
			if m, err := DecodeHello(fr.Body); err == nil {
				again(t, m.AppendFrame(nil), func(b []byte) (any, error) { return DecodeHello(b) }, m)
			}
		case KindWelcome:
			if m, err := DecodeWelcome(fr.Body); err == nil {
				again(t, m.AppendFrame(nil), func(b []byte) (any, error) { return DecodeWelcome(b) }, m)
			}
		case KindCall:
			if m, err := DecodeCall(fr.Body); err == nil {
				again(t, m.AppendFrame(nil, fr.ID), func(b []byte) (any, error) { return DecodeCall(b) }, m)
			}
		case KindHostCall:
			if m, err := DecodeHostCall(fr.Body); err == nil {
				again(t, m.AppendFrame(nil, fr.ID), func(b []byte) (any, error) { return DecodeHostCall(b) }, m)
			}
		case KindResult:
			if m, err := DecodeResult(fr.Body); err == nil {
				again(t, m.AppendFrame(nil, fr.ID), func(b []byte) (any, error) { return DecodeResult(b) }, m)
			}
		case KindError:
			if m, err := DecodeFailure(fr.Body); err == nil {
				again(t, m.AppendFrame(nil, fr.ID), func(b []byte) (any, error) { return DecodeFailure(b) }, m)
			}
		case KindLog:
			if m, err := DecodeLog(fr.Body); err == nil {
				again(t, m.AppendFrame(nil, fr.ID), func(b []byte) (any, error) { return DecodeLog(b) }, m)
			}
		case KindGrant:
			if m, err := DecodeGrant(fr.Body); err == nil {
				again(t, m.AppendFrame(nil), func(b []byte) (any, error) { return DecodeGrant(b) }, m)
			}
		case KindShutdown:
			if m, err := DecodeShutdown(fr.Body); err == nil {
				again(t, m.AppendFrame(nil), func(b []byte) (any, error) { return DecodeShutdown(b) }, m)
			}
		}
	})
}

func again(t *testing.T, frame []byte, decode func([]byte) (any, error), want any) {
	t.Helper()
	got, err := decode(frame[HeaderSize:])
	if err != nil {
		t.Fatalf("re-encoded frame does not decode: %v", err)
	}
	if !equalMessages(got, want) {
		t.Fatalf("round trip changed the message:\n got  %#v\n want %#v", got, want)
	}
}

// equalMessages compares messages treating nil and empty slices alike.
func equalMessages(a, b any) bool {
	norm := func(v any) any {
		switch m := v.(type) {
		case Welcome:
			if len(m.Functions) == 0 {
				m.Functions = nil
			}
			return m
		case Log:
			if len(m.Attrs) == 0 {
				m.Attrs = nil
			}
			return m
		case Call:
			if len(m.Payload) == 0 {
				m.Payload = nil
			}
			return m
		case HostCall:
			if len(m.Payload) == 0 {
				m.Payload = nil
			}
			if len(m.Token) == 0 {
				m.Token = nil
			}
			return m
		case Grant:
			if len(m.Tokens) == 0 {
				m.Tokens = nil
			}
			for i := range m.Tokens {
				if len(m.Tokens[i].Token) == 0 {
					m.Tokens[i].Token = nil
				}
			}
			return m
		case Result:
			if len(m.Payload) == 0 {
				m.Payload = nil
			}
			return m
		}
		return v
	}
	return reflect.DeepEqual(norm(a), norm(b))
}

// interruptingReader returns a timeout after every few bytes, as a
// connection with a past read deadline does while data trickles in.
type interruptingReader struct {
	r     io.Reader
	every int
	n     int
}

var errTimeout = fmt.Errorf("i/o timeout: %w", os.ErrDeadlineExceeded)

func (ir *interruptingReader) Read(p []byte) (int, error) {
	ir.n++
	if ir.n%ir.every == 0 {
		return 0, errTimeout
	}
	return ir.r.Read(p)
}

func TestReader_ResumesAfterInterruptions(t *testing.T) {
	stream, want := goldenStream(t)
	big := Result{Payload: bytes.Repeat([]byte("big"), 50_000)}.AppendFrame(nil, 99)
	stream = append(stream, big...)
	want = append(want, big)
	for _, every := range []int{2, 3, 7} {
		for _, useView := range []bool{false, true} {
			r := NewReader(&interruptingReader{r: iotest.OneByteReader(bytes.NewReader(stream)), every: every}, 32, DefaultMaxFrame)
			var got [][]byte
			for len(got) < len(want) {
				h, err := r.Next()
				for errors.Is(err, os.ErrDeadlineExceeded) {
					h, err = r.Next()
				}
				if err != nil {
					t.Fatalf("every=%d view=%v: Next: %v", every, useView, err)
				}
				var b []byte
				for {
					if useView {
						b, err = r.View()
					} else {
						b, err = r.Body(nil)
					}
					if !errors.Is(err, os.ErrDeadlineExceeded) {
						break
					}
				}
				if err != nil {
					t.Fatalf("every=%d: body: %v", every, err)
				}
				got = append(got, AppendFrame(nil, Frame{Kind: h.Kind, ID: h.ID, Body: b}))
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("every=%d view=%v: frames differ after interruptions", every, useView)
			}
		}
	}
}
