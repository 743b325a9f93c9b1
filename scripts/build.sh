#!/usr/bin/env bash
# Builds the wasm core, the wasm-bindgen glue (one build for Node and the web), and the JS entry
# points.
# Skips work that is up to date.
set -euo pipefail
cd "$(dirname "$0")/.."
quiet=""; [ "${1:-}" = "--quiet" ] && quiet=1
log() { [ -n "$quiet" ] || echo "[build] $*" >&2; }

bash scripts/setup.sh

log "cargo build (wasm32, release)"
cargo build --quiet --lib --release --target wasm32-unknown-unknown
wasm=target/wasm32-unknown-unknown/release/stream_engine.wasm

stamp=pkg/.stamp
if [ ! -f "$stamp" ] || [ "$wasm" -nt "$stamp" ]; then
  # One build for Node and browsers (the package ships one .wasm); without the `name` section
  # (function names for stack traces, about 30 KB) and the producers section.
  log "wasm-bindgen (web target)"
  rm -rf pkg/node pkg/web
  wasm-bindgen "$wasm" --out-dir pkg/web --target web --typescript --remove-name-section --remove-producers-section
  touch "$stamp"
fi

log "bundling JS entry points"
node scripts/bundle.mjs
log "done: pkg/ and dist/ are ready"
