package wire

import (
	"encoding/binary"
	"math"
	"time"
)

// Magic opens HELLO and WELCOME bodies so that a program that is not an
// Airlock peer is recognised at once instead of being misread.
var Magic = [4]byte{'A', 'I', 'R', 'L'}

// Body primitives: u16/u32/u64 little-endian; str = u16 length + UTF-8 bytes;
// bytes = u32 length + bytes. Fields appear in the order documented for each
// kind. A receiver ignores bytes after the fields it knows: that is how a
// later version adds fields without a new kind.

// Hello opens negotiation (host → plugin).
type Hello struct {
	Versions VersionRange // versions the host speaks
	MaxFrame uint32       // largest frame the host accepts
	Host     string       // host software, e.g. "airlock/0.1.0"
	Plugin   string       // the plugin's manifest name
	Instance string       // identifies this run of the plugin
}

// Welcome answers Hello (plugin → host).
type Welcome struct {
	Version   uint16       // the chosen version: the highest both sides speak
	Versions  VersionRange // versions the plugin speaks
	MaxFrame  uint32       // largest frame the plugin accepts
	SDK       string       // plugin SDK, e.g. "airlock-go/0.1.0"
	Functions []string     // exported function names
}

// Call invokes an exported function (host → plugin).
type Call struct {
	Timeout  time.Duration // time left for the call; 0 means none
	Function string
	Payload  []byte
}

// HostCall invokes a host capability (plugin → host).
type HostCall struct {
	Timeout  time.Duration
	Function string // capability operation, e.g. "kv.get"
	Token    []byte // capability token minted by the host, passed back verbatim
	Payload  []byte
}

// Result is a successful reply.
type Result struct {
	Payload []byte
}

// Failure is the body of an ERROR frame.
type Failure struct {
	Code    Code
	Message string
}

// Log is one structured log record from the plugin. The frame id names the
// call the record was written under, or 0.
type Log struct {
	Level   int32 // slog.Level values: -4 debug, 0 info, 4 warn, 8 error
	Message string
	Attrs   []Attr
}

// Attr is one log attribute, already rendered as text by the plugin.
type Attr struct {
	Key, Value string
}

// Grant hands the plugin its capability tokens: at activation, and again
// whenever the host re-mints them (key rotation). Each GRANT replaces every
// token the plugin held.
type Grant struct {
	Tokens []Token
}

// Token is one capability token: the capability it is for and the opaque
// bytes the plugin passes back in HOSTCALL.
type Token struct {
	Capability string
	Token      []byte
}

// Shutdown asks the plugin to drain within Grace and exit.
type Shutdown struct {
	Grace time.Duration
}

// --- encoding -------------------------------------------------------------

// appendStr appends s as a str field, cut to MaxString bytes: every string
// the protocol carries (names, messages, log text) is bounded by its field.
func appendStr(dst []byte, s string) []byte {
	s = fit(s)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(s)))
	return append(dst, s...)
}

func fit(s string) string {
	if len(s) > MaxString {
		return s[:MaxString]
	}
	return s
}

func appendBytes(dst []byte, b []byte) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(b)))
	return append(dst, b...)
}

func strLen(s string) int { return 2 + len(fit(s)) }

func timeoutNS(d time.Duration) uint64 {
	if d <= 0 {
		return 0
	}
	return uint64(d)
}

// MaxString is the longest string a body field can hold.
const MaxString = math.MaxUint16

// AppendFrame appends the whole HELLO frame.
func (m Hello) AppendFrame(dst []byte) []byte {
	n := 4 + 2 + 2 + 4 + strLen(m.Host) + strLen(m.Plugin) + strLen(m.Instance)
	dst = AppendHeader(dst, KindHello, 0, n)
	dst = append(dst, Magic[:]...)
	dst = binary.LittleEndian.AppendUint16(dst, m.Versions.Min)
	dst = binary.LittleEndian.AppendUint16(dst, m.Versions.Max)
	dst = binary.LittleEndian.AppendUint32(dst, m.MaxFrame)
	dst = appendStr(dst, m.Host)
	dst = appendStr(dst, m.Plugin)
	return appendStr(dst, m.Instance)
}

