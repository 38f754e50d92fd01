package launcher

import (
	"errors"
	"strconv"
)

// Messages between the host and the launcher, on the sync socket. Each is a
// 4-byte little-endian length and a body in the compact encoding below.
// See the package doc for the exchange.
//
// # Why not JSON?
//
// The launcher is a fresh process every time, and encoding/json's first use
// in a process (reflecting over the types, filling its caches) cost about
// 250 µs to decode the spec and as much again to encode the report, on the
// critical path of every spawn. The encoding below costs a few
// microseconds. Host and launcher are always the same build (the host's own
// binary, or a Spec.Launcher built from the same module), and Arg0
// carries a version so that a mismatched launcher refuses instead of
// misreading.

// Arg0 is argv[0] of a launcher invocation; argv[1] is the sync
// socket's descriptor number. Nothing else starts a program this way. The
// suffix is the message format's version.
const Arg0 = "airlock-sandbox-launcher/3"

// EnvVar is the launcher's only environment variable: the sync socket's
// descriptor number again. The launcher looks for it first (package
// syscall has the environment before any init runs; argv needs os or a
// read of /proc/self/cmdline), then checks argv.
const EnvVar = "AIRLOCK_SANDBOX_LAUNCHER"

// GoAhead is the byte the host sends once the launcher is in its cgroups;
// the launcher execs the plugin only after it.
const GoAhead = 'G'

// MaxMessage bounds a message in either direction.
const MaxMessage = 1 << 20

// Names of the protections the launcher applies and reports; the sandbox
// package's protection names for them are these constants.
const (
	MountNS    = "mountns"
	Landlock   = "landlock"
	Seccomp    = "seccomp"
	NoNewPrivs = "no_new_privs"
	Rlimits    = "rlimits"
)

// Mode says what the launcher does at the end.
type Mode uint8

const (
	ModeRun   Mode = iota + 1 // exec the plugin
	ModeProbe                 // apply everything to itself, report, exit 0
)

// Spec is the host's instructions to the launcher.
type Spec struct {
	Mode Mode
	// Path, Argv, Env are the plugin's program, argv and complete
	// environment; Dir is its working directory inside the sandbox.
	Path string
	Argv []string
	Env  []string
	Dir  string

	Hostname string    // set when the UTS namespace is new
	Mounts   []MountOp // nil: no private mount tree
	// Landlock rules; nil: Landlock not requested.
	Landlock []LandlockRule
	// Seccomp is the assembled filter, struct sock_filter after struct
	// sock_filter in native byte order (8 bytes each); nil: none.
	Seccomp    []byte
	NoNewPrivs bool
	Rlimits    []Rlimit
	// DropUID/DropGID, when nonzero, are set by the launcher itself after
	// the mounts: the host is root but no user namespace was created.
	DropUID int
	DropGID int
	// KeepFDs is how many descriptors (0 … KeepFDs-1) the plugin inherits.
	KeepFDs int
	// ExecFD, when positive, is a descriptor of the launcher's (at or
	// above KeepFDs, so the plugin does not inherit it) open on the
	// program the host verified: the launcher executes that file
	// (execveat) instead of looking Path up again, so a file swapped in at
	// Path after the check is never run. Path is still argv's program and
	// what errors name.
	ExecFD int
	// Require are the protections whose failure aborts the launch.
	Require []string
}

type Rlimit struct {
	Resource int
	Name     string
	Value    uint64 // soft and hard
}

// Report is the launcher's answer, sent just before execve (or, in
// probe mode, before exiting). An exec that works closes the socket
// (close-on-exec); one that fails sends a second report with Error set.
type Report struct {
	Applied []string
	Missing map[string]string // protection → why it was not applied
	Detail  map[string]string // protection → how ("ABI 7")
	// Error aborts the launch; Protection names the required protection
	// that caused it, if one did.
	Error      string
	Protection string
	// Stamps time the launcher's steps, for the host's Debug log and the
	// spawn benchmarks.
	Stamps []Stamp
}

// Stamp is the CLOCK_MONOTONIC time, in nanoseconds, at which a launch
// reached a named point. The clock is the same in the host and the
// launcher, so their stamps line up.
type Stamp struct {
	Stage string
	At    int64
}

// MountOp is one step of building the plugin's root. Targets are absolute
// paths inside the sandbox.
type MountOp struct {
	Kind     string // "tmpfs", "bind", "proc", "symlink"
	Source   string
	Target   string
	ReadOnly bool
	File     bool   // a bind of a non-directory
	Device   bool   // a bind of a device node (no nodev)
	Data     string // tmpfs options
	Strict   bool   // open the source without following any symlink
	Optional bool   // skip when the source does not exist
	// Recursive binds the mounts below Source too (read-only applies to the
	// top one only; used for the host's /proc).
	Recursive bool
}

