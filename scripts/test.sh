#!/usr/bin/env bash
# The one test command (README, CI): installs what the tests need on a fresh Debian
# machine, builds every plugin the tests load, then runs lints and every test.
#   scripts/test.sh            everything (well under 40 minutes on 2 cores)
#   TFO_SKIP_LINT=1 scripts/test.sh   skip fmt/clippy (quicker local loop)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# --- what the tests need (Debian and PyPI packages) -------------------------------
scripts/services.sh install

# In CI every service-backed test must run: a missing program is a failure there.
if [ -n "${CI:-}" ]; then
  export TFO_REQUIRE_SERVICES=1
fi

# --- build ---------------------------------------------------------------------------
echo "== building the workspace and every test plugin"
scripts/build-fixtures.sh

# --- lint ----------------------------------------------------------------------------
if [ -z "${TFO_SKIP_LINT:-}" ]; then
  echo "== cargo fmt --check"
  cargo fmt --all -- --check
  cargo fmt --manifest-path sdk-examples/file-exporter/Cargo.toml -- --check
  cargo fmt --manifest-path sdk-examples/http-poller/Cargo.toml -- --check
  cargo fmt --manifest-path sdk-examples/http-poller/guide/Cargo.toml -- --check
  echo "== cargo clippy -D warnings"
  cargo clippy --workspace --all-targets -- -D warnings
  cargo clippy --manifest-path sdk-examples/file-exporter/Cargo.toml --all-targets -- -D warnings
  cargo clippy --manifest-path sdk-examples/http-poller/Cargo.toml --all-targets -- -D warnings
  cargo clippy --manifest-path sdk-examples/http-poller/guide/Cargo.toml --all-targets -- -D warnings
fi

# --- tests ---------------------------------------------------------------------------
log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "== tests: workspace"
cargo test --workspace --no-fail-fast 2>&1 | tee -a "$log"
echo "== tests: sdk-examples/file-exporter (built as a vendor builds it)"
cargo test --manifest-path sdk-examples/file-exporter/Cargo.toml 2>&1 | tee -a "$log"
echo "== tests: sdk-examples/http-poller and its guide example (built as a vendor builds them)"
cargo test --manifest-path sdk-examples/http-poller/Cargo.toml 2>&1 | tee -a "$log"
cargo test --manifest-path sdk-examples/http-poller/guide/Cargo.toml 2>&1 | tee -a "$log"
echo "== tests: packaging (scripts/package.sh on the debug build, checked)"
scripts/check-package.sh 2>&1 | tee -a "$log"
echo "== tests: Windows build (x86_64-pc-windows-gnu) under wine"
scripts/windows-check.sh 2>&1 | tee -a "$log"
echo "== fuzzing: ${TFO_FUZZ_SECONDS:-20} s per target (scripts/fuzz.sh; longer locally)"
scripts/fuzz.sh "${TFO_FUZZ_SECONDS:-20}" 2>&1 | tee -a "$log"
# One closing line over every test binary (pipefail already stopped on a failure).
read -r passed failed < <(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } } END { print p + 0, f + 0 }' "$log")
echo
echo "all tests: $passed passed, $failed failed"
