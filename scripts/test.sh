#!/usr/bin/env bash
# Runs every test level: native Rust core, wasm bindings (Node + Chromium), the built package in
# Node (including the README's examples), and the demo page in Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
export CI="${CI:-}"

bash scripts/setup.sh --browser --wasm-pack
bash scripts/build.sh

echo "== 1/4 core (cargo test, native, fake clock)"
# Formatting is checked where rustfmt is installed (a rustup component; not fetched here: its
# server is not one of the registries this project installs from).
if cargo fmt --version >/dev/null 2>&1; then cargo fmt --all -- --check; fi
cargo test --quiet
# The Rust API (src/api, tests/rust_api.rs and its doctests) is behind the `futures` feature.
cargo test --quiet --features futures --test rust_api
cargo test --quiet --features futures --doc api

echo "== 2/4 wasm bindings (wasm-bindgen-test in Node and headless Chromium)"
bash scripts/test-wasm.sh

echo "== 3/4 package in Node (node --test)"
node --test --test-concurrency=1 tests/js/

echo "== 3/4 again on Node 18 (Debian's, beside the system Node; the package promises Node 18+)"
bash scripts/node18.sh >/dev/null
scripts/node18 --test --test-concurrency=1 tests/js/

echo "== 4/4 browser (playwright-core + Debian Chromium)"
bash scripts/build-rust-producer.sh --quiet # the demo's Rust producer (examples/rust-producer)
node --test --test-concurrency=1 tests/browser/
