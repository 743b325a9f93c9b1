//! The wasm-bindgen layer: [`EngineCore`] wraps [`crate::core::engine::Engine`].
//!
//! Messages never cross the boundary. The JS glue keeps each connection's messages in a plain
//! array of slots and hands the core only the slot number (`u32`), its priority (`f64`, read in
//! JS, which is several times cheaper than reading it from Rust) and the time. Measured on the
//! batch path, passing messages as `JsValue`s spent about a third of the time in externref table
//! bookkeeping (a table allocation per message in, a table read per message out); slot numbers
//! cross as plain typed arrays instead.
//! - A write is one call returning status bits, never a `Result`, so the common case allocates
//!   nothing and throws nothing.
//! - A batch write passes a `&[u32]` of slots and a `&[f64]` of priorities: one crossing.
//! - A delivered batch comes back as one `Uint32Array` of slots.
//! - Every message the core drops is reported back (slot and reason) so JS can free its slot and
//!   call `onDrop`: nothing is lost silently, not even a slot.
//! - Everything per-tick (metrics, events, alerts) becomes plain JS objects built field by field
//!   ([`out`]), not through serde-wasm-bindgen (smaller `.wasm`).
//!
//! Nothing here panics on input: unknown handles read as a closed connection, and bad options
//! become `TypeError` / `RangeError` naming the field. Handles carry a generation
//! ([`crate::core::engine::Handle`]): a handle kept by a JS object that outlived its connection
//! is unknown to the core from the moment the connection is removed, even once its slot holds
//! another connection.

mod options;
pub mod out;

use js_sys::{Array, Object, RangeError, Reflect};
use wasm_bindgen::prelude::*;

use crate::core::config::{self as cfg, StreamConfig};
use crate::core::connection::consume::{Failure, FailureKind, Next};
use crate::core::connection::{status, ConnEvent, DropReason, Push};
use crate::core::engine::{Engine, Handle};

pub use crate::core::connection::Status;
pub use options::{read_flow_policy, read_stream_patch, read_thresholds, thresholds_to_js};

/// Status bit for a refused write: the connection is closed or unknown.
pub const CLOSED: u32 = status::CLOSED;

/// Extra bit in [`EngineCore::take_with_status`]'s status: nothing is left buffered.
pub const EMPTY: u32 = status::EMPTY;

/// A message's slot in its connection's JS-side store.
pub type Slot = u32;

/// The return type of every export that hands JS an object (always `Ok`).
///
/// Why not a plain `JsValue`: an export returning one `externref` is inlined into optimized JS by
/// V8's TurboFan (`--turbo-inline-js-wasm-calls`, on by default). If that JS code is invalidated
/// while the call runs (these exports create objects through JS imports, which can change the
/// maps the caller's code depends on), V8 lazily deoptimizes it on return, and Node 20's V8
/// (11.3) cannot rebuild the frame for an `externref` result: the process aborts with "unreachable
/// code" in `Deoptimizer::DoComputeBuiltinContinuation` (SIGTRAP; issue 8, seen after 15-150 s of
/// overload with drop summaries). A `Result` is returned as several wasm values, and V8 never
/// inlines multi-value exports, so these calls go through the regular, deopt-safe wrapper.
/// Numeric exports (`u32`, `f64`, ...) are inlined and deoptimize safely; keep the per-message
/// path on those. `tests/js/crash-pattern.test.mjs` checks the built module for single
/// `externref` results.
pub type NotInlined<T = JsValue> = Result<T, JsValue>;

/// The exchange area keeps at most this many slots between deliveries: a larger batch grows it
/// for the one delivery and [`EngineCore::io_trim`] gives the memory back to the allocator.
pub const IO_KEEP: usize = 4097;

pub(crate) use crate::jsval::to_js_error;

pub(crate) fn to_js<S: out::ToJs + ?Sized>(v: &S) -> JsValue {
    v.to_js()
}

/// The engine core as seen from JavaScript. The public `StreamEngine` class in `js/engine.js`
/// owns one and builds Web Streams, timers and promises around it.
#[wasm_bindgen]
pub struct EngineCore {
    engine: Engine<Slot>,
    metrics_interval: f64,
    /// Exchange area in wasm memory that JS reads through a cached `Uint32Array` view: a
    /// delivered batch's slots go here, so no typed array is created per delivery.
    io: Vec<Slot>,
    /// How many messages the last `pushMany` took (read with `lastAccepted` when it was
    /// `PENDING`; otherwise all were taken).
    last_accepted: u32,
}

