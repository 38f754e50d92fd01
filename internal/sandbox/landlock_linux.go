package sandbox

import (
	"fmt"

	"github.com/airlockhq/airlock/internal/sandbox/launcher"
)

// landlockAvailable reports whether Landlock can be used, for Probe.
func landlockAvailable() Mechanism {
	m := Mechanism{Name: Landlock}
	abi, err := launcher.LandlockABI()
	if err != nil {
		m.Reason = err.Error()
		return m
	}
	m.Available = true
	m.Detail = fmt.Sprintf("ABI %d", abi)
	if abi < 4 {
		m.Detail += " (no TCP rules: Linux 6.7+ adds them)"
	}
	return m
}
