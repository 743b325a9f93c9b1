#!/usr/bin/env bash
# The long form of the per-message oracle (a few seconds of it runs in `npm test`):
#   Rust core: tests/oracle.rs (Engine, several connections, lifecycles) and the prop_* model
#   tests of tests/core_flow.rs, in release mode; JS API: tests/js/oracle.test.mjs.
# Scale with ORACLE_SEEDS (default 20) and ORACLE_OPS (operations per seed and test; defaults
# below give >= 1M operations per level across 20 seeds). Prints what ran and how long it took.
set -euo pipefail
cd "$(dirname "$0")/.."
export ORACLE_SEEDS="${ORACLE_SEEDS:-20}"
export ORACLE_STATS=1 CORE_FLOW_STATS=1
rust_ops="${ORACLE_RUST_OPS:-${ORACLE_OPS:-50000}}"
js_ops="${ORACLE_JS_OPS:-${ORACLE_OPS:-50000}}"

bash scripts/build.sh --quiet

echo "== Rust core: $ORACLE_SEEDS seeds x $rust_ops ops per test (release)"
start=$(date +%s)
ORACLE_OPS="$rust_ops" cargo test --quiet --release --test oracle --test core_flow -- --nocapture oracle prop_ 2>&1 |
  grep -E 'engine oracle|Stats|test result|panicked|minimal|seed' || true
echo "   Rust: $(( $(date +%s) - start )) s"

echo "== JS API: $ORACLE_SEEDS seeds x $js_ops ops (node --test tests/js/oracle.test.mjs)"
start=$(date +%s)
ORACLE_OPS="$js_ops" node --test tests/js/oracle.test.mjs
echo "   JS: $(( $(date +%s) - start )) s"
