package supervisor

import (
	"time"
)

// State is a stage of the plugin lifecycle.
type State uint8

// The lifecycle states, in the order a plugin normally passes them.
const (
	StateInit       State = iota // verifying and starting the process
	StateNegotiate               // HELLO sent, waiting for WELCOME
	StateActivate                // granting capabilities
	StateOperate                 // serving calls
	StateRestarting              // waiting out the backoff before a restart
	StateDraining                // refusing new calls, finishing in-flight ones
	StateStopped                 // closed by the host
	StateFailed                  // could not start, or out of restarts
)

var stateNames = [...]string{
	StateInit:       "init",
	StateNegotiate:  "negotiate",
	StateActivate:   "activate",
	StateOperate:    "operate",
	StateRestarting: "restarting",
	StateDraining:   "draining",
	StateStopped:    "stopped",
	StateFailed:     "failed",
}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "unknown"
}

// Status is a snapshot of a supervised plugin.
type Status struct {
	Name, Version string
	State         State
	Instance      string
	PID           int
	Protocol      uint16
	SDK           string
	Exports       []string
	StartedAt     time.Time
	Restarts      int // all restarts since load
	Calls         uint64
	Failed        uint64
	RateLimited   uint64
	Retried       uint64
	InFlight      int
	WatchdogKills uint64
	Crashes       uint64
	ProtocolErrs  uint64
	LogDropped    uint64
	LastExit      string
	LastError     string
	Violations    map[string]uint64 // exits caused by a limit, per limit
	Protections   []string          // applied to the running instance
}

// Status returns a snapshot of the plugin's state and counters.
func (s *Supervisor) Status() Status {
	s.mu.Lock()
	st := Status{
		Name:     s.m.Name,
		Version:  s.m.Version,
		State:    s.state,
		Restarts: s.total,
	}
	if s.lastExit != nil {
		st.LastExit = s.lastExit.Error()
	}
	if s.lastErr != nil {
		st.LastError = s.lastErr.Error()
	}
	inst := s.inst
	s.mu.Unlock()
	if inst != nil {
		st.Instance, st.PID, st.Protocol, st.SDK = inst.id, inst.proc.Pid(), inst.version, inst.sdk
		st.Exports = append([]string(nil), inst.exports...)
		st.StartedAt = inst.startedAt
		st.InFlight = inst.conn.InFlight()
		st.Protections = inst.proc.Applied()
	}
	st.Violations = s.violations.snapshot()
	st.Calls = s.counts.calls.Load()
	st.Failed = s.counts.failed.Load()
	st.RateLimited = s.counts.rateLimited.Load()
	st.Retried = s.counts.retried.Load()
	st.WatchdogKills = s.counts.watchdogKills.Load()
	st.Crashes = s.counts.crashes.Load()
	st.ProtocolErrs = s.counts.protocolErrors.Load()
	st.LogDropped = s.counts.logDropped.Load()
	return st
}
