#!/usr/bin/env bash
# The one test command (README, CI): installs what the tests need on a fresh Debian
# machine, builds every plugin the tests load, then runs lints and every test.
#   scripts/test.sh            everything (well under 40 minutes on 2 cores)
#   TFO_SKIP_LINT=1 scripts/test.sh   skip fmt/clippy (quicker local loop)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# --- what the tests need -----------------------------------------------------------
# Debian: zlib1g (a real foreign shared library for the "not a plugin" tests),
# prometheus + promtool (the prometheus plugin is verified against the real server),
# mosquitto + mosquitto-clients (the MQTT plugin: broker, mosquitto_sub/_pub/_passwd),
# snmpd + snmp (the SNMP plugin is compared with snmpwalk), clang/llvm/libbpf-dev/
# bpftool (the eBPF plugin's build compiles its C programs), python3-venv (snmpsim).
# PyPI: the official OpenTelemetry Python SDK and protos (they send to the OTLP
# receiver and decode what the OTLP exporter sends, independently of our code).
need=()
for pkg in zlib1g prometheus mosquitto mosquitto-clients snmpd snmp clang llvm libbpf-dev bpftool python3-venv; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "== installing Debian packages: ${need[*]}"
    apt-get update -qq
    # No init system here: keep the packaged prometheus service from starting;
    # the tests start their own servers on free loopback ports.
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
    rm -f /usr/sbin/policy-rc.d
  else
    echo "== missing Debian packages ${need[*]} and not root: tests needing them will say so and skip" >&2
  fi
fi
py_need=(opentelemetry-sdk opentelemetry-exporter-otlp-proto-http opentelemetry-proto)
if ! python3 -c 'import opentelemetry.sdk, opentelemetry.exporter.otlp.proto.http, opentelemetry.proto' 2>/dev/null; then
  echo "== installing Python packages: ${py_need[*]}"
  python3 -m pip install -q "${py_need[@]}" || echo "== pip install failed: OTLP interoperability tests will say so and skip" >&2
fi
# snmpsim (a Cisco device recording for the SNMP plugin) refuses to run as root and
# drops to nobody, who cannot read a Python under /root: give it Debian's Python in
# its own venv.
if [ ! -x /opt/snmpsim/bin/snmpsim-command-responder ] && [ "$(id -u)" = 0 ]; then
  echo "== installing snmpsim into /opt/snmpsim"
  /usr/bin/python3 -m venv /opt/snmpsim && /opt/snmpsim/bin/pip install -q snmpsim pysmi \
    || echo "== snmpsim install failed: its tests will say so" >&2
fi
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
  echo "== cargo clippy -D warnings"
  cargo clippy --workspace --all-targets -- -D warnings
  cargo clippy --manifest-path sdk-examples/file-exporter/Cargo.toml --all-targets -- -D warnings
fi

# --- tests ---------------------------------------------------------------------------
log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "== tests: workspace"
cargo test --workspace 2>&1 | tee -a "$log"
echo "== tests: sdk-examples/file-exporter (built as a vendor builds it)"
cargo test --manifest-path sdk-examples/file-exporter/Cargo.toml 2>&1 | tee -a "$log"
# One closing line over every test binary (pipefail already stopped on a failure).
read -r passed failed < <(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } } END { print p + 0, f + 0 }' "$log")
echo
echo "all tests: $passed passed, $failed failed"
