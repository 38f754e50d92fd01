# Airlock's build. Two commands matter to a newcomer:
#   make demo   build the CLI and the example plugins, and run the demo
#   make test   the whole test suite (what CI runs, via .ci/run)

GO       ?= go
# An execution count, not a duration: Go 1.26's fuzz coordinator can fail a
# run with a spurious "context deadline exceeded" when a -fuzztime duration
# ends (golang/go#75804, fixed in Go 1.27); a count has no deadline to race.
FUZZTIME ?= 200000x
# Package patterns whose tests run in `make test`.
PKGS     ?= ./...

# Rust crates: the SDK, its conformance plugin and the example.
RUST_CRATES ?= sdk/rust internal/testing/misbehave-rust examples/wordfreq-rust

.PHONY: all build demo test test-go test-rust test-fuzz check-format vet cross clean

all: build

# A static binary (CGO_ENABLED=0): the CLI is re-executed as the sandbox
# launcher on every plugin start, and a cgo build (dynamically linked,
# because net uses cgo by default) spends ~0.85 ms more starting each one
# in the loader and cgo's runtime start. Nothing in the CLI needs cgo; name
# resolution uses Go's own resolver.
build:
	CGO_ENABLED=0 $(GO) build -o bin/airlock ./cmd/airlock
	CGO_ENABLED=0 $(GO) build -o bin/airlock-launcher ./cmd/airlock-launcher

demo: build
	./bin/airlock demo

test: check-format vet cross test-rust test-go test-fuzz bench-test
	@echo "make test: all passed"

# fmt, clippy (warnings are errors) and tests for each crate, with and
# without default features for the SDK; then the example's release build,
# which `airlock call` and the demo run.
test-rust:
	@for c in $(RUST_CRATES); do \
		echo "== $$c"; \
		(cd $$c && cargo fmt --check && cargo clippy --quiet --all-targets -- -D warnings && cargo test --quiet) || exit 1; \
	done
	cd sdk/rust && cargo clippy --quiet --all-targets --no-default-features -- -D warnings && cargo test --quiet --no-default-features
	cd examples/wordfreq-rust && cargo build --release --quiet

check-format:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# The Go SDK must build for every target a plugin may use; the sandbox
# launcher keeps syscall numbers per architecture, so it is built for one
# with each set (arm64: all wired; riscv64: no seccomp or execveat
# numbers; mips64: offset numbers).
cross:
	GOOS=wasip1 GOARCH=wasm $(GO) build ./sdk/go/plugin
	GOOS=darwin GOARCH=arm64 $(GO) build ./sdk/go/plugin ./manifest
	for a in arm64 riscv64 mips64; do GOOS=linux GOARCH=$$a $(GO) build ./internal/sandbox/... || exit 1; done

test-go:
	$(GO) test -race -count=1 -timeout 15m $(PKGS)

# Short fuzz runs of every decoder that takes untrusted input.
test-fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./internal/wire
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./manifest
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./policy
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/token
	$(GO) test -run '^$$' -fuzz '^FuzzOpen$$' -fuzztime $(FUZZTIME) ./internal/capability

clean:
	rm -rf bin examples/*/bin

# make bench (full, ~3 min), make bench-quick (smoke, <1 min), make bench-test.
include bench/bench.mk
