//go:build !linux

package sandbox

import (
	"context"
	"errors"
	"log/slog"
	"os/exec"
)

// Events are the envelope events of a plugin (always zero here).
type Events struct {
	OOMKills, PidsMax, CPUThrottled, MemoryPeak, TreeKills int64
}

// Sandbox is unavailable outside Linux.
type Sandbox struct{}

// IDPool is unavailable outside Linux.
type IDPool struct{}

// Close does nothing.
func (p *IDPool) Close() error { return nil }

// Machine is unavailable outside Linux.
type Machine struct{}

// DetectMachine reports nothing available.
func DetectMachine(cgroupParent string) *Machine { return &Machine{} }

// Report lists every protection as unavailable.
func (m *Machine) Report() Report { return Probe(context.Background()) }

// NewIDPool fails outside Linux.
func NewIDPool(first, count uint32, lockDir string) (*IDPool, error) {
	return nil, errors.New("new uid pool: plugin uids are Linux-only")
}

const reason = "the process sandbox is Linux-only"

// Prepare applies nothing outside Linux. It fails if spec requires any
// protection, and otherwise leaves cmd as it is: the plugin runs
// uncontained, and Applied says so.
func Prepare(ctx context.Context, cmd *exec.Cmd, spec Spec, logger *slog.Logger) (*Sandbox, error) {
	if err := checkRequire(spec.Require, Probe(ctx)); err != nil {
		return nil, err
	}
	if logger != nil {
		logger.Warn("sandbox: " + reason + "; the plugin runs uncontained")
	}
	return &Sandbox{}, nil
}

func (s *Sandbox) Started() error    { return nil }
func (s *Sandbox) Applied() []string { return nil }
func (s *Sandbox) Kill() error       { return nil }
func (s *Sandbox) Events() Events    { return Events{} }
func (s *Sandbox) Close() error      { return nil }
func (s *Sandbox) UID() int          { return -1 }

// Status reports every protection as missing.
func (s *Sandbox) Status() Report { return Probe(context.Background()) }

// Probe reports every protection as unavailable.
func Probe(ctx context.Context) Report {
	var r Report
	for _, name := range Protections() {
		r.Mechanisms = append(r.Mechanisms, Mechanism{Name: name, Reason: reason})
	}
	return r
}

// SealInheritedFDs does nothing outside Linux.
func SealInheritedFDs() error { return nil }
