package policy

import (
	"fmt"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Problem is one thing wrong with a policy: the field, in TOML notation, and
// what to do about it.
type Problem struct {
	Field string // e.g. plugins.weather.capabilities.http.hosts
	Msg   string
}

func (p Problem) String() string { return p.Field + ": " + p.Msg }

// ValidationError lists every problem Validate found.
type ValidationError struct {
	Problems []Problem
}

func (e *ValidationError) Error() string {
	if len(e.Problems) == 1 {
		return "invalid policy: " + e.Problems[0].String()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "invalid policy (%d problems):", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

var (
	pluginNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	capNameRE    = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$`)
	hostLabelRE  = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
	configKeyRE  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*$`)
)

// Validate checks the policy and returns a *ValidationError listing every
// problem, each naming the field and the fix, or nil.
func (p *Policy) Validate() error {
	var probs []Problem
	add := func(field, format string, args ...any) {
		probs = append(probs, Problem{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	if p == nil {
		add("policy", "is nil; use an empty Policy to deny everything")
		return &ValidationError{Problems: probs}
	}
	for name, pl := range p.Plugins {
		base := "plugins." + tomlKey(name)
		if name != Default && !pluginNameRE.MatchString(name) {
			add(base, "plugin name %q is not a manifest name (letters, digits, '.', '_', '-') nor %q", name, Default)
		}
		for cname, r := range pl.Capabilities {
			checkRule(base+".capabilities."+tomlKey(cname), cname, r, add)
		}
		for k := range pl.Config {
			if !configKeyRE.MatchString(k) {
				add(base+".config."+tomlKey(k), "config key %q must start with a letter or '_' and hold only letters, digits, '_', '.', '-'", k)
			}
		}
	}
	if len(probs) == 0 {
		return nil
	}
	sort.Slice(probs, func(i, j int) bool {
		if probs[i].Field != probs[j].Field {
			return probs[i].Field < probs[j].Field
		}
		return probs[i].Msg < probs[j].Msg
	})
	return &ValidationError{Problems: probs}
}

func checkRule(field, cname string, r Rule, add func(field, format string, args ...any)) {
	if !capNameRE.MatchString(cname) {
		add(field, "capability name %q must be lowercase words separated by dots, e.g. \"kv\" or \"acme.search\"", cname)
		return
	}
	allowed := fieldsFor(cname)
	set := r.setFields()
	for _, f := range set {
		if !slices.Contains(allowed, f) {
			if cname == Log && f == "deny" {
				add(field+".deny", "log cannot be denied: every plugin may log, and the host's log budget limits it; remove deny")
				continue
			}
			add(field+"."+f, "does not apply to %s; a %s rule takes %s", cname, cname, strings.Join(allowed, ", "))
		}
	}
	if r.Deny != "" {
		for _, f := range set {
			if f != "deny" && slices.Contains(allowed, f) {
				add(field+"."+f, "a rule with deny grants nothing, so %s has no effect; remove it or remove deny", f)
			}
		}
		return
	}
	if r.Rate.Count < 0 || r.Rate.Per < 0 || (r.Rate.Count > 0 && r.Rate.Per == 0) {
		add(field+".rate", "must be a count per unit, e.g. \"100/s\"")
	}
	if r.Burst < 0 {
		add(field+".burst", "must not be negative")
	}
	for name, v := range map[string]int64{"budget": int64(r.Budget), "max_response": int64(r.MaxResponse), "max_file": int64(r.MaxFile), "quota": int64(r.Quota), "timeout": int64(r.Timeout)} {
		if v < 0 {
			add(field+"."+name, "must not be negative")
		}
	}
	switch cname {
	case HTTP:
		if len(r.Hosts) == 0 {
			add(field+".hosts", "is empty, so http grants nothing; list the hosts the plugin may reach, e.g. [\"api.example.com\", \"*.example.org\"], or write deny = \"reason\"")
		}
		for _, h := range r.Hosts {
			if msg := checkHostPattern(h); msg != "" {
				add(field+".hosts", "%q: %s", h, msg)
			}
		}
		for _, m := range r.Methods {
			if !knownMethod(m) {
				add(field+".methods", "%q is not an HTTP method; use upper case, e.g. \"GET\", \"POST\"", m)
			}
		}
	case FSRead, FSWrite:
		if len(r.Roots) == 0 {
			add(field+".roots", "is empty, so %s grants nothing; map the paths the plugin uses to host directories, e.g. roots = { data = \"/srv/plugin/data\" }", cname)
		}
		for rel, host := range r.Roots {
			if msg := checkRelPath(rel); msg != "" {
				add(field+".roots."+tomlKey(rel), "%s", msg)
			}
			if !filepath.IsAbs(host) || filepath.Clean(host) != host {
				add(field+".roots."+tomlKey(rel), "host directory %q must be an absolute, clean path, e.g. \"/srv/plugin/data\"", host)
			}
		}
	default:
		if !IsBuiltin(cname) {
			for _, s := range r.Scope {
				if s == "" {
					add(field+".scope", "scope strings must not be empty")
				}
			}
		}
	}
}

// checkHostPattern returns what is wrong with an allowlist entry, or "".
func checkHostPattern(h string) string {
	if strings.Contains(h, "://") || strings.ContainsAny(h, "/:@?#") {
		return "write a bare host name without scheme, port or path, e.g. \"api.example.com\""
	}
	if h != strings.ToLower(h) {
		return "write host names in lower case"
	}
	name := strings.TrimPrefix(h, "*.")
	if strings.Contains(name, "*") {
		return "a wildcard may only be the first label, as in \"*.example.com\"; a bare \"*\" is not allowed: list hosts explicitly"
	}
	labels := strings.Split(name, ".")
	if len(labels) < 1 || len(name) > 253 {
		return "is not a host name"
	}
	for _, l := range labels {
		if !hostLabelRE.MatchString(l) || len(l) > 63 {
			return "is not a host name (letters, digits and '-' in dot-separated labels)"
		}
	}
	return ""
}

// checkRelPath returns what is wrong with a plugin-visible path, or "".
func checkRelPath(rel string) string {
	switch {
	case rel == "":
		return "path must not be empty"
	case path.IsAbs(rel) || strings.HasPrefix(rel, "\\"):
		return fmt.Sprintf("path %q must be relative, e.g. \"data\"", rel)
	case path.Clean(rel) != rel || rel == "." || rel == ".." || strings.HasPrefix(rel, "../"):
		return fmt.Sprintf("path %q must be clean and stay inside the plugin's view: no \".\", \"..\" or doubled slashes", rel)
	case strings.ContainsRune(rel, 0):
		return "path must not contain NUL"
	}
	return ""
}

func knownMethod(m string) bool {
	switch m {
	case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS":
		return true
	}
	return false
}
