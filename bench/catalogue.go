// Package bench is Airlock's performance benchmark: it measures Airlock's
// process tier side by side with a raw socketpair echo (the floor) and with
// hashicorp/go-plugin, in one run with interleaved turns, and reports each
// number as a ratio to the floor measured in that same run.
//
// The module is separate from Airlock's so that comparison-only dependencies
// (go-plugin, gRPC) never reach Airlock's users. Run it with `make bench` or
// `make bench-quick` from the repository root; docs/performance.md describes
// the method.
//
// Layout:
//
//	system/            the System and Plugin interfaces every system implements
//	system/floor/      floor and floor-mux: socketpair + length prefix + echo
//	system/goplugin/   go-plugin gRPC and net/rpc (comparison)
//	system/airlocksys/ airlock-go, airlock-rust, airlock-go-sandboxed (to wire)
//	plugins/           the plugin programs those systems start
//	measure/           the measures and the interleaved runner
//	report/            targets, the Markdown table and the JSON results
//	cmd/airlock-bench/ the command behind make bench
package bench

import (
	"github.com/airlockhq/airlock/bench/system"
	"github.com/airlockhq/airlock/bench/system/airlocksys"
	"github.com/airlockhq/airlock/bench/system/floor"
	"github.com/airlockhq/airlock/bench/system/goplugin"
)

// Catalogue lists every system the benchmark knows, floors first. A system
// that cannot run yet is still listed; the run reports it as absent.
func Catalogue() []system.Spec {
	var specs []system.Spec
	specs = append(specs, floor.Specs()...)
	specs = append(specs, goplugin.Specs()...)
	specs = append(specs, airlocksys.Specs()...)
	return specs
}
