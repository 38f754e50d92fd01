package manifest

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestDuration_UnmarshalText(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string // substring of the error; "" for success
	}{
		{"250ms", 250 * time.Millisecond, ""},
		{"2s", 2 * time.Second, ""},
		{"1m30s", 90 * time.Second, ""},
		{"1.5h", 90 * time.Minute, ""},
		{"0s", 0, ""},
		{"", 0, `invalid duration "": empty (example: "30s")`},
		{"30", 0, `invalid duration "30": no unit (example: "30s")`},
		{"0", 0, `no unit`},
		{"1.5", 0, `no unit (example: "1.5s")`},
		{"-5s", 0, `invalid duration "-5s": must not be negative (example: "5s")`},
		{"+5s", 0, `no sign allowed`},
		{"5 s", 0, `not a number with a unit`},
		{"5sec", 0, `not a number with a unit`},
		{"soon", 0, `not a number with a unit`},
		{"9999999999h", 0, `too large`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var d Duration
			err := d.UnmarshalText([]byte(tt.in))
			checkErr(t, err, tt.wantErr)
			if err == nil && time.Duration(d) != tt.want {
				t.Errorf("got %v, want %v", time.Duration(d), tt.want)
			}
		})
	}
}

func TestSize_UnmarshalText(t *testing.T) {
	tests := []struct {
		in      string
		want    Size
		wantErr string
	}{
		{"512B", 512, ""},
		{"64KiB", 64 << 10, ""},
		{"1MiB", 1 << 20, ""},
		{"2GiB", 2 << 30, ""},
		{"1TiB", 1 << 40, ""},
		{"10KB", 10_000, ""},
		{"5MB", 5_000_000, ""},
		{"3GB", 3_000_000_000, ""},
		{"1TB", 1_000_000_000_000, ""},
		{"1024", 1024, ""},         // bare digits are bytes (the raw text of a TOML integer)
		{"1_048_576", 1 << 20, ""}, // TOML integers may have underscores
		{"0B", 0, ""},
		{"8388607TiB", 8388607 << 40, ""},
		{"-1KiB", 0, `invalid size "-1KiB": must not be negative (example: "1KiB")`},
		{"1.5MiB", 0, `must be a whole number (example: "1536KiB")`},
		{"0.5GB", 0, `must be a whole number (example: "500000000B")`},
		{"64mb", 0, `unknown unit "mb" (units are case-sensitive) (example: "64MB")`},
		{"64kib", 0, `(example: "64KiB")`},
		{"64 MiB", 0, `want a whole number and a unit`},
		{"MiB", 0, `want a whole number and a unit`},
		{"", 0, `want a whole number and a unit`},
		{"_1", 0, `want a whole number and a unit`},
		{"1__0", 0, `want a whole number and a unit`},
		{"lots", 0, `want a whole number and a unit`},
		{"8388608TiB", 0, `too large`},
		{"99999999999999999999", 0, `too large`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var s Size
			err := s.UnmarshalText([]byte(tt.in))
			checkErr(t, err, tt.wantErr)
			if err == nil && s != tt.want {
				t.Errorf("got %d, want %d", s, tt.want)
			}
		})
	}
}

func TestSize_String(t *testing.T) {
	tests := []struct {
		in   Size
		want string
	}{
		{0, "0B"},
		{1, "1B"},
		{1000, "1000B"},
		{1024, "1KiB"},
		{1536, "1536B"},
		{1536 << 10, "1536KiB"},
		{64 << 20, "64MiB"},
		{3 << 30, "3GiB"},
		{5 << 40, "5TiB"},
		{math.MaxInt64, "9223372036854775807B"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("Size(%d).String() = %q, want %q", int64(tt.in), got, tt.want)
		}
		var back Size
		if err := back.UnmarshalText([]byte(tt.in.String())); err != nil || back != tt.in {
			t.Errorf("round trip of %d: got %d, %v", int64(tt.in), back, err)
		}
	}
}

