package airlock

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/airlockhq/airlock/internal/audit"
	"github.com/airlockhq/airlock/internal/capability"
	"github.com/airlockhq/airlock/internal/capability/builtin"
	"github.com/airlockhq/airlock/internal/capability/httpcap"
	"github.com/airlockhq/airlock/internal/capability/kv"
	"github.com/airlockhq/airlock/internal/rpc"
	"github.com/airlockhq/airlock/internal/sandbox"
	"github.com/airlockhq/airlock/internal/supervisor"
	"github.com/airlockhq/airlock/internal/wire"
	"github.com/airlockhq/airlock/manifest"
	"github.com/airlockhq/airlock/policy"
)

// Version is this Airlock's version, reported to plugins in negotiation.
const Version = "0.1.0"

// Host loads plugins and owns them: closing the Host closes every plugin it
// loaded. Hosts share nothing, so several can live in one process. A Host is
// safe for concurrent use.
type Host struct {
	cfg     HostConfig
	log     *slog.Logger
	digests *supervisor.DigestCache
	watcher *rpc.Watcher // shared by plugin connections; nil: none
	broker  *capability.Broker
	kv      *kv.Store  // nil without a state directory
	audit   *audit.Log // nil without a state directory
	machine *sandbox.Machine
	ids     *sandbox.IDPool // nil unless the host is root

	mu      sync.Mutex
	plugins map[string]*Plugin
	closed  bool

	stopRefresh chan struct{}
	refreshDone chan struct{}
}

// NewHost returns a Host with the default configuration.
func NewHost(ctx context.Context) (*Host, error) {
	return NewHostWithConfig(ctx, NewHostConfig())
}

// NewHostWithConfig returns a Host configured by cfg. Invalid configuration
// is reported here, the one place configuration errors appear.
func NewHostWithConfig(ctx context.Context, cfg HostConfig) (*Host, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	h := &Host{
		cfg:         cfg,
		log:         cfg.logger,
		digests:     supervisor.NewDigestCache(),
		plugins:     map[string]*Plugin{},
		stopRefresh: make(chan struct{}),
		refreshDone: make(chan struct{}),
	}
	if err := h.openCapabilities(); err != nil {
		return nil, err
	}
	// One watcher serves every plugin's connection, so a caller reads its
	// own reply and an idle plugin costs no goroutine (internal/rpc says
	// why). Without one each connection keeps a reading goroutine.
	if w, err := rpc.NewWatcher(); err == nil {
		h.watcher = w
	} else {
		h.log.Debug("no socket watcher; each plugin connection keeps a reading goroutine", "err", err)
	}
	if cfg.sandbox {
		h.openSandbox()
	}
	go h.refreshTokens()
	return h, nil
}

// openSandbox checks once what containment this machine offers, says
// loudly what is missing, and reserves uids for plugins.
func (h *Host) openSandbox() {
	// Descriptors this process inherited without close-on-exec would leak
	// into every plugin.
	if err := sandbox.SealInheritedFDs(); err != nil {
		h.log.Warn("could not mark inherited descriptors close-on-exec; plugins may inherit them", "err", err)
	}
	h.machine = sandbox.DetectMachine("")
	for _, m := range h.machine.Report().Mechanisms {
		if !m.Available {
			h.log.Warn("sandbox protection unavailable on this machine; plugins run without it (airlock doctor says more)",
				"protection", m.Name, "reason", m.Reason)
		}
	}
	h.ids = newIDPool(h.log)
}

// openCapabilities builds what serves host calls: the registry of built-in
// and embedder capabilities, the kv store and audit log under the state
// directory, and the broker that decides, mints, verifies and audits.
func (h *Host) openCapabilities() (err error) {
	cfg := h.cfg
	if cfg.stateDir != "" {
		if err := os.MkdirAll(cfg.stateDir, 0o700); err != nil {
			return fmt.Errorf("airlock: create state directory: %w", err)
		}
	}
	defer func() {
		if err != nil {
			h.closeCapabilities()
		}
	}()
	reg := capability.NewRegistry()
	opts := builtin.Options{StateDir: cfg.stateDir, Logger: h.log.With("source", "plugin-log")}
	if cfg.resolver != nil {
		opts.Resolver = cfg.resolver
	}
	if h.kv, err = builtin.Register(reg, opts); err != nil {
		return fmt.Errorf("airlock: open capabilities: %w", err)
	}
	for _, c := range cfg.capabilities {
		if err := reg.Register(adaptCapability(c)); err != nil {
			return fmt.Errorf("airlock: HostConfig.WithCapability(%q): %w", c.Name(), err)
		}
	}
	if cfg.stateDir != "" {
		if h.audit, err = audit.Open(filepath.Join(cfg.stateDir, AuditFileName), audit.Options{Logger: h.log}); err != nil {
			return fmt.Errorf("airlock: open audit log: %w", err)
		}
	}
	h.broker, err = capability.NewBroker(capability.Config{
		Registry: reg, Policy: cfg.policy, Audit: h.audit, Logger: h.log, TokenTTL: cfg.tokenTTL,
	})
	if err != nil {
		return fmt.Errorf("airlock: %w", err)
	}
	return nil
}