#[wasm_bindgen]
impl EngineCore {
    /// Validates the engine config (a partial `StreamConfig` plus `metricsInterval` and
    /// `metricsWindow`) and creates the core.
    #[wasm_bindgen(constructor)]
    pub fn new(config: &JsValue) -> Result<EngineCore, JsValue> {
        options::check_keys(config, cfg::ENGINE_OPTIONS, "config")?;
        let patch = read_stream_patch(config, "config")?;
        let defaults = StreamConfig::default()
            .apply(&patch)
            .map_err(|e| to_js_error(&e))?;
        let interval = options::read_time(config, "metricsInterval", 1000.0)?;
        let window = options::read_time(config, "metricsWindow", 5000.0)?;
        if interval <= 0.0 {
            return Err(RangeError::new(
                &[
                    "metricsInterval must be > 0 (ms), got ",
                    &crate::core::num::js(interval),
                ]
                .concat(),
            )
            .into());
        }
        if window <= 0.0 {
            return Err(RangeError::new(
                &[
                    "metricsWindow must be > 0 (ms), got ",
                    &crate::core::num::js(window),
                ]
                .concat(),
            )
            .into());
        }
        Ok(EngineCore {
            engine: Engine::new(defaults, window),
            metrics_interval: interval,
            io: Vec::new(),
            last_accepted: 0,
        })
    }

    /// The engine's full config as a plain object.
    pub fn config(&self) -> NotInlined {
        let o = stream_config_to_js(self.engine.defaults());
        let _ = Reflect::set(&o, &"metricsInterval".into(), &self.metrics_interval.into());
        let _ = Reflect::set(&o, &"metricsWindow".into(), &self.engine.window_ms().into());
        Ok(o.into())
    }

    /// Validates a connection's config against the engine defaults and returns the full
    /// `StreamConfig` as an object (for `connection.config`) without creating anything.
    #[wasm_bindgen(js_name = resolveConfig)]
    pub fn resolve_config(&self, config: &JsValue) -> Result<JsValue, JsValue> {
        let patch = read_stream_patch(config, "config")?;
        let cfg = self
            .engine
            .defaults()
            .apply(&patch)
            .map_err(|e| to_js_error(&e))?;
        Ok(stream_config_to_js(&cfg).into())
    }

    /// Creates a connection from its config (the `StreamConfig` fields, `dropPolicy`,
    /// `maxWaitTime`, `conflate`) and the handler in force (`{ kind, ...options }`, or
    /// `undefined`); the core resolves them into the flow policy
    /// ([`crate::core::config::PolicyRequest`]). Dropped slots are always reported back (see
    /// [`EngineCore::take_dropped`]) so JS can free them.
    pub fn create(
        &mut self,
        id: &str,
        config: &JsValue,
        handler: &JsValue,
    ) -> Result<u32, JsValue> {
        let patch = read_stream_patch(config, "config")?;
        let cfg = self
            .engine
            .defaults()
            .apply(&patch)
            .map_err(|e| to_js_error(&e))?;
        let policy = read_flow_policy(config, handler)?;
        self.engine
            .create(id, cfg, policy, true)
            .map_err(|e| to_js_error(&e))
    }

    /// Offers the message in `slot`. Returns status bits (`CLOSED` when refused for good; the
    /// slot is then not taken, nor with `PENDING`).
    pub fn push(&mut self, h: Handle, msg: Slot, priority: f64, now: f64) -> u32 {
        match self.engine.get(h).map(|c| c.push(msg, priority, None, now)) {
            Some(Ok(Push::Done(st))) => st,
            Some(Ok(Push::Pending(_))) => status::PENDING,
            _ => CLOSED,
        }
    }

    /// Offers one message with a conflation key.
    #[wasm_bindgen(js_name = pushKeyed)]
    pub fn push_keyed(&mut self, h: Handle, msg: Slot, priority: f64, key: &str, now: f64) -> u32 {
        match self
            .engine
            .get(h)
            .map(|c| c.push(msg, priority, Some(key), now))
        {
            Some(Ok(Push::Done(st))) => st,
            Some(Ok(Push::Pending(_))) => status::PENDING,
            _ => CLOSED,
        }
    }

