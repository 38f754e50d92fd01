package manifest

import (
	"reflect"
	"testing"
	"time"
)

// TestDefaults_Documented checks each default against the value the field
// comments in manifest.go and docs/manifest.md promise.
func TestDefaults_Documented(t *testing.T) {
	m := (&Manifest{Functions: map[string]Function{"run": {}}}).Defaults()
	want := Manifest{
		Tier: TierProcess,
		Functions: map[string]Function{"run": {
			Timeout: Duration(30 * time.Second), MaxInput: 1 << 20, MaxOutput: 1 << 20,
		}},
		Limits: Limits{
			MaxConcurrency:    16,
			StartupTimeout:    Duration(5 * time.Second),
			NegotiateTimeout:  Duration(2 * time.Second),
			ShutdownTimeout:   Duration(5 * time.Second),
			HeartbeatInterval: Duration(time.Second),
			HeartbeatTimeout:  Duration(5 * time.Second),
			CancelGrace:       Duration(2 * time.Second),
			LogRate:           Rate{100, time.Second},
			LogBurst:          200,
			Memory:            256 << 20,
			CPU:               1,
			CPUTime:           Duration(time.Hour),
			Tasks:             64,
			OpenFiles:         256,
			Disk:              64 << 20,
		},
		Restart: Restart{
			Policy:         RestartOnFailure,
			MaxRestarts:    5,
			BackoffInitial: Duration(100 * time.Millisecond),
			BackoffMax:     Duration(30 * time.Second),
			ResetAfter:     Duration(time.Minute),
		},
	}
	if !reflect.DeepEqual(*m, want) {
		t.Errorf("Defaults():\n got %+v\nwant %+v", *m, want)
	}
}

func TestDefaults_KeepsSetValuesAndCopiesDeeply(t *testing.T) {
	orig := &Manifest{
		Tier:         TierWasm,
		Entry:        Entry{Args: []string{"-v"}},
		Build:        &Build{Command: []string{"make"}},
		Functions:    map[string]Function{"run": {Timeout: Duration(time.Second), MaxInput: -1}},
		Limits:       Limits{Memory: 32 << 20, Tasks: -3},
		Sandbox:      Sandbox{Require: []string{"seccomp"}},
		Capabilities: map[string]CapabilityRequest{"http": {Hosts: []string{"example.com"}}},
	}
	m := orig.Defaults()
	if m.Tier != TierWasm || m.Functions["run"].Timeout != Duration(time.Second) ||
		m.Functions["run"].MaxInput != -1 || m.Limits.Memory != 32<<20 || m.Limits.Tasks != -3 {
		t.Errorf("Defaults overwrote set values: %+v", m)
	}
	if m.Functions["run"].MaxOutput != 1<<20 || m.Limits.Disk != 64<<20 {
		t.Errorf("Defaults did not fill zero fields: %+v", m)
	}

	m.Entry.Args[0] = "changed"
	m.Build.Command[0] = "changed"
	m.Functions["new"] = Function{}
	m.Sandbox.Require[0] = "changed"
	m.Capabilities["http"].Hosts[0] = "changed"
	if orig.Entry.Args[0] != "-v" || orig.Build.Command[0] != "make" || len(orig.Functions) != 1 ||
		orig.Sandbox.Require[0] != "seccomp" || orig.Capabilities["http"].Hosts[0] != "example.com" {
		t.Errorf("Defaults shares memory with the original: %+v", orig)
	}
}

func TestDefaults_Burst(t *testing.T) {
	tests := []struct {
		rate  Rate
		burst int
		want  int
	}{
		{Rate{}, 0, 0}, // unlimited needs no burst
		{Rate{50, time.Second}, 0, 50},
		{Rate{0.5, time.Second}, 0, 1},
		{Rate{10, time.Minute}, 0, 1},
		{Rate{2.5, time.Second}, 0, 3},
		{Rate{50, time.Second}, 7, 7},
	}
	for _, tt := range tests {
		m := (&Manifest{
			Functions:    map[string]Function{"f": {Rate: tt.rate, Burst: tt.burst}},
			Limits:       Limits{Rate: tt.rate, Burst: tt.burst},
			Capabilities: map[string]CapabilityRequest{"kv": {Rate: tt.rate, Burst: tt.burst}},
		}).Defaults()
		if got := m.Functions["f"].Burst; got != tt.want {
			t.Errorf("function burst for %v, %d = %d, want %d", tt.rate, tt.burst, got, tt.want)
		}
		if got := m.Limits.Burst; got != tt.want {
			t.Errorf("limits burst for %v, %d = %d, want %d", tt.rate, tt.burst, got, tt.want)
		}
		if got := m.Capabilities["kv"].Burst; got != tt.want {
			t.Errorf("capability burst for %v, %d = %d, want %d", tt.rate, tt.burst, got, tt.want)
		}
	}
}
