package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/airlockhq/airlock/bench/measure"
	"github.com/airlockhq/airlock/bench/report"
	"github.com/airlockhq/airlock/bench/system"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestRun_EverySystem runs the whole benchmark on every system of the
// catalogue: once per measure with -short (the smoke test `make test` runs),
// the quick configuration otherwise. It fails when a system does not build,
// load, echo or close; it never looks at how fast anything was.
func TestRun_EverySystem(t *testing.T) {
	cfg := measure.Quick()
	if testing.Short() {
		cfg = measure.Smoke()
	}
	bin := t.TempDir()
	// The sandboxed system's plugins run as an unprivileged uid that must
	// reach the binaries (t.TempDir makes 0700 directories).
	for _, d := range []string{filepath.Dir(bin), bin} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	env, err := system.NewEnv(".", bin)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	var logs bytes.Buffer
	res, err := measure.Run(ctx, cfg, env, Catalogue(), slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatalf("run: %v\nlog:\n%s", err, logs.String())
	}

	if len(res.Systems) != len(Catalogue()) {
		t.Fatalf("results list %d systems, the catalogue %d", len(res.Systems), len(Catalogue()))
	}
	for _, s := range res.Systems {
		if s.Absent != "" {
			t.Logf("%s absent: %s", s.Name, s.Absent)
			continue
		}
		checkMeasured(t, res, cfg, s)
	}
	for _, name := range []string{system.Floor, system.FloorMux, system.GoPluginGRPC, system.GoPluginNetRPC} {
		if !present(res, name) {
			t.Errorf("%s did not run; only Airlock systems may be absent", name)
		}
	}

	var md bytes.Buffer
	if err := report.WriteMarkdown(&md, res); err != nil {
		t.Fatal(err)
	}
	for _, s := range res.Present() {
		if !strings.Contains(md.String(), "| "+s.Name+" |") {
			t.Errorf("Markdown report has no row for %s", s.Name)
		}
	}
	var js bytes.Buffer
	if err := report.WriteJSON(&js, res); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Systems []measure.SystemInfo `json:"systems"`
		Targets []report.Target      `json:"targets"`
	}
	if err := json.NewDecoder(io.Reader(&js)).Decode(&doc); err != nil {
		t.Fatalf("JSON results do not decode: %v", err)
	}
	if len(doc.Systems) != len(res.Systems) || len(doc.Targets) == 0 {
		t.Errorf("JSON has %d systems and %d targets, want %d systems and some targets", len(doc.Systems), len(doc.Targets), len(res.Systems))
	}
}

// checkMeasured fails unless every measure holds a result with samples for s.
func checkMeasured(t *testing.T, res *measure.Results, cfg measure.Config, s measure.SystemInfo) {
	t.Helper()
	for _, plan := range cfg.Sequential {
		x, ok := res.SequentialOf(s.Name, plan.Size)
		if !ok || x.Latency.N != plan.Calls || x.Latency.P50 <= 0 {
			t.Errorf("%s: sequential %d B: got %+v, want %d timed calls", s.Name, plan.Size, x.Latency, plan.Calls)
		}
	}
	if s.Concurrent {
		for _, size := range cfg.Throughput.Sizes {
			for _, callers := range cfg.Throughput.Callers {
				x, ok := res.ThroughputOf(s.Name, size, callers)
				if !ok || x.Calls == 0 {
					t.Errorf("%s: throughput %d B × %d callers: no calls completed", s.Name, size, callers)
				}
			}
		}
	}
	if x, ok := res.ColdStartOf(s.Name); !ok || x.Latency.N != cfg.ColdStart.Runs {
		t.Errorf("%s: cold start: got %+v, want %d runs", s.Name, x.Latency, cfg.ColdStart.Runs)
	}
	if x, ok := res.IdleRSSOf(s.Name); !ok || x.MedianVmRSSKiB <= 0 {
		t.Errorf("%s: idle RSS: got %+v, want a positive VmRSS", s.Name, x)
	}
	found := false
	for _, h := range res.HostMemory {
		found = found || (h.System == s.Name && h.Plugins == cfg.HostMemory.Plugins)
	}
	if !found {
		t.Errorf("%s: no host memory result for %d plugins", s.Name, cfg.HostMemory.Plugins)
	}
	for _, others := range cfg.Scaling.Others {
		if x, ok := res.ScalingOf(s.Name, others); !ok || x.Latency.N != cfg.Scaling.Calls {
			t.Errorf("%s: scaling with %d others: got %+v, want %d bystander calls", s.Name, others, x.Latency, cfg.Scaling.Calls)
		}
	}
}

func present(res *measure.Results, name string) bool {
	for _, s := range res.Present() {
		if s.Name == name {
			return true
		}
	}
	return false
}

// TestCatalogue_NamesAreUniqueAndFloorsFirst keeps the report's assumptions
// true: names are unique and the floors come before the systems divided by
// them.
func TestCatalogue_NamesAreUniqueAndFloorsFirst(t *testing.T) {
	seen := map[string]bool{}
	pastFloors := false
	for _, s := range Catalogue() {
		if seen[s.Name] {
			t.Errorf("system %q listed twice", s.Name)
		}
		seen[s.Name] = true
		if s.Role != system.RoleFloor {
			pastFloors = true
		} else if pastFloors {
			t.Errorf("floor %q listed after a non-floor system", s.Name)
		}
		if s.New == nil {
			t.Errorf("system %q has no constructor", s.Name)
		}
	}
	for _, name := range []string{system.Floor, system.FloorMux, system.GoPluginGRPC} {
		if !seen[name] {
			t.Errorf("catalogue lacks %q, which the targets divide by", name)
		}
	}
}
