#!/usr/bin/env bash
# Builds the agent and every plugin in release, stages the plugins in one directory
# (target/plugins, installed with write-then-rename as an operator would), and runs
# the agent with the shipped config. Extra arguments go to `tfo-agent run`.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release -p tfo-agent
plugins=()
for m in plugins/*/Cargo.toml sdk-examples/*/Cargo.toml; do
  [ -f "$m" ] || continue
  [ "$(basename "$(dirname "$m")")" = common ] && continue
  cargo build --release --manifest-path "$m"
done
stage="$CARGO_TARGET_DIR/plugins"
mkdir -p "$stage"
chmod 755 "$stage"
for so in "$CARGO_TARGET_DIR"/release/libtfo_*.so; do
  name=$(basename "$so")
  case "$name" in libtfo_counting_sink*|libtfo_panicking_sink*|libtfo_slow_shutdown_sink*|libtfo_failing_init*|libtfo_incompatible_abi*|libtfo_bench_sink*|libtfo_ticker_source*) continue ;; esac
  install -m 0644 "$so" "$stage/$name.tmp"
  mv -f "$stage/$name.tmp" "$stage/$name"
done
echo "== plugins staged in $stage:"
"$CARGO_TARGET_DIR/release/tfo-agent" plugins list --dir "$stage" || true
exec "$CARGO_TARGET_DIR/release/tfo-agent" run --config configs/tfo-agent.yaml "$@"
