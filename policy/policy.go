package policy

import (
	"time"

	"github.com/airlockhq/airlock/manifest"
)

// FileName is the policy's customary file name.
const FileName = "policy.toml"

// Default is the name of the section whose rules apply to every plugin that
// has no rule of its own for a capability.
const Default = "*"

// Names of the built-in capabilities.
const (
	Log     = "log"
	KV      = "kv"
	HTTP    = "http"
	FSRead  = "fs.read"
	FSWrite = "fs.write"
	Clock   = "clock"
	Random  = "random"
	Config  = "config"
)

// Size units, for writing policies in Go.
const (
	KiB manifest.Size = 1 << 10
	MiB manifest.Size = 1 << 20
	GiB manifest.Size = 1 << 30
)

// Defaults that Decide applies where neither the manifest nor the policy says
// anything. They only ever narrow: a grant is the minimum of request, policy
// and, where both are silent, these.
const (
	DefaultRatePerSecond = 100              // host calls per second per capability
	DefaultBudget        = 16 * MiB         // bytes moved per minute per capability
	DefaultQuota         = 1 * MiB          // kv: bytes stored
	DefaultMaxResponse   = 1 * MiB          // http: response body
	DefaultTimeout       = 10 * time.Second // http: one request, all redirects included
	DefaultMaxFile       = 1 * MiB          // fs.read, fs.write: one file
)

// DefaultMethods are the HTTP methods granted when the manifest lists none.
var defaultMethods = []string{"GET"}

// Policy is an operator's policy: rules per plugin, plus the "*" section
// whose rules apply to plugins without a rule of their own.
//
// A Policy is plain data. Build one in Go or with Parse, check it with
// Validate, then pass it to Decide, which never modifies it. Do not modify a
// Policy while Decide may be reading it.
type Policy struct {
	// Plugins maps a plugin's manifest name, or Default ("*"), to its rules.
	Plugins map[string]Plugin
}

// Plugin is one plugin's section of a policy.
//
// A plugin's section replaces the "*" section capability by capability: if
// the plugin has a rule for "kv", the "*" rule for "kv" is not consulted.
// Config counts as one item: a plugin with its own Config does not inherit
// the "*" section's values.
type Plugin struct {
	// Capabilities holds one rule per capability name.
	Capabilities map[string]Rule
	// Config holds the operator's configuration values for the plugin. The
	// config capability grants the keys the manifest asks for that appear
	// here.
	Config map[string]string
}

// Rule allows one capability, up to the limits it sets, or denies it.
//
// A zero field sets no limit of its own (the request or a default applies),
// except list fields, which allow nothing when empty. Which fields apply
// depends on the capability; Validate rejects the others.
type Rule struct {
	// Deny, when not empty, denies the capability; the text is the reason
	// shown to the plugin's author and written to the audit log.
	Deny string

	// Envelope caps, for every capability.
	Rate   manifest.Rate // host calls per unit of time
	Burst  int           // token-bucket burst
	Budget manifest.Size // bytes moved per minute

	// http.
	Hosts []string // allowed host names: exact, or "*.example.com" for subdomains
	// Methods the plugin may use; empty allows only GET.
	Methods []string
	// AllowPrivate lets the plugin reach loopback, private, link-local and
	// other non-public addresses. Off unless the operator turns it on.
	AllowPrivate bool
	MaxResponse  manifest.Size     // response body cap
	Timeout      manifest.Duration // whole request, redirects included

	// fs.read, fs.write: Roots maps a path the plugin uses (relative, e.g.
	// "data") to the host directory it is resolved under (absolute).
	Roots   map[string]string
	MaxFile manifest.Size // one file's size

	// kv.
	Quota manifest.Size // bytes stored in total

	// Scope lists the scope strings an embedder's own capability grants.
	Scope []string
}

// builtin says which Rule fields apply to each built-in capability. Embedder
// capabilities accept the envelope, deny and scope.
var ruleFields = map[string][]string{
	Log:     {"rate", "burst", "budget"},
	KV:      {"deny", "rate", "burst", "budget", "quota"},
	HTTP:    {"deny", "rate", "burst", "budget", "hosts", "methods", "allow_private", "max_response", "timeout"},
	FSRead:  {"deny", "rate", "burst", "budget", "roots", "max_file"},
	FSWrite: {"deny", "rate", "burst", "budget", "roots", "max_file"},
	Clock:   {"deny", "rate", "burst", "budget"},
	Random:  {"deny", "rate", "burst", "budget"},
	Config:  {"deny", "rate", "burst", "budget"},
}

var embedderFields = []string{"deny", "rate", "burst", "budget", "scope"}

// IsBuiltin reports whether name is one of Airlock's own capabilities.
func IsBuiltin(name string) bool {
	_, ok := ruleFields[name]
	return ok
}

func fieldsFor(capability string) []string {
	if f, ok := ruleFields[capability]; ok {
		return f
	}
	return embedderFields
}

// setFields lists the fields of r that are not zero, by TOML name.
func (r Rule) setFields() []string {
	var out []string
	add := func(name string, set bool) {
		if set {
			out = append(out, name)
		}
	}
	add("deny", r.Deny != "")
	add("rate", r.Rate != (manifest.Rate{}))
	add("burst", r.Burst != 0)
	add("budget", r.Budget != 0)
	add("hosts", r.Hosts != nil)
	add("methods", r.Methods != nil)
	add("allow_private", r.AllowPrivate)
	add("max_response", r.MaxResponse != 0)
	add("timeout", r.Timeout != 0)
	add("roots", r.Roots != nil)
	add("max_file", r.MaxFile != 0)
	add("quota", r.Quota != 0)
	add("scope", r.Scope != nil)
	return out
}
