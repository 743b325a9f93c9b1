#!/usr/bin/env bash
# Second test level: the wasm-bindgen tests of the binding layer (tests/wasm_bindings.rs and
# tests/wasm/), built for wasm32 and run by wasm-bindgen-test-runner, first in Node, then in
# headless Chromium. Then the same two runs of the Rust API's wasm tests (tests/rust_api_web.rs,
# feature `web`: Web Streams through wasm-streams, read and written from JS), and of the
# window/downsample stages' module (crates/stages/tests/wasm.rs).
#
#   scripts/test-wasm.sh                  both runs
#   scripts/test-wasm.sh --node           Node only
#   scripts/test-wasm.sh --browser        Chromium only
#   scripts/test-wasm.sh -- <args>        extra harness args, e.g. a name filter or --include-ignored
#
# The browser run is selected by env vars read by wasm-bindgen-test-runner 0.2.130:
#   WASM_BINDGEN_USE_BROWSER=1                   run the (unconfigured) suite in a browser
#   CHROMEDRIVER=/usr/bin/chromedriver           which WebDriver to start (Chrome)
#   WASM_BINDGEN_TEST_WEBDRIVER_JSON=<repo>/webdriver.json
#                                                extra capabilities (goog:chromeOptions.args);
#                                                the runner otherwise looks for ./webdriver.json
# Full logs go to test-output/wasm-{node,chromium}.log. Exits non-zero if any run fails.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

run_node=1
run_browser=1
harness_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --node) run_browser="" ;;
    --browser) run_node="" ;;
    --) shift; harness_args=("$@"); break ;;
    *) echo "usage: $0 [--node|--browser] [-- harness args]" >&2; exit 2 ;;
  esac
  shift
done

log() { echo "[test-wasm] $*" >&2; }
die() { log "error: $*"; exit 1; }

# The runner must match the wasm-bindgen version Cargo.lock pins.
want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
have=$(wasm-bindgen-test-runner --version 2>/dev/null | awk '{print $2}' || true)
[ -n "$have" ] || die "wasm-bindgen-test-runner not found; run scripts/setup.sh (installs wasm-bindgen-cli $want)"
[ "$have" = "$want" ] || die "wasm-bindgen-test-runner is $have but Cargo.lock pins wasm-bindgen $want; run scripts/setup.sh"
rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown \
  || die "rust target wasm32-unknown-unknown missing; run scripts/setup.sh"

export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
cargo_test=(cargo test --target wasm32-unknown-unknown --test wasm_bindings)
mkdir -p test-output

log "building tests/wasm_bindings.rs for wasm32"
if ! "${cargo_test[@]}" --no-run >test-output/wasm-build.log 2>&1; then
  cat test-output/wasm-build.log >&2
  die "build failed"
fi
cargo_test_api=(cargo test --target wasm32-unknown-unknown --features web --test rust_api_web)
log "building tests/rust_api_web.rs for wasm32 (feature web)"
if ! "${cargo_test_api[@]}" --no-run >test-output/wasm-rust-api-build.log 2>&1; then
  cat test-output/wasm-rust-api-build.log >&2
  die "build failed"
fi
# In its own target dir, as scripts/build.sh builds it (the main crate there has no exports).
cargo_test_stages=(cargo test --target wasm32-unknown-unknown -p stream-engine-stages --target-dir target/stages --test wasm)
log "building crates/stages/tests/wasm.rs for wasm32"
if ! "${cargo_test_stages[@]}" --no-run >test-output/wasm-stages-build.log 2>&1; then
  cat test-output/wasm-stages-build.log >&2
  die "build failed"
fi

failed=()

# run NAME [ENV=VALUE...]: one full run of the suite; prints the runner's pass/fail lines.
run() {
  local name=$1; shift
  local out="test-output/wasm-$name.log"
  local start secs rc
  log "running in $name"
  start=$(date +%s%N)
  set +e
  env "$@" "${cargo_test[@]}" -- "${harness_args[@]}" >"$out" 2>&1
  rc=$?
  set -e
  secs=$(awk -v ns=$(( $(date +%s%N) - start )) 'BEGIN { printf "%.1f", ns / 1e9 }')
  # Per-test lines, panics with their location and message, and the summary.
  # (The line after "panicked at" is the assertion or custom message.)
  awk -v tag="[$name] " '
    after { print tag $0; after = 0; next }
    /panicked at/ { print tag $0; after = 1; next }
    /^(test |running [0-9]+ test|failures:|Running headless)|test result:|^[ \t]+(left|right):/ { print tag $0 }
  ' "$out"
  if [ "$rc" -ne 0 ]; then
    grep -q 'test result:' "$out" || tail -n 40 "$out" | sed "s/^/[$name] /"
    log "$name: FAILED (exit $rc) in ${secs}s; full log: $out"
    failed+=("$name")
  else
    log "$name: passed in ${secs}s; full log: $out"
  fi
}

# run_api NAME [ENV=VALUE...]: `run` on the Rust API's suite.
run_api() {
  local saved=("${cargo_test[@]}")
  cargo_test=("${cargo_test_api[@]}")
  run "$@"
  cargo_test=("${saved[@]}")
}

# run_stages NAME [ENV=VALUE...]: `run` on the stages module's suite.
run_stages() {
  local saved=("${cargo_test[@]}")
  cargo_test=("${cargo_test_stages[@]}")
  run "$@"
  cargo_test=("${saved[@]}")
}

if [ -n "$run_node" ]; then
  command -v node >/dev/null 2>&1 || die "node not found"
  run node
  run_api rust-api-node
  run_stages stages-node
fi

if [ -n "$run_browser" ]; then
  driver=${CHROMEDRIVER:-$(command -v chromedriver || true)}
  [ -n "$driver" ] && [ -x "$driver" ] \
    || die "chromedriver not found; run scripts/setup.sh --browser (Debian chromium + chromium-driver)"
  [ -f "$root/webdriver.json" ] || die "missing $root/webdriver.json (headless Chromium options)"
  run chromium \
    WASM_BINDGEN_USE_BROWSER=1 \
    CHROMEDRIVER="$driver" \
    WASM_BINDGEN_TEST_WEBDRIVER_JSON="$root/webdriver.json"
  run_api rust-api-chromium \
    WASM_BINDGEN_USE_BROWSER=1 \
    CHROMEDRIVER="$driver" \
    WASM_BINDGEN_TEST_WEBDRIVER_JSON="$root/webdriver.json"
  run_stages stages-chromium \
    WASM_BINDGEN_USE_BROWSER=1 \
    CHROMEDRIVER="$driver" \
    WASM_BINDGEN_TEST_WEBDRIVER_JSON="$root/webdriver.json"
fi

if [ ${#failed[@]} -gt 0 ]; then
  log "FAILED: ${failed[*]}"
  exit 1
fi
log "all runs passed"