func (h *Host) closeCapabilities() {
	if h.kv != nil {
		_ = h.kv.Close()
	}
	if h.audit != nil {
		_ = h.audit.Close()
	}
}

// AuditFileName is the audit log's file name inside the state directory.
const AuditFileName = "audit.jsonl"

// refreshTokens re-mints every running plugin's tokens at half their
// lifetime, so they never expire under a plugin that runs for days, and
// drops retired keys once no token they signed can still be valid.
func (h *Host) refreshTokens() {
	defer close(h.refreshDone)
	ttl := h.cfg.tokenTTL
	if ttl <= 0 {
		ttl = capability.DefaultTokenTTL
	}
	t := time.NewTicker(ttl / 2)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			h.regrantAll()
			h.broker.Keyring().Prune(time.Now())
		case <-h.stopRefresh:
			return
		}
	}
}

// regrantAll re-mints and re-sends every running plugin's tokens.
func (h *Host) regrantAll() error {
	var errs []error
	for _, p := range h.Plugins() {
		inst := p.sup.Instance()
		if inst == "" {
			continue
		}
		toks, err := h.broker.Reissue(p.name, inst)
		if err != nil {
			errs = append(errs, fmt.Errorf("reissue tokens of %s: %w", p.name, err))
			continue
		}
		if err := p.sup.Regrant(inst, tokensOf(toks)); err != nil {
			errs = append(errs, fmt.Errorf("send tokens to %s: %w", p.name, err))
		}
	}
	return errors.Join(errs...)
}

// RotateKeys starts signing capability tokens with a fresh key and hands
// every running plugin new tokens, without restarting any. Tokens signed by
// the previous key stay valid until they expire; use it on a schedule, or
// at once when a key may have leaked.
func (h *Host) RotateKeys(ctx context.Context) error {
	if _, err := h.broker.Keyring().Rotate(); err != nil {
		return fmt.Errorf("airlock: rotate keys: %w", err)
	}
	if err := h.regrantAll(); err != nil {
		return fmt.Errorf("airlock: rotate keys: %w", err)
	}
	return nil
}

// Load reads the plugin folder dir (its airlock.toml), starts the plugin
// and returns it once it serves calls. Nothing starts unless the manifest
// is valid and the entry program matches its sha256; when any lifecycle
// stage fails the error is a *LoadError naming the stage, and nothing is
// left running. ctx bounds the whole start.
func (h *Host) Load(ctx context.Context, dir string) (*Plugin, error) {
	m, err := manifest.Load(dir)
	if err != nil {
		return nil, &LoadError{Dir: dir, Stage: "manifest", Err: err}
	}
	if m.Tier != "" && m.Tier != manifest.TierProcess {
		return nil, &LoadError{Dir: dir, Stage: "manifest", Err: fmt.Errorf("tier %q is not available in this version of Airlock; use tier = \"process\"", m.Tier)}
	}
	m = m.Defaults()
	m.Limits = narrowLimits(m.Limits, h.cfg.limits)

	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, &LoadError{Dir: dir, Stage: "manifest", Err: errors.New("the host is closed")}
	}
	if other, ok := h.plugins[m.Name]; ok {
		h.mu.Unlock()
		where := "is being loaded"
		if other.sup != nil {
			where = "is already loaded from " + other.Dir()
		}
		return nil, &LoadError{Dir: dir, Stage: "manifest", Err: fmt.Errorf("a plugin named %q %s; close it first or rename one of them", m.Name, where)}
	}
	p := &Plugin{host: h, name: m.Name}
	h.plugins[m.Name] = p // reserve the name while starting
	h.mu.Unlock()

	name := m.Name
	logger := h.log.With("plugin", name)
	scfg := supervisor.Config{
		Manifest: m,
		Logger:   logger,
		Host:     "airlock/" + Version,
		MaxFrame: h.cfg.maxFrame,
		Versions: h.cfg.versions,
		Digests:  h.digests,
		Watcher:  h.watcher,
		Grant: func(instance string) ([]wire.Token, error) {
			act, err := h.broker.Activate(context.Background(), name, instance, m.Capabilities)
			if err != nil {
				return nil, err
			}
			p.setDecision(act.Decision)
			return tokensOf(act.Tokens), nil
		},
		HostCalls: func(instance string) rpc.Handler {
			return func(ctx context.Context, req *rpc.Request) ([]byte, error) {
				out, err := h.broker.Handle(ctx, name, instance, req.Function, req.Token, req.Payload)
				if err != nil {
					// The plugin sees the code and the cause; it knows its
					// own name and the function it called.
					msg := err.Error()
					var ce *capability.Error
					if errors.As(err, &ce) && ce.Err != nil {
						msg = ce.Err.Error()
					}
					return nil, &rpc.Error{Code: capability.CodeOf(err), Message: msg}
				}
				return out, nil
			}
		},
		Ended: func(instance string) { h.broker.Deactivate(name, instance) },
	}
	if h.cfg.sandbox {
		scfg.Contain = h.contain(p, m, logger)
	}
	sup, err := supervisor.Start(ctx, scfg)
	if err != nil {
		h.mu.Lock()
		delete(h.plugins, m.Name)
		h.mu.Unlock()
		stage := "init"
		var se *supervisor.StageError
		if errors.As(err, &se) {
			stage = se.Stage.String()
		}
		return nil, &LoadError{Dir: dir, Stage: stage, Err: err}
	}
	h.mu.Lock()
	p.sup = sup // published under the lock: Plugins and the token refresher read it
	h.mu.Unlock()
	return p, nil
}

