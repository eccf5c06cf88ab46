#!/usr/bin/env bash
# Windows check: cross-builds tfo-agent.exe and test plugins (.dll) for
# x86_64-pc-windows-gnu and runs the loader under wine: inspect, list, refusal of bad
# files, the conformance kit, `run --once`, and a live hot swap (the .dll replaced by
# tmp+rename while the agent runs, the new generation seen on /plugins, the old
# library unloaded, every value delivered exactly once, graceful stop on Ctrl-C).
#
#   scripts/windows-check.sh
#
# Also lints the Windows-only code with clippy (unless TFO_SKIP_LINT=1).
#
# Prints libtest-style lines (`test windows::<name> ... ok|FAILED`) and a closing
# `test result:` line, so scripts/test.sh counts them. What cannot run here (no
# Windows Rust target, no mingw-w64, no wine) is printed as `SKIP windows: <reason>`;
# with TFO_REQUIRE_SERVICES=1 a missing tool is a failure instead.
#
# Installs nothing unless root: then `rustup target add x86_64-pc-windows-gnu`
# (network) and Debian's mingw-w64, wine and wine64 when they are missing.
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
TARGET=x86_64-pc-windows-gnu
OUT="$CARGO_TARGET_DIR/$TARGET/debug"
start=$SECONDS
passed=0
failed=0
work=$(mktemp -d /tmp/tfo-windows-check.XXXXXX)
agent_pid=

