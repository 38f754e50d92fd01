# Benchmark targets, included from the top-level Makefile (include bench/bench.mk).
# Paths are relative to the repository root. The bench module is separate
# from Airlock's (go-plugin and gRPC are comparison-only dependencies), so
# every target runs the go command inside bench/.

BENCH_DIR ?= bench

.PHONY: bench bench-quick bench-test

# Full run: every system, interleaved; about 3 minutes on 2 cores.
# Prints the Markdown report; raw results go to bench/results/latest.json.
bench:
	cd $(BENCH_DIR) && go run ./cmd/airlock-bench -mode full -json results/latest.json -md results/latest.md

# Smoke run of every measure (under a minute); numbers are not for comparison.
bench-quick:
	cd $(BENCH_DIR) && go run ./cmd/airlock-bench -mode quick -json results/quick.json -md results/quick.md

# The bench module's tests: -short runs every system once per measure and
# fails if one does not build or run (never on timings). For `make test`.
bench-test:
	cd $(BENCH_DIR) && go vet ./... && go test -short -count=1 ./...
