package report

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/airlockhq/airlock/bench/measure"
	"github.com/airlockhq/airlock/bench/system"
)

// Document is what the JSON file holds: the measurements and the verdicts.
type Document struct {
	*measure.Results
	Targets []Target `json:"targets"`
}

// WriteJSON writes the run's results and its evaluated targets as indented
// JSON.
func WriteJSON(w io.Writer, r *measure.Results) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(Document{Results: r, Targets: Evaluate(r)})
}

// WriteMarkdown writes the run as Markdown: a header saying where and how it
// ran, one table per measure with ratios to the floor, and the targets.
func WriteMarkdown(w io.Writer, r *measure.Results) error {
	md := &mdWriter{w: w}
	md.header(r)
	md.sequential(r)
	md.throughput(r)
	md.coldStart(r)
	md.memory(r)
	md.scaling(r)
	md.targets(r)
	return md.err
}

type mdWriter struct {
	w   io.Writer
	err error
}

func (m *mdWriter) printf(format string, args ...any) {
	if m.err == nil {
		_, m.err = fmt.Fprintf(m.w, format, args...)
	}
}

// table writes a Markdown table; align holds "l" or "r" per column.
func (m *mdWriter) table(head []string, align string, rows [][]string) {
	m.printf("| %s |\n|", strings.Join(head, " | "))
	for i := range head {
		if i < len(align) && align[i] == 'r' {
			m.printf(" ---: |")
		} else {
			m.printf(" --- |")
		}
	}
	m.printf("\n")
	for _, row := range rows {
		m.printf("| %s |\n", strings.Join(row, " | "))
	}
	m.printf("\n")
}

func (m *mdWriter) header(r *measure.Results) {
	mc := r.Machine
	m.printf("## Benchmark run: %s mode, %s\n\n", r.Mode, r.Started.Format("2006-01-02 15:04 MST"))
	if r.Mode != "full" {
		m.printf("> A %s run shows that every system runs; its numbers are not for comparison.\n\n", r.Mode)
	}
	m.printf("Machine: %s, %d CPUs (GOMAXPROCS %d), %.1f GiB, Linux %s, %s, %s/%s",
		mc.CPUModel, mc.NumCPU, mc.GOMAXPROCS, float64(mc.MemTotalKiB)/(1<<20), mc.Kernel, mc.GoVersion, mc.OS, mc.Arch)
	if mc.Virtualized != "" {
		m.printf(", virtualised")
	}
	m.printf(". Run took %s.\n\n", r.Elapsed.Round(time.Second))
	var present, absent []string
	for _, s := range r.Systems {
		if s.Absent != "" {
			absent = append(absent, fmt.Sprintf("`%s`", s.Name))
		} else {
			present = append(present, fmt.Sprintf("`%s` (%s)", s.Name, s.Role))
		}
	}
	m.printf("Systems: %s.", strings.Join(present, ", "))
	if len(absent) > 0 {
		m.printf(" Absent (not wired yet, no numbers): %s.", strings.Join(absent, ", "))
	}
	m.printf(" Ratios are to `floor` (`floor-mux` for throughput) measured in this run.\n\n")
}

func (m *mdWriter) sequential(r *measure.Results) {
	if len(r.Sequential) == 0 {
		return
	}
	m.printf("### Sequential round trip (one caller)\n\n")
	var rows [][]string
	for _, x := range r.Sequential {
		ref, ok := r.SequentialOf(system.Floor, x.Size)
		rows = append(rows, []string{
			sizeName(x.Size), x.System,
			dur(x.Latency.P50), ratio(float64(x.Latency.P50), float64(ref.Latency.P50), ok && x.System != system.Floor),
			dur(x.Latency.P99), ratio(float64(x.Latency.P99), float64(ref.Latency.P99), ok && x.System != system.Floor),
			fmt.Sprintf("%.1f", x.AllocsPerCall), bytesIEC(x.BytesPerCall),
		})
	}
	m.table([]string{"payload", "system", "p50", "p50 ÷ floor", "p99", "p99 ÷ floor", "host allocs/call", "host bytes/call"}, "llrrrrrr", rows)
}

func (m *mdWriter) throughput(r *measure.Results) {
	if len(r.Throughput) == 0 {
		return
	}
	m.printf("### Throughput on one plugin (concurrent callers)\n\n")
	var rows [][]string
	for _, x := range r.Throughput {
		ref, ok := r.ThroughputOf(system.FloorMux, x.Size, x.Callers)
		rows = append(rows, []string{
			sizeName(x.Size), fmt.Sprint(x.Callers), x.System,
			fmt.Sprintf("%.0f", x.PerSecond),
			ratio(x.PerSecond, ref.PerSecond, ok && x.System != system.FloorMux),
		})
	}
	m.table([]string{"payload", "callers", "system", "calls/s", "÷ floor-mux"}, "lrlrr", rows)
}

