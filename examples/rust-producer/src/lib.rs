//! A Rust producer for the demo page, on the stream-engine Rust API (feature `web`).
//!
//! `createRustSource(pattern, options)` returns a `ReadableStream` whose chunks are arrays of
//! demo messages (`{ id, timestamp, sourceNodeId, targetNodeId, port, data: { value, seq,
//! producer: 'rust' }, metadata? }`), the same shape and patterns as the JS `createDataSource`
//! with `batch: true`, so the page pipes it into a connection's `writable` unchanged.
//!
//! Inside, a Rust task writes into a Rust `StreamEngine` connection with `Sender::send_all`,
//! and the connection's batches are handed to JavaScript through wasm-streams
//! (`Batches::into_readable_stream`). Backpressure runs end to end: when the page's engine stops
//! taking writes, the stream is not read, the Rust connection fills, and `send_all` waits, so
//! the producer slows down instead of queueing without bound. Cancelling the stream drops the
//! Rust reader, which closes the connection, and the producer task ends at its next write.

use std::cell::Cell;

use js_sys::{Function, Object, Reflect};
use stream_engine::api::{ConnectionOptions, StreamEngine, Timer, WebTimer};
use wasm_bindgen::prelude::*;

/// Messages per array at most (as `createDataSource`).
const MAX_BATCH: usize = 4096;
/// Timer tick bounds, ms.
const MIN_TICK_MS: f64 = 4.0;
const MAX_TICK_MS: f64 = 250.0;

thread_local! {
    static ENGINE: StreamEngine<JsValue> = StreamEngine::new();
    static PRODUCED: Cell<f64> = const { Cell::new(0.0) };
    static NEXT_ID: Cell<u32> = const { Cell::new(0) };
}

/// Messages produced by every Rust source so far (for the page and its test).
#[wasm_bindgen(js_name = rustProduced)]
pub fn rust_produced() -> f64 {
    PRODUCED.with(Cell::get)
}

/// Ids of the Rust engine's open connections (one per running source).
#[wasm_bindgen(js_name = rustSources)]
pub fn rust_sources() -> Vec<String> {
    ENGINE.with(|e| e.ids())
}

struct Options {
    rate: f64,
    source: String,
    target: String,
    port: String,
    amplitude: f64,
    period: f64,
    priority: Option<Function>,
}

fn get(o: &JsValue, k: &str) -> JsValue {
    Reflect::get(o, &JsValue::from_str(k)).unwrap_or(JsValue::UNDEFINED)
}

fn number(o: &JsValue, k: &str, default: Option<f64>) -> Result<f64, JsValue> {
    let v = get(o, k);
    if v.is_undefined() {
        return default.ok_or_else(|| js_sys::TypeError::new(&format!("{k} is required")).into());
    }
    match v.as_f64() {
        Some(n) if n.is_finite() => Ok(n),
        Some(n) => Err(js_sys::RangeError::new(&format!("{k} must be finite, got {n}")).into()),
        None => Err(js_sys::TypeError::new(&format!("{k} must be a number")).into()),
    }
}

fn string(o: &JsValue, k: &str, default: &str) -> Result<String, JsValue> {
    let v = get(o, k);
    if v.is_undefined() {
        return Ok(default.into());
    }
    v.as_string()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| js_sys::TypeError::new(&format!("{k} must be a non-empty string")).into())
}

fn read_options(o: &JsValue) -> Result<Options, JsValue> {
    if !o.is_object() {
        return Err(
            js_sys::TypeError::new("options must be an object with at least a rate").into(),
        );
    }
    let rate = number(o, "rate", None)?;
    if rate <= 0.0 {
        return Err(js_sys::RangeError::new(&format!("rate must be > 0, got {rate}")).into());
    }
    let period = number(o, "period", Some(1000.0))?;
    if period <= 0.0 {
        return Err(
            js_sys::RangeError::new(&format!("period must be > 0 (ms), got {period}")).into(),
        );
    }
    let p = get(o, "priority");
    Ok(Options {
        rate,
        source: string(o, "sourceNodeId", "source")?,
        target: string(o, "targetNodeId", "target")?,
        port: string(o, "port", "out")?,
        amplitude: number(o, "amplitude", Some(100.0))?,
        period,
        priority: if p.is_undefined() {
            None
        } else {
            Some(
                p.dyn_into::<Function>()
                    .map_err(|_| js_sys::TypeError::new("priority must be a function"))?,
            )
        },
    })
}

