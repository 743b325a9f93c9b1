//! The engine's logic in plain Rust: no wasm-bindgen, no clock. Every time-dependent call takes
//! `now` in milliseconds, so tests drive it with a fake clock.
//!
//! One concept per file:
//! - [`config`]: options, their defaults and validation errors that name the field.
//! - [`priority`]: priority numbers, names and classes.
//! - [`buffer`]: the queue (FIFO with priority index and conflation keys).
//! - [`connection`]: one connection's flow control and accounting.
//! - [`adaptive`]: the adaptive backpressure controller.
//! - [`histogram`], [`window`]: bounded-memory latency histograms and sliding windows.
//! - [`num`]: number formatting for messages (no float `core::fmt`, for a smaller `.wasm`).
//! - [`alerts`]: thresholds and alert hysteresis.
//! - [`recovery`]: retry delays and the circuit breaker.
//! - [`smallmap`]: a sorted `Vec` map for per-connection tables (smaller than `BTreeMap`).
//! - [`keymap`]: the conflation key map (open addressing; smaller than `HashMap`).
//! - [`engine`]: the set of connections, metrics ticks and alerts.
//! - [`aggregate`], [`downsample`]: event-time windowed aggregation and chart downsampling.

pub mod adaptive;
pub mod aggregate;
pub mod alerts;
pub mod buffer;
pub mod config;
pub mod connection;
pub mod downsample;
pub mod engine;
pub mod histogram;
pub mod keymap;
pub mod num;
pub mod priority;
pub mod recovery;
pub mod smallmap;
pub mod window;
