package airlock

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"

	"github.com/airlockhq/airlock/internal/supervisor"
	"github.com/airlockhq/airlock/internal/wire"
	"github.com/airlockhq/airlock/manifest"
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

	mu      sync.Mutex
	plugins map[string]*Plugin
	closed  bool
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
	return &Host{
		cfg:     cfg,
		log:     cfg.logger,
		digests: supervisor.NewDigestCache(),
		plugins: map[string]*Plugin{},
	}, nil
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

	sup, err := supervisor.Start(ctx, supervisor.Config{
		Manifest: m,
		Logger:   h.log.With("plugin", m.Name),
		Host:     "airlock/" + Version,
		MaxFrame: h.cfg.maxFrame,
		Versions: h.cfg.versions,
		Digests:  h.digests,
	})
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
	p.sup = sup
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
	h.closed = true
	h.mu.Unlock()
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
	logger   *slog.Logger
	maxFrame int
	versions wire.VersionRange // the protocol versions offered; tests narrow it
}

// NewHostConfig returns the default configuration: logs to slog.Default(),
// frames up to 4 MiB + 4 KiB.
func NewHostConfig() HostConfig {
	return HostConfig{logger: slog.Default(), maxFrame: wire.DefaultMaxFrame, versions: wire.Supported}
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

func (c HostConfig) validate() error {
	if c.logger == nil {
		return errors.New("airlock: HostConfig.WithLogger(nil): pass a logger, e.g. slog.New(slog.DiscardHandler) to discard logs")
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
