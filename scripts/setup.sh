#!/usr/bin/env bash
# Installs what the build and the tests need, only when it is missing. Idempotent.
#   scripts/setup.sh            toolchain + npm packages
#   scripts/setup.sh --browser  also Debian's chromium and chromium-driver
#   scripts/setup.sh --wasm-pack  also wasm-pack (from crates.io, ~4 min the first time)
#   (the flags combine)
set -euo pipefail
cd "$(dirname "$0")/.."
log() { echo "[setup] $*" >&2; }
browser=""; wasm_pack=""
for arg in "$@"; do
  case "$arg" in
    --browser) browser=1 ;;
    --wasm-pack) wasm_pack=1 ;;
  esac
done

# 1. The wasm target.
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  log "adding rust target wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown >&2
fi

# 2. wasm-bindgen CLI at exactly the version Cargo.lock pins (the CLI and the crate must match).
if [ ! -f Cargo.lock ]; then cargo generate-lockfile >&2; fi
want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have" != "$want" ]; then
  log "installing wasm-bindgen-cli $want (found: ${have:-none}); this builds from crates.io and takes a few minutes"
  # --locked fails against the registry index here; a plain versioned install works.
  cargo install wasm-bindgen-cli --version "$want" --force >&2
fi

# 3. npm packages from the committed lockfile.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "npm ci"
  npm ci --no-audit --no-fund >&2
fi

# 4. Browser tests: Debian's Chromium and its driver (never a downloaded browser).
if [ -n "$browser" ]; then
  if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    log "installing Debian chromium and chromium-driver"
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq >&2
    $SUDO apt-get install -y -qq chromium chromium-driver >&2
  fi
fi

# 5. wasm-pack, for `wasm-pack build --target web` (the WebAssembly core as its own package).
# Built from crates.io; wasm-opt stays off in Cargo.toml because wasm-pack's own download of it
# fails here, and wasm-pack uses the wasm-bindgen CLI installed above (same version).
if [ -n "$wasm_pack" ] && ! command -v wasm-pack >/dev/null 2>&1; then
  log "installing wasm-pack from crates.io (a few minutes)"
  cargo install wasm-pack --locked >&2
fi

# 6. Redis tests and benchmarks: Debian's redis-server (started by the tests on a free loopback
#    port in a temporary folder; never a system service).
if ! command -v redis-server >/dev/null 2>&1; then
  log "installing Debian redis-server"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends redis-server >&2
fi
