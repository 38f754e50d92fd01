package wire

import "fmt"

// The protocol versions this package speaks. A version is a single number;
// each side states a range and the highest version in both ranges wins.
const (
	MinVersion uint16 = 1
	MaxVersion uint16 = 1
)

// Supported is the range this package speaks.
var Supported = VersionRange{Min: MinVersion, Max: MaxVersion}

// VersionRange is an inclusive range of protocol versions.
type VersionRange struct {
	Min, Max uint16
}

func (r VersionRange) String() string {
	if r.Min == r.Max {
		return fmt.Sprintf("v%d", r.Min)
	}
	return fmt.Sprintf("v%d–v%d", r.Min, r.Max)
}

// Valid reports whether the range is non-empty and does not include the
// never-used version 0.
func (r VersionRange) Valid() bool { return r.Min >= 1 && r.Min <= r.Max }

// Contains reports whether v lies in r.
func (r VersionRange) Contains(v uint16) bool { return r.Min <= v && v <= r.Max }

// VersionError reports that two ranges have no version in common.
type VersionError struct {
	Host, Plugin VersionRange
}

func (e *VersionError) Error() string {
	hint := "upgrade the plugin's SDK"
	if e.Plugin.Min > e.Host.Max {
		hint = "upgrade Airlock, or rebuild the plugin with an SDK that still speaks " + e.Host.String()
	}
	return fmt.Sprintf("no common protocol version: host speaks %v, plugin speaks %v (%s)", e.Host, e.Plugin, hint)
}

// Negotiate returns the highest version both ranges contain, or a
// *VersionError naming both ranges.
func Negotiate(host, plugin VersionRange) (uint16, error) {
	if !host.Valid() || !plugin.Valid() {
		return 0, &VersionError{Host: host, Plugin: plugin}
	}
	v := min(host.Max, plugin.Max)
	if v < host.Min || v < plugin.Min {
		return 0, &VersionError{Host: host, Plugin: plugin}
	}
	return v, nil
}
