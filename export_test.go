package airlock

import (
	"context"
	"net/netip"
	"time"

	"github.com/airlockhq/airlock/internal/wire"
)

// WithProtocolVersions makes a host offer only versions min..max, so tests
// can play a host newer than the plugin.
func WithProtocolVersions(c HostConfig, min, max uint16) HostConfig {
	c.versions = wire.VersionRange{Min: min, Max: max}
	return c
}

// WithResolver makes the http capability resolve host names with lookup
// instead of the system resolver, so tests can point names anywhere.
func WithResolver(c HostConfig, lookup func(ctx context.Context, host string) ([]netip.Addr, error)) HostConfig {
	c.resolver = resolverFunc(lookup)
	return c
}

type resolverFunc func(ctx context.Context, host string) ([]netip.Addr, error)

func (f resolverFunc) LookupNetIP(ctx context.Context, _, host string) ([]netip.Addr, error) {
	return f(ctx, host)
}

// WithTokenTTL shortens capability tokens' lifetime so tests see them
// refreshed.
func WithTokenTTL(c HostConfig, ttl time.Duration) HostConfig {
	c.tokenTTL = ttl
	return c
}
