package airlock

import (
	"encoding/json"
	"time"

	"github.com/airlockhq/airlock/internal/audit"
)

// AuditRecord is one entry of the audit log: a capability decision made
// when a plugin instance was activated, or a host call the host refused.
type AuditRecord struct {
	Time       time.Time
	Plugin     string
	Instance   string
	Capability string
	Function   string          // host calls only
	Scope      json.RawMessage // the grant, or the token's effective scope
	Decision   string          // "granted", "narrowed", "denied" or "refused"
	Code       string          // the protocol error code of a refusal
	Reason     string
	TokenID    string
	Truncated  bool // the record was cut to fit the size limit
}

// AuditFilter selects audit records.
type AuditFilter struct {
	Plugin string // "" for every plugin
	Denied bool   // only denials and refused host calls
}

// ReadAudit reads the audit log at path (STATE/AuditFileName for a host
// with a state directory). It also returns how many lines it skipped
// because they are not whole records (a write cut short by a crash).
func ReadAudit(path string, f AuditFilter) ([]AuditRecord, int, error) {
	res, err := audit.ReadFile(path, audit.Filter{Plugin: f.Plugin, Denied: f.Denied})
	if err != nil {
		return nil, 0, err
	}
	out := make([]AuditRecord, len(res.Records))
	for i, r := range res.Records {
		out[i] = AuditRecord{Time: r.Time, Plugin: r.Plugin, Instance: r.Instance, Capability: r.Capability,
			Function: r.Function, Scope: r.Scope, Decision: r.Decision, Code: r.Code, Reason: r.Reason,
			TokenID: r.TokenID, Truncated: r.Truncated}
	}
	return out, res.Skipped, nil
}