fn pattern_value(pattern: &str, seq: u64, t: f64, amplitude: f64, period: f64) -> f64 {
    match pattern {
        "sequential" => seq as f64,
        "random" => js_sys::Math::random() * amplitude,
        "sine-wave" => amplitude * (2.0 * std::f64::consts::PI * t / period).sin(),
        // A staircase of 4 levels from 0 to amplitude, one level per period.
        _ => amplitude * ((t / period).floor() % 4.0) / 3.0,
    }
}

fn set(o: &Object, k: &str, v: &JsValue) {
    let _ = Reflect::set(o, &JsValue::from_str(k), v);
}

fn message(o: &Options, pattern: &str, seq: u64, t: f64) -> JsValue {
    let data = Object::new();
    set(
        &data,
        "value",
        &pattern_value(pattern, seq, t, o.amplitude, o.period).into(),
    );
    set(&data, "seq", &(seq as f64).into());
    set(&data, "producer", &"rust".into());
    let m = Object::new();
    set(&m, "id", &format!("{}-{seq}", o.source).into());
    set(&m, "timestamp", &js_sys::Date::now().into());
    set(&m, "sourceNodeId", &o.source.as_str().into());
    set(&m, "targetNodeId", &o.target.as_str().into());
    set(&m, "port", &o.port.as_str().into());
    set(&m, "data", &data);
    if let Some(f) = &o.priority {
        if let Ok(p) = f.call0(&JsValue::NULL) {
            let meta = Object::new();
            set(&meta, "priority", &p);
            set(&m, "metadata", &meta);
        }
    }
    m.into()
}

/// A `ReadableStream` of message arrays produced in Rust at `options.rate` messages per
/// second following `pattern` (`'sequential'`, `'random'`, `'sine-wave'` or `'step'`).
/// Options: `rate` (required), `sourceNodeId`, `targetNodeId`, `port`, `amplitude` (100),
/// `period` (1000 ms), `priority` (a function returning a message's priority).
#[wasm_bindgen(js_name = createRustSource)]
pub fn create_rust_source(
    pattern: String,
    options: JsValue,
) -> Result<web_sys::ReadableStream, JsValue> {
    if !matches!(
        pattern.as_str(),
        "sequential" | "random" | "sine-wave" | "step"
    ) {
        return Err(js_sys::TypeError::new(&format!(
            "pattern must be one of 'sequential', 'random', 'sine-wave', 'step', got '{pattern}'"
        ))
        .into());
    }
    let o = read_options(&options)?;
    let n = NEXT_ID.with(|c| {
        c.set(c.get() + 1);
        c.get()
    });
    let engine = ENGINE.with(StreamEngine::clone);
    let conn = engine
        .connect(
            &format!("{}#{n}", o.source),
            // Lossless: a slow reader slows the producer; batches of what is there, at once.
            ConnectionOptions::new()
                .buffer_size(2 * MAX_BATCH)
                .max_batch_size(MAX_BATCH)
                .batch_timeout(0.0),
        )
        .map_err(|e| JsValue::from(js_sys::RangeError::new(&e.message)))?;
    let (mut tx, batches) = conn.split();
    wasm_bindgen_futures::spawn_local(async move {
        let timer = WebTimer::new();
        let start = timer.now();
        let tick = (1000.0 / o.rate).clamp(MIN_TICK_MS, MAX_TICK_MS);
        let mut seq = 0u64;
        loop {
            let now = timer.now();
            let due = ((now - start) * o.rate / 1000.0).floor() as u64;
            let k = (due.saturating_sub(seq) as usize).min(MAX_BATCH);
            if k > 0 {
                let batch: Vec<JsValue> = (0..k)
                    .map(|i| message(&o, &pattern, seq + i as u64, now - start))
                    .collect();
                seq += k as u64;
                PRODUCED.with(|c| c.set(c.get() + k as f64));
                // Waits while the connection is full; fails once the reader went away.
                if tx.send_all(batch).await.is_err() {
                    break;
                }
            }
            timer.sleep_until(timer.now() + tick).await;
        }
    });
    Ok(batches.into_readable_stream())
}