ok() { echo "test windows::$1 ... ok"; passed=$((passed + 1)); }
bad() {
  echo "test windows::$1 ... FAILED"
  shift
  printf '    %s\n' "$@"
  failed=$((failed + 1))
}
finish() {
  local verdict=ok
  [ "$failed" -eq 0 ] || verdict=FAILED
  echo "test result: $verdict. $passed passed; $failed failed; 0 ignored; 0 measured; 0 filtered out; finished in $((SECONDS - start))s"
  [ "$failed" -eq 0 ]
  exit
}
# A tool is missing: a visible skip, or a failure when CI requires every service.
missing() {
  echo "SKIP windows: $1"
  if [ "${TFO_REQUIRE_SERVICES:-}" = 1 ]; then
    bad toolchain "$1 (TFO_REQUIRE_SERVICES=1)"
  fi
  finish
}
cleanup() {
  if [ -n "$agent_pid" ] && kill -0 "$agent_pid" 2>/dev/null; then
    kill -KILL "$agent_pid" 2>/dev/null
  fi
  if [ -n "${WINESERVER:-}" ] && [ -n "${WINEPREFIX:-}" ]; then
    "$WINESERVER" -k >/dev/null 2>&1
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# --- toolchain -------------------------------------------------------------------------
# (Output captured before grep: with pipefail, `grep -q` closing a pipe early could
# fail the writer with SIGPIPE and turn a match into a miss.)
has_target() { grep -qx "$TARGET" <<<"$(rustup target list --installed 2>/dev/null)"; }
if ! has_target; then
  if [ "$(id -u)" = 0 ]; then
    echo "== rustup target add $TARGET"
    rustup target add "$TARGET" >"$work/rustup.log" 2>&1 || true
  fi
  has_target || missing "the Rust target $TARGET is not installed and could not be added (rustup target add $TARGET needs network)"
fi
pkgs=()
command -v x86_64-w64-mingw32-gcc >/dev/null || pkgs+=(mingw-w64)
command -v wine >/dev/null || pkgs+=(wine)
[ -x /usr/lib/wine/wine64 ] || command -v wine64 >/dev/null || pkgs+=(wine64)
if [ "${#pkgs[@]}" -gt 0 ] && [ "$(id -u)" = 0 ]; then
  echo "== installing Debian packages: ${pkgs[*]}"
  inst() {
    DEBIAN_FRONTEND=noninteractive apt-get install -o DPkg::Lock::Timeout=600 -y -qq \
      --no-install-recommends "${pkgs[@]}" >"$work/apt.log" 2>&1
  }
  inst || { apt-get update -qq >/dev/null 2>&1; inst; } || tail -5 "$work/apt.log"
fi
command -v x86_64-w64-mingw32-gcc >/dev/null \
  || missing "mingw-w64 is not installed (Debian package mingw-w64: the linker for $TARGET)"
# Without wine (or curl/python3 for the API checks) the build and lint still run;
# only what needs wine is skipped.
no_wine=
if command -v wine64 >/dev/null; then
  WINE=$(command -v wine64)
elif [ -x /usr/lib/wine/wine64 ]; then
  WINE=/usr/lib/wine/wine64
elif command -v wine >/dev/null; then
  WINE=$(command -v wine)
else
  no_wine="wine is not installed (Debian packages wine, wine64): nothing ran under wine"
fi
for tool in curl python3; do
  command -v "$tool" >/dev/null || no_wine="$tool is not installed (used to query the agent's API): nothing ran under wine"
done

# --- cross build -----------------------------------------------------------------------
echo "== cross-building tfo-agent.exe and test plugins for $TARGET"
t0=$SECONDS
# (No --bin filter: it would apply to every -p and skip the plugins' cdylibs.)
artifacts=(tfo-agent.exe tfo_counting_sink.dll tfo_counting_sink_b.dll tfo_ticker_source.dll)
if cargo build --target "$TARGET" -p tfo-agent \
  -p tfo-fixture-counting-sink -p tfo-fixture-counting-sink-b -p tfo-fixture-ticker-source \
  >"$work/build.log" 2>&1; then
  for a in "${artifacts[@]}"; do
    [ -f "$OUT/$a" ] || { bad cross_build "the build did not produce $OUT/$a"; finish; }
  done
  ok cross_build
  echo "   (cross build: $((SECONDS - t0))s)"
else
  bad cross_build "cargo build --target $TARGET failed:" "$(tail -30 "$work/build.log")"
  finish
fi

# The Windows-only code (platform.rs's cfg(windows) items and tests) is linted only
# here; TFO_SKIP_LINT=1 skips it like scripts/test.sh's own lint step.
if [ -z "${TFO_SKIP_LINT:-}" ]; then
  if cargo clippy --target "$TARGET" -p tfo-agent --lib --bins -- -D warnings >"$work/clippy.log" 2>&1 \
    && cargo clippy --target "$TARGET" -p tfo-agent --lib --profile test -- -D warnings >>"$work/clippy.log" 2>&1; then
    ok clippy
  else
    bad clippy "cargo clippy --target $TARGET -p tfo-agent:" "$(grep -E '^(warning|error)' -A6 "$work/clippy.log" | head -30)"
  fi
fi

[ -z "$no_wine" ] || missing "$no_wine"

# --- a Windows-style install under wine ------------------------------------------------
if command -v wineserver >/dev/null; then
  WINESERVER=$(command -v wineserver)
else
  WINESERVER=/usr/lib/wine/wineserver64
fi
# A prefix kept in the target dir: creating one takes ~10 s, reusing it ~0.
export WINEPREFIX="${TFO_WINEPREFIX:-$CARGO_TARGET_DIR/$TARGET/wineprefix}"
export WINEDEBUG=-all
# No Mono/Gecko install prompts (the agent needs neither).
export WINEDLLOVERRIDES="mscoree=;mshtml="
dir="$work/agent"
mkdir -p "$dir/plugins" "$dir/bad" "$dir/shadow"
cp "$OUT/tfo-agent.exe" "$dir/"
cp "$OUT/tfo_counting_sink.dll" "$OUT/tfo_ticker_source.dll" "$dir/plugins/"
cp "$OUT/tfo_counting_sink_b.dll" "$dir/"
cd "$dir"
w() { "$WINE" "$@"; }

if ! w tfo-agent.exe version >version.out 2>version.err; then
  # Rust's std (>= 1.78) imports ProcessPrng from bcryptprimitives.dll, which every
  # Windows 10+ has but wine only from 9.0 on (Debian 12 ships 8.0). For this test
  # prefix only, install a stand-in that answers ProcessPrng with BCryptGenRandom
  # (which wine 8 has) into its system32.
  why=$(WINEDEBUG=err+module w tfo-agent.exe version 2>&1)
  if grep -q 'bcryptprimitives.dll.*not found' <<<"$why"; then
    echo "   note: this wine has no bcryptprimitives.dll (ProcessPrng); using a test stand-in"
    cat >shim.c <<'EOF'
#include <windows.h>
#include <bcrypt.h>
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len) {
        ULONG n = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (BCryptGenRandom(NULL, data, n, BCRYPT_USE_SYSTEM_PREFERRED_RNG) != 0) return FALSE;
        data += n;
        len -= n;
    }
    return TRUE;
}
EOF
    x86_64-w64-mingw32-gcc -shared -O2 -o "$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll" \
      shim.c -lbcrypt 2>shim.err \
      || { bad start "cannot build the ProcessPrng stand-in:" "$(cat shim.err)"; finish; }
  fi
  w tfo-agent.exe version >version.out 2>version.err
