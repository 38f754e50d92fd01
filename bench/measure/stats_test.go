package measure

import (
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	us := func(xs ...int) []time.Duration {
		out := make([]time.Duration, len(xs))
		for i, x := range xs {
			out[i] = time.Duration(x) * time.Microsecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i // 100 down to 1: sorting is Summarize's job
	}
	tests := []struct {
		name               string
		in                 []time.Duration
		p50, p90, p99, max time.Duration
	}{
		{"empty", nil, 0, 0, 0, 0},
		{"one sample is every percentile", us(7), 7 * time.Microsecond, 7 * time.Microsecond, 7 * time.Microsecond, 7 * time.Microsecond},
		{"nearest rank of 1..100", us(hundred...), 50 * time.Microsecond, 90 * time.Microsecond, 99 * time.Microsecond, 100 * time.Microsecond},
		{"p99 of ten is the largest", us(1, 2, 3, 4, 5, 6, 7, 8, 9, 1000), 5 * time.Microsecond, 9 * time.Microsecond, 1000 * time.Microsecond, 1000 * time.Microsecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]time.Duration(nil), tt.in...)
			s := Summarize(tt.in)
			if s.N != len(tt.in) || s.P50 != tt.p50 || s.P90 != tt.p90 || s.P99 != tt.p99 || s.Max != tt.max {
				t.Errorf("Summarize = %+v, want n=%d p50=%v p90=%v p99=%v max=%v", s, len(tt.in), tt.p50, tt.p90, tt.p99, tt.max)
			}
			for i := range in {
				if in[i] != tt.in[i] {
					t.Fatal("Summarize reordered its input")
				}
			}
		})
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []int64
		want int64
	}{
		{nil, 0},
		{[]int64{5}, 5},
		{[]int64{9, 1, 5}, 5},
		{[]int64{4, 1, 3, 2}, 2},
	}
	for _, tt := range tests {
		if got := median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestProcStatus_Self(t *testing.T) {
	st, err := procStatus("self", "VmRSS", "RssAnon")
	if err != nil {
		t.Skipf("no /proc on this machine: %v", err)
	}
	if st["VmRSS"] <= 0 || st["RssAnon"] <= 0 || st["RssAnon"] > st["VmRSS"] {
		t.Errorf("VmRSS %d kB, RssAnon %d kB: want 0 < RssAnon <= VmRSS", st["VmRSS"], st["RssAnon"])
	}
	if _, err := procStatus("self", "NoSuchField"); err == nil {
		t.Error("procStatus accepted a field /proc/self/status lacks")
	}
}

func TestMakePayload_ShiftedEchoDiffers(t *testing.T) {
	p := makePayload(4096)
	if string(p[1:]) == string(p[:len(p)-1]) {
		t.Fatal("payload pattern is invariant under a one-byte shift; a misframed echo would pass")
	}
}