// LandlockRule grants access beneath a path.
type LandlockRule struct {
	Path   string
	Access string // "rx" (read, execute), "ro", "rw", "dev" (read, write files)
	// Private rules apply only inside the private mount tree (the private
	// /tmp would otherwise be the host's shared /tmp).
	Private bool
}

// The encoding: unsigned numbers as uvarints, signed ones as varints,
// booleans as one byte, strings and byte slices as a length and the bytes,
// lists as a count and the elements. A list whose nil-ness matters (nil:
// "not requested") is encoded with count+1, 0 meaning nil.

type encoder struct{ b []byte }

func (e *encoder) uint(v uint64) { e.b = appendUvarint(e.b, v) }
func (e *encoder) int(v int64)   { e.b = appendUvarint(e.b, zigzag(v)) }

func (e *encoder) bool(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}

func (e *encoder) str(s string) {
	e.uint(uint64(len(s)))
	e.b = append(e.b, s...)
}

// optCount writes the length of a list that may be nil.
func (e *encoder) optCount(n int, isNil bool) {
	if isNil {
		e.uint(0)
	} else {
		e.uint(uint64(n) + 1)
	}
}

func (e *encoder) strs(ss []string) {
	e.uint(uint64(len(ss)))
	for _, s := range ss {
		e.str(s)
	}
}

func (e *encoder) strMap(m map[string]string) {
	e.uint(uint64(len(m)))
	for k, v := range m {
		e.str(k)
		e.str(v)
	}
}

// decoder reads what encoder wrote. The first error sticks; every read
// after it returns a zero value.
type decoder struct {
	b   []byte
	err error
}

var errTruncated = errors.New("message truncated or malformed")

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errTruncated
	}
	d.b = nil
}

func (d *decoder) uint() uint64 {
	v, n := uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) int() int64 { return unzigzag(d.uint()) }

func (d *decoder) bool() bool {
	if len(d.b) == 0 || d.b[0] > 1 {
		d.fail()
		return false
	}
	v := d.b[0] == 1
	d.b = d.b[1:]
	return v
}

// take returns the next n bytes.
func (d *decoder) take(n uint64) []byte {
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) str() string { return string(d.take(d.uint())) }

// count reads a list length. Every element takes at least one byte, so a
// count beyond the bytes left is malformed (and never a huge allocation).
func (d *decoder) count() int {
	n := d.uint()
	if n > uint64(len(d.b)) {
		d.fail()
		return 0
	}
	return int(n)
}

// optCount reads the length of a list that may be nil.
func (d *decoder) optCount() (n int, isNil bool) {
	v := d.uint()
	if v == 0 || d.err != nil {
		return 0, true
	}
	if v-1 > uint64(len(d.b)) {
		d.fail()
		return 0, true
	}
	return int(v - 1), false
}

func (d *decoder) strs() []string {
	n := d.count()
	ss := make([]string, 0, n)
	for range n {
		ss = append(ss, d.str())
	}
	return ss
}

func (d *decoder) strMap() map[string]string {
	n := d.count()
	m := make(map[string]string, n)
	for range n {
		k := d.str()
		m[k] = d.str()
	}
	return m
}

// done returns the first error, or one for bytes left over.
func (d *decoder) done(what string) error {
	if d.err == nil && len(d.b) > 0 {
		d.err = errors.New(itoa(len(d.b)) + " bytes left over")
	}
	if d.err != nil {
		return wrap("decode "+what, d.err)
	}
	return nil
}

func (m *Spec) Encode() []byte {
	e := &encoder{b: make([]byte, 0, 2048+len(m.Seccomp))}
	e.uint(uint64(m.Mode))
	e.str(m.Path)
	e.strs(m.Argv)
	e.strs(m.Env)
	e.str(m.Dir)
	e.str(m.Hostname)
	e.optCount(len(m.Mounts), m.Mounts == nil)
	for _, op := range m.Mounts {
		e.str(op.Kind)
		e.str(op.Source)
		e.str(op.Target)
		e.str(op.Data)
		for _, f := range []bool{op.ReadOnly, op.File, op.Device, op.Strict, op.Optional, op.Recursive} {
			e.bool(f)
		}
	}
	e.optCount(len(m.Landlock), m.Landlock == nil)
	for _, r := range m.Landlock {
		e.str(r.Path)
		e.str(r.Access)
		e.bool(r.Private)
	}
	e.optCount(len(m.Seccomp), m.Seccomp == nil)
	e.b = append(e.b, m.Seccomp...)
	e.bool(m.NoNewPrivs)
	e.optCount(len(m.Rlimits), m.Rlimits == nil)
	for _, r := range m.Rlimits {
		e.int(int64(r.Resource))
		e.str(r.Name)
		e.uint(r.Value)
	}
	e.int(int64(m.DropUID))
	e.int(int64(m.DropGID))
	e.int(int64(m.KeepFDs))
	e.int(int64(m.ExecFD))
	e.strs(m.Require)
	return e.b
}

