#!/usr/bin/env bash
# Benchmarks of the plugin boundary (criterion). Figures: docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release -p tfo-fixture-bench-sink
cargo bench -p tfo-agent --bench plugin_boundary -- "$@"
