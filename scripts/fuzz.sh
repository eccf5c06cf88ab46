#!/usr/bin/env bash
# Fuzzing with cargo-fuzz (libFuzzer) of the parsers that take untrusted input:
#   config        the agent's config text: ${VAR} substitution, YAML, validation
#   snmp_message  SNMP datagrams (v1/v2c and v3) as the snmp plugin receives them
#   mqtt_payload  MQTT subscription payloads: JSON (with and without mapping), Influx lines
#   otlp_decode   OTLP/HTTP request bodies, protobuf and JSON, every signal
#   disk_buffer   disk-buffer segment files after a crash or on a damaged disk
#   influx_lines  InfluxDB line protocol bodies as the influxdb receiver parses them
#   remote_write  the prometheus plugin's hand-written remote-write encoder (unsafe
#                 buffer writes) against build + prost, on names/labels from the input
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#   scripts/test.sh runs it with TFO_FUZZ_SECONDS (default 20 s each); locally run
#   e.g. `scripts/fuzz.sh 600` for ten minutes per target.
# Every input under fuzz/regressions/<target>/ (crashes found earlier) is replayed
# first; a crash found now is saved under fuzz/artifacts/<target>/ and fails the run:
# copy it to fuzz/regressions/<target>/ once fixed. cargo-fuzz needs nightly-only
# flags; with this machine's stable toolchain RUSTC_BOOTSTRAP=1 enables them, and
# `-s none` builds without a sanitizer (Rust code is memory-safe; the targets look for
# panics, overflows, unbounded recursion and hangs).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-${TFO_FUZZ_SECONDS:-20}}"
shift || true
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(config snmp_message mqtt_payload otlp_decode disk_buffer influx_lines remote_write)
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install -q cargo-fuzz --locked
fi
echo "== building fuzz targets"
cargo fuzz build -s none 2>&1 | tail -n 3
# Seeds: real inputs the tests already use.
seed() { # target, files...
  local t=$1; shift
  mkdir -p "corpus/$t"
  for f in "$@"; do [ -f "$f" ] && cp -f "$f" "corpus/$t/" || true; done
}
seed config ../configs/tfo-agent.yaml ../plugins/*/config.example.yaml
seed otlp_decode ../plugins/otlp/tests/data/*.json
seed mqtt_payload ../plugins/mqtt/tests/data/* 2>/dev/null || true
seed snmp_message ../plugins/snmp/tests/data/*.bin 2>/dev/null || true
mkdir -p corpus/influx_lines
printf 'weather,location=us-midwest temperature=82i,raining=true,note="hot \\"day\\"" 1465839830\nmy\\ m,t\\ k=v\\,1 f=1.5e3,u=1u\n' >corpus/influx_lines/reference.txt
mkdir -p corpus/remote_write
printf 'cpu_seconds\xfemode\xfeidle\xfecpu\xfe0\xffhttp_requests\xfe__name__\xfex\xfele\xfe0.5\xff\xfe\xfe' >corpus/remote_write/seed.bin
passed=0; failed=0
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  log=$(mktemp)
  ok=1
  if [ -d "regressions/$t" ] && [ -n "$(ls -A "regressions/$t")" ]; then
    cargo fuzz run -s none "$t" "regressions/$t"/* -- -runs=1 >"$log" 2>&1 || ok=0
  fi
  if [ "$ok" = 1 ]; then
    cargo fuzz run -s none "$t" "corpus/$t" -- -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="artifacts/$t/" >"$log" 2>&1 || ok=0
  fi
  runs=$(grep -o 'Done [0-9]* runs' "$log" | tail -n 1 || true)
  if [ "$ok" = 1 ]; then
    echo "test fuzz::$t ... ok ($runs in ${secs}s)"; passed=$((passed + 1))
  else
    echo "test fuzz::$t ... FAILED"; grep -E 'panicked|ERROR|SUMMARY|artifact' "$log" | head -n 10 | sed 's/^/    /'
    failed=$((failed + 1))
  fi
  rm -f "$log"
done
echo "test result: $([ $failed = 0 ] && echo ok || echo FAILED). $passed passed; $failed failed; 0 ignored; 0 measured; 0 filtered out"
[ "$failed" = 0 ]
