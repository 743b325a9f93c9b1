//! `stream-engine-stages`: the second WebAssembly module of `@nodeflow/stream-engine`, the
//! bindings of the windowed aggregator and the downsamplers ([`stream_engine::core::aggregate`],
//! [`stream_engine::core::downsample`]).
//!
//! Why a module of its own: most apps never aggregate, and a `.wasm` cannot be tree-shaken, so
//! these stages (about a third of the engine's `.wasm` when they lived in it) are built into
//! `pkg/stages/` and loaded by `createWindowStage` / `createDownsampleStage` on first use. The
//! crate links the plain-Rust core of `stream-engine` with its `bindings` feature off, so none of
//! the engine's exports are in this module.
//!
//! As with connections, messages never cross: JS passes, per batch, typed arrays of tokens
//! (slots in its own store), interned key ids, event times and values (one crossing per batch),
//! and reads results back as one flat `Float64Array` plus a `Uint32Array` of released tokens.
//! Keys are interned in JS (a `Map` from key string to a small integer), so no string crosses
//! per message.

#![warn(missing_docs)]

// Talc instead of dlmalloc, as in the engine's module (smaller; see README "Footprint").
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOC: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

use js_sys::TypeError;
use wasm_bindgen::prelude::*;

use stream_engine::core::aggregate::{Added, Aggregator, WindowOptions};
use stream_engine::core::downsample::{lttb as core_lttb, MinMaxDownsampler};
use stream_engine::jsval::{read_number, to_js_error};

/// Numbers per result in [`WindowAggregatorCore::take_results`]:
/// `key, start, end, count, sum, min, max, mean, p50, p95`.
pub const RESULT_STRIDE: usize = 10;

/// Numbers per bucket in [`MinMaxDownsamplerCore::take`]:
/// `key, start, end, count, min, minTime, max, maxTime, last`.
pub const BUCKET_STRIDE: usize = 9;

fn added_code(a: Added) -> u8 {
    match a {
        Added::Taken => 0,
        Added::Late => 1,
        Added::Invalid => 2,
    }
}

fn options_object(options: &JsValue) -> Result<(), JsValue> {
    if !options.is_object() {
        return Err(TypeError::new("window options must be an object").into());
    }
    Ok(())
}

/// The event-time window aggregator as seen from JavaScript (`createWindowStage` and the
/// worker build on it).
#[wasm_bindgen]
pub struct WindowAggregatorCore {
    agg: Aggregator<u32>,
    /// Tokens of the results of the last `takeResults`, concatenated (each result's `count`).
    lineage: Vec<u32>,
}

#[wasm_bindgen]
impl WindowAggregatorCore {
    /// `options`: `{ size, slide?, allowedLateness? }` in ms (`slide` defaults to `size`:
    /// tumbling). Wrong types are `TypeError`s, bad values `RangeError`s, naming the field.
    #[wasm_bindgen(constructor)]
    pub fn new(options: &JsValue) -> Result<WindowAggregatorCore, JsValue> {
        options_object(options)?;
        let size = read_number(options, "size")?.ok_or_else(|| {
            JsValue::from(TypeError::new("size must be a number (ms), got undefined"))
        })?;
        let slide = read_number(options, "slide")?.unwrap_or(size);
        let lateness = read_number(options, "allowedLateness")?.unwrap_or(0.0);
        let opts = WindowOptions {
            size,
            slide,
            allowed_lateness: lateness,
        };
        let agg = Aggregator::new(opts).map_err(|e| to_js_error(&e))?;
        Ok(WindowAggregatorCore {
            agg,
            lineage: Vec::new(),
        })
    }

    /// Adds a batch; returns one code per event: 0 taken, 1 late, 2 invalid. Arrays shorter
    /// than `tokens` read as invalid events (never a panic).
    #[wasm_bindgen(js_name = addMany)]
    pub fn add_many(
        &mut self,
        tokens: &[u32],
        keys: &[u32],
        times: &[f64],
        values: &[f64],
    ) -> Vec<u8> {
        tokens
            .iter()
            .enumerate()
            .map(|(i, &tok)| {
                let key = keys.get(i).copied().unwrap_or(0);
                let t = times.get(i).copied().unwrap_or(f64::NAN);
                let v = values.get(i).copied().unwrap_or(f64::NAN);
                added_code(self.agg.add(tok, key, t, v))
            })
            .collect()
    }

    /// Advances the watermark (event time, ms) without an event.
    pub fn advance(&mut self, time: f64) {
        self.agg.advance(time);
    }

