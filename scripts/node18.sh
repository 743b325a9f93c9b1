#!/usr/bin/env bash
# Installs Debian's Node 18 beside the system Node, without replacing it, only when missing.
# Idempotent. The package promises Node 18+, so scripts/test.sh runs the JS test level on it too.
#
#   scripts/node18.sh     install if missing; prints the Node 18 binary's path
#   scripts/node18 ...    run Node 18 (the wrapper sets LD_LIBRARY_PATH)
#
# How: `apt-get download` Debian's nodejs 18.x and the libraries it is built against (libnode108,
# libuv1, libc-ares2) plus the JS modules Debian ships outside the binary (cjs-module-lexer,
# acorn, undici), `dpkg -x` each into one folder (NODE18_DIR, default
# ~/.cache/nodeflow/node18), and run its usr/bin/node with LD_LIBRARY_PATH pointing at the
# folder's usr/lib/x86_64-linux-gnu. Debian's node looks those JS modules up in
# /usr/share/nodejs, so that path is linked to the folder's copy when it is absent (or each
# missing module is linked into it when it exists). The system Node (which may come from another
# apt source, e.g. nodesource) is left alone: the 18.x versions are pinned explicitly.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { echo "[node18] $*" >&2; }

dir="${NODE18_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/nodeflow/node18}"
bin="$dir/usr/bin/node"
libs="$dir/usr/lib/x86_64-linux-gnu"
if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi

works() { [ -x "$bin" ] && LD_LIBRARY_PATH="$libs" "$bin" -e 'process.exit(process.versions.node.startsWith("18.") ? 0 : 1)' 2>/dev/null; }

link_modules() {
  local share="$dir/usr/share/nodejs"
  [ -d "$share" ] || return 0
  if [ ! -e /usr/share/nodejs ]; then
    log "linking /usr/share/nodejs -> $share"
    $SUDO mkdir -p /usr/share
    $SUDO ln -sfn "$share" /usr/share/nodejs
  elif [ "$(readlink -f /usr/share/nodejs)" != "$(readlink -f "$share")" ]; then
    local m
    for m in "$share"/*; do
      [ -e "/usr/share/nodejs/$(basename "$m")" ] || $SUDO ln -s "$m" "/usr/share/nodejs/$(basename "$m")"
    done
  fi
}

if ! works; then
  log "installing Debian's Node 18 into $dir"
  $SUDO apt-get update -qq >&2
  # Debian's 18.x, whatever the system node's source and pin (apt-cache madison lists every version).
  ver=$(apt-cache madison nodejs | awk -F'|' '{ gsub(/ /, "", $2); if ($2 ~ /^18\./) { print $2; exit } }')
  [ -n "$ver" ] || { log "no nodejs 18.x in the apt sources"; exit 1; }
  tmp=$(mktemp -d)
  chmod 755 "$tmp" # apt-get download fetches as the _apt user when it can
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && apt-get download -qq "nodejs=$ver" "libnode108=$ver" libuv1 libc-ares2 node-cjs-module-lexer node-acorn node-undici >&2)
  rm -rf "$dir"
  mkdir -p "$dir"
  for deb in "$tmp"/*.deb; do dpkg -x "$deb" "$dir"; done
fi
link_modules
works || { log "Node 18 at $bin does not run"; LD_LIBRARY_PATH="$libs" "$bin" --version >&2 || true; exit 1; }
echo "$bin"
