package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"

	"github.com/airlockhq/airlock/internal/sandbox/launcher"

	"github.com/airlockhq/airlock/internal/sandbox/cgroup"
)

// Probe reports what this machine offers, for `airlock doctor` and status
// pages: every protection, available or not, and why. Unlike Prepare's
// quick checks it tries each mechanism for real: it creates and removes a
// test cgroup, and starts the launcher once in probe mode, in every
// namespace, where it builds the mount tree and applies Landlock, seccomp,
// no_new_privs and rlimits to itself, reports, and exits. It takes a few
// milliseconds; call it at start-up or on demand, not per plugin.
func Probe(ctx context.Context) Report {
	const parent = "airlock"
	m := detectMachine(parent)
	probeCgroups(ctx, &m, parent)
	tried, err := trialLaunch(ctx, m)
	if err != nil {
		// The clone itself may be what fails (a seccomp profile or an LSM
		// refusing namespaces): say so, and try again without them to check
		// the rest.
		for _, ns := range []string{UserNS, PidNS, NetNS, MountNS, IPCNS, UTSNS} {
			setUnavailable(&m.report, ns, "trial launch in the namespaces failed: "+err.Error())
		}
		tried, err = trialLaunch(ctx, m)
	}
	if err != nil {
		for _, name := range []string{Landlock, Seccomp, NoNewPrivs, Rlimits} {
			setUnavailable(&m.report, name, "trial launch failed: "+err.Error())
		}
		return m.report
	}
	for i, mech := range m.report.Mechanisms {
		switch mech.Name {
		case CgroupMemory, CgroupPids, CgroupCPU, CgroupKill:
			continue
		}
		if !mech.Available {
			continue
		}
		st := tried.Get(mech.Name)
		if !st.Available {
			m.report.Mechanisms[i].Available = false
			m.report.Mechanisms[i].Reason = "trial launch: " + st.Reason
		}
		if st.Detail != "" {
			m.report.Mechanisms[i].Detail = st.Detail
		}
	}
	return m.report
}

func setUnavailable(r *Report, name, reason string) {
	for i := range r.Mechanisms {
		if r.Mechanisms[i].Name == name && r.Mechanisms[i].Available {
			r.Mechanisms[i].Available = false
			r.Mechanisms[i].Reason = reason
		}
	}
}

// trialLaunch runs the launcher in probe mode with everything m offers and
// returns what it managed.
func trialLaunch(ctx context.Context, m machine) (Report, error) {
	spec := Spec{Name: "probe", Instance: "probe", Dir: "/", Program: "probe"}.withDefaults()
	cmd := exec.Command("/proc/self/exe")
	s, err := prepare(ctx, cmd, spec, nil, launcher.ModeProbe, m)
	if err != nil {
		return Report{}, err
	}
	if err := cmd.Start(); err != nil {
		s.release()
		return Report{}, err
	}
	serr := s.Started()
	werr := cmd.Wait()
	cerr := s.Close()
	if serr != nil {
		return Report{}, serr
	}
	if werr != nil {
		return Report{}, fmt.Errorf("the probe launcher failed: %w", werr)
	}
	if cerr != nil {
		return Report{}, cerr
	}
	return s.Status(), nil
}

// probeCgroups creates and removes a test group to confirm each
// controller can really be written.
func probeCgroups(ctx context.Context, m *machine, parent string) {
	if m.cgErr != nil {
		return
	}
	token := make([]byte, 4)
	_, _ = rand.Read(token)
	name := cgroup.Name("probe", "doctor", os.Getpid(), hex.EncodeToString(token))
	g, err := cgroup.Create(m.cg, parent, name, cgroup.Limits{Memory: DefaultMemory, CPU: DefaultCPU, Tasks: DefaultTasks})
	if err != nil {
		for _, n := range []string{CgroupMemory, CgroupPids, CgroupCPU, CgroupKill} {
			setUnavailable(&m.report, n, err.Error())
		}
		return
	}
	defer g.Remove(ctx)
	for _, c := range []struct{ name, ctl string }{
		{CgroupMemory, cgroup.Memory}, {CgroupPids, cgroup.Pids}, {CgroupCPU, cgroup.CPU},
	} {
		if ok, _ := g.Limited(c.ctl); !ok {
			setUnavailable(&m.report, c.name, g.Missing()[c.ctl])
		}
	}
	if g.KillMethod() == "" {
		setUnavailable(&m.report, CgroupKill, g.Missing()["kill"])
	} else {
		for i := range m.report.Mechanisms {
			if m.report.Mechanisms[i].Name == CgroupKill {
				m.report.Mechanisms[i].Detail = g.KillMethod()
			}
		}
	}
}