    /// Closes every open window.
    pub fn flush(&mut self) {
        self.agg.flush();
    }

    /// Results since the last call, flat, [`RESULT_STRIDE`] numbers each.
    #[wasm_bindgen(js_name = takeResults)]
    pub fn take_results(&mut self) -> Vec<f64> {
        let rs = self.agg.take_results();
        let mut out = Vec::with_capacity(rs.len() * RESULT_STRIDE);
        self.lineage.clear();
        for r in rs {
            self.lineage.extend_from_slice(&r.tokens);
            out.extend_from_slice(&[
                r.key as f64,
                r.start,
                r.end,
                r.count as f64,
                r.sum,
                r.min,
                r.max,
                r.mean,
                r.p50,
                r.p95,
            ]);
        }
        out
    }

    /// The tokens of the results returned by the last `takeResults`, concatenated in result
    /// order (result `i` covers its `count` tokens): which inputs each result covers.
    #[wasm_bindgen(js_name = takeLineage)]
    pub fn take_lineage(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.lineage)
    }

    /// Tokens released since the last call (every window they were in has been emitted).
    #[wasm_bindgen(js_name = takeReleased)]
    pub fn take_released(&mut self) -> Vec<u32> {
        self.agg.take_released()
    }

    /// Counters: `[taken, late, invalid, lateWindowMisses, results, released, held, openWindows]`.
    pub fn stats(&self) -> Vec<f64> {
        let s = self.agg.stats();
        vec![
            s.taken as f64,
            s.late as f64,
            s.invalid as f64,
            s.late_window_misses as f64,
            s.results as f64,
            s.released as f64,
            self.agg.held() as f64,
            self.agg.open_windows() as f64,
        ]
    }

    /// Largest event time seen (`-Infinity` before the first event).
    pub fn watermark(&self) -> f64 {
        self.agg.watermark()
    }
}

/// The streaming min/max-per-bucket downsampler as seen from JavaScript.
#[wasm_bindgen]
pub struct MinMaxDownsamplerCore {
    d: MinMaxDownsampler<u32>,
}

#[wasm_bindgen]
impl MinMaxDownsamplerCore {
    /// Buckets of `bucket_ms` ms; a bad value is a `RangeError` naming `bucketMs`.
    #[wasm_bindgen(constructor)]
    pub fn new(bucket_ms: f64) -> Result<MinMaxDownsamplerCore, JsValue> {
        let d = MinMaxDownsampler::new(bucket_ms).map_err(|e| to_js_error(&e))?;
        Ok(MinMaxDownsamplerCore { d })
    }

    /// Adds a batch; one code per point: 0 taken, 1 late, 2 invalid.
    #[wasm_bindgen(js_name = addMany)]
    pub fn add_many(&mut self, keys: &[u32], times: &[f64], values: &[f64]) -> Vec<u8> {
        keys.iter()
            .enumerate()
            .map(|(i, &k)| {
                let t = times.get(i).copied().unwrap_or(f64::NAN);
                let v = values.get(i).copied().unwrap_or(f64::NAN);
                added_code(self.d.add(k, t, v))
            })
            .collect()
    }

    /// Emits every open bucket.
    pub fn flush(&mut self) {
        self.d.flush();
    }

    /// Buckets since the last call, flat, [`BUCKET_STRIDE`] numbers each.
    pub fn take(&mut self) -> Vec<f64> {
        let bs = self.d.take();
        let mut out = Vec::with_capacity(bs.len() * BUCKET_STRIDE);
        for b in bs {
            out.extend_from_slice(&[
                b.key as f64,
                b.start,
                b.end,
                b.count as f64,
                b.min,
                b.min_time,
                b.max,
                b.max_time,
                b.last,
            ]);
        }
        out
    }

    /// Counters: `[taken, late, invalid]`.
    pub fn stats(&self) -> Vec<f64> {
        vec![
            self.d.taken as f64,
            self.d.late as f64,
            self.d.invalid as f64,
        ]
    }
}

/// Largest-Triangle-Three-Buckets: indices of at most `threshold` points of `(xs, ys)` that
/// keep the series' shape (see [`stream_engine::core::downsample::lttb`]).
#[wasm_bindgen]
pub fn lttb(xs: &[f64], ys: &[f64], threshold: u32) -> Vec<u32> {
    core_lttb(xs, ys, threshold as usize)
        .into_iter()
        .map(|i| i as u32)
        .collect()
}
