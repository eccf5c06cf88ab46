#!/usr/bin/env bash
# Builds the agent and every plugin in release, stages the plugins in one directory
# (target/plugins, installed with write-then-rename as an operator would), and runs
# the agent with the shipped config. Extra arguments go to `tfo-agent run`.
# A plugin that fails to build (e.g. ebpf without clang/bpftool) is skipped with a
# message; the agent runs with the others.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release -p tfo-agent
stage="$CARGO_TARGET_DIR/plugins"
mkdir -p "$stage"
chmod 755 "$stage"
for m in plugins/*/Cargo.toml sdk-examples/*/Cargo.toml; do
  [ "$(basename "$(dirname "$m")")" = common ] && continue
  lib=$(sed -n 's/^name = "\(tfo_[a-z0-9_]*\)"$/\1/p' "$m" | head -n 1)
  [ -n "$lib" ] || continue
  if cargo build --release --manifest-path "$m"; then
    so="$CARGO_TARGET_DIR/release/lib$lib.so"
    install -m 0644 "$so" "$stage/lib$lib.so.tmp"
    mv -f "$stage/lib$lib.so.tmp" "$stage/lib$lib.so"
  else
    echo "== skipped $(dirname "$m"): it did not build (see above); the agent runs without it" >&2
  fi
done
echo "== plugins staged in $stage:"
"$CARGO_TARGET_DIR/release/tfo-agent" plugins list --dir "$stage" || true
exec "$CARGO_TARGET_DIR/release/tfo-agent" run --config configs/tfo-agent.yaml "$@"