    /// Offers a batch; stops at the first message that must wait. Returns the status bits of
    /// the whole batch: `PENDING` if it stopped early (then [`EngineCore::last_accepted`] says
    /// how many were taken, the first ones), `CLOSED` if none was.
    #[wasm_bindgen(js_name = pushMany)]
    pub fn push_many(&mut self, h: Handle, msgs: &[Slot], priorities: &[f64], now: f64) -> u32 {
        self.last_accepted = 0;
        let Some(c) = self.engine.get(h) else {
            return CLOSED;
        };
        let prios = priorities
            .iter()
            .copied()
            .chain(std::iter::repeat(f64::NAN));
        match c.push_many(msgs.iter().copied().zip(prios), now) {
            Ok((accepted, st)) => {
                self.last_accepted = accepted as u32;
                st
            }
            Err(_) => CLOSED,
        }
    }

    /// How many messages the last [`EngineCore::push_many`] took.
    #[wasm_bindgen(js_name = lastAccepted)]
    pub fn last_accepted(&self) -> u32 {
        self.last_accepted
    }

    /// Offers a message the user's handler marked droppable: the core drops it on arrival while
    /// backpressure is on, else takes it like `push` / `pushKeyed` (`key` only when conflating).
    #[wasm_bindgen(js_name = pushDroppable)]
    pub fn push_droppable(
        &mut self,
        h: Handle,
        msg: Slot,
        priority: f64,
        key: Option<String>,
        now: f64,
    ) -> u32 {
        match self
            .engine
            .get(h)
            .map(|c| c.push_droppable(msg, priority, key.as_deref(), now))
        {
            Some(Ok(Push::Done(st))) => st,
            Some(Ok(Push::Pending(_))) => status::PENDING,
            _ => CLOSED,
        }
    }

    /// Current status bits.
    pub fn status(&mut self, h: Handle) -> u32 {
        self.engine.get(h).map_or(CLOSED, |c| c.status())
    }

    /// When the head's batch is due (ms), or NaN when nothing is buffered.
    pub fn deadline(&mut self, h: Handle) -> f64 {
        self.engine
            .get(h)
            .and_then(|c| c.batch_deadline())
            .unwrap_or(f64::NAN)
    }

    /// Makes the exchange area hold at least `n` slots and returns its address in wasm memory
    /// (it moves when it grows, so JS asks again after each call).
    #[wasm_bindgen(js_name = ioReserve)]
    pub fn io_reserve(&mut self, n: usize) -> usize {
        if self.io.len() < n {
            self.io.resize(n, 0);
        }
        self.io.as_ptr() as usize
    }

    /// Length of the exchange area in slots.
    #[wasm_bindgen(js_name = ioLength)]
    pub fn io_length(&self) -> usize {
        self.io.len()
    }

    /// Gives back the memory of an exchange area grown past [`IO_KEEP`] slots by a large batch
    /// (JS calls it after reading such a batch, then reserves again before the next). Returns
    /// whether the area changed (and so moved).
    #[wasm_bindgen(js_name = ioTrim)]
    pub fn io_trim(&mut self) -> bool {
        if self.io.capacity() <= IO_KEEP {
            return false;
        }
        self.io = Vec::new();
        true
    }

    /// [`EngineCore::take_with_status`] into the exchange area: writes the batch's slots and then
    /// the status (with [`EMPTY`]) and returns the batch length, or -1 when no batch is due. The
    /// area grows to fit the batch (the returned length then exceeds the caller's view, and it
    /// reserves again and rereads); nothing is reserved up front for `maxBatchSize`.
    #[wasm_bindgen(js_name = takeIo)]
    pub fn take_io(&mut self, h: Handle, now: f64, force: bool) -> i32 {
        let Some(batch) = self.take_with_status(h, now, force) else {
            return -1;
        };
        if self.io.len() < batch.len() {
            self.io.resize(batch.len(), 0);
        }
        self.io[..batch.len()].copy_from_slice(&batch);
        (batch.len() - 1) as i32
    }

    /// The next batch for a consumer (held in flight until resolved), or `undefined`.
    #[wasm_bindgen(js_name = consumeTake)]
    pub fn consume_take(&mut self, h: Handle, now: f64, force: bool) -> Option<Vec<Slot>> {
        self.engine.get(h)?.consume_take(now, force)
    }

    /// The consumer handled the in-flight batch.
    #[wasm_bindgen(js_name = consumeSuccess)]
    pub fn consume_success(&mut self, h: Handle, now: f64) -> u32 {
        self.engine
            .get(h)
            .map_or(CLOSED, |c| c.consume_success(now))
    }

