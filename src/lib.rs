//! `stream-engine`: a streaming engine for live web UIs.
//!
//! The crate has two layers:
//! - [`core`]: plain Rust (queues, batching, drop policies, statistics, alerts, recovery). It never
//!   reads a clock: every operation takes `now` in milliseconds, so `cargo test` drives it natively
//!   with a fake clock.
//! - `wasm` (only on `wasm32`): the thin wasm-bindgen layer. Messages stay in JS (the core sees
//!   slot numbers); it turns core results into status bits, JS values and errors.
//! - `api` (feature `futures`; on wasm32 also `web`): the Rust API, a `StreamEngine<T>` whose
//!   connections are `futures` Sinks and Streams, and on wasm32 Web Streams through wasm-streams.
//!
//! The JavaScript API (Web Streams, timers, promises) lives in `js/` and calls the `wasm` layer.

#![warn(missing_docs)]

pub mod core;

// The Rust API (feature `futures`; on wasm32 it needs `web` for the platform timer).
#[cfg(all(feature = "futures", any(not(target_arch = "wasm32"), feature = "web")))]
pub mod api;

// The npm package's allocator: Talc instead of the standard dlmalloc (smaller and faster in
// WebAssembly; see README "Footprint"). Only with `bindings`: a crate linking the core into a
// .wasm of its own keeps its own choice.
#[cfg(all(
    target_arch = "wasm32",
    feature = "bindings",
    not(target_feature = "atomics")
))]
#[global_allocator]
static ALLOC: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

// JS value readers and error conversion shared by the engine's bindings and the stages module.
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod jsval;

// Off (feature `bindings`) when another cdylib links the core without the engine's exports.
#[cfg(all(target_arch = "wasm32", feature = "bindings"))]
pub mod wasm;