// Plugin returns the loaded plugin called name.
func (h *Host) Plugin(name string) (*Plugin, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p, ok := h.plugins[name]
	if !ok || p.sup == nil {
		return nil, false
	}
	return p, true
}

// Plugins returns the loaded plugins, sorted by name.
func (h *Host) Plugins() []*Plugin {
	h.mu.Lock()
	ps := make([]*Plugin, 0, len(h.plugins))
	for _, p := range h.plugins {
		if p.sup != nil {
			ps = append(ps, p)
		}
	}
	h.mu.Unlock()
	slices.SortFunc(ps, func(a, b *Plugin) int {
		switch {
		case a.name < b.name:
			return -1
		case a.name > b.name:
			return 1
		}
		return 0
	})
	return ps
}

// Close closes every plugin the host loaded, in parallel, each as
// Plugin.Close does, and refuses further loads. It always returns; ctx
// bounds the drain of calls in flight.
func (h *Host) Close(ctx context.Context) error {
	h.mu.Lock()
	already := h.closed
	h.closed = true
	h.mu.Unlock()
	if !already {
		close(h.stopRefresh)
		defer func() {
			<-h.refreshDone
			h.closeCapabilities()
			if h.watcher != nil {
				h.watcher.Close()
			}
			if h.ids != nil {
				_ = h.ids.Close()
			}
		}()
	}
	var wg sync.WaitGroup
	for _, p := range h.Plugins() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = p.Close(ctx)
		}()
	}
	wg.Wait()
	return nil
}

func (h *Host) forget(p *Plugin) {
	h.mu.Lock()
	if h.plugins[p.name] == p {
		delete(h.plugins, p.name)
	}
	h.mu.Unlock()
}

// HostConfig configures a Host. It is immutable: every With method returns
// a new HostConfig, so one can be shared and derived from safely.
type HostConfig struct {
	logger       *slog.Logger
	maxFrame     int
	stateDir     string
	policy       *policy.Policy
	capabilities []Capability
	sandbox      bool
	require      []string
	limits       manifest.Limits
	readPaths    []string
	writePaths   []string
	launcher     string

	versions wire.VersionRange // the protocol versions offered; tests narrow it
	resolver httpcap.Resolver  // name resolution for the http capability; tests stub it
	tokenTTL time.Duration     // capability token lifetime; tests shorten it
}

// NewHostConfig returns the default configuration: logs to slog.Default(),
// frames up to 4 MiB + 4 KiB, every plugin sandboxed with whatever this
// machine offers, no capabilities granted.
func NewHostConfig() HostConfig {
	return HostConfig{logger: slog.Default(), maxFrame: wire.DefaultMaxFrame, versions: wire.Supported, sandbox: true}
}

// WithLogger sends the host's and the plugins' log records to l. Records
// from a plugin carry plugin=NAME.
func (c HostConfig) WithLogger(l *slog.Logger) HostConfig {
	c.logger = l
	return c
}

// WithMaxFrame sets the largest protocol frame the host accepts, between
// 64 KiB and 64 MiB. It bounds the largest result a plugin can return.
func (c HostConfig) WithMaxFrame(bytes int) HostConfig {
	c.maxFrame = bytes
	return c
}