    /// Dead-letters the in-flight batch; returns how many messages.
    #[wasm_bindgen(js_name = consumeDeadLetter)]
    pub fn consume_dead_letter(&mut self, h: Handle, now: f64) -> u32 {
        self.engine
            .get(h)
            .map_or(0, |c| c.consume_dead_letter(now) as u32)
    }

    /// The handler failed on the in-flight batch: the core counts the failure, feeds the circuit
    /// breaker and decides (see [`crate::core::connection::consume`]). `kind` says what JS read
    /// from the error (or what a user recovery object answered); `x` is `Math.random()` for
    /// `Retryable`, the user's delay for `RetryAfter`. Returns when to retry (ms), or NaN: give
    /// the batch up (dead-letter it). The event bits are in `status` afterwards.
    #[wasm_bindgen(js_name = consumeFailed)]
    pub fn consume_failed(&mut self, h: Handle, now: f64, kind: FailureKind, x: f64) -> f64 {
        match self
            .engine
            .get(h)
            .map(|c| c.consume_failed(now, Failure::from_kind(kind, x)))
        {
            Some(Next::Retry { at }) => at,
            _ => f64::NAN,
        }
    }

    /// Failed attempts so far on the in-flight batch (what a user recovery object is asked with).
    #[wasm_bindgen(js_name = consumeAttempt)]
    pub fn consume_attempt(&mut self, h: Handle) -> u32 {
        self.engine.get(h).map_or(0, |c| c.consume_attempt())
    }

    /// Sets the retry policy of the `DefaultErrorRecovery` in force (its options, already
    /// resolved by `resolveRecoveryOptions`).
    #[wasm_bindgen(js_name = setRetryPolicy)]
    pub fn set_retry_policy(
        &mut self,
        h: Handle,
        retry_attempts: u32,
        retry_delay: f64,
        max_retry_delay: f64,
        jitter: f64,
    ) {
        if let Some(c) = self.engine.get(h) {
            c.set_retry_policy(crate::core::recovery::RetryPolicy {
                retry_attempts,
                retry_delay,
                max_retry_delay,
                jitter,
            });
        }
    }

    /// NaN: the consumer may call its handler now (a half-open circuit's one trial is taken);
    /// otherwise the circuit is open and JS asks again at the returned time (ms). An unknown
    /// handle waits forever (+Infinity).
    #[wasm_bindgen(js_name = circuitWait)]
    pub fn circuit_wait(&mut self, h: Handle, now: f64) -> f64 {
        match self.engine.get(h) {
            Some(c) => c.circuit_wait(now).unwrap_or(f64::NAN),
            None => f64::INFINITY,
        }
    }

    /// A write accepted with `Status.Hold` (called at `called_at`): when its promise may
    /// resolve (ms), or NaN for now. Asked only when the HOLD bit is set; the wait budget and
    /// the decision are the core's ([`crate::core::connection::admission`]).
    #[wasm_bindgen(js_name = holdUntil)]
    pub fn hold_until(&mut self, h: Handle, called_at: f64, now: f64) -> f64 {
        self.engine
            .get(h)
            .and_then(|c| c.hold_until(called_at, now))
            .unwrap_or(f64::NAN)
    }

    /// Configures the circuit breaker.
    #[wasm_bindgen(js_name = setCircuit)]
    pub fn set_circuit(&mut self, h: Handle, failure_threshold: u32, reset_timeout: f64) {
        if let Some(c) = self.engine.get(h) {
            c.set_circuit(failure_threshold, reset_timeout);
        }
    }

    /// Pauses delivery.
    pub fn pause(&mut self, h: Handle) {
        if let Some(c) = self.engine.get(h) {
            c.pause();
        }
    }

    /// Resumes delivery.
    pub fn resume(&mut self, h: Handle) {
        if let Some(c) = self.engine.get(h) {
            c.resume();
        }
    }

    /// Refuses further writes; buffered messages stay readable.
    pub fn close(&mut self, h: Handle) {
        if let Some(c) = self.engine.get(h) {
            c.close();
        }
    }

    /// The owner closed the connection (`closeConnection`): refuses writes and releases a pause
    /// for good, so what is held drains and the readable ends.
    pub fn shut(&mut self, h: Handle) {
        if let Some(c) = self.engine.get(h) {
            c.shut();
        }
    }