func (m *Spec) Decode(b []byte) error {
	d := &decoder{b: b}
	*m = Spec{}
	m.Mode = Mode(d.uint())
	m.Path = d.str()
	m.Argv = d.strs()
	m.Env = d.strs()
	m.Dir = d.str()
	m.Hostname = d.str()
	if n, isNil := d.optCount(); !isNil {
		m.Mounts = make([]MountOp, n)
		for i := range m.Mounts {
			op := &m.Mounts[i]
			op.Kind, op.Source, op.Target, op.Data = d.str(), d.str(), d.str(), d.str()
			for _, f := range []*bool{&op.ReadOnly, &op.File, &op.Device, &op.Strict, &op.Optional, &op.Recursive} {
				*f = d.bool()
			}
		}
	}
	if n, isNil := d.optCount(); !isNil {
		m.Landlock = make([]LandlockRule, n)
		for i := range m.Landlock {
			r := &m.Landlock[i]
			r.Path, r.Access, r.Private = d.str(), d.str(), d.bool()
		}
	}
	if n, isNil := d.optCount(); !isNil {
		m.Seccomp = append([]byte{}, d.take(uint64(n))...)
	}
	m.NoNewPrivs = d.bool()
	if n, isNil := d.optCount(); !isNil {
		m.Rlimits = make([]Rlimit, n)
		for i := range m.Rlimits {
			r := &m.Rlimits[i]
			r.Resource, r.Name, r.Value = int(d.int()), d.str(), d.uint()
		}
	}
	m.DropUID = int(d.int())
	m.DropGID = int(d.int())
	m.KeepFDs = int(d.int())
	m.ExecFD = int(d.int())
	m.Require = d.strs()
	return d.done("launch spec")
}

func (r *Report) Encode() []byte {
	e := &encoder{b: make([]byte, 0, 1024)}
	e.strs(r.Applied)
	e.strMap(r.Missing)
	e.strMap(r.Detail)
	e.str(r.Error)
	e.str(r.Protection)
	e.uint(uint64(len(r.Stamps)))
	for _, s := range r.Stamps {
		e.str(s.Stage)
		e.int(s.At)
	}
	return e.b
}

func (r *Report) Decode(b []byte) error {
	d := &decoder{b: b}
	*r = Report{}
	r.Applied = d.strs()
	r.Missing = d.strMap()
	r.Detail = d.strMap()
	r.Error = d.str()
	r.Protection = d.str()
	n := d.count()
	r.Stamps = make([]Stamp, n)
	for i := range r.Stamps {
		r.Stamps[i] = Stamp{d.str(), d.int()}
	}
	return d.done("launch report")
}

// Numbers are LEB128 (7 bits a byte, low group first, high bit set on all
// but the last); signed ones are zigzag-mapped first (0, -1, 1, -2 … to
// 0, 1, 2, 3 …) so that small magnitudes stay short. The same format as
// encoding/binary's varints, written here because the launcher does not
// import that package (it pulls in reflect).

func appendUvarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// uvarint decodes a number from the start of b and returns it and the
// bytes it took, or n <= 0 if b holds no complete number of at most 64
// bits.
func uvarint(b []byte) (v uint64, n int) {
	var shift uint
	for i, c := range b {
		if i == 10 || i == 9 && c > 1 {
			return 0, -1 // more than 64 bits
		}
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v, i + 1
		}
		shift += 7
	}
	return 0, 0
}

func zigzag(v int64) uint64 { return uint64(v<<1) ^ uint64(v>>63) }

func unzigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

// Frame prefixes body with its 4-byte little-endian length.
func Frame(body []byte) []byte {
	n := len(body)
	return append([]byte{byte(n), byte(n >> 8), byte(n >> 16), byte(n >> 24)}, body...)
}

// frameLen reads a frame's length prefix.
func frameLen(h [4]byte) uint32 {
	return uint32(h[0]) | uint32(h[1])<<8 | uint32(h[2])<<16 | uint32(h[3])<<24
}

// wrapError is an error with context, as fmt.Errorf("%s: %w") makes one
// (the launcher does not import fmt, which pulls in reflect and unicode).
type wrapError struct {
	msg string
	err error
}

func (e *wrapError) Error() string { return e.msg + ": " + e.err.Error() }
func (e *wrapError) Unwrap() error { return e.err }

func wrap(msg string, err error) error { return &wrapError{msg, err} }

func itoa(n int) string { return strconv.Itoa(n) }
