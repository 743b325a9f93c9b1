#!/usr/bin/env bash
# Builds the example Rust wasm producer (examples/rust-producer, its own cdylib crate on the
# stream-engine Rust API with feature `web`) into pkg/rust-producer/ for the demo page.
# Skips work that is up to date. Output is build output: never committed.
set -euo pipefail
cd "$(dirname "$0")/.."
quiet=""; [ "${1:-}" = "--quiet" ] && quiet=1
log() { [ -n "$quiet" ] || echo "[build-rust-producer] $*" >&2; }

bash scripts/setup.sh
# A target dir of its own: this release build has stream-engine (a cdylib) as a dependency, and
# cdylib file names carry no hash, so in the repository's target/ it rewrote
# target/wasm32-unknown-unknown/release/deps/stream_engine.wasm, which a later `wasm-pack build`
# then packaged (with this build's features: the wasm-streams exports).
target=$PWD/target/rust-producer
log "cargo build (wasm32, release)"
(cd examples/rust-producer && cargo build --quiet --release --target wasm32-unknown-unknown --target-dir "$target")
wasm=$target/wasm32-unknown-unknown/release/rust_producer.wasm
out=pkg/rust-producer
if [ ! -f "$out/rust_producer_bg.wasm" ] || [ "$wasm" -nt "$out/rust_producer_bg.wasm" ]; then
  log "wasm-bindgen (web target)"
  rm -rf "$out"
  wasm-bindgen "$wasm" --out-dir "$out" --target web
fi
log "done: $out"