    /// The readable side has ended: the connection's figures are final (state `finished`) and
    /// stay readable until [`EngineCore::remove`]. Returns the resolutions of its active alerts.
    pub fn finish(&mut self, h: Handle, now: f64) -> NotInlined {
        Ok(to_js(&self.engine.finish(h, now)[..]))
    }

    /// The reader went away: dead-letters what is buffered and returns those slots.
    pub fn cancel(&mut self, h: Handle, now: f64) -> Vec<Slot> {
        self.engine
            .get(h)
            .map(|c| c.cancel(now))
            .unwrap_or_default()
    }

    /// Forgets a connection; returns the resolutions of its active alerts (an array).
    pub fn remove(&mut self, h: Handle, now: f64) -> NotInlined {
        Ok(match self.engine.remove(h, now) {
            Some((_, resolved)) => to_js(&resolved[..]),
            None => Array::new().into(),
        })
    }

    /// Messages held (buffered plus in flight).
    pub fn held(&mut self, h: Handle) -> u32 {
        self.engine.get(h).map_or(0, |c| c.held() as u32)
    }

    /// Longest hold of a write under backpressure (ms), or NaN when writes are not held.
    #[wasm_bindgen(js_name = maxWait)]
    pub fn max_wait(&mut self, h: Handle) -> f64 {
        self.engine
            .get(h)
            .and_then(|c| c.max_wait())
            .unwrap_or(f64::NAN)
    }

    /// Connection events since the last call, as
    /// `[{ type: 'backpressure', state, bufferUtilization } | { type: 'circuit', open }]`.
    #[wasm_bindgen(js_name = takeEvents)]
    pub fn take_events(&mut self, h: Handle) -> NotInlined<Array> {
        let out = Array::new();
        if let Some(c) = self.engine.get(h) {
            for e in c.take_events() {
                let o = Object::new();
                match e {
                    ConnEvent::Backpressure(on, util) => {
                        set(&o, "type", &"backpressure".into());
                        set(&o, "state", &(if on { "start" } else { "end" }).into());
                        set(&o, "bufferUtilization", &util.into());
                    }
                    ConnEvent::Circuit(open) => {
                        set(&o, "type", &"circuit".into());
                        set(&o, "open", &open.into());
                    }
                }
                out.push(&o);
            }
        }
        Ok(out)
    }

    /// Drops since the last summary as `{ count, reasons, byPriority }`, or `undefined`.
    #[wasm_bindgen(js_name = takeDropSummary)]
    pub fn take_drop_summary(&mut self, h: Handle) -> NotInlined {
        Ok(
            match self.engine.get(h).and_then(|c| c.take_drop_summary()) {
                Some(s) => to_js(&s),
                None => JsValue::UNDEFINED,
            },
        )
    }

    /// Slots the core dropped since the last call, with reason codes, as a flat
    /// `[slot, reason, slot, reason, ...]` (codes: [`DropReason::code`]; names:
    /// [`drop_reason_names`]). The `DROPPED` status bit says when to call it.
    #[wasm_bindgen(js_name = takeDropped)]
    pub fn take_dropped(&mut self, h: Handle) -> Vec<u32> {
        let mut out = Vec::new();
        if let Some(c) = self.engine.get(h) {
            for (slot, r) in c.take_dropped() {
                out.push(slot);
                out.push(r.code());
            }
        }
        out
    }

    /// The metrics of the newest connection with this id that the core holds (what
    /// [`EngineCore::snapshot`] lists under the id), or `undefined`.
    #[wasm_bindgen(js_name = metricsById)]
    pub fn metrics_by_id(&mut self, id: &str, now: f64) -> NotInlined {
        Ok(match self.engine.find(id) {
            Some(c) => to_js(&c.metrics(now)),
            None => JsValue::UNDEFINED,
        })
    }

    /// Restarts one connection's counters from what it holds now.
    #[wasm_bindgen(js_name = resetMetrics)]
    pub fn reset_metrics(&mut self, h: Handle) {
        if let Some(c) = self.engine.get(h) {
            c.reset_metrics();
        }
    }

    /// Snapshots all connections and evaluates alerts: `{ totals, connections, alerts }`.
    pub fn tick(&mut self, now: f64, memory_fraction: f64) -> NotInlined {
        Ok(to_js(&self.engine.tick(now, memory_fraction)))
    }

