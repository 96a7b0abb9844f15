# The two commands that matter: `make demo` and `make test` (see README.md).

TARGET   := x86_64-unknown-linux-gnu
# Plugins are exec'd once per container: static linking saves the dynamic loader's work.
RELEASE_FLAGS := -C target-feature=+crt-static
BIN_DIR  := target/$(TARGET)/release
DEBUG_DIR := target/debug

.PHONY: all build deps demo test test-vm lint conformance bench clean

all: build

deps:
	scripts/deps.sh

## Static, size-optimised release binaries of every plugin and tool in $(BIN_DIR).
build:
	RUSTFLAGS="$(RELEASE_FLAGS)" cargo build --release --workspace --target $(TARGET)

## Build, then run the plugins the way a runtime does in a fresh namespace.
demo: deps build
	scripts/demo.sh $(BIN_DIR)

## The whole test suite: lint, unit and integration tests (the conformance suite runs
## inside them, over our plugins and over Debian's reference plugins).
test: deps lint
	cargo build --workspace --bins
	cargo test --workspace --no-fail-fast
	$(MAKE) test-vm

## Tests that need kernel features this machine lacks (bridge VLAN filtering),
## in Debian's kernel under qemu (TCG; about a minute).
test-vm:
	plugins/main/bridge/tests/vm/vlan.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

## Just the conformance suite, verbosely: ours, then Debian's reference plugins if installed.
conformance:
	cargo build --workspace --bins
	$(DEBUG_DIR)/conformance --plugins $(DEBUG_DIR)
	if [ -x /usr/lib/cni/host-local ]; then $(DEBUG_DIR)/conformance --plugins /usr/lib/cni --reference; fi

## Ours against Debian's reference plugins, back to back: medians, ratios, sizes, RSS.
bench: deps build
	$(BIN_DIR)/bench --ours $(BIN_DIR) --reference /usr/lib/cni

clean:
	cargo clean
