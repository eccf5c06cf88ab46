#!/usr/bin/env bash
# Builds the release packages of tfo-agent into dist/:
#   dist/tfo-agent-<version>-linux-<arch>.tar.gz   binary, plugins, default config,
#                                                   systemd unit, docs (a relocatable tree)
#   dist/tfo-agent_<version>_<debarch>.deb          built with Debian's dpkg-deb
# Layout once installed (the .deb; the tarball mirrors it under its top directory):
#   /usr/bin/tfo-agent
#   /usr/lib/tfo-agent/plugins/libtfo_<name>.so     the plugin directory
#   /etc/tfo-agent/tfo-agent.yaml                    conffile
#   /lib/systemd/system/tfo-agent.service
#   /usr/share/doc/tfo-agent/                        README, docs/
# Usage: scripts/package.sh [--debug]   (--debug packages the debug build the tests
# made, so CI checks the packaging without a second, release, build)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
profile=release
[ "${1:-}" = "--debug" ] && profile=debug
flag=(); [ "$profile" = release ] && flag=(--release)

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
arch=$(uname -m)
debarch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
out="$PWD/dist"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== building tfo-agent $version ($profile)"
cargo build "${flag[@]}" -p tfo-agent
bin="$CARGO_TARGET_DIR/$profile"

root="$work/root"
install -d -m 0755 "$root/usr/bin" "$root/usr/lib/tfo-agent/plugins" "$root/etc/tfo-agent" \
  "$root/lib/systemd/system" "$root/usr/share/doc/tfo-agent"
install -m 0755 "$bin/tfo-agent" "$root/usr/bin/tfo-agent"
[ "$profile" = release ] && strip "$root/usr/bin/tfo-agent" 2>/dev/null || true

# Every plugin under plugins/ (not `common`, a library linked into them); one that
# does not build here (e.g. ebpf without clang) is left out with a message.
for m in plugins/*/Cargo.toml; do
  [ "$(basename "$(dirname "$m")")" = common ] && continue
  lib=$(sed -n 's/^name = "\(tfo_[a-z0-9_]*\)"$/\1/p' "$m" | head -n 1)
  [ -n "$lib" ] || continue
  if cargo build "${flag[@]}" --manifest-path "$m" >/dev/null 2>"$work/build.err"; then
    install -m 0644 "$bin/lib$lib.so" "$root/usr/lib/tfo-agent/plugins/lib$lib.so"
    [ "$profile" = release ] && strip --strip-unneeded "$root/usr/lib/tfo-agent/plugins/lib$lib.so" 2>/dev/null || true
  else
    echo "== left out $(dirname "$m"): it did not build here:" >&2
    tail -n 5 "$work/build.err" >&2
  fi
done

# The default config, pointed at the installed plugin directory.
# Shadow copies (and the cache of them kept across restarts) in the state directory:
# systemd's PrivateTmp gives the service an empty /tmp at every start.
sed -e 's|dir: .*TFO_PLUGIN_DIR.*|dir: ${TFO_PLUGIN_DIR:-/usr/lib/tfo-agent/plugins}|' \
  -e 's|^  # shadow_dir: .*|  shadow_dir: ${TFO_SHADOW_DIR:-/var/lib/tfo-agent/shadow}|' configs/tfo-agent.yaml \
  > "$root/etc/tfo-agent/tfo-agent.yaml"
grep -q '/usr/lib/tfo-agent/plugins' "$root/etc/tfo-agent/tfo-agent.yaml" \
  || { echo "package.sh: could not point plugins.dir at /usr/lib/tfo-agent/plugins" >&2; exit 1; }
grep -q '^  shadow_dir: .*/var/lib/tfo-agent/shadow' "$root/etc/tfo-agent/tfo-agent.yaml" \
  || { echo "package.sh: could not point plugins.shadow_dir at /var/lib/tfo-agent/shadow" >&2; exit 1; }
chmod 0644 "$root/etc/tfo-agent/tfo-agent.yaml"
install -m 0644 configs/tfo-agent.service "$root/lib/systemd/system/tfo-agent.service"
install -m 0644 README.md "$root/usr/share/doc/tfo-agent/README.md"
cp -r docs "$root/usr/share/doc/tfo-agent/docs"
find "$root/usr/share/doc" -type d -exec chmod 0755 {} + && find "$root/usr/share/doc" -type f -exec chmod 0644 {} +

mkdir -p "$out"
# Tarball: the same tree under tfo-agent-<version>/.
tarname="tfo-agent-$version-linux-$arch"
mkdir -p "$work/$tarname"
cp -a "$root/." "$work/$tarname/"
tar -C "$work" --owner=0 --group=0 -czf "$out/$tarname.tar.gz" "$tarname"
echo "== $out/$tarname.tar.gz"

# Debian package: control file, conffile, maintainer scripts that create the
# system user and register (not start) the unit.
if ! command -v dpkg-deb >/dev/null; then
  echo "== dpkg-deb not found: no .deb built (install Debian's dpkg-dev)" >&2
  exit 0
fi
install -d -m 0755 "$root/DEBIAN"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<CONTROL
Package: tfo-agent
Version: $version
Section: admin
Priority: optional
Architecture: $debarch
Maintainer: tfo-agent developers <dev@tfo-agent.invalid>
Installed-Size: $size
Depends: libc6, adduser
Description: telemetry agent with hot-swappable integration plugins
 tfo-agent collects metrics, logs and traces through integrations that are
 separately built shared libraries, loaded from /usr/lib/tfo-agent/plugins,
 checked against a stable ABI and hot-swapped when the file changes.
CONTROL
echo "/etc/tfo-agent/tfo-agent.yaml" > "$root/DEBIAN/conffiles"
cat > "$root/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
  if ! getent passwd tfo-agent >/dev/null; then
    adduser --system --group --no-create-home --home /var/lib/tfo-agent tfo-agent
  fi
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
    systemctl enable tfo-agent.service || true
  fi
fi
POSTINST
cat > "$root/DEBIAN/prerm" <<'PRERM'
#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
  systemctl stop tfo-agent.service || true
fi
PRERM
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm"
deb="$out/tfo-agent_${version}_${debarch}.deb"
dpkg-deb --root-owner-group --build "$root" "$deb" >/dev/null
echo "== $deb"