    /// Snapshots all connections without evaluating alerts: `{ totals, connections, alerts: [] }`.
    pub fn snapshot(&mut self, now: f64) -> NotInlined {
        Ok(to_js(&self.engine.snapshot(now)))
    }

    /// Replaces the alert thresholds from a partial object in the old shape.
    #[wasm_bindgen(js_name = setThresholds)]
    pub fn set_thresholds(&mut self, partial: &JsValue) -> Result<(), JsValue> {
        let t = read_thresholds(partial, *self.engine.thresholds())?;
        self.engine.set_thresholds(t);
        Ok(())
    }

    /// The alert thresholds in the old shape.
    pub fn thresholds(&self) -> NotInlined {
        Ok(thresholds_to_js(self.engine.thresholds()))
    }
}

/// Rust-only entry points (not exported to JS, whose reader path uses [`EngineCore::take_io`]):
/// each export costs a shim in the `.wasm` and in the JS glue. The glue does not call the
/// per-connection ones below either (it uses `pushDroppable`, `consumeFailed`, `circuitWait`
/// and `metricsById`); the Rust tests still drive the core through them.
impl EngineCore {
    /// The slots of the next batch for a waiting reader, or `undefined` when none is due.
    pub fn take(&mut self, h: Handle, now: f64, force: bool) -> Option<Vec<Slot>> {
        self.engine.get(h)?.take_batch(now, force)
    }

    /// [`EngineCore::take`] followed by the status bits after the take as one extra last
    /// element, with [`EMPTY`] set when nothing is left buffered: the reader path needs both,
    /// and this saves a crossing per delivered batch (and, when empty, per next read).
    pub fn take_with_status(&mut self, h: Handle, now: f64, force: bool) -> Option<Vec<Slot>> {
        let c = self.engine.get(h)?;
        let mut batch = c.take_batch(now, force)?;
        let empty = if c.buffered() == 0 { EMPTY } else { 0 };
        batch.push(c.status() | empty);
        Some(batch)
    }

    /// Counts a message that a user handler dropped on arrival.
    pub fn drop_incoming(&mut self, h: Handle, msg: Slot, priority: f64, now: f64) -> u32 {
        match self
            .engine
            .get(h)
            .map(|c| c.drop_incoming(msg, priority, DropReason::Priority, now))
        {
            Some(Ok(st)) => st,
            _ => CLOSED,
        }
    }

    /// The consumer failed on the in-flight batch.
    pub fn consume_failure(&mut self, h: Handle, now: f64, will_retry: bool) -> u32 {
        self.engine
            .get(h)
            .map_or(CLOSED, |c| c.consume_failure(now, will_retry))
    }

    /// Whether the circuit lets a call through now.
    pub fn circuit_allow(&mut self, h: Handle, now: f64) -> bool {
        self.engine.get(h).is_some_and(|c| c.circuit_allow(now))
    }

    /// When an open circuit allows a trial (ms), or NaN.
    pub fn circuit_next_attempt(&mut self, h: Handle) -> f64 {
        self.engine
            .get(h)
            .and_then(|c| c.circuit_next_attempt())
            .unwrap_or(f64::NAN)
    }

    /// One connection's metrics.
    pub fn metrics(&mut self, h: Handle, now: f64) -> NotInlined {
        Ok(match self.engine.get(h) {
            Some(c) => to_js(&c.metrics(now)),
            None => JsValue::UNDEFINED,
        })
    }
}

fn set(o: &Object, k: &str, v: &JsValue) {
    let _ = Reflect::set(o, &JsValue::from_str(k), v);
}

fn stream_config_to_js(c: &StreamConfig) -> Object {
    let o = Object::new();
    set(&o, "bufferSize", &(c.buffer_size as f64).into());
    set(&o, "batchTimeout", &c.batch_timeout.into());
    set(&o, "maxBatchSize", &(c.max_batch_size as f64).into());
    set(
        &o,
        "backpressureThreshold",
        &c.backpressure_threshold.into(),
    );
    set(&o, "retryAttempts", &(c.retry_attempts as f64).into());
    set(&o, "retryDelay", &c.retry_delay.into());
    o
}

/// Validates one option value the way the engine does, for the JS classes that take options
/// (`DefaultBackpressureHandler`, `GracefulErrorRecovery`, ...). `kind` is `fraction`,
/// `time`, `positiveInt`, `count` or `number01`. Returns the value or throws a
/// `TypeError` / `RangeError` naming `field`.
#[wasm_bindgen(js_name = validateOption)]
pub fn validate_option(kind: &str, field: &str, value: &JsValue) -> Result<f64, JsValue> {
    options::validate(kind, field, value)
}

