#!/usr/bin/env bash
# Checks the packages scripts/package.sh builds (run by scripts/test.sh on the debug
# build; `scripts/check-package.sh --release` checks the release packages):
#  - the .deb's metadata and file list (binary, plugin dir, conffile, unit, docs);
#  - the tarball holds the same files;
#  - the extracted binary lists the packaged plugins and validates the packaged
#    config with every packaged plugin loadable;
#  - the unit file passes `systemd-analyze verify` where systemd is installed.
# Prints libtest-style result lines so scripts/test.sh counts the checks.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="--debug"; [ "${1:-}" = "--release" ] && mode=""
scripts/package.sh $mode
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
deb=$(ls dist/tfo-agent_"$version"_*.deb)
tgz=$(ls dist/tfo-agent-"$version"-linux-*.tar.gz)
tmp=$(mktemp -d)
export deb tgz tmp
trap 'rm -rf "$tmp"' EXIT
passed=0; failed=0
check() { # name, command...
  local name=$1; shift
  # A separate bash: `set -e` is ignored inside a function that an `if` calls.
  if bash -euo pipefail -c "$(declare -f "$1"); $1" >"$tmp/out" 2>&1; then
    echo "test package::$name ... ok"; passed=$((passed + 1))
  else
    echo "test package::$name ... FAILED"; sed 's/^/    /' "$tmp/out"; failed=$((failed + 1))
  fi
}
deb_layout() {
  dpkg-deb --field "$deb" Package Version Architecture Depends
  dpkg-deb --field "$deb" Package | grep -qx tfo-agent
  dpkg-deb --contents "$deb" > "$tmp/list"
  for f in ./usr/bin/tfo-agent ./usr/lib/tfo-agent/plugins/libtfo_system.so ./etc/tfo-agent/tfo-agent.yaml \
           ./lib/systemd/system/tfo-agent.service ./usr/share/doc/tfo-agent/README.md \
           ./usr/share/doc/tfo-agent/docs/configuration.md; do
    grep -q " $f\$" "$tmp/list" || { echo "missing in .deb: $f"; return 1; }
  done
  dpkg-deb --ctrl-tarfile "$deb" | tar -t | grep -qx './conffiles'
  dpkg-deb --info "$deb" conffiles | grep -qx /etc/tfo-agent/tfo-agent.yaml
  # root-owned files (dpkg-deb --root-owner-group)
  if grep -v ' root/root ' "$tmp/list"; then echo "files not owned by root"; return 1; fi
}
tarball_matches_deb() {
  mkdir -p "$tmp/t" && tar -C "$tmp/t" -xzf "$tgz"
  (cd "$tmp/t"/tfo-agent-* && find . -type f | sort) > "$tmp/tar-files"
  awk '$1 !~ /^d/ { print $6 }' "$tmp/list" | sort > "$tmp/deb-files"
  diff "$tmp/deb-files" "$tmp/tar-files"
}
installed_tree_works() {
  dpkg-deb -x "$deb" "$tmp/root"
  local plugins="$tmp/root/usr/lib/tfo-agent/plugins"
  "$tmp/root/usr/bin/tfo-agent" version
  "$tmp/root/usr/bin/tfo-agent" plugins list --dir "$plugins" | tee "$tmp/plugins"
  local n; n=$(ls "$plugins" | wc -l)
  [ "$n" -ge 6 ] || { echo "only $n plugins packaged"; return 1; }
  if grep -E ' no: ' "$tmp/plugins"; then echo "packaged plugins that do not load"; return 1; fi
  TFO_PLUGIN_DIR="$plugins" "$tmp/root/usr/bin/tfo-agent" validate --config "$tmp/root/etc/tfo-agent/tfo-agent.yaml"
  # Without the variable the packaged config points at the installed directory.
  grep -q 'TFO_PLUGIN_DIR:-/usr/lib/tfo-agent/plugins' "$tmp/root/etc/tfo-agent/tfo-agent.yaml"
  grep -q 'TFO_SHADOW_DIR:-/var/lib/tfo-agent/shadow' "$tmp/root/etc/tfo-agent/tfo-agent.yaml"
}
unit_verifies() {
  if ! command -v systemd-analyze >/dev/null; then
    if [ -n "${TFO_REQUIRE_SERVICES:-}" ]; then echo "systemd-analyze missing"; return 1; fi
    echo "skipped: systemd-analyze not installed"; return 0
  fi
  # verify needs the ExecStart binary to exist: point it at the extracted one.
  sed "s|/usr/bin/tfo-agent|$tmp/root/usr/bin/tfo-agent|" configs/tfo-agent.service > "$tmp/tfo-agent.service"
  systemd-analyze verify "$tmp/tfo-agent.service"
}
check deb_layout deb_layout
check tarball_matches_deb tarball_matches_deb
check installed_tree_works installed_tree_works
check unit_verifies unit_verifies
echo "test result: $([ $failed = 0 ] && echo ok || echo FAILED). $passed passed; $failed failed; 0 ignored; 0 measured; 0 filtered out"
[ "$failed" = 0 ]
