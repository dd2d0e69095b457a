# The single entry point for building, running and testing offshoot.
#   make run   install prerequisites, build, run `offshoot up` on the default home
#   make test  install prerequisites, then the whole test suite
#   make lint  rustfmt and clippy, as CI runs them
#   make bench the storage micro-benchmarks (criterion)

CARGO ?= cargo
NEXTEST := $(shell $(CARGO) nextest --version >/dev/null 2>&1 && echo yes)

.PHONY: run test deps build lint bench

deps:
	@scripts/install-deps.sh

build:
	$(CARGO) build --release -p offshoot

run: deps build
	./target/release/offshoot up

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test: deps lint
	$(CARGO) build --release -p offshoot
ifeq ($(NEXTEST),yes)
	$(CARGO) nextest run --workspace --release --no-fail-fast
else
	$(CARGO) test --workspace --release --no-fail-fast
endif

bench:
	$(CARGO) bench -p offshoot-storage