func TestRate_UnmarshalText(t *testing.T) {
	tests := []struct {
		in        string
		want      Rate
		perSecond float64
		wantErr   string
	}{
		{"100/s", Rate{100, time.Second}, 100, ""},
		{"10/m", Rate{10, time.Minute}, 10.0 / 60, ""},
		{"5/h", Rate{5, time.Hour}, 5.0 / 3600, ""},
		{"0.5/s", Rate{0.5, time.Second}, 0.5, ""},
		{"0/s", Rate{}, 0, ""}, // zero: unlimited
		{"0.0/h", Rate{}, 0, ""},
		{"100", Rate{}, 0, `invalid rate "100": no unit (example: "100/s")`},
		{"100/d", Rate{}, 0, `unknown unit "d" (use s, m or h) (example: "100/s")`},
		{"100/sec", Rate{}, 0, `unknown unit "sec"`},
		{"-1/s", Rate{}, 0, `must not be negative (example: "1/s")`},
		{".5/s", Rate{}, 0, `the count must be a decimal number (example: "0.5/s")`},
		{"1e3/s", Rate{}, 0, `the count must be a decimal number`},
		{"NaN/s", Rate{}, 0, `the count must be a decimal number`},
		{"/s", Rate{}, 0, `the count must be a decimal number`},
		{"fast", Rate{}, 0, `want a count, a slash and s, m or h`},
		{"", Rate{}, 0, `want a count, a slash and s, m or h`},
		{strings.Repeat("9", 400) + "/s", Rate{}, 0, `too large`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var r Rate
			err := r.UnmarshalText([]byte(tt.in))
			checkErr(t, err, tt.wantErr)
			if err != nil {
				return
			}
			if r != tt.want {
				t.Errorf("got %+v, want %+v", r, tt.want)
			}
			if got := r.PerSecond(); math.Abs(got-tt.perSecond) > 1e-12 {
				t.Errorf("PerSecond() = %v, want %v", got, tt.perSecond)
			}
			if r.IsZero() != (tt.perSecond == 0) {
				t.Errorf("IsZero() = %v", r.IsZero())
			}
		})
	}
}

func TestRate_String(t *testing.T) {
	tests := []struct {
		in   Rate
		want string
	}{
		{Rate{}, "0/s"},
		{Rate{Count: 100}, "100/s"}, // a zero Per counts as a second
		{Rate{100, time.Second}, "100/s"},
		{Rate{10, time.Minute}, "10/m"},
		{Rate{5, time.Hour}, "5/h"},
		{Rate{0.25, time.Second}, "0.25/s"},
		{Rate{1e21, time.Second}, "1000000000000000000000/s"},
		{Rate{5, 500 * time.Millisecond}, "10/s"}, // other periods become per second
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := (Rate{Count: 100}).PerSecond(); got != 100 {
		t.Errorf("Rate{Count: 100}.PerSecond() = %v, want 100", got)
	}
}

func TestUnits_MarshalText_RoundTrip(t *testing.T) {
	for _, d := range []Duration{0, Duration(time.Nanosecond), Duration(90 * time.Second), Duration(math.MaxInt64)} {
		text, _ := d.MarshalText()
		var back Duration
		if err := back.UnmarshalText(text); err != nil || back != d {
			t.Errorf("duration %v: got %v, %v", time.Duration(d), time.Duration(back), err)
		}
	}
	for _, r := range []Rate{{}, {0.1, time.Second}, {7, time.Minute}, {1, time.Hour}} {
		text, _ := r.MarshalText()
		var back Rate
		if err := back.UnmarshalText(text); err != nil || back != r {
			t.Errorf("rate %+v: got %+v, %v", r, back, err)
		}
	}
}

// checkErr fails t unless err matches want: nil for "", else an error whose
// text contains want.
func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want != "" && err == nil:
		t.Fatalf("no error, want one containing %q", want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Fatalf("error %q does not contain %q", err, want)
	}
}
