// Package policy is the operator's side of Airlock's capability model: which
// plugin may use which capability, how far, and why not.
//
// A plugin asks for capabilities in its manifest ([capabilities.NAME] tables,
// [manifest.CapabilityRequest]). The operator writes a policy, in TOML
// (Parse, Load) or in Go (the Policy, Plugin and Rule types), and Decide
// intersects the two: the effective grant for each capability is never wider
// than what the plugin asked for and never wider than what the policy allows.
// Everything not granted is denied, and every denial or narrowing carries a
// reason that names the plugin, the item and how to change it.
//
// It is a public leaf package: it imports the standard library, go-toml and
// the manifest package only, so the host, the CLI and an embedder's tooling
// all read policies the same way.
//
// # Why our own evaluator and not Cedar?
//
// Cedar (and cedar-go) answers "may principal P do action A on resource R?"
// with allow or deny. Airlock asks a different question once per activation:
// "what is the widest grant that both the manifest and the operator accept?"
// The answer is a scope (host lists, byte caps, rates) that is minted into a
// token and checked without the engine on every host call. Cedar cannot
// compute such an intersection without enumerating every host, path and
// number, and its policy language would be a second syntax for operators to
// learn next to airlock.toml. Decide is a pure function of a few hundred
// lines with a table test per rule; that is easier to audit than an
// embedded language runtime. docs/policy.md has the longer comparison.
//
// # Deny by default
//
// A capability with no rule for the plugin (and none in the "*" section) is
// denied, with a reason saying which table to add. The one exception is
// "log", which every plugin has: the host's log budget limits it elsewhere.
package policy
