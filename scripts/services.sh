#!/usr/bin/env bash
# The real servers the integration tests talk to, on loopback.
#   scripts/services.sh install   install them (Debian and PyPI packages; root for apt)
#   scripts/services.sh start     start one of each on fixed loopback ports, for
#                                 trying plugins by hand (state in $TFO_SERVICES_DIR)
#   scripts/services.sh stop      stop them
#   scripts/services.sh status
# The tests do not use the shared ones: each test starts its own server on a free
# port with its own config and data directory, so tests never see each other's data.
set -euo pipefail
cd "$(dirname "$0")/.."
state="${TFO_SERVICES_DIR:-/tmp/tfo-services}"

install() {
  # Debian: zlib1g (a real foreign shared library for the "not a plugin" tests),
  # prometheus + promtool (the prometheus plugin is verified against the real server),
  # mosquitto + mosquitto-clients (the MQTT plugin: broker, mosquitto_sub/_pub/_passwd),
  # snmpd + snmp (the SNMP plugin is compared with snmpwalk), clang/llvm/libbpf-dev/
  # bpftool (the eBPF plugin's build compiles its C programs), python3-venv (snmpsim).
  # influxdb (1.6) + victoria-metrics (the influxdb plugin writes and reads back;
  # the datadog plugin's series round trip), librdkafka-dev (the kafka plugin links
  # Debian's librdkafka and tests with its built-in mock cluster), systemd (for
  # `systemd-analyze verify` of the unit file), golang-go + govmomi's source
  # (scripts/vcsim.sh builds vcsim, the vCenter simulator the vmware plugin is
  # verified against), mingw-w64 + wine (scripts/windows-check.sh cross-builds the
  # host and a plugin .dll and runs the load/inspect/swap checks under wine).
  # PyPI: the official OpenTelemetry Python SDK and protos (they send to the OTLP
  # receiver and decode what the OTLP exporter sends, independently of our code);
  # cryptography + google-auth (verify the gcp plugin's JWTs independently); lz4
  # (decompress the alibaba plugin's SLS bodies independently).
  need=()
  for pkg in zlib1g prometheus mosquitto mosquitto-clients snmpd snmp clang llvm libbpf-dev bpftool python3-venv \
             influxdb victoria-metrics librdkafka-dev pkg-config systemd \
             golang-go golang-github-vmware-govmomi-dev mingw-w64 wine wine64 curl; do
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
  py_need=(opentelemetry-sdk opentelemetry-exporter-otlp-proto-http opentelemetry-proto cryptography google-auth lz4)
  if ! python3 -c 'import opentelemetry.sdk, opentelemetry.exporter.otlp.proto.http, opentelemetry.proto, cryptography, google.auth, lz4.block' 2>/dev/null; then
    echo "== installing Python packages: ${py_need[*]}"
    python3 -m pip install -q "${py_need[@]}" || echo "== pip install failed: OTLP interoperability tests will say so and skip" >&2
  fi
  # The Windows target for the cross-build check (rustup, from the network).
  if command -v rustup >/dev/null && ! rustup target list --installed 2>/dev/null | grep -qx x86_64-pc-windows-gnu; then
    rustup target add x86_64-pc-windows-gnu || echo "== rustup target add failed: the Windows check will say so" >&2
  fi
  # vcsim, built offline from Debian's govmomi source (about a minute the first time).
  scripts/vcsim.sh build || echo "== vcsim not built: the vmware plugin's vcsim tests will say so" >&2
  # snmpsim (a Cisco device recording for the SNMP plugin) refuses to run as root and
  # drops to nobody, who cannot read a Python under /root: give it Debian's Python in
  # its own venv.
  if [ ! -x /opt/snmpsim/bin/snmpsim-command-responder ] && [ "$(id -u)" = 0 ]; then
    echo "== installing snmpsim into /opt/snmpsim"
    /usr/bin/python3 -m venv /opt/snmpsim && /opt/snmpsim/bin/pip install -q snmpsim pysmi \
      || echo "== snmpsim install failed: its tests will say so" >&2
  fi
}

start() {
  mkdir -p "$state"
  chmod 755 "$state"
  # Mosquitto on 127.0.0.1:1883, anonymous, persistence in $state.
  printf 'listener 1883 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location %s/\n' "$state" > "$state/mosquitto.conf"
  launch mosquitto mosquitto -c "$state/mosquitto.conf"
  # snmpd on udp:127.0.0.1:1161: v2c community "public", v3 user "agent"
  # (authPriv SHA-256/AES, passwords "tfo-auth-pass" / "tfo-priv-pass").
  mkdir -p "$state/snmp"
  printf 'rocommunity public 127.0.0.1\ncreateUser agent SHA-256 tfo-auth-pass AES tfo-priv-pass\nrouser agent priv\n' > "$state/snmpd.conf"
  launch snmpd snmpd -f -Lo -C -c "$state/snmpd.conf" -p "$state/snmpd.pid" --persistentDir="$state/snmp" udp:127.0.0.1:1161
  # Prometheus on 127.0.0.1:9090 with the remote-write receiver.
  printf 'global:\n  scrape_interval: 5s\nscrape_configs:\n  - job_name: tfo-agent\n    static_configs: [{targets: ["127.0.0.1:9464"]}]\n' > "$state/prometheus.yml"
  launch prometheus prometheus --config.file="$state/prometheus.yml" --storage.tsdb.path="$state/prometheus" \
    --web.listen-address=127.0.0.1:9090 --web.enable-remote-write-receiver
  # snmpsim (a Cisco C3560 recording) on udp:127.0.0.1:1162, community "cisco-c3560".
  if [ -x /opt/snmpsim/bin/snmpsim-command-responder ]; then
    mkdir -p "$state/snmpsim"
    cp plugins/snmp/tests/data/*.snmprec "$state/snmpsim/" 2>/dev/null || true
    chmod -R a+rX "$state/snmpsim"
    launch snmpsim /opt/snmpsim/bin/snmpsim-command-responder --data-dir="$state/snmpsim" \
      --agent-udpv4-endpoint=127.0.0.1:1162 --process-user=nobody --process-group=nogroup
  fi
  # vcsim (vCenter simulator) on https://127.0.0.1:8989/sdk, user "user", password "pass".
  if scripts/vcsim.sh build >/dev/null 2>&1; then
    launch vcsim "$(scripts/vcsim.sh path)" -l 127.0.0.1:8989 -ca-out "$state/vcsim-ca.pem"
  fi
  status
}

launch() {
  local name=$1
  shift
  if [ -f "$state/$name.pid" ] && kill -0 "$(cat "$state/$name.pid")" 2>/dev/null; then
    echo "$name: already running"
    return
  fi
  if ! command -v "$1" >/dev/null 2>&1; then
    echo "$name: not installed (scripts/services.sh install)" >&2
    return
  fi
  nohup "$@" > "$state/$name.log" 2>&1 &
  echo $! > "$state/$name.pid"
}

stop() {
  for f in "$state"/*.pid; do
    [ -f "$f" ] || continue
    kill "$(cat "$f")" 2>/dev/null || true
    rm -f "$f"
  done
  echo "stopped"
}

status() {
  for name in mosquitto snmpd prometheus snmpsim vcsim; do
    if [ -f "$state/$name.pid" ] && kill -0 "$(cat "$state/$name.pid")" 2>/dev/null; then
      echo "$name: running (log $state/$name.log)"
    else
      echo "$name: not running"
    fi
  done
}

case "${1:-install}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