// AppendFrame appends the whole WELCOME frame.
func (m Welcome) AppendFrame(dst []byte) []byte {
	fns := m.Functions
	if len(fns) > math.MaxUint16 {
		fns = fns[:math.MaxUint16]
	}
	n := 4 + 2 + 2 + 2 + 4 + strLen(m.SDK) + 2
	for _, f := range fns {
		n += strLen(f)
	}
	dst = AppendHeader(dst, KindWelcome, 0, n)
	dst = append(dst, Magic[:]...)
	dst = binary.LittleEndian.AppendUint16(dst, m.Version)
	dst = binary.LittleEndian.AppendUint16(dst, m.Versions.Min)
	dst = binary.LittleEndian.AppendUint16(dst, m.Versions.Max)
	dst = binary.LittleEndian.AppendUint32(dst, m.MaxFrame)
	dst = appendStr(dst, m.SDK)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(fns)))
	for _, f := range fns {
		dst = appendStr(dst, f)
	}
	return dst
}

// AppendCallPrefix appends a CALL frame up to, not including, its payload
// bytes, so a large payload can be written from the caller's own slice.
func AppendCallPrefix(dst []byte, id uint64, timeout time.Duration, function string, payloadLen int) []byte {
	dst = AppendHeader(dst, KindCall, id, 8+strLen(function)+4+payloadLen)
	dst = binary.LittleEndian.AppendUint64(dst, timeoutNS(timeout))
	dst = appendStr(dst, function)
	return binary.LittleEndian.AppendUint32(dst, uint32(payloadLen))
}

// AppendFrame appends the whole CALL frame.
func (m Call) AppendFrame(dst []byte, id uint64) []byte {
	return append(AppendCallPrefix(dst, id, m.Timeout, m.Function, len(m.Payload)), m.Payload...)
}

// AppendHostCallPrefix appends a HOSTCALL frame up to its payload bytes.
func AppendHostCallPrefix(dst []byte, id uint64, timeout time.Duration, function string, token []byte, payloadLen int) []byte {
	dst = AppendHeader(dst, KindHostCall, id, 8+strLen(function)+4+len(token)+4+payloadLen)
	dst = binary.LittleEndian.AppendUint64(dst, timeoutNS(timeout))
	dst = appendStr(dst, function)
	dst = appendBytes(dst, token)
	return binary.LittleEndian.AppendUint32(dst, uint32(payloadLen))
}

// AppendFrame appends the whole HOSTCALL frame.
func (m HostCall) AppendFrame(dst []byte, id uint64) []byte {
	return append(AppendHostCallPrefix(dst, id, m.Timeout, m.Function, m.Token, len(m.Payload)), m.Payload...)
}

// AppendResultPrefix appends a RESULT frame up to its payload bytes.
func AppendResultPrefix(dst []byte, id uint64, payloadLen int) []byte {
	dst = AppendHeader(dst, KindResult, id, 4+payloadLen)
	return binary.LittleEndian.AppendUint32(dst, uint32(payloadLen))
}

// AppendFrame appends the whole RESULT frame.
func (m Result) AppendFrame(dst []byte, id uint64) []byte {
	return append(AppendResultPrefix(dst, id, len(m.Payload)), m.Payload...)
}

// AppendFrame appends the whole ERROR frame. A message longer than MaxString
// bytes is cut to fit.
func (m Failure) AppendFrame(dst []byte, id uint64) []byte {
	dst = AppendHeader(dst, KindError, id, 2+strLen(m.Message))
	dst = binary.LittleEndian.AppendUint16(dst, uint16(m.Code))
	return appendStr(dst, m.Message)
}

