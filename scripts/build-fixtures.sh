#!/usr/bin/env bash
# Builds every plugin the tests load: the workspace fixtures and plugins, plus the
# crates kept outside the workspace (the vendor SDK example and the ABI-break fixture,
# which must not share the workspace's feature resolution). All go to one target dir.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
profile_flag=()
[ "${1:-}" = "--release" ] && profile_flag=(--release)
cargo build --workspace "${profile_flag[@]}"
for m in fixtures/incompatible-abi fixtures/abi-prev-minor fixtures/abi-next-major sdk-examples/file-exporter sdk-examples/http-poller sdk-examples/http-poller/guide; do
  cargo build --manifest-path "$m/Cargo.toml" "${profile_flag[@]}"
done
