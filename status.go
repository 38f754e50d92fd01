package airlock

import "time"

// State is a plugin's lifecycle stage (see Plugin).
type State string

// The states.
const (
	StateInit       State = "init"
	StateNegotiate  State = "negotiate"
	StateActivate   State = "activate"
	StateOperate    State = "operate"
	StateRestarting State = "restarting"
	StateDraining   State = "draining"
	StateStopped    State = "stopped"
	StateFailed     State = "failed"
)

// Status is a snapshot of a plugin: where it is in its lifecycle, what it
// runs, and what has happened to it.
type Status struct {
	Name     string
	Version  string // the plugin's manifest version
	State    State
	Instance string // this run of the process; changes on restart
	PID      int
	Protocol int      // negotiated protocol version
	SDK      string   // the plugin's SDK, as it reported it
	Exports  []string // functions the plugin exports
	Since    time.Time

	Calls         uint64 // calls made, including failed ones
	Failed        uint64 // calls that returned an error
	RateLimited   uint64 // calls refused by a rate limit
	Retried       uint64 // idempotent calls retried after the process died under them
	InFlight      int    // calls holding a concurrency slot now
	Restarts      int    // restarts since load
	Crashes       uint64 // times the process ended while it should have been serving
	WatchdogKills uint64 // times the watchdog killed it
	ProtocolErrs  uint64 // times it broke the protocol
	LogDropped    uint64 // log records and output lines dropped over its log budget
	LastExit      string // how the last process ended
	LastError     string // the last start or restart failure

	// Capabilities is the operator's decision for each capability the
	// plugin requested (and log), with its host-call counters.
	Capabilities []CapabilityStatus

	// Protections says, for the running process, which sandbox protections
	// were applied and why the others were not. It never lists one as
	// applied that was not.
	Protections []ProtectionStatus
	// Violations counts the times a limit of the plugin's envelope ended
	// it, per limit ("memory", "seccomp", "cpu_time", "disk"); TasksRefused
	// counts forks and threads refused at its task limit. Both count since
	// load, across restarts.
	Violations   map[string]uint64
	TasksRefused int64
}

// Status returns a snapshot of the plugin.
func (p *Plugin) Status() Status {
	s := p.sup.Status()
	p.mu.Lock()
	d, sb, tasksRefused := p.decision, p.sandbox, p.tasksRefused
	p.mu.Unlock()
	if sb != nil {
		tasksRefused += sb.Events().PidsMax
	}
	return Status{
		Capabilities: capabilityStatus(d, p.host.broker.Stats()),
		Protections:  protectionStatus(sb, p.host.cfg.sandbox),
		Violations:   s.Violations,
		TasksRefused: tasksRefused,
		Name:         s.Name, Version: s.Version, State: State(s.State.String()),
		Instance: s.Instance, PID: s.PID, Protocol: int(s.Protocol), SDK: s.SDK,
		Exports: s.Exports, Since: s.StartedAt,
		Calls: s.Calls, Failed: s.Failed, RateLimited: s.RateLimited, Retried: s.Retried, InFlight: s.InFlight,
		Restarts: s.Restarts, Crashes: s.Crashes, WatchdogKills: s.WatchdogKills,
		ProtocolErrs: s.ProtocolErrs, LogDropped: s.LogDropped,
		LastExit: s.LastExit, LastError: s.LastError,
	}
}