// AppendFrame appends the whole LOG frame; id is the call the record belongs
// to, or 0. Strings longer than MaxString bytes are cut to fit.
func (m Log) AppendFrame(dst []byte, id uint64) []byte {
	attrs := m.Attrs
	if len(attrs) > math.MaxUint16 {
		attrs = attrs[:math.MaxUint16]
	}
	n := 4 + strLen(m.Message) + 2
	for _, a := range attrs {
		n += strLen(a.Key) + strLen(a.Value)
	}
	dst = AppendHeader(dst, KindLog, id, n)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(m.Level))
	dst = appendStr(dst, m.Message)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(attrs)))
	for _, a := range attrs {
		dst = appendStr(dst, a.Key)
		dst = appendStr(dst, a.Value)
	}
	return dst
}

// AppendFrame appends the whole GRANT frame.
func (m Grant) AppendFrame(dst []byte) []byte {
	toks := m.Tokens
	if len(toks) > math.MaxUint16 {
		toks = toks[:math.MaxUint16]
	}
	n := 2
	for _, t := range toks {
		n += strLen(t.Capability) + 4 + len(t.Token)
	}
	dst = AppendHeader(dst, KindGrant, 0, n)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(toks)))
	for _, t := range toks {
		dst = appendStr(dst, t.Capability)
		dst = appendBytes(dst, t.Token)
	}
	return dst
}

// AppendFrame appends the whole SHUTDOWN frame.
func (m Shutdown) AppendFrame(dst []byte) []byte {
	dst = AppendHeader(dst, KindShutdown, 0, 8)
	return binary.LittleEndian.AppendUint64(dst, timeoutNS(m.Grace))
}

// AppendEmpty appends a frame with no body: CANCEL, PING, PONG or GOODBYE.
func AppendEmpty(dst []byte, k Kind, id uint64) []byte {
	return AppendHeader(dst, k, id, 0)
}

// --- decoding -------------------------------------------------------------

// body reads fields from a frame body. The first failure sticks; check err
// once at the end.
type body struct {
	kind Kind
	b    []byte
	err  *Error
}

func (d *body) need(n int, field string) bool {
	if d.err != nil {
		return false
	}
	if len(d.b) < n {
		d.err = malformed(d.kind, "body ends inside field %q (needs %d bytes, %d left)", field, n, len(d.b))
		return false
	}
	return true
}

func (d *body) u16(field string) uint16 {
	if !d.need(2, field) {
		return 0
	}
	v := binary.LittleEndian.Uint16(d.b)
	d.b = d.b[2:]
	return v
}

func (d *body) u32(field string) uint32 {
	if !d.need(4, field) {
		return 0
	}
	v := binary.LittleEndian.Uint32(d.b)
	d.b = d.b[4:]
	return v
}

