package manifest

import (
	"maps"
	"math"
	"reflect"
	"slices"
	"time"
)

// defaultSet is every default value, in one place. A zero field in a
// Manifest means "use the value here"; docs/manifest.md repeats them and a
// test keeps the two in step.
type defaultSet struct {
	Tier     Tier
	Function Function // applied to every [functions.NAME]
	Limits   Limits
	Restart  Restart
}

func defaultValues() defaultSet {
	return defaultSet{
		Tier: TierProcess,
		Function: Function{
			Timeout:   Duration(30 * time.Second),
			MaxInput:  1 << 20,
			MaxOutput: 1 << 20,
		},
		Limits: Limits{
			MaxConcurrency:    16,
			StartupTimeout:    Duration(5 * time.Second),
			NegotiateTimeout:  Duration(2 * time.Second),
			ShutdownTimeout:   Duration(5 * time.Second),
			HeartbeatInterval: Duration(time.Second),
			HeartbeatTimeout:  Duration(5 * time.Second),
			CancelGrace:       Duration(2 * time.Second),
			LogRate:           Rate{Count: 100, Per: time.Second},
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
}

// defaultBurst is the burst for a rate that has none: one second's worth of
// events, at least 1. An unlimited (zero) rate needs no burst.
func defaultBurst(r Rate, burst int) int {
	if burst != 0 || r.IsZero() {
		return burst
	}
	return max(1, int(min(math.Ceil(r.PerSecond()), math.MaxInt32)))
}

// Defaults returns a deep copy of m with every zero field that has a default
// filled in. Values that are set, valid or not, are kept; Validate reports
// the invalid ones.
func (m *Manifest) Defaults() *Manifest {
	def := defaultValues()
	c := m.clone()
	if c.Tier == "" {
		c.Tier = def.Tier
	}
	fillZero(&c.Limits, def.Limits)
	fillZero(&c.Restart, def.Restart)
	c.Limits.Burst = defaultBurst(c.Limits.Rate, c.Limits.Burst)
	for name, f := range c.Functions {
		fillZero(&f, def.Function)
		f.Burst = defaultBurst(f.Rate, f.Burst)
		c.Functions[name] = f
	}
	for name, r := range c.Capabilities {
		r.Burst = defaultBurst(r.Rate, r.Burst)
		c.Capabilities[name] = r
	}
	return c
}

// fillZero sets every zero field of *dst to the same field of def.
func fillZero[T any](dst *T, def T) {
	d, s := reflect.ValueOf(dst).Elem(), reflect.ValueOf(def)
	for i := range d.NumField() {
		if d.Field(i).IsZero() {
			d.Field(i).Set(s.Field(i))
		}
	}
}

// clone returns a copy of m that shares no slice or map with it.
func (m *Manifest) clone() *Manifest {
	c := *m
	c.Entry.Args = slices.Clone(m.Entry.Args)
	if m.Build != nil {
		b := Build{Command: slices.Clone(m.Build.Command)}
		c.Build = &b
	}
	c.Functions = maps.Clone(m.Functions)
	c.Sandbox = Sandbox{
		Require:    slices.Clone(m.Sandbox.Require),
		ReadPaths:  slices.Clone(m.Sandbox.ReadPaths),
		WritePaths: slices.Clone(m.Sandbox.WritePaths),
	}
	if m.Capabilities != nil {
		c.Capabilities = make(map[string]CapabilityRequest, len(m.Capabilities))
		for name, r := range m.Capabilities {
			r.Hosts = slices.Clone(r.Hosts)
			r.Methods = slices.Clone(r.Methods)
			r.Paths = slices.Clone(r.Paths)
			r.Keys = slices.Clone(r.Keys)
			r.Scope = slices.Clone(r.Scope)
			c.Capabilities[name] = r
		}
	}
	return &c
}
