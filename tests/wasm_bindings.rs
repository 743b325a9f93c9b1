//! Second test level: wasm-bindgen tests of the binding layer (`stream_engine::wasm`), JsValue in
//! and JsValue out. They compile only for wasm32 and run under `wasm-bindgen-test-runner`, in
//! Node by default and in headless Chromium with `WASM_BINDGEN_USE_BROWSER=1` (see
//! `scripts/test-wasm.sh`). The tests live in `tests/wasm/`; this file is the cargo target.
#![cfg(target_arch = "wasm32")]

#[path = "wasm/common.rs"]
mod common;
#[path = "wasm/config.rs"]
mod config;
#[path = "wasm/flow.rs"]
mod flow;
#[path = "wasm/junk.rs"]
mod junk;
#[path = "wasm/metrics.rs"]
mod metrics;
#[path = "shared/samples.rs"]
mod samples;
#[path = "wasm/shapes.rs"]
mod shapes;
