# toystore tasks. Every recipe installs what it needs (idempotently), so on a fresh machine
# `cargo install just && just serve` and `just test` are all it takes.

set shell := ["bash", "-euo", "pipefail", "-c"]

# The wasmtime CLI the stock-runtime test runs against (the newest that builds here).
wasmtime_version := "48.0.8"
components := "-p toystore-frontend -p toystore-catalog -p toystore-order -p toystore-hello"
# Native crates with unit tests, plus the end-to-end suite. `build` compiles them as one set with
# --all-targets, which resolves features exactly as `cargo test` does (dev-dependencies included),
# so the release host (wasmtime, 5-9 min) is compiled once for `serve` and `test` alike.
native := "-p toystore -p toystore-host -p toystore-manifest -p toystore-api -p toystore-client -p toystore-guest -p toystore-catalog -p toystore-frontend -p toystore-order -p toystore-e2e"

# Show the recipes.
default:
    @just --list

# Add the wasm32-wasip2 target if it is missing.
setup:
    rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2

# Install the pinned wasmtime CLI (used by the stock `wasmtime serve` test) unless present.
setup-wasmtime:
    #!/usr/bin/env bash
    set -euo pipefail
    if wasmtime --version 2>/dev/null | grep -q "^wasmtime {{wasmtime_version}}"; then exit 0; fi
    echo "installing wasmtime-cli {{wasmtime_version}} from crates.io (one time, ~6 min)"
    cargo install wasmtime-cli@{{wasmtime_version}} --locked --no-default-features \
        --features serve,run,cranelift,pooling-allocator,parallel-compilation,component-model-async

# Install Chromium and its WebDriver (Debian packages) for the page tests, unless present.
setup-browser:
    #!/usr/bin/env bash
    set -euo pipefail
    if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then exit 0; fi
    echo "installing chromium and chromium-driver (one time)"
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y chromium chromium-driver

# Install iproute2 and iptables (Debian packages) for the network-namespace test
# (tests/tests/netns.rs), unless present. Only as root: without root that test skips itself.
setup-netns:
    #!/usr/bin/env bash
    set -euo pipefail
    if [ "$(id -u)" != 0 ]; then echo "not root: tests/tests/netns.rs will print 'skipped' and pass"; exit 0; fi
    if command -v ip >/dev/null && command -v iptables >/dev/null; then exit 0; fi
    echo "installing iproute2 and iptables (one time)"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y iproute2 iptables

# Three etcd members are the bench's durable-put baseline (`toystore bench --etcd-only`).
# Install Debian's etcd-server unless `etcd` is on PATH.
setup-etcd:
    #!/usr/bin/env bash
    set -euo pipefail
    if command -v etcd >/dev/null; then exit 0; fi
    echo "installing etcd-server (one time)"
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    # Other recipes install packages too (setup-browser, setup-netns): wait for their lock.
    $sudo apt-get -o DPkg::Lock::Timeout=300 update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=300 install -y etcd-server

# The Schemathesis version the OpenAPI test runs (tests/tests/openapi.rs).
schemathesis_version := "4.3.3"
# Its hypothesis-jsonschema breaks on hypothesis releases after this one (`many.more` is gone).
hypothesis_version := "6.140.3"

# Create .venv-schemathesis with the pinned Schemathesis from PyPI unless it is there. Its
# `requests` (a dependency of Schemathesis) also runs the seed's client (tests/tests/seed_client.rs).
setup-schemathesis:
    #!/usr/bin/env bash
    set -euo pipefail
    if .venv-schemathesis/bin/schemathesis --version 2>/dev/null | grep -q " {{schemathesis_version}}$" \
        && .venv-schemathesis/bin/pip show hypothesis 2>/dev/null | grep -qx "Version: {{hypothesis_version}}"; then exit 0; fi
    python3 -m venv .venv-schemathesis
    .venv-schemathesis/bin/pip install --quiet "schemathesis=={{schemathesis_version}}" "hypothesis=={{hypothesis_version}}"

# Regenerate openapi.json (what the frontend embeds and serves) from openapi.yaml.
openapi-json: setup-schemathesis
    .venv-schemathesis/bin/python -c 'import json, yaml; d = yaml.safe_load(open("openapi.yaml")); open("openapi.json", "w").write(json.dumps(d, indent=2) + "\n")'

# Build the components (wasm32-wasip2, `release`): what `build` and `build-dist` both run.
build-components: setup
    cargo build --release --target wasm32-wasip2 {{components}}

# Build the components, and the host and every test binary (`release`), as `just test` runs them.
build: build-components
    cargo build --release --all-targets {{native}}

# Build the components and the `toystore` binary people run, target/dist/toystore: the `dist`
# profile (whole-program LTO, see Cargo.toml), ~9 min the first time on 2 cores.
build-dist: build-components
    cargo build --profile dist -p toystore

# Run the whole store with the manifest (default: toystore.toml); Ctrl-C stops it.
serve manifest="toystore.toml": build-dist
    ./target/dist/toystore serve --manifest {{manifest}}

# Unit tests (native) and end-to-end tests against the real host (the page tests in headless Chromium,
# the multi-machine test in network namespaces when run as root; the bench's etcd cluster test needs etcd).
test: build setup-wasmtime setup-browser setup-schemathesis setup-netns setup-etcd runtime-deps
    cargo test --release {{native}} --no-fail-fast -- --test-threads=2

# Refresh README's screenshots (docs/storefront.png, docs/operations.png) from the page tests.
screenshots: build setup-browser
    TOYSTORE_SCREENSHOTS="$PWD/docs" cargo test --release -p toystore-e2e --test pages -- --test-threads=1

# The seed's evaluation: 5 clients, p = 0..0.8, cache on/off, plus a failure run -> eval/.
eval: build-dist
    ./target/dist/toystore eval --out eval

# Throughput/latency/memory benchmark with ratios against baselines measured in the same run
# (the stock `wasmtime serve` hello, the host's own hello, and a three-member etcd's puts).
bench: build-dist setup-wasmtime setup-etcd
    ./target/dist/toystore bench --out eval/bench.md

# Only orders against a three-member etcd's durable puts, alternating rounds (a few minutes).
bench-etcd: build-dist setup-etcd
    ./target/dist/toystore bench --etcd-only --out eval/bench-etcd.md

# Only the host-speed comparison with the stock `wasmtime serve` (about a third of `bench`).
bench-host-speed: build-dist setup-wasmtime
    ./target/dist/toystore bench --host-speed-only --out eval/bench-host-speed.md

# The runtime (toystore-host) must not link the load client or the bench's plotting, progress-bar
# and histogram crates; only the thin `toystore` binary (cli/) puts the two together.
runtime-deps:
    #!/usr/bin/env bash
    set -euo pipefail
    linked=$(cargo tree -p toystore-host -e normal --prefix none | grep -E '^(toystore-client|plotters|indicatif|hdrhistogram) ' || true)
    if [ -n "$linked" ]; then echo "toystore-host links what it must not:"; echo "$linked" | sort -u; exit 1; fi
    echo "toystore-host does not link the client, plotters, indicatif or hdrhistogram"
