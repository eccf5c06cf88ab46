#!/usr/bin/env bash
# Benchmarks (docs/benchmarks.md).
#
#   scripts/bench.sh                 every side-by-side scenario, --quick, then the table
#   scripts/bench.sh SCENARIO [opts] one scenario: idle | scrape | snmp | influx | mqtt | swap | startup
#                                    opts: --quick, --duration S (idle; default 600), --reps N
#   scripts/bench.sh all [opts]      every scenario with the given options (full length without --quick)
#   scripts/bench.sh micro [args]    the criterion micro-benchmarks (cargo bench -p tfo-agent)
#   scripts/bench.sh report          rewrite the table from target/bench/results/*.json
#
# Side-by-side scenarios run our agent (release build, plugins staged per scenario)
# and the peer (Debian's prometheus-node-exporter, collectd, prometheus-snmp-exporter,
# vmagent) on loopback with the same input, alternating, and write
# target/bench/results/<scenario>.json; the table in docs/benchmarks.md is rewritten
# from those files after each run. Needs root for apt-get the first time.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

scenarios=(idle scrape snmp influx mqtt swap startup)

need_debs() {
  local missing=()
  command -v prometheus-node-exporter >/dev/null || missing+=(prometheus-node-exporter)
  command -v collectd >/dev/null || missing+=(collectd-core)
  [ -e /usr/lib/collectd/mqtt.so ] || missing+=(collectd-core)
  command -v prometheus-snmp-exporter >/dev/null || missing+=(prometheus-snmp-exporter)
  command -v vmagent >/dev/null || missing+=(victoria-metrics)
  command -v mosquitto >/dev/null || missing+=(mosquitto)
  command -v mosquitto_sub >/dev/null || missing+=(mosquitto-clients)
  command -v snmpd >/dev/null || missing+=(snmpd)
  command -v wrk >/dev/null || missing+=(wrk)
  command -v taskset >/dev/null || missing+=(util-linux)
  python3 -c 'import yaml' 2>/dev/null || missing+=(python3-yaml)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing ${missing[*]}" >&2
    apt-get update -qq
    # Debian's maintainer scripts would start the daemons as services; the scenarios
    # start their own instances on free loopback ports instead.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

build() {
  # The agent, the plugins and fixtures the scenarios load, all in release.
  local pkgs=(-p tfo-agent -p tfo-plugin-system -p tfo-plugin-prometheus -p tfo-plugin-snmp
    -p tfo-plugin-mqtt -p tfo-plugin-influxdb -p tfo-fixture-ticker-source
    -p tfo-fixture-counting-sink -p tfo-fixture-counting-sink-b)
  if [ "${1:-}" = startup ]; then
    # every plugin of the workspace except common (a library) and ebpf (clang, root)
    pkgs=(-p tfo-agent)
    for m in plugins/*/Cargo.toml; do
      n=$(sed -n 's/^name = "\(tfo-plugin-[a-z0-9-]*\)"$/\1/p' "$m" | head -n 1)
      case "$n" in tfo-plugin-common | tfo-plugin-ebpf | "") ;; *) pkgs+=(-p "$n") ;; esac
    done
    cargo build --release --manifest-path sdk-examples/file-exporter/Cargo.toml
  fi
  cargo build --release "${pkgs[@]}"
}

run() {
  local s=$1
  shift
  echo "== scenario $s $*" >&2
  python3 bench/scenarios.py "$s" "$@"
}

case "${1:-}" in
  micro)
    shift
    cargo build --release -p tfo-fixture-bench-sink
    exec cargo bench -p tfo-agent "$@"
    ;;
  report)
    exec python3 bench/report.py
    ;;
  "" | all)
    opts=(--quick) # no argument: everything, quickly
    if [ $# -gt 0 ]; then
      shift
      opts=("$@") # `all [opts]`: full length unless --quick is given
    fi
    need_debs
    build startup
    build
    failed=()
    for s in "${scenarios[@]}"; do
      run "$s" "${opts[@]}" || failed+=("$s")
    done
    python3 bench/report.py
    if [ ${#failed[@]} -gt 0 ]; then
      echo "== failed: ${failed[*]} (their rows keep the previous figures or say 'not run')" >&2
      exit 1
    fi
    ;;
  idle | scrape | snmp | influx | mqtt | swap | startup)
    s=$1
    shift
    need_debs
    build "$s"
    run "$s" "$@"
    python3 bench/report.py
    ;;
  -h | --help)
    sed -n '2,15p' "$0"
    ;;
  *)
    echo "unknown scenario '$1' (see scripts/bench.sh --help)" >&2
    exit 2
    ;;
esac
