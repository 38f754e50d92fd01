package airlock

import "github.com/airlockhq/airlock/internal/wire"

// WithProtocolVersions makes a host offer only versions min..max, so tests
// can play a host newer than the plugin.
func WithProtocolVersions(c HostConfig, min, max uint16) HostConfig {
	c.versions = wire.VersionRange{Min: min, Max: max}
	return c
}
