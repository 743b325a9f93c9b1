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
# Each .wasm is built in a target dir of its own: cdylib file names carry no hash, so any other
# release build that has this crate as a dependency (examples/rust-producer, with feature `web`,
# in target/; crates/stages) rewrites target/.../deps/stream_engine.wasm, and cargo then hands
# that file out as this build's output (seen: a 162 kB module with the Rust API in it).
cargo build --quiet --lib --release --target wasm32-unknown-unknown --target-dir target/pkg
# The window/downsample stages: a second .wasm (crates/stages), loaded on first use, so that the
# main module every app downloads does not carry them. Built on its own (-p), so that the main
# crate is resolved for it with its `bindings` feature off (no engine exports in this module).
cargo build --quiet --lib --release --target wasm32-unknown-unknown -p stream-engine-stages --target-dir target/stages
wasm=target/pkg/wasm32-unknown-unknown/release/stream_engine.wasm
stages=target/stages/wasm32-unknown-unknown/release/stream_engine_stages.wasm

# bindgen IN OUT_DIR STAMP: one build for Node and browsers (the package ships one copy of each
# .wasm); without the `name` section (function names for stack traces, about 30 KB) and the
# producers section.
bindgen() {
  if [ ! -f "$3" ] || [ "$1" -nt "$3" ] || [ ! -d "$2" ]; then
    log "wasm-bindgen (web target) -> $2"
    rm -rf "$2"
    wasm-bindgen "$1" --out-dir "$2" --target web --typescript --remove-name-section --remove-producers-section
    [ -z "${4:-}" ] || wasmopt "$2/$4"
    touch "$3"
  fi
}
# wasmopt FILE: binaryen's wasm-opt -O3 (the npm dev dependency `binaryen`; Debian's wasm-opt 108
# cannot read wasm-bindgen's output) when installed, on both modules: -11 kB raw / -1.7 kB
# gzipped for the engine's, mostly code that only the elem table kept (the panic machinery's
# formatting, unused closure shims); -11 kB / -2.1 kB for the stages'. -O3, not -Oz: -Oz saves
# only 0.2 kB gzipped more, and -O3 trades no speed.
wasmopt() {
  local opt=node_modules/.bin/wasm-opt
  if [ -x "$opt" ]; then
    log "wasm-opt -O3 $1"
    "$opt" -O3 --strip-target-features "$1" -o "$1"
  else
    log "wasm-opt not installed (npm dev dependency binaryen): $1 left as wasm-bindgen wrote it"
  fi
}
rm -rf pkg/node
bindgen "$wasm" pkg/web pkg/.stamp stream_engine_bg.wasm
bindgen "$stages" pkg/stages pkg/.stamp-stages stream_engine_stages_bg.wasm

log "bundling JS entry points"
node scripts/bundle.mjs
log "done: pkg/ and dist/ are ready"