func (m *mdWriter) coldStart(r *measure.Results) {
	if len(r.ColdStart) == 0 {
		return
	}
	m.printf("### Cold start (load → first 64 B reply)\n\n")
	ref, ok := r.ColdStartOf(system.Floor)
	var rows [][]string
	for _, x := range r.ColdStart {
		rows = append(rows, []string{
			x.System, fmt.Sprint(x.Latency.N), dur(x.Latency.P50), dur(x.Latency.P90),
			ratio(float64(x.Latency.P50), float64(ref.Latency.P50), ok && x.System != system.Floor),
		})
	}
	m.table([]string{"system", "runs", "p50", "p90", "p50 ÷ floor"}, "lrrrr", rows)
}

func (m *mdWriter) memory(r *measure.Results) {
	if len(r.IdleRSS) == 0 && len(r.HostMemory) == 0 {
		return
	}
	m.printf("### Memory\n\n")
	ref, ok := r.IdleRSSOf(system.Floor)
	var rows [][]string
	for _, x := range r.IdleRSS {
		row := []string{
			x.System, kib(x.MedianVmRSSKiB), kib(x.MedianAnonKiB),
			ratio(float64(x.MedianVmRSSKiB), float64(ref.MedianVmRSSKiB), ok && x.System != system.Floor),
			"", "", "",
		}
		for _, h := range r.HostMemory {
			if h.System == x.System {
				row[4], row[5], row[6] = bytesIEC(h.HeapBytesPerPlugin), bytesIEC(h.RSSBytesPerPlugin), fmt.Sprintf("%.1f", h.GoroutinesPerPlugin)
			}
		}
		rows = append(rows, row)
	}
	m.table([]string{"system", "idle plugin VmRSS", "of which anonymous", "VmRSS ÷ floor", "host heap/plugin", "host RSS/plugin", "host goroutines/plugin"}, "lrrrrrr", rows)
}

func (m *mdWriter) scaling(r *measure.Results) {
	if len(r.Scaling) == 0 {
		return
	}
	m.printf("### Scaling: a bystander's 64 B round trip while other plugins are busy (%.0f calls/s each)\n\n", r.Config.Scaling.BusyRate)
	var rows [][]string
	for _, x := range r.Scaling {
		ref, ok := r.ScalingOf(system.Floor, x.Others)
		rows = append(rows, []string{
			fmt.Sprint(x.Others), x.System, dur(x.Latency.P50), dur(x.Latency.P99),
			ratio(float64(x.Latency.P99), float64(ref.Latency.P99), ok && x.System != system.Floor),
			fmt.Sprintf("%.0f", x.BusyOffered), fmt.Sprintf("%.0f%%", 100*x.BusyKeptUp),
		})
	}
	m.table([]string{"others busy", "system", "p50", "p99", "p99 ÷ floor", "busy calls/s offered", "busy calls made when due"}, "rlrrrrr", rows)
}

func (m *mdWriter) targets(r *measure.Results) {
	ts := Evaluate(r)
	if len(ts) == 0 {
		return
	}
	var systems []string
	seen := map[string]bool{}
	cells := map[string]map[string]string{}
	var order []Target
	for _, t := range ts {
		if !seen[t.System] {
			seen[t.System] = true
			systems = append(systems, t.System)
		}
		if cells[t.ID] == nil {
			cells[t.ID] = map[string]string{}
			order = append(order, t)
		}
		cells[t.ID][t.System] = cell(t)
	}
	m.printf("### Targets (issue 6)\n\n")
	m.printf("Only Airlock systems are held to these; go-plugin columns show how far the incumbent is from the bar.\n\n")
	head := append([]string{"target"}, systems...)
	var rows [][]string
	for _, t := range order {
		row := []string{t.Text}
		for _, s := range systems {
			row = append(row, cells[t.ID][s])
		}
		rows = append(rows, row)
	}
	m.table(head, "l"+strings.Repeat("r", len(systems)), rows)
}

func cell(t Target) string {
	switch t.Status {
	case Met, Missed:
		return fmt.Sprintf("%.2f× %s", t.Ratio, t.Status)
	default:
		return string(t.Status)
	}
}

// dur prints a latency in µs below 1 ms, in ms above.
func dur(d time.Duration) string {
	if d < time.Millisecond {
		return fmt.Sprintf("%.1f µs", float64(d)/float64(time.Microsecond))
	}
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

func ratio(x, ref float64, show bool) string {
	if !show || ref == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f×", x/ref)
}

func kib(k int64) string { return fmt.Sprintf("%.1f MiB", float64(k)/1024) }

func bytesIEC(b float64) string {
	switch {
	case b >= 1<<20 || b <= -(1<<20):
		return fmt.Sprintf("%.1f MiB", b/(1<<20))
	case b >= 1<<10 || b <= -(1<<10):
		return fmt.Sprintf("%.1f KiB", b/(1<<10))
	default:
		return fmt.Sprintf("%.0f B", b)
	}
}