func (d *body) u64(field string) uint64 {
	if !d.need(8, field) {
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *body) raw(n int, field string) []byte {
	if !d.need(n, field) {
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *body) str(field string) string {
	n := int(d.u16(field))
	return string(d.raw(n, field))
}

func (d *body) bytes(field string) []byte {
	n := d.u32(field)
	if d.err == nil && uint64(n) > uint64(len(d.b)) {
		d.err = malformed(d.kind, "field %q announces %d bytes, body has %d left", field, n, len(d.b))
		return nil
	}
	return d.raw(int(n), field)
}

func (d *body) duration(field string) time.Duration {
	v := d.u64(field)
	if v > math.MaxInt64 {
		if d.err == nil {
			d.err = malformed(d.kind, "field %q is %d ns, more than the largest duration", field, v)
		}
		return 0
	}
	return time.Duration(v)
}

func (d *body) magic() {
	m := d.raw(4, "magic")
	if d.err == nil && [4]byte(m) != Magic {
		d.err = malformed(d.kind, "magic is %q, want %q: the peer is not speaking the Airlock protocol", m, Magic[:])
	}
}

func (d *body) done() error {
	if d.err != nil {
		return d.err
	}
	return nil
}

// DecodeHello decodes a HELLO body.
func DecodeHello(b []byte) (Hello, error) {
	d := body{kind: KindHello, b: b}
	var m Hello
	d.magic()
	m.Versions.Min = d.u16("min_version")
	m.Versions.Max = d.u16("max_version")
	m.MaxFrame = d.u32("max_frame")
	m.Host = d.str("host")
	m.Plugin = d.str("plugin")
	m.Instance = d.str("instance")
	return m, d.done()
}

// DecodeWelcome decodes a WELCOME body.
func DecodeWelcome(b []byte) (Welcome, error) {
	d := body{kind: KindWelcome, b: b}
	var m Welcome
	d.magic()
	m.Version = d.u16("version")
	m.Versions.Min = d.u16("min_version")
	m.Versions.Max = d.u16("max_version")
	m.MaxFrame = d.u32("max_frame")
	m.SDK = d.str("sdk")
	n := int(d.u16("function_count"))
	// Every name needs at least its 2-byte length: refuse a count the body
	// cannot hold before allocating for it.
	if d.err == nil && n*2 > len(d.b) {
		return m, malformed(KindWelcome, "function_count %d cannot fit in the %d bytes left", n, len(d.b))
	}
	if n > 0 {
		m.Functions = make([]string, 0, n)
	}
	for range n {
		m.Functions = append(m.Functions, d.str("function"))
	}
	return m, d.done()
}

// DecodeCall decodes a CALL body. Payload aliases b.
func DecodeCall(b []byte) (Call, error) {
	d := body{kind: KindCall, b: b}
	var m Call
	m.Timeout = d.duration("timeout_ns")
	m.Function = d.str("function")
	m.Payload = d.bytes("payload")
	return m, d.done()
}

// DecodeHostCall decodes a HOSTCALL body. Token and Payload alias b.
func DecodeHostCall(b []byte) (HostCall, error) {
	d := body{kind: KindHostCall, b: b}
	var m HostCall
	m.Timeout = d.duration("timeout_ns")
	m.Function = d.str("function")
	m.Token = d.bytes("token")
	m.Payload = d.bytes("payload")
	return m, d.done()
}

// DecodeResult decodes a RESULT body. Payload aliases b.
func DecodeResult(b []byte) (Result, error) {
	d := body{kind: KindResult, b: b}
	m := Result{Payload: d.bytes("payload")}
	return m, d.done()
}

// DecodeFailure decodes an ERROR body. The code is returned as sent; use
// Code.Normalize before acting on it.
func DecodeFailure(b []byte) (Failure, error) {
	d := body{kind: KindError, b: b}
	var m Failure
	m.Code = Code(d.u16("code"))
	m.Message = d.str("message")
	return m, d.done()
}

// DecodeLog decodes a LOG body.
func DecodeLog(b []byte) (Log, error) {
	d := body{kind: KindLog, b: b}
	var m Log
	m.Level = int32(d.u32("level"))
	m.Message = d.str("message")
	n := int(d.u16("attr_count"))
	if d.err == nil && n*4 > len(d.b) {
		return m, malformed(KindLog, "attr_count %d cannot fit in the %d bytes left", n, len(d.b))
	}
	if n > 0 {
		m.Attrs = make([]Attr, 0, n)
	}
	for range n {
		m.Attrs = append(m.Attrs, Attr{Key: d.str("attr_key"), Value: d.str("attr_value")})
	}
	return m, d.done()
}

// DecodeGrant decodes a GRANT body. Token bytes alias b.
func DecodeGrant(b []byte) (Grant, error) {
	d := body{kind: KindGrant, b: b}
	var m Grant
	n := int(d.u16("token_count"))
	if d.err == nil && n*6 > len(d.b) {
		return m, malformed(KindGrant, "token_count %d cannot fit in the %d bytes left", n, len(d.b))
	}
	if n > 0 {
		m.Tokens = make([]Token, 0, n)
	}
	for range n {
		m.Tokens = append(m.Tokens, Token{Capability: d.str("capability"), Token: d.bytes("token")})
	}
	return m, d.done()
}

// DecodeShutdown decodes a SHUTDOWN body.
func DecodeShutdown(b []byte) (Shutdown, error) {
	d := body{kind: KindShutdown, b: b}
	m := Shutdown{Grace: d.duration("grace_ns")}
	return m, d.done()
}