/// The drop reasons' names (`priority`, `oldest`, `newest`, `conflated`, `dead-letter`),
/// indexed by their codes in [`EngineCore::take_dropped`].
#[wasm_bindgen(js_name = dropReasonNames)]
pub fn drop_reason_names() -> Vec<String> {
    DropReason::ALL
        .iter()
        .map(|r| r.as_str().to_string())
        .collect()
}

/// Validates a built-in handler's options (`kind`: `default` or `adaptive`), fills in the
/// defaults and returns the full options object (`handler.options`). Unknown keys, wrong types
/// and out-of-range values throw a `TypeError` / `RangeError` naming the field: the handler
/// classes in JS hold no defaults or rules of their own.
#[wasm_bindgen(js_name = resolveHandlerOptions)]
pub fn resolve_handler_options(kind: &str, options: &JsValue) -> Result<JsValue, JsValue> {
    let spec = options::read_handler_options(kind, options)?;
    let policy = spec.resolve().map_err(|e| to_js_error(&e))?;
    Ok(options::handler_options_to_js(kind, &policy))
}

/// Validates `DefaultErrorRecovery` options and fills in the core's defaults: returns
/// `{ retryAttempts, retryDelay, maxRetryDelay, jitter, circuitBreaker: { failureThreshold,
/// resetTimeout } }` or throws a `TypeError` / `RangeError` naming the field.
#[wasm_bindgen(js_name = resolveRecoveryOptions)]
pub fn resolve_recovery_options(options: &JsValue) -> Result<JsValue, JsValue> {
    options::read_recovery(options)
}

/// The core's retry delay ([`crate::core::recovery::RetryPolicy::delay`]) for retry number
/// `attempt`, with `random01` supplied by JS (`Math.random()`).
#[wasm_bindgen(js_name = retryDelay)]
pub fn retry_delay(
    retry_delay: f64,
    max_retry_delay: f64,
    jitter: f64,
    attempt: f64,
    random01: f64,
) -> f64 {
    let attempt = if attempt.is_finite() && attempt > 0.0 {
        attempt.min(u32::MAX as f64) as u32
    } else {
        0
    };
    crate::core::recovery::RetryPolicy {
        retry_attempts: 0,
        retry_delay,
        max_retry_delay,
        jitter,
    }
    .delay(attempt, random01)
}

/// Size of the next chunk of a retried array write, after a chunk of `previous` messages
/// (0: the first chunk) with `remaining` left ([`crate::core::connection::admission::retry_chunk`]).
#[wasm_bindgen(js_name = retryChunk)]
pub fn retry_chunk(previous: u32, remaining: u32) -> u32 {
    crate::core::connection::admission::retry_chunk(previous, remaining)
}

/// The priority names and their numbers (`{ critical: 1, high: 0.75, normal: 0.5, low: 0.25 }`)
/// plus `default`, the priority of a message without one: the JS glue reads message fields but
/// takes these numbers from the core instead of repeating them.
#[wasm_bindgen(js_name = priorityNames)]
pub fn priority_names() -> NotInlined {
    use crate::core::priority;
    let o = Object::new();
    for name in priority::NAMES {
        set(
            &o,
            name,
            &priority::from_name(name).unwrap_or(f64::NAN).into(),
        );
    }
    set(&o, "default", &priority::DEFAULT_PRIORITY.into());
    Ok(o.into())
}

/// The priority class name (`critical`, `high`, `normal`, `low`) of a number (Rust-side; JS
/// classifies in `js/priority.js`).
pub fn priority_class(p: f64) -> String {
    use crate::core::priority::Class;
    match Class::of(crate::core::priority::sanitize(p)) {
        Class::Critical => "critical",
        Class::High => "high",
        Class::Normal => "normal",
        Class::Low => "low",
    }
    .into()
}

/// This instance's `WebAssembly.Memory`, for views on the exchange area.
#[wasm_bindgen(js_name = wasmMemory)]
pub fn wasm_memory() -> NotInlined {
    Ok(wasm_bindgen::memory())
}

/// Bytes of WebAssembly linear memory in use by this instance.
#[wasm_bindgen(js_name = wasmMemoryBytes)]
pub fn wasm_memory_bytes() -> f64 {
    (core::arch::wasm32::memory_size(0) * 65536) as f64
}
