package wire

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/wire/*.bin from the .json descriptions")

const goldenDir = "../../testdata/wire"

// golden is the JSON description of one golden frame (testdata/wire/README.md).
type golden struct {
	Description string         `json:"description"`
	Kind        string         `json:"kind"`
	ID          uint64         `json:"id"`
	Fields      map[string]any `json:"fields"`
	Trailing    string         `json:"trailing"` // hex: bytes after the known fields
}

// invalidGolden describes a byte string every decoder must refuse.
type invalidGolden struct {
	Description string `json:"description"`
	Hex         string `json:"hex"`
	MaxFrame    int    `json:"max_frame"`
	Expect      string `json:"expect"` // incomplete | too_large | malformed
}

func loadJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func TestGolden_Frames(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join(goldenDir, "*.json"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no golden frames in %s: %v", goldenDir, err)
	}
	seen := map[Kind]bool{}
	ran := 0
	for _, p := range paths {
		name := strings.TrimSuffix(filepath.Base(p), ".json")
		t.Run(name, func(t *testing.T) {
			ran++
			var g golden
			loadJSON(t, p, &g)
			want := encodeGolden(t, g)
			binPath := strings.TrimSuffix(p, ".json") + ".bin"
			if *update {
				if err := os.WriteFile(binPath, want, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := os.ReadFile(binPath)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("encoding the description does not give %s:\n got  %x\n want %x", binPath, want, got)
			}
			f, n, err := Decode(got, DefaultMaxFrame)
			if err != nil || n != len(got) {
				t.Fatalf("Decode = %d bytes, %v; want %d bytes", n, err, len(got))
			}
			seen[f.Kind] = true
			if f.ID != g.ID || f.Kind.String() != g.Kind {
				t.Fatalf("decoded %v id %d, want %s id %d", f.Kind, f.ID, g.Kind, g.ID)
			}
			fields, err := decodeFields(f)
			if err != nil {
				t.Fatalf("decode body: %v", err)
			}
			if wantFields := normalize(t, g.Fields); !reflect.DeepEqual(fields, wantFields) {
				t.Fatalf("decoded fields\n got  %v\n want %v", fields, wantFields)
			}
		})
	}
	for k := range kindNames {
		if ran == len(paths) && Kind(k).Known() && !seen[Kind(k)] {
			t.Errorf("no golden frame of kind %v", Kind(k))
		}
	}
}

func TestGolden_Invalid(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join(goldenDir, "invalid", "*.json"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no invalid golden frames: %v", err)
	}
	for _, p := range paths {
		name := strings.TrimSuffix(filepath.Base(p), ".json")
		t.Run(name, func(t *testing.T) {
			var g invalidGolden
			loadJSON(t, p, &g)
			raw, err := hex.DecodeString(g.Hex)
			if err != nil {
				t.Fatal(err)
			}
			binPath := strings.TrimSuffix(p, ".json") + ".bin"
			if *update {
				if err := os.WriteFile(binPath, raw, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := os.ReadFile(binPath)
			if err != nil || !bytes.Equal(got, raw) {
				t.Fatalf("%s does not hold the description's bytes (%v)", binPath, err)
			}
			f, _, err := Decode(got, g.MaxFrame)
			if err == nil {
				_, err = decodeFields(f)
			}
			var want error
			switch g.Expect {
			case "incomplete":
				want = ErrIncomplete
			case "too_large":
				want = ErrTooLarge
			case "malformed":
				want = ErrMalformed
			default:
				t.Fatalf("unknown expect %q", g.Expect)
			}
			if !errors.Is(err, want) {
				t.Fatalf("got %v, want %v", err, want)
			}
		})
	}
}

// encodeGolden builds the frame a description names with this package's
// encoders, then appends the description's trailing bytes.
func encodeGolden(t *testing.T, g golden) []byte {
	t.Helper()
	f := fieldReader{t: t, m: g.Fields}
	var out []byte
	switch g.Kind {
	case "hello":
		out = Hello{Versions: f.versions(), MaxFrame: uint32(f.int("max_frame")),
			Host: f.str("host"), Plugin: f.str("plugin"), Instance: f.str("instance")}.AppendFrame(nil)
	case "welcome":
		out = Welcome{Version: uint16(f.int("version")), Versions: f.versions(), MaxFrame: uint32(f.int("max_frame")),
			SDK: f.str("sdk"), Functions: f.strs("functions")}.AppendFrame(nil)
	case "call":
		out = Call{Timeout: time.Duration(f.int("timeout_ns")), Function: f.str("function"),
			Payload: f.hex("payload")}.AppendFrame(nil, g.ID)
	case "hostcall":
		out = HostCall{Timeout: time.Duration(f.int("timeout_ns")), Function: f.str("function"),
			Token: f.hex("token"), Payload: f.hex("payload")}.AppendFrame(nil, g.ID)
	case "result":
		out = Result{Payload: f.hex("payload")}.AppendFrame(nil, g.ID)
	case "error":
		out = Failure{Code: Code(f.int("code")), Message: f.str("message")}.AppendFrame(nil, g.ID)
	case "log":
		var attrs []Attr
		for _, a := range f.list("attrs") {
			kv := a.([]any)
			attrs = append(attrs, Attr{Key: kv[0].(string), Value: kv[1].(string)})
		}
		out = Log{Level: int32(f.int("level")), Message: f.str("message"), Attrs: attrs}.AppendFrame(nil, g.ID)
	case "grant":
		var toks []Token
		for _, tk := range f.list("tokens") {
			pair := tk.([]any)
			raw, err := hex.DecodeString(pair[1].(string))
			if err != nil {
				t.Fatal(err)
			}
			toks = append(toks, Token{Capability: pair[0].(string), Token: raw})
		}
		out = Grant{Tokens: toks}.AppendFrame(nil)
	case "shutdown":
		out = Shutdown{Grace: time.Duration(f.int("grace_ns"))}.AppendFrame(nil)
	case "cancel", "ping", "pong", "goodbye":
		k, _ := KindByName(g.Kind)
		out = AppendEmpty(nil, k, g.ID)
	default:
		// An unknown kind: the body is given raw.
		k, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(g.Kind, "kind(0x"), ")"), 16, 8)
		if err != nil || !strings.HasPrefix(g.Kind, "kind(0x") {
			t.Fatalf("kind %q is neither known nor written as kind(0xNN)", g.Kind)
		}
		out = AppendFrame(nil, Frame{Kind: Kind(k), ID: g.ID, Body: f.hex("body")})
	}
	f.done()
	if g.Trailing != "" {
		tr, err := hex.DecodeString(g.Trailing)
		if err != nil {
			t.Fatal(err)
		}
		// Trailing bytes extend the body: patch the length prefix.
		out = append(out, tr...)
		copy(out, AppendHeader(nil, Kind(out[4]), g.ID, len(out)-HeaderSize)[:4])
	}
	return out
}

// decodeFields decodes a frame's body into the same shape as a description's
// fields, so the two can be compared.
func decodeFields(f Frame) (map[string]any, error) {
	h := func(b []byte) string { return hex.EncodeToString(b) }
	switch f.Kind {
	case KindHello:
		m, err := DecodeHello(f.Body)
		return map[string]any{"min_version": int64(m.Versions.Min), "max_version": int64(m.Versions.Max),
			"max_frame": int64(m.MaxFrame), "host": m.Host, "plugin": m.Plugin, "instance": m.Instance}, err
	case KindWelcome:
		m, err := DecodeWelcome(f.Body)
		fns := []any{}
		for _, s := range m.Functions {
			fns = append(fns, s)
		}
		return map[string]any{"version": int64(m.Version), "min_version": int64(m.Versions.Min),
			"max_version": int64(m.Versions.Max), "max_frame": int64(m.MaxFrame), "sdk": m.SDK, "functions": fns}, err
	case KindCall:
		m, err := DecodeCall(f.Body)
		return map[string]any{"timeout_ns": int64(m.Timeout), "function": m.Function, "payload": h(m.Payload)}, err
	case KindHostCall:
		m, err := DecodeHostCall(f.Body)
		return map[string]any{"timeout_ns": int64(m.Timeout), "function": m.Function,
			"token": h(m.Token), "payload": h(m.Payload)}, err
	case KindResult:
		m, err := DecodeResult(f.Body)
		return map[string]any{"payload": h(m.Payload)}, err
	case KindError:
		m, err := DecodeFailure(f.Body)
		return map[string]any{"code": int64(m.Code), "message": m.Message}, err
	case KindLog:
		m, err := DecodeLog(f.Body)
		attrs := []any{}
		for _, a := range m.Attrs {
			attrs = append(attrs, []any{a.Key, a.Value})
		}
		return map[string]any{"level": int64(m.Level), "message": m.Message, "attrs": attrs}, err
	case KindShutdown:
		m, err := DecodeShutdown(f.Body)
		return map[string]any{"grace_ns": int64(m.Grace)}, err
	case KindGrant:
		m, err := DecodeGrant(f.Body)
		toks := []any{}
		for _, tk := range m.Tokens {
			toks = append(toks, []any{tk.Capability, h(tk.Token)})
		}
		return map[string]any{"tokens": toks}, err
	case KindCancel, KindPing, KindPong, KindGoodbye:
		return map[string]any{}, nil
	default:
		return map[string]any{"body": h(f.Body)}, nil
	}
}

// normalize turns json.Number values into int64 so descriptions compare
// with decoded fields.
func normalize(t *testing.T, v any) any {
	switch x := v.(type) {
	case nil:
		return map[string]any{}
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			out[k] = normalize(t, e)
		}
		return out
	case []any:
		out := []any{}
		for _, e := range x {
			out = append(out, normalize(t, e))
		}
		return out
	case json.Number:
		n, err := x.Int64()
		if err != nil {
			t.Fatalf("number %v: %v", x, err)
		}
		return n
	default:
		return v
	}
}

// fieldReader reads typed fields from a description and fails the test on
// a missing, mistyped or unused field.
type fieldReader struct {
	t    *testing.T
	m    map[string]any
	used map[string]bool
}

func (f *fieldReader) get(k string) any {
	f.t.Helper()
	v, ok := f.m[k]
	if !ok {
		f.t.Fatalf("description lacks field %q", k)
	}
	if f.used == nil {
		f.used = map[string]bool{}
	}
	f.used[k] = true
	return v
}

func (f *fieldReader) int(k string) int64 {
	f.t.Helper()
	n, err := f.get(k).(json.Number).Int64()
	if err != nil {
		f.t.Fatalf("field %q: %v", k, err)
	}
	return n
}

func (f *fieldReader) str(k string) string { return f.get(k).(string) }

func (f *fieldReader) list(k string) []any { return f.get(k).([]any) }

func (f *fieldReader) strs(k string) []string {
	var out []string
	for _, v := range f.list(k) {
		out = append(out, v.(string))
	}
	return out
}

func (f *fieldReader) hex(k string) []byte {
	f.t.Helper()
	b, err := hex.DecodeString(f.str(k))
	if err != nil {
		f.t.Fatalf("field %q: %v", k, err)
	}
	return b
}

func (f *fieldReader) versions() VersionRange {
	return VersionRange{Min: uint16(f.int("min_version")), Max: uint16(f.int("max_version"))}
}

func (f *fieldReader) done() {
	f.t.Helper()
	var extra []string
	for k := range f.m {
		if !f.used[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	if len(extra) > 0 {
		f.t.Fatalf("description has fields the encoder did not use: %v", extra)
	}
}