// WithStateDir keeps the host's durable state in dir (created 0700 if
// missing): the kv capability's database and the audit log
// (AuditFileName). Without a state directory the host does not offer kv and
// audit records go only to the logger.
func (c HostConfig) WithStateDir(dir string) HostConfig {
	c.stateDir = dir
	return c
}

// WithPolicy sets the operator's policy: which capabilities each plugin is
// granted (see the policy package and docs/policy.md). Without one, every
// capability but log is denied.
func (c HostConfig) WithPolicy(p *policy.Policy) HostConfig {
	c.policy = p
	return c
}

// WithCapability offers cap to plugins, subject to the policy like the
// built-in capabilities. Call it once per capability.
func (c HostConfig) WithCapability(cap Capability) HostConfig {
	c.capabilities = append(slices.Clip(c.capabilities), cap)
	return c
}

// WithSandbox turns the process tier's sandbox on (the default) or off.
// Off, plugins run as plain child processes in their own process group,
// with none of the protections of docs/security.md: only for plugins you
// trust, development, and benchmarks.
func (c HostConfig) WithSandbox(enabled bool) HostConfig {
	c.sandbox = enabled
	return c
}

// WithLauncher starts sandboxed plugins through the launcher program at
// path (an absolute path to a build of cmd/airlock-launcher) instead of
// re-executing the host's own binary. A small static launcher starts each
// sandboxed plugin about 1 ms sooner than a large host binary; see
// cmd/airlock-launcher. It runs with the host's privileges until the
// sandbox is applied: install it where only the host's owner can write.
func (c HostConfig) WithLauncher(path string) HostConfig {
	c.launcher = path
	return c
}

// WithRequire names protections every plugin must get (in addition to its
// manifest's sandbox.require): a plugin refuses to start when one is
// unavailable, with an error naming it. Names are those of Protections.
func (c HostConfig) WithRequire(protections ...Protection) HostConfig {
	c.require = append(slices.Clip(c.require), protections...)
	return c
}

// WithLimits caps every plugin's limits: each field set in caps bounds the
// manifest's value, which can be lower but never higher. Zero fields leave
// the manifest's value alone.
func (c HostConfig) WithLimits(caps manifest.Limits) HostConfig {
	c.limits = caps
	return c
}

// WithPaths lets plugins see host paths inside their sandbox: a path a
// manifest asks for in sandbox.read_paths (write_paths) is granted when it
// is, or lies beneath, one of read (write). Paths not allowed are left out.
func (c HostConfig) WithPaths(read, write []string) HostConfig {
	c.readPaths, c.writePaths = slices.Clone(read), slices.Clone(write)
	return c
}

func (c HostConfig) validate() error {
	if c.logger == nil {
		return errors.New("airlock: HostConfig.WithLogger(nil): pass a logger, e.g. slog.New(slog.DiscardHandler) to discard logs")
	}
	if c.policy != nil {
		if err := c.policy.Validate(); err != nil {
			return fmt.Errorf("airlock: HostConfig.WithPolicy: %w", err)
		}
	}
	for _, cap := range c.capabilities {
		if cap == nil {
			return errors.New("airlock: HostConfig.WithCapability(nil): pass a Capability")
		}
	}
	for _, r := range c.require {
		if !slices.Contains(Protections(), r) {
			return fmt.Errorf("airlock: HostConfig.WithRequire(%q): unknown protection; use one of %s", r, strings.Join(Protections(), ", "))
		}
	}
	for _, p := range append(slices.Clone(c.readPaths), c.writePaths...) {
		if !filepath.IsAbs(p) || filepath.Clean(p) != p {
			return fmt.Errorf("airlock: HostConfig.WithPaths: %q is not a clean absolute path", p)
		}
	}
	if c.launcher != "" {
		if err := sandbox.CheckLauncher(c.launcher); err != nil {
			return fmt.Errorf("airlock: HostConfig.WithLauncher: %w; build one with `CGO_ENABLED=0 go build -o PATH github.com/airlockhq/airlock/cmd/airlock-launcher`", err)
		}
	}
	if c.maxFrame < wire.MinMaxFrame || c.maxFrame > wire.MaxMaxFrame {
		return fmt.Errorf("airlock: HostConfig.WithMaxFrame(%d): choose a size between %d and %d bytes", c.maxFrame, wire.MinMaxFrame, wire.MaxMaxFrame)
	}
	return nil
}

// Dir returns the folder the plugin was loaded from.
func (p *Plugin) Dir() string {
	if p.sup == nil {
		return ""
	}
	return filepath.Clean(p.sup.Manifest().Dir)
}
