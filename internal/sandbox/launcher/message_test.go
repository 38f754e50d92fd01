package launcher

import (
	"bytes"
	"encoding/binary"
	"math"
	"reflect"
	"testing"
)

func sampleSpec() Spec {
	return Spec{
		Mode: ModeRun, Path: "/p/plugin", Argv: []string{"plugin", "-v", ""}, Env: []string{"A=1", "B=é"},
		Dir: "/p", Hostname: "airlock-x",
		Mounts: []MountOp{
			{Kind: "bind", Source: "/usr/lib", Target: "/usr/lib", ReadOnly: true, Strict: true},
			{Kind: "tmpfs", Target: "/tmp", Data: "size=1m"},
			{Kind: "bind", Source: "/dev/null", Target: "/dev/null", File: true, Device: true, Optional: true, Recursive: true},
		},
		Landlock:   []LandlockRule{{Path: "/tmp", Access: "rw", Private: true}, {Path: "/p", Access: "rx"}},
		Seccomp:    []byte{1, 2, 3, 4, 5, 6, 7, 8},
		NoNewPrivs: true,
		Rlimits:    []Rlimit{{Resource: 7, Name: "RLIMIT_NOFILE", Value: 256}, {Resource: 4, Name: "RLIMIT_CORE"}},
		DropUID:    70000, DropGID: -1, KeepFDs: 4, ExecFD: 5, Require: []string{"seccomp", "landlock"},
	}
}

func TestMessage_RoundTrip(t *testing.T) {
	for _, m := range []Spec{sampleSpec(), {Mode: ModeProbe, Path: "x", Argv: []string{"x"}, Env: []string{}}} {
		var got Spec
		if err := got.Decode(m.Encode()); err != nil {
			t.Fatal(err)
		}
		if m.Require == nil {
			m.Require = []string{} // lists decode non-nil unless their nil-ness matters
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("spec round trip:\n got %#v\nwant %#v", got, m)
		}
	}
	// nil means "not requested" for these and must survive; empty is different.
	empty := Spec{Mode: ModeRun, Mounts: []MountOp{}, Landlock: []LandlockRule{}, Seccomp: []byte{}, Rlimits: []Rlimit{}}
	var got Spec
	if err := got.Decode(empty.Encode()); err != nil {
		t.Fatal(err)
	}
	if got.Mounts == nil || got.Landlock == nil || got.Seccomp == nil || got.Rlimits == nil {
		t.Errorf("empty lists decoded as nil: %#v", got)
	}
	if err := got.Decode((&Spec{Mode: ModeRun}).Encode()); err != nil {
		t.Fatal(err)
	}
	if got.Mounts != nil || got.Landlock != nil || got.Seccomp != nil || got.Rlimits != nil {
		t.Errorf("nil lists decoded as non-nil: %#v", got)
	}

	r := Report{Applied: []string{"seccomp"}, Missing: map[string]string{"landlock": "why"},
		Detail: map[string]string{"seccomp": "9 instructions"}, Error: "e", Protection: "p",
		Stamps: []Stamp{{"a", 1}, {"b", -2}}}
	var gotR Report
	if err := gotR.Decode(r.Encode()); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotR, r) {
		t.Errorf("report round trip:\n got %#v\nwant %#v", gotR, r)
	}
}

func TestMessage_Malformed(t *testing.T) {
	spec := sampleSpec()
	b := spec.Encode()
	for i := range len(b) {
		var m Spec
		if err := m.Decode(b[:i]); err == nil {
			t.Fatalf("a spec cut to %d of %d bytes decoded", i, len(b))
		}
	}
	var m Spec
	if err := m.Decode(append(b, 0)); err == nil {
		t.Error("trailing bytes decoded")
	}
	// A count far beyond the message must fail, not allocate.
	if err := m.Decode([]byte{1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}); err == nil {
		t.Error("huge count decoded")
	}
}

func FuzzDecodeLaunchMessages(f *testing.F) {
	spec := sampleSpec()
	f.Add(spec.Encode())
	f.Add((&Report{Applied: []string{"x"}, Stamps: []Stamp{{"a", 1}}}).Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Spec
		if m.Decode(b) == nil {
			if again := m.Encode(); string(again) != string(b) {
				// Re-encoding may differ only where the input was
				// non-canonical (over-long varints); it must decode alike.
				var m2 Spec
				if err := m2.Decode(again); err != nil || !reflect.DeepEqual(m, m2) {
					t.Fatalf("re-encoded spec differs: %v", err)
				}
			}
		}
		var r Report
		_ = r.Decode(b)
	})
}

// The launcher's varints are encoding/binary's format.
func TestVarintsMatchEncodingBinary(t *testing.T) {
	vals := []int64{0, 1, -1, 63, -64, 64, 127, 128, 300, -300, 1 << 31, -(1 << 31), 1<<62 + 5, -(1 << 62), math.MaxInt64, math.MinInt64}
	for _, v := range vals {
		if got, want := appendUvarint(nil, zigzag(v)), binary.AppendVarint(nil, v); !bytes.Equal(got, want) {
			t.Errorf("varint %d = %x, encoding/binary %x", v, got, want)
		}
		if got, n := uvarint(binary.AppendVarint(nil, v)); n <= 0 || unzigzag(got) != v {
			t.Errorf("varint %d decoded as %d (%d bytes)", v, unzigzag(got), n)
		}
		u := uint64(v)
		if got, want := appendUvarint(nil, u), binary.AppendUvarint(nil, u); !bytes.Equal(got, want) {
			t.Errorf("uvarint %d = %x, encoding/binary %x", u, got, want)
		}
		if got, n := uvarint(binary.AppendUvarint(nil, u)); n <= 0 || got != u {
			t.Errorf("uvarint %d decoded as %d (%d bytes)", u, got, n)
		}
	}
	for _, bad := range [][]byte{{}, {0x80}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}, bytes.Repeat([]byte{0x80}, 11)} {
		if _, n := uvarint(bad); n > 0 {
			t.Errorf("uvarint(%x) accepted", bad)
		}
		if _, n := binary.Uvarint(bad); n > 0 {
			t.Errorf("encoding/binary accepts %x: the test is wrong", bad)
		}
	}
	if got := frameLen([4]byte(Frame(make([]byte, 70000))[:4])); got != 70000 {
		t.Errorf("frame length %d, want 70000", got)
	}
}