fi
if grep -q '^tfo-agent ' version.out; then
  ok start
else
  bad start "tfo-agent.exe does not start under $WINE:" "$(cat version.out version.err | tail -10)"
  finish
fi

# inspect: the .dll loads, its descriptor is read, and it is unloaded again.
if w tfo-agent.exe plugins inspect plugins/tfo_counting_sink.dll >inspect.out 2>inspect.err \
  && grep -q '^name: *counting-sink' inspect.out && grep -q '^compatible: *yes' inspect.out; then
  ok inspect
else
  bad inspect "$(cat inspect.out inspect.err)"
fi

# list: Windows file names (tfo_<name>.dll) are found, both plugins compatible.
if w tfo-agent.exe plugins list --dir plugins >list.out 2>list.err \
  && grep -qE '^counting-sink .* yes$' list.out && grep -qE '^ticker-source .* yes$' list.out; then
  ok list
else
  bad list "$(cat list.out list.err)"
fi

# Bad files are refused with the reason, never crash the process.
head -c 300000 plugins/tfo_ticker_source.dll >bad/tfo_cut.dll
head -c 4096 /bin/sh >bad/tfo_elf.dll
: >bad/tfo_empty.dll
cp tfo-agent.exe bad/tfo_exe.dll
refusals=(
  "tfo_cut.dll:truncated or corrupt: a section ends"
  "tfo_elf.dll:no PE (MZ) header"
  "tfo_empty.dll:the file is empty"
  "tfo_exe.dll:PE image is not a DLL"
)
problems=()
for r in "${refusals[@]}"; do
  f=${r%%:*} want=${r#*:}
  w tfo-agent.exe plugins inspect "bad/$f" >refuse.out 2>refuse.err
  rc=$?
  if [ "$rc" != 1 ] || ! grep -qF "$want" refuse.err; then
    problems+=("$f: exit $rc, wanted 1 and \"$want\"; got: $(cat refuse.err)")
  fi
done
if [ "${#problems[@]}" -eq 0 ]; then ok refuse_bad_files; else bad refuse_bad_files "${problems[@]}"; fi

# The conformance kit: create/start/export/shutdown, then the module must be gone
# (GetModuleHandleExW) after FreeLibrary.
echo "output: conformance.txt" >sink.yaml
if w tfo-agent.exe plugins check plugins/tfo_counting_sink.dll --config sink.yaml >check.out 2>check.err \
  && grep -q '^PASS unload *mapping gone' check.out && grep -q ' 0 failed$' check.out; then
  ok conformance
else
  bad conformance "$(cat check.out check.err | tail -15)"
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >agent.yaml <<EOF
agent:
  id: wine
plugins:
  dir: plugins
  debounce: 50ms
  shadow_dir: shadow
http:
  listen: 127.0.0.1:$port
pipeline:
  flush_interval: 50ms
  batch_max_items: 50
  shutdown_timeout: 20s
integrations:
  ticker:
    enabled: true
    plugin: ticker-source
    interval: 20ms
    per_collect: 3
  counter:
    enabled: true
    plugin: counting-sink
    output: out.txt
EOF

# run --once: one collection from the ticker rendered for the counting sink.
if w tfo-agent.exe run --once --config agent.yaml >once.out 2>once.err \
  && grep -q '^==> sink counter <- source ticker' once.out && grep -q '^metric fixture.seq' once.out; then
  ok run_once
else
  bad run_once "$(cat once.out once.err | tail -15)"
fi

# --- the daemon: hot swap and graceful stop --------------------------------------------
api() { curl -sf --max-time 5 "http://127.0.0.1:$port$1"; }
# generation and version of the `counter` instance, e.g. "2 1.0.0-b"
gen() {
  api /plugins | python3 -c 'import json,sys
for e in json.load(sys.stdin):
    if e.get("instance") == "counter": print(e["generation"], e["version"])' 2>/dev/null
}
# Polls (the agent runs in another process: no signal to wait on) up to 30 s.
wait_for() {
  local i
  for i in $(seq 300); do
    if eval "$1"; then return 0; fi
    kill -0 "$agent_pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
TFO_LOG=info "$WINE" tfo-agent.exe run --config agent.yaml >agent.out 2>agent.log &
agent_pid=$!
if ! wait_for 'api /health >/dev/null' || [ "$(gen)" != "1 1.0.0-a" ]; then
  bad hot_swap "the agent did not become healthy with counting-sink 1.0.0-a:" "$(tail -20 agent.log)"
  finish
fi
wait_for '[ -s out.txt ]'
# Replace the plugin file as an installer does: write a temporary, rename over.
cp tfo_counting_sink_b.dll plugins/.tfo_counting_sink.dll.tmp
mv -f plugins/.tfo_counting_sink.dll.tmp plugins/tfo_counting_sink.dll
# Then: generation 2 serves, the old library is unloaded and its shadow copy
# deleted (Windows refuses to delete a loaded .dll), only the two serving copies left.
if wait_for '[ "$(gen)" = "2 1.0.0-b" ]' && wait_for 'grep -q "^1.0.0-b " out.txt' \
  && wait_for 'grep -q "^tfo_agent_plugin_libraries_unloaded_total [1-9]" <<<"$(api /metrics)"' \
  && grep -q '^tfo_agent_plugin_libraries_still_mapped 0$' <<<"$(api /metrics)" \
  && wait_for '[ "$(find shadow -type f | wc -l)" = 2 ]'; then
  ok hot_swap
else
  bad hot_swap "counter is at \"$(gen)\", wanted \"2 1.0.0-b\" served and the old library unloaded:" \
    "$(api /metrics | grep -E 'unloaded|still_mapped|stuck')" \
    "shadow copies (wanted the two serving ones): $(find shadow -type f)" "$(tail -20 agent.log)"
fi

# Ctrl-C (wine turns SIGINT into a console Ctrl-C event): sources stop, the sink
# drains, libraries close, every ticker value reached a generation exactly once.
kill -INT "$agent_pid"
stopped=no
for _ in $(seq 300); do
  kill -0 "$agent_pid" 2>/dev/null || { stopped=yes; break; }
  sleep 0.1
done
if [ "$stopped" = no ]; then
  kill -KILL "$agent_pid" 2>/dev/null
  bad graceful_stop "the agent did not stop within 30 s of Ctrl-C:" "$(tail -20 agent.log)"
else
  wait "$agent_pid"
  rc=$?
  agent_pid=
  exactly_once=$(python3 -c 'import sys
v = sorted(int(float(l.split()[1])) for l in open("out.txt"))
vs = {l.split()[0] for l in open("out.txt")}
print("yes" if v == list(range(len(v))) and vs == {"1.0.0-a", "1.0.0-b"} else f"no: {len(v)} values, versions {sorted(vs)}")')
  # Every library closed and its shadow copy deleted (a loaded .dll cannot be).
  left=$(find shadow -type f | head -5)
  if [ "$rc" = 0 ] && grep -q 'tfo_agent::agent: stopped' agent.log && [ "$exactly_once" = yes ] \
    && [ -z "$left" ]; then
    ok graceful_stop
    echo "   ($(wc -l <out.txt) values delivered exactly once across the swap)"
  else
    bad graceful_stop "exit $rc; exactly once: $exactly_once; shadow copies left: ${left:-none}" \
      "$(tail -20 agent.log)"
  fi
fi

# --- the host's own unit tests, as a Windows test binary under wine ---------------------
# (names, PE check, GetModuleHandleExW, thread descriptions, positional reads, config,
# disk buffer, ... everything in `cargo test -p tfo-agent --lib`). Counted as one line
# here; its own `test result:` line is kept out of the output so it is not counted twice.
cd "$repo"
if CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER="$WINE" \
  cargo test --target "$TARGET" -p tfo-agent --lib >"$work/unit.log" 2>&1; then
  ok host_unit_tests
  echo "   ($(grep -c ' \.\.\. ok$' "$work/unit.log") unit tests of the host passed as a Windows binary)"
else
  bad host_unit_tests "cargo test --target $TARGET -p tfo-agent --lib under wine failed:" \
    "$(grep -E ' \.\.\. FAILED$|panicked at|^error' "$work/unit.log" | head -20)"
fi
finish
