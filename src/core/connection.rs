//! One connection's flow control: the bounded buffer, batching, backpressure, dropping,
//! consumption with retries and a circuit breaker, and the accounting that ties them together.
//!
//! The invariant every operation keeps: `messages_in == messages_out + dropped + held`, where
//! `held` counts buffered messages plus a batch being consumed.
//!
//! # Capacity and backpressure
//!
//! - `bufferSize` is a hard bound: never more than that many messages are held.
//! - Backpressure starts when utilisation reaches `backpressureThreshold` (or the drop level, if
//!   lower) and ends when it falls below three quarters of that level, so a buffer hovering at
//!   the threshold does not flap. Each start counts one backpressure event.
//! - Under [`DropRule::Block`] (the default) nothing is dropped: a write that finds the buffer
//!   full is refused with [`Push::Pending`] and the caller retries it after the reader drains.
//! - Under the other rules, once the buffer reaches the drop level a victim is chosen among the
//!   buffered messages and the incoming one; critical messages (priority 1) are never victims,
//!   so a critical write into a buffer of critical messages is refused like a blocking write.

use serde::Serialize;

use super::adaptive::{AdaptiveConfig, AdaptiveController};
use super::buffer::{Buffer, Entry};
use super::config::StreamConfig;
use super::histogram::Histogram;
use super::priority::{is_critical, sanitize, ClassCounts};
use super::recovery::{CircuitBreaker, CircuitState, RetryPolicy};
use super::window::{SlidingCounter, SlidingHistogram};

// The write path and the consumer's decisions, each in its own file, with the access to the
// connection's state that a child module has.
#[path = "admission.rs"]
pub mod admission;
#[path = "consume.rs"]
pub mod consume;

/// Which message goes when room must be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropRule {
    /// Lossless: refuse the write until there is room.
    Block,
    /// Lowest priority among buffered and incoming, oldest among equals.
    Priority,
    /// The oldest buffered non-critical message.
    Oldest,
    /// The incoming message.
    Newest,
}

/// Why a message was dropped (the JS reason strings). The discriminant is the reason's code at
/// the wasm boundary (`takeDropped` reports `[slot, code, ...]`); JS maps codes to names with the
/// exported `dropReasonNames()`, so the numbers exist only here.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen::prelude::wasm_bindgen)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Chosen by priority.
    Priority = 0,
    /// Chosen as the oldest.
    Oldest = 1,
    /// Chosen as the newest (incoming).
    Newest = 2,
    /// Replaced by a newer message with the same key.
    Conflated = 3,
    /// Its consumer failed past all retries, or the reader went away.
    DeadLetter = 4,
}

impl DropReason {
    /// Every reason, in code order: `DropReason::ALL[r.code() as usize] == r`.
    pub const ALL: [DropReason; 5] = [
        DropReason::Priority,
        DropReason::Oldest,
        DropReason::Newest,
        DropReason::Conflated,
        DropReason::DeadLetter,
    ];
    /// The reason's code at the wasm boundary.
    ///
    /// ```
    /// use stream_engine::core::connection::DropReason;
    /// assert_eq!(DropReason::ALL[DropReason::Conflated.code() as usize], DropReason::Conflated);
    /// ```
    pub fn code(self) -> u32 {
        self as u32
    }
    /// The reason as JS sees it.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Priority => "priority",
            DropReason::Oldest => "oldest",
            DropReason::Newest => "newest",
            DropReason::Conflated => "conflated",
            DropReason::DeadLetter => "dead-letter",
        }
    }
    fn of_rule(rule: DropRule) -> DropReason {
        match rule {
            DropRule::Oldest => DropReason::Oldest,
            DropRule::Newest => DropReason::Newest,
            _ => DropReason::Priority,
        }
    }
}

/// Drop counts by reason (`drops` in JS metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DropCounts {
    /// By the priority rule.
    pub priority: u64,
    /// By the oldest rule.
    pub oldest: u64,
    /// By the newest rule.
    pub newest: u64,
    /// Replaced by conflation.
    pub conflated: u64,
    /// Dead-lettered.
    #[serde(rename = "dead-letter")]
    pub dead_letter: u64,
}

impl DropCounts {
    fn add(&mut self, r: DropReason, n: u64) {
        match r {
            DropReason::Priority => self.priority += n,
            DropReason::Oldest => self.oldest += n,
            DropReason::Newest => self.newest += n,
            DropReason::Conflated => self.conflated += n,
            DropReason::DeadLetter => self.dead_letter += n,
        }
    }
    /// Sum over reasons.
    pub fn total(&self) -> u64 {
        self.priority + self.oldest + self.newest + self.conflated + self.dead_letter
    }
}

/// How a connection treats a full buffer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlowPolicy {
    /// The drop rule.
    pub rule: DropRule,
    /// Utilisation at which room is made (ignored by `Block`, which uses the full buffer).
    pub drop_threshold: f64,
    /// Longest time a write is held while backpressure is on (ms); `None`: writes are not held,
    /// they complete as soon as they are accepted.
    pub max_wait: Option<f64>,
    /// Adaptive control of the drop level and batch size.
    pub adaptive: Option<AdaptiveConfig>,
    /// Whether a priority index is kept even for a rule that doesn't need one.
    pub conflate: bool,
}

impl FlowPolicy {
    /// The lossless default.
    pub fn block() -> Self {
        FlowPolicy {
            rule: DropRule::Block,
            drop_threshold: 1.0,
            max_wait: None,
            adaptive: None,
            conflate: false,
        }
    }
}

/// Status bits returned by [`Connection::push`] and [`Connection::status`]: a zero status is the
/// common case and lets the bindings skip all follow-up work.
///
/// This enum is the one definition of the bit values: the [`status`] constants are derived from
/// it, and on wasm32 it is exported to JavaScript as the frozen object `Status`
/// (`Status.Pending === 1`), which the JS glue and the binding tests read instead of copying
/// numbers.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen::prelude::wasm_bindgen)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Not accepted: the caller keeps the message and retries after the reader drains.
    Pending = 1,
    /// Backpressure is on and this connection holds writes: complete the write later.
    Hold = 2,
    /// A full batch (or, with `batchTimeout: 0`, any message) is ready for a waiting reader.
    BatchReady = 4,
    /// Connection events (backpressure start/end, circuit) are waiting in [`Connection::take_events`].
    Events = 8,
    /// Dropped messages are waiting for the `onDrop` callback in [`Connection::take_dropped`].
    Dropped = 16,
    /// The buffer was empty before this push: a waiting reader should start its batch timer.
    First = 32,
    /// New drops since the last drop summary.
    DropSummary = 64,
    /// Bindings only: the write was refused for good (the connection is closed or unknown).
    Closed = 128,
    /// Bindings only, in a delivery's status: nothing is left buffered.
    Empty = 65536,
}

/// The [`Status`] bits as `u32` constants, for combining with `|`.
pub mod status {
    use super::Status;
    /// See [`Status::Pending`].
    pub const PENDING: u32 = Status::Pending as u32;
    /// See [`Status::Hold`].
    pub const HOLD: u32 = Status::Hold as u32;
    /// See [`Status::BatchReady`].
    pub const BATCH_READY: u32 = Status::BatchReady as u32;
    /// See [`Status::Events`].
    pub const EVENTS: u32 = Status::Events as u32;
    /// See [`Status::Dropped`].
    pub const DROPPED: u32 = Status::Dropped as u32;
    /// See [`Status::First`].
    pub const FIRST: u32 = Status::First as u32;
    /// See [`Status::DropSummary`].
    pub const DROP_SUMMARY: u32 = Status::DropSummary as u32;
    /// See [`Status::Closed`].
    pub const CLOSED: u32 = Status::Closed as u32;
    /// See [`Status::Empty`].
    pub const EMPTY: u32 = Status::Empty as u32;
}

/// Connection events for the engine's event feed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ConnEvent {
    /// Backpressure started (`true`) or ended, with the utilisation then.
    Backpressure(bool, f64),
    /// The circuit opened (`true`) or closed.
    Circuit(bool),
}

/// Drops since the previous summary, for one batched `drop` event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DropSummary {
    /// Messages dropped.
    pub count: u64,
    /// By reason.
    pub reasons: DropCounts,
    /// By priority class.
    #[serde(rename = "byPriority")]
    pub by_priority: ClassCounts,
}

/// Where a connection is in its life.
///
/// ```
/// use stream_engine::core::config::StreamConfig;
/// use stream_engine::core::connection::{Connection, FlowPolicy, Lifecycle};
///
/// let mut c: Connection<u32> = Connection::new("a", StreamConfig::default(), FlowPolicy::block(), 5000.0, false);
/// assert_eq!(c.lifecycle(), Lifecycle::Open);
/// c.close();
/// assert_eq!(c.lifecycle(), Lifecycle::Closing);
/// c.finish();
/// assert_eq!(c.lifecycle().as_str(), "finished");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// Accepting writes.
    Open,
    /// Writes refused; what is held is still delivered.
    Closing,
    /// The readable side has ended; the figures are final.
    Finished,
}

impl Lifecycle {
    /// `open`, `closing` or `finished`.
    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Open => "open",
            Lifecycle::Closing => "closing",
            Lifecycle::Finished => "finished",
        }
    }
}

/// The outcome of a push.
#[derive(Debug, PartialEq)]
pub enum Push<T> {
    /// The message was taken (accepted, conflated, or dropped with a reason); status bits attached.
    Done(u32),
    /// Refused for now; the message is handed back.
    Pending(T),
}

/// Errors of connection operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnError {
    /// Writes after close or cancel.
    Closed,
}

/// Adaptive state as shown in metrics.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AdaptiveState {
    /// Current drop threshold.
    pub effective_threshold: f64,
    /// Dropped over arrivals, over the metrics window.
    pub drop_rate: f64,
    /// Current batch size.
    pub batch_size: usize,
}

/// A metrics snapshot of one connection (`ConnectionMetrics` in JS).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionMetrics {
    /// The connection's id.
    pub connection_id: String,
    /// Messages accepted (total since creation or the last reset).
    pub messages_in: u64,
    /// Messages delivered to the reader or consumed successfully (total).
    pub messages_out: u64,
    /// Deliveries per second over the last second.
    pub messages_per_second: f64,
    /// Mean latency from acceptance to delivery over the metrics window, ms.
    pub average_latency: f64,
    /// Median latency over the window, ms.
    pub p50_latency: f64,
    /// 95th percentile latency over the window, ms.
    pub p95_latency: f64,
    /// 99th percentile latency over the window, ms.
    pub p99_latency: f64,
    /// Largest latency over the window, ms.
    pub max_latency: f64,
    /// Messages held now (buffered plus a batch being consumed).
    pub buffer_size: usize,
    /// `bufferSize` of the connection.
    pub buffer_capacity: usize,
    /// `buffer_size / buffer_capacity`.
    pub buffer_utilization: f64,
    /// Times backpressure started (total).
    pub backpressure_events: u64,
    /// Whether backpressure is on now.
    pub backpressure: bool,
    /// Messages dropped, all reasons (total).
    pub dropped: u64,
    /// Drops by reason.
    pub drops: DropCounts,
    /// Drops by priority class.
    pub drops_by_priority: ClassCounts,
    /// Critical messages lost (dropped other than by conflation, which replaces a message with a
    /// newer value of the same key): what the critical `drops` alert watches.
    #[serde(skip)]
    pub critical_lost: u64,
    /// Deliveries by priority class.
    pub delivered_by_priority: ClassCounts,
    /// Failed consumer calls over attempted, over the window.
    pub error_rate: f64,
    /// Failed consumer calls (total).
    pub errors: u64,
    /// Retries of consumer calls (total).
    pub retries: u64,
    /// `closed`, `open` or `half-open`.
    pub circuit_state: &'static str,
    /// Whether delivery is paused.
    pub paused: bool,
    /// `open`, `closing` (writes refused, messages still held or being delivered) or
    /// `finished` (the readable has ended; these are the final figures).
    pub state: &'static str,
    /// The adaptive controller's state, with the adaptive handler.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adaptive: Option<AdaptiveState>,
    /// Drops over arrivals within the metrics window (drives the `drops` alert).
    pub drop_rate: f64,
    /// When the snapshot was taken (the caller's clock, ms).
    pub last_updated: f64,
}

/// Number of sub-windows of the sliding statistics: finer slots track the window edge closely at
/// the cost of memory (each latency slot is one histogram).
const WINDOW_SLOTS: usize = 5;

/// `x` clamped at 0 with plain comparisons: `f64::max` compiles to a libm `fmax` call on
/// wasm32 (NaN semantics differ from the `f64.max` instruction), measurable per message.
#[inline]
fn non_negative(x: f64) -> f64 {
    if x > 0.0 {
        x
    } else {
        0.0
    }
}

/// At most this many waiting messages are looked at per latency snapshot (the rest are weighted
/// samples), so a snapshot costs the same for any buffer size.
const WAITING_SAMPLES: usize = 256;

/// One connection.
#[derive(Debug)]
pub struct Connection<T> {
    id: String,
    cfg: StreamConfig,
    policy: FlowPolicy,
    buf: Buffer<T>,
    /// (priority, accepted_at) of the batch handed to a consumer and not yet resolved.
    inflight: Vec<(f64, f64)>,
    closed: bool,
    /// The readable side has ended (drained, cancelled or aborted): see [`Lifecycle::Finished`].
    finished: bool,
    /// Closed by its owner: pauses are released and ignored.
    shut: bool,
    paused: bool,
    bp_active: bool,
    messages_in: u64,
    messages_out: u64,
    drops: DropCounts,
    drops_by_class: ClassCounts,
    critical_lost: u64,
    delivered_by_class: ClassCounts,
    backpressure_events: u64,
    errors: u64,
    retries: u64,
    out_rate: SlidingCounter,
    in_window: SlidingCounter,
    drop_window: SlidingCounter,
    attempts: SlidingCounter,
    failures: SlidingCounter,
    latency: SlidingHistogram,
    /// Short latency window feeding the adaptive controller.
    recent_latency: Option<SlidingHistogram>,
    adaptive: Option<AdaptiveController>,
    breaker: CircuitBreaker,
    events: Vec<ConnEvent>,
    /// Retries of a failed consumer call (see [`consume`]).
    retry: RetryPolicy,
    /// Failed attempts on the batch in flight.
    attempt: u32,
    summary: DropSummary,
    keep_dropped: bool,
    dropped_items: Vec<(T, DropReason)>,
}

impl<T> Connection<T> {
    /// A new connection. `window_ms` is the metrics window; `keep_dropped` keeps dropped
    /// messages for an `onDrop` callback.
    pub fn new(
        id: impl Into<String>,
        cfg: StreamConfig,
        policy: FlowPolicy,
        window_ms: f64,
        keep_dropped: bool,
    ) -> Self {
        let needs_index = matches!(policy.rule, DropRule::Priority);
        let window_ms = if window_ms.is_finite() && window_ms > 0.0 {
            window_ms
        } else {
            5000.0
        };
        Connection {
            id: id.into(),
            cfg,
            policy,
            buf: Buffer::new(needs_index, policy.conflate),
            inflight: Vec::new(),
            closed: false,
            finished: false,
            shut: false,
            paused: false,
            bp_active: false,
            messages_in: 0,
            messages_out: 0,
            drops: DropCounts::default(),
            drops_by_class: ClassCounts::default(),
            critical_lost: 0,
            delivered_by_class: ClassCounts::default(),
            backpressure_events: 0,
            errors: 0,
            retries: 0,
            out_rate: SlidingCounter::new(1000.0, 10),
            in_window: SlidingCounter::new(window_ms, WINDOW_SLOTS),
            drop_window: SlidingCounter::new(window_ms, WINDOW_SLOTS),
            attempts: SlidingCounter::new(window_ms, WINDOW_SLOTS),
            failures: SlidingCounter::new(window_ms, WINDOW_SLOTS),
            latency: SlidingHistogram::new(window_ms, WINDOW_SLOTS),
            recent_latency: policy.adaptive.map(|_| SlidingHistogram::new(1000.0, 4)),
            adaptive: policy
                .adaptive
                .map(|a| AdaptiveController::new(a, cfg.max_batch_size)),
            breaker: CircuitBreaker::new(
                super::config::DEFAULT_FAILURE_THRESHOLD,
                super::config::DEFAULT_RESET_TIMEOUT,
            ),
            events: Vec::new(),
            retry: RetryPolicy {
                retry_attempts: cfg.retry_attempts,
                retry_delay: cfg.retry_delay,
                ..RetryPolicy::default()
            },
            attempt: 0,
            summary: DropSummary::default(),
            keep_dropped,
            dropped_items: Vec::new(),
        }
    }

    /// The connection id.
    pub fn id(&self) -> &str {
        &self.id
    }
    /// The validated configuration.
    pub fn config(&self) -> &StreamConfig {
        &self.cfg
    }
    /// The flow policy.
    pub fn policy(&self) -> &FlowPolicy {
        &self.policy
    }
    /// Messages held: buffered plus a batch being consumed.
    #[inline]
    pub fn held(&self) -> usize {
        self.buf.len() + self.inflight.len()
    }
    /// Messages waiting in the buffer (not counting an in-flight batch).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
    /// Whether writes are refused.
    pub fn is_closed(&self) -> bool {
        self.closed
    }
    /// Where the connection is in its life.
    pub fn lifecycle(&self) -> Lifecycle {
        if self.finished {
            Lifecycle::Finished
        } else if self.closed {
            Lifecycle::Closing
        } else {
            Lifecycle::Open
        }
    }
    /// Whether delivery is paused.
    pub fn is_paused(&self) -> bool {
        self.paused
    }
    /// Whether backpressure is on.
    pub fn backpressure(&self) -> bool {
        self.bp_active
    }
    /// Total accepted.
    pub fn messages_in(&self) -> u64 {
        self.messages_in
    }
    /// Total delivered.
    pub fn messages_out(&self) -> u64 {
        self.messages_out
    }
    /// Total dropped, all reasons.
    pub fn dropped(&self) -> u64 {
        self.drops.total()
    }
    /// Longest hold of a write under backpressure; `None` when writes are not held.
    pub fn max_wait(&self) -> Option<f64> {
        self.policy.max_wait
    }

    fn capacity(&self) -> usize {
        self.cfg.buffer_size.max(1)
    }

    /// Level (messages) at which room is made for non-blocking rules.
    fn drop_limit(&self) -> usize {
        let cap = self.capacity();
        if self.policy.rule == DropRule::Block {
            return cap;
        }
        if let Some(a) = &self.adaptive {
            return a.limit(cap);
        }
        ((self.policy.drop_threshold * cap as f64).floor() as usize).clamp(1, cap)
    }

    fn bp_start_level(&self) -> f64 {
        let cap = self.capacity() as f64;
        let bp = self.cfg.backpressure_threshold * cap;
        if self.policy.rule == DropRule::Block {
            bp
        } else {
            bp.min(self.drop_limit() as f64)
        }
    }

    /// Current batch size: the adaptive controller's, or `maxBatchSize`.
    pub fn batch_size(&self) -> usize {
        self.adaptive
            .as_ref()
            .map_or(self.cfg.max_batch_size, |a| a.batch_size)
            .max(1)
    }

    /// Counts one drop everywhere it is counted: totals, classes, window, summary.
    fn count_drop(&mut self, priority: f64, reason: DropReason, now: f64) {
        self.drops.add(reason, 1);
        self.drops_by_class.add(priority, 1);
        if is_critical(priority) && reason != DropReason::Conflated {
            self.critical_lost += 1;
        }
        self.drop_window.add(now, 1);
        self.summary.count += 1;
        self.summary.reasons.add(reason, 1);
        self.summary.by_priority.add(priority, 1);
    }

    /// A drop whose message the caller may want back (`onDrop`, or the JS slot store).
    fn record_drop(&mut self, item: T, priority: f64, reason: DropReason, now: f64) {
        self.count_drop(priority, reason, now);
        if self.keep_dropped {
            self.dropped_items.push((item, reason));
        }
    }

    fn update_backpressure(&mut self) {
        let held = self.held() as f64;
        let start = self.bp_start_level();
        if !self.bp_active {
            if held >= start && held > 0.0 {
                self.bp_active = true;
                self.backpressure_events += 1;
                self.events
                    .push(ConnEvent::Backpressure(true, held / self.capacity() as f64));
            }
        } else if held < start * 0.75 {
            self.bp_active = false;
            self.events.push(ConnEvent::Backpressure(
                false,
                held / self.capacity() as f64,
            ));
        }
    }

    fn maybe_adapt(&mut self, now: f64) {
        let due = matches!(&self.adaptive, Some(a) if a.due(now));
        if !due {
            return;
        }
        let mut h = self
            .recent_latency
            .as_mut()
            .map(|r| r.snapshot(now))
            .unwrap_or_default();
        if let Some(at) = self.buf.front_accepted_at() {
            h.record(now - at);
        }
        let p95 = h.quantile(0.95);
        let drain = self.out_rate.rate_per_sec(now) / 1000.0;
        let (held, cap, maxb) = (self.held(), self.capacity(), self.cfg.max_batch_size);
        if let Some(a) = &mut self.adaptive {
            a.update(now, p95, drain, held, cap, maxb);
        }
    }

    /// Offers a message with its priority (NaN means none given) and, under conflation, its key.
    ///
    /// Returns [`Push::Done`] with [`status`] bits when the message was taken (accepted,
    /// conflated, or dropped and counted), or [`Push::Pending`] when the caller must wait.
    pub fn push(
        &mut self,
        item: T,
        priority: f64,
        key: Option<&str>,
        now: f64,
    ) -> Result<Push<T>, ConnError> {
        if self.closed {
            return Err(ConnError::Closed);
        }
        let p = sanitize(priority);
        let was_empty = self.buf.is_empty();
        let mut st = 0;
        if self.adaptive.is_some() {
            self.maybe_adapt(now);
        }
        // Conflation: latest value wins in the older message's place.
        let mut item = item;
        if let (true, Some(k)) = (self.policy.conflate, key) {
            if let Some(seq) = self.buf.find_key(k) {
                let new = Entry {
                    item,
                    priority: p,
                    accepted_at: now,
                    key: Some(k.into()),
                };
                match self.buf.replace(seq, new) {
                    Ok(old) => {
                        self.messages_in += 1;
                        self.in_window.add(now, 1);
                        self.record_drop(old.item, old.priority, DropReason::Conflated, now);
                        return Ok(Push::Done(self.status_bits() | status::DROP_SUMMARY));
                    }
                    // Unreachable (keys leave with their entries); fall through to a plain push.
                    Err(back) => item = back.item,
                }
            }
        }
        let limit = self.drop_limit();
        let cap = self.capacity();
        if self.policy.rule == DropRule::Block {
            if self.held() >= cap {
                return Ok(Push::Pending(item));
            }
        } else {
            // Make room: drop victims until under the drop level, or drop the incoming message.
            while self.held() >= limit {
                let victim = self.choose_victim(p);
                match victim {
                    Victim::Incoming => {
                        self.messages_in += 1;
                        self.in_window.add(now, 1);
                        let reason = DropReason::of_rule(self.policy.rule);
                        self.record_drop(item, p, reason, now);
                        st |= status::DROP_SUMMARY;
                        return Ok(Push::Done(st | self.status_bits()));
                    }
                    Victim::Buffered(seq) => {
                        if let Some(e) = self.buf.remove(seq) {
                            let reason = DropReason::of_rule(self.policy.rule);
                            self.record_drop(e.item, e.priority, reason, now);
                            st |= status::DROP_SUMMARY;
                        } else {
                            break;
                        }
                    }
                    Victim::None => {
                        if self.held() >= cap {
                            return Ok(Push::Pending(item));
                        }
                        break;
                    }
                }
            }
        }
        let key = if self.policy.conflate {
            key.map(Box::<str>::from)
        } else {
            None
        };
        self.buf.push(Entry {
            item,
            priority: p,
            accepted_at: now,
            key,
        });
        self.messages_in += 1;
        self.in_window.add(now, 1);
        if was_empty {
            st |= status::FIRST;
        }
        Ok(Push::Done(st | self.status_bits()))
    }

    /// Offers a batch in order, stopping at the first message that must wait. Returns how many
    /// were taken and the status bits (`PENDING` if it stopped early; `FIRST` and `BATCH_READY`
    /// describe the state after the whole batch).
    ///
    /// The lossless rule without conflation or adaptation (the default) takes a fast path: one
    /// capacity check, one counter update and one backpressure check for the whole batch, which
    /// is equivalent because the buffer only grows during the call.
    pub fn push_many<I>(&mut self, items: I, now: f64) -> Result<(usize, u32), ConnError>
    where
        I: IntoIterator<Item = (T, f64)>,
    {
        if self.closed {
            return Err(ConnError::Closed);
        }
        let was_empty = self.buf.is_empty();
        let mut accepted = 0usize;
        let mut st = 0;
        if self.policy.rule == DropRule::Block && !self.policy.conflate && self.adaptive.is_none() {
            let room = self.capacity().saturating_sub(self.held());
            let mut it = items.into_iter();
            for (item, p) in it.by_ref().take(room) {
                self.buf.push(Entry {
                    item,
                    priority: sanitize(p),
                    accepted_at: now,
                    key: None,
                });
                accepted += 1;
            }
            self.messages_in += accepted as u64;
            self.in_window.add(now, accepted as u64);
            if it.next().is_some() {
                st |= status::PENDING;
            }
        } else {
            for (item, p) in items {
                match self.push(item, p, None, now)? {
                    Push::Done(s) => {
                        st |= s;
                        accepted += 1;
                    }
                    Push::Pending(_) => {
                        st |= status::PENDING;
                        break;
                    }
                }
            }
            st &= !(status::FIRST | status::BATCH_READY);
        }
        if was_empty && accepted > 0 {
            st |= status::FIRST;
        }
        Ok((accepted, st | self.status_bits()))
    }

    fn choose_victim(&self, incoming: f64) -> Victim {
        let incoming_ok = !is_critical(incoming);
        match self.policy.rule {
            DropRule::Block => Victim::None,
            DropRule::Newest => {
                if incoming_ok {
                    Victim::Incoming
                } else {
                    self.buf
                        .oldest_non_critical()
                        .map_or(Victim::None, |(_, s)| Victim::Buffered(s))
                }
            }
            DropRule::Oldest => match self.buf.oldest_non_critical() {
                Some((_, s)) => Victim::Buffered(s),
                None if incoming_ok => Victim::Incoming,
                None => Victim::None,
            },
            DropRule::Priority => match self.buf.lowest() {
                // Among equals the buffered (older) one goes.
                Some((bp, s)) if !(incoming_ok && incoming < bp) => Victim::Buffered(s),
                _ if incoming_ok => Victim::Incoming,
                _ => Victim::None,
            },
        }
    }

    /// Counts a message that a user handler chose to drop on arrival (`shouldDropMessage`).
    pub fn drop_incoming(
        &mut self,
        item: T,
        priority: f64,
        reason: DropReason,
        now: f64,
    ) -> Result<u32, ConnError> {
        if self.closed {
            return Err(ConnError::Closed);
        }
        let p = sanitize(priority);
        self.messages_in += 1;
        self.in_window.add(now, 1);
        self.record_drop(item, p, reason, now);
        Ok(self.status_bits() | status::DROP_SUMMARY)
    }

    fn status_bits(&mut self) -> u32 {
        self.update_backpressure();
        let mut st = 0;
        if self.bp_active && self.policy.max_wait.is_some() {
            st |= status::HOLD;
        }
        let n = self.buf.len();
        if n > 0 && !self.paused && (n >= self.batch_size() || self.cfg.batch_timeout <= 0.0) {
            st |= status::BATCH_READY;
        }
        if !self.events.is_empty() {
            st |= status::EVENTS;
        }
        if !self.dropped_items.is_empty() {
            st |= status::DROPPED;
        }
        st
    }

    /// Current status bits (see [`status`]), for callers that need them outside a push.
    pub fn status(&mut self) -> u32 {
        self.status_bits()
    }

    /// When the oldest buffered message's batch is due (ms), if anything is buffered.
    pub fn batch_deadline(&self) -> Option<f64> {
        self.buf
            .front_accepted_at()
            .map(|t| t + self.cfg.batch_timeout)
    }

    fn ready(&self, now: f64, force: bool) -> bool {
        if self.paused || self.buf.is_empty() {
            return false;
        }
        force
            || self.buf.len() >= self.batch_size()
            || self.cfg.batch_timeout <= 0.0
            || self.batch_deadline().is_some_and(|d| now >= d)
    }

    fn pop_batch(&mut self) -> Vec<(T, f64, f64)> {
        let n = self.buf.len().min(self.batch_size());
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            match self.buf.pop_front() {
                Some(e) => out.push((e.item, e.priority, e.accepted_at)),
                None => break,
            }
        }
        out
    }

    fn count_delivered(&mut self, now: f64, meta: impl Iterator<Item = (f64, f64)>) {
        // Messages of one batch write share their acceptance time: record each run of equal
        // times once, and find the histogram slots once per batch.
        let mut n = 0u64;
        let mut run: Option<(f64, u64)> = None;
        let latency = self.latency.current(now);
        let mut recent = self.recent_latency.as_mut().map(|r| r.current(now));
        for (p, at) in meta {
            self.delivered_by_class.add(p, 1);
            n += 1;
            match &mut run {
                Some((t, k)) if *t == at => *k += 1,
                _ => {
                    if let Some((t, k)) = run.take() {
                        let lat = non_negative(now - t);
                        latency.record_n(lat, k);
                        if let Some(r) = &mut recent {
                            r.record_n(lat, k);
                        }
                    }
                    run = Some((at, 1));
                }
            }
        }
        if let Some((t, k)) = run {
            let lat = non_negative(now - t);
            latency.record_n(lat, k);
            if let Some(r) = &mut recent {
                r.record_n(lat, k);
            }
        }
        self.messages_out += n;
        self.out_rate.add(now, n);
    }

    /// Takes the next batch for a waiting reader and counts it delivered. Returns `None` when no
    /// batch is due (paused, empty, or neither full nor timed out); `force` delivers whatever is
    /// buffered (the batch timer fired).
    pub fn take_batch(&mut self, now: f64, force: bool) -> Option<Vec<T>> {
        if !self.ready(now, force) {
            return None;
        }
        let batch = self.pop_batch();
        self.count_delivered(now, batch.iter().map(|(_, p, at)| (*p, *at)));
        let items = batch.into_iter().map(|(t, _, _)| t).collect();
        self.update_backpressure();
        if self.adaptive.is_some() {
            self.maybe_adapt(now);
        }
        Some(items)
    }

    /// Takes the next batch for a consumer; it stays held (in flight) until
    /// [`Connection::consume_success`] or [`Connection::consume_dead_letter`]. Refused while a
    /// batch is already in flight.
    pub fn consume_take(&mut self, now: f64, force: bool) -> Option<Vec<T>> {
        if !self.inflight.is_empty() || !self.ready(now, force) {
            return None;
        }
        let batch = self.pop_batch();
        self.attempt = 0;
        self.inflight = batch.iter().map(|(_, p, at)| (*p, *at)).collect();
        Some(batch.into_iter().map(|(t, _, _)| t).collect())
    }

    /// Size of the batch in flight to a consumer.
    pub fn inflight(&self) -> usize {
        self.inflight.len()
    }

    /// Sets the circuit breaker's parameters (from the error recovery in force).
    pub fn set_circuit(&mut self, failure_threshold: u32, reset_timeout: f64) {
        self.breaker = CircuitBreaker::new(failure_threshold.max(1), reset_timeout.max(0.0));
    }

    /// Whether the circuit lets a call through now (a half-open circuit lets exactly one).
    pub fn circuit_allow(&mut self, now: f64) -> bool {
        self.breaker.allow(now)
    }

    /// When an open circuit will let a trial call through.
    pub fn circuit_next_attempt(&self) -> Option<f64> {
        self.breaker.next_attempt_at()
    }

    /// Circuit state now.
    pub fn circuit_state(&self, now: f64) -> CircuitState {
        self.breaker.state(now)
    }

    /// The in-flight batch was handled: count it delivered.
    pub fn consume_success(&mut self, now: f64) -> u32 {
        let meta = std::mem::take(&mut self.inflight);
        self.count_delivered(now, meta.into_iter());
        self.attempts.add(now, 1);
        if let Some(CircuitState::Closed) = self.breaker.on_success(now) {
            self.events.push(ConnEvent::Circuit(false));
        }
        self.update_backpressure();
        self.status_bits()
    }

    /// The consumer failed on the in-flight batch; `will_retry` says whether it will be retried.
    pub fn consume_failure(&mut self, now: f64, will_retry: bool) -> u32 {
        self.attempts.add(now, 1);
        self.failures.add(now, 1);
        self.errors += 1;
        if will_retry {
            self.retries += 1;
        }
        if let Some(CircuitState::Open) = self.breaker.on_failure(now) {
            self.events.push(ConnEvent::Circuit(true));
        }
        self.status_bits()
    }

    /// The in-flight batch is given up: count it dropped as dead letters. Returns how many.
    pub fn consume_dead_letter(&mut self, now: f64) -> usize {
        let meta = std::mem::take(&mut self.inflight);
        let n = meta.len();
        for (p, _) in meta {
            self.count_drop(p, DropReason::DeadLetter, now);
        }
        self.update_backpressure();
        n
    }

    /// Pauses delivery; messages keep buffering (and flow control applies upstream). Ignored
    /// once the connection is shut ([`Connection::shut`]) or finished: it only drains from then on.
    pub fn pause(&mut self) {
        if !self.shut && !self.finished {
            self.paused = true;
        }
    }

    /// Resumes delivery.
    pub fn resume(&mut self) {
        self.paused = false;
    }

    /// Refuses further writes; buffered messages stay deliverable (a pause still holds them).
    pub fn close(&mut self) {
        self.closed = true;
    }

    /// The connection's owner closed it (`closeConnection`): refuses writes and releases a
    /// pause, ignoring later ones, so that what is held drains and the readable ends. A paused
    /// connection that nobody may resume any more would otherwise never end.
    pub fn shut(&mut self) {
        self.closed = true;
        self.paused = false;
        self.shut = true;
    }

    /// The readable side has ended: refuses writes from now on; the figures stay readable
    /// ([`Lifecycle::Finished`]). Messages still held (a consumer's batch in flight) are still
    /// settled by [`Connection::consume_success`] or [`Connection::consume_dead_letter`].
    pub fn finish(&mut self) {
        self.closed = true;
        self.paused = false;
        self.finished = true;
    }

    /// The reader went away (cancel or abort): refuses writes and dead-letters everything
    /// buffered, returning those messages so the caller can keep them for `deadLetters()`.
    pub fn cancel(&mut self, now: f64) -> Vec<T> {
        self.closed = true;
        let all = self.buf.drain_all();
        let mut out = Vec::with_capacity(all.len());
        for e in all {
            self.count_drop(e.priority, DropReason::DeadLetter, now);
            out.push(e.item);
        }
        self.update_backpressure();
        out
    }

    /// Events since the last call.
    pub fn take_events(&mut self) -> Vec<ConnEvent> {
        std::mem::take(&mut self.events)
    }

    /// Drops since the last summary, or `None` if there were none.
    pub fn take_drop_summary(&mut self) -> Option<DropSummary> {
        if self.summary.count == 0 {
            return None;
        }
        Some(std::mem::take(&mut self.summary))
    }

    /// Dropped messages kept for `onDrop`, with their reasons.
    pub fn take_dropped(&mut self) -> Vec<(T, DropReason)> {
        std::mem::take(&mut self.dropped_items)
    }

    /// Latency histogram over the metrics window, including the age of the oldest waiting
    /// message, so that a stalled reader shows as high latency rather than as no data.
    pub fn latency_snapshot(&mut self, now: f64) -> Histogram {
        let mut h = self.latency.snapshot(now);
        self.record_waiting(&mut h, now);
        h
    }

    /// Adds the age of every waiting message (sampled, weighted, past [`WAITING_SAMPLES`]) to a
    /// latency histogram: messages stuck behind a stalled reader must show, not just the
    /// deliveries that happened before the stall.
    fn record_waiting(&self, h: &mut Histogram, now: f64) {
        let n = self.buf.len();
        if n == 0 {
            return;
        }
        let samples = self.buf.sample_accepted_times(WAITING_SAMPLES);
        if samples.is_empty() {
            return;
        }
        // Spread the weight of the unsampled messages over the samples.
        let base = (n / samples.len()) as u64;
        let extra = n % samples.len();
        for (i, at) in samples.into_iter().enumerate() {
            let w = base + u64::from(i < extra);
            if w > 0 {
                h.record_n((now - at).max(0.0), w);
            }
        }
    }

    /// A full metrics snapshot.
    pub fn metrics(&mut self, now: f64) -> ConnectionMetrics {
        let h = self.latency_snapshot(now);
        let attempts = self.attempts.sum(now);
        let failures = self.failures.sum(now);
        let arrivals = self.in_window.sum(now);
        let dropped_w = self.drop_window.sum(now);
        let drop_rate = (if arrivals > 0 {
            dropped_w as f64 / arrivals as f64
        } else if dropped_w > 0 {
            1.0
        } else {
            0.0
        })
        .min(1.0);
        let held = self.held();
        let cap = self.capacity();
        ConnectionMetrics {
            connection_id: self.id.clone(),
            messages_in: self.messages_in,
            messages_out: self.messages_out,
            messages_per_second: self.out_rate.rate_per_sec(now),
            average_latency: h.mean(),
            p50_latency: h.quantile(0.5),
            p95_latency: h.quantile(0.95),
            p99_latency: h.quantile(0.99),
            max_latency: h.max(),
            buffer_size: held,
            buffer_capacity: cap,
            buffer_utilization: held as f64 / cap as f64,
            backpressure_events: self.backpressure_events,
            backpressure: self.bp_active,
            dropped: self.drops.total(),
            drops: self.drops,
            drops_by_priority: self.drops_by_class,
            critical_lost: self.critical_lost,
            delivered_by_priority: self.delivered_by_class,
            error_rate: if attempts > 0 {
                failures as f64 / attempts as f64
            } else {
                0.0
            },
            errors: self.errors,
            retries: self.retries,
            circuit_state: self.breaker.state(now).as_str(),
            paused: self.paused,
            state: self.lifecycle().as_str(),
            adaptive: self.adaptive.as_ref().map(|a| AdaptiveState {
                effective_threshold: a.threshold,
                drop_rate,
                batch_size: a.batch_size,
            }),
            drop_rate,
            last_updated: now,
        }
    }

    /// Zeroes the windowed figures and restarts the counters from what is held now, so that
    /// `in == out + dropped + held` still holds.
    pub fn reset_metrics(&mut self) {
        self.messages_in = self.held() as u64;
        self.messages_out = 0;
        self.drops = DropCounts::default();
        self.drops_by_class = ClassCounts::default();
        self.critical_lost = 0;
        self.delivered_by_class = ClassCounts::default();
        self.backpressure_events = 0;
        self.errors = 0;
        self.retries = 0;
        self.summary = DropSummary::default();
        self.out_rate.reset();
        self.in_window.reset();
        self.drop_window.reset();
        self.attempts.reset();
        self.failures.reset();
        self.latency.reset();
        if let Some(r) = &mut self.recent_latency {
            r.reset();
        }
    }
}

enum Victim {
    Incoming,
    Buffered(u64),
    None,
}

#[cfg(test)]
mod boundary_tests {
    use super::{status, DropReason, Status};

    #[test]
    fn status_bits_are_distinct_single_bits() {
        let all = [
            Status::Pending,
            Status::Hold,
            Status::BatchReady,
            Status::Events,
            Status::Dropped,
            Status::First,
            Status::DropSummary,
            Status::Closed,
            Status::Empty,
        ];
        let mut seen = 0u32;
        for s in all {
            let b = s as u32;
            assert_eq!(b.count_ones(), 1, "{s:?} is not a single bit");
            assert_eq!(seen & b, 0, "{s:?} reuses a bit");
            seen |= b;
        }
        // The bits a push can report fit below CLOSED; EMPTY is only in a delivery's status.
        let push_bits = status::PENDING
            | status::HOLD
            | status::BATCH_READY
            | status::EVENTS
            | status::DROPPED
            | status::FIRST
            | status::DROP_SUMMARY;
        assert!(push_bits < status::CLOSED && status::CLOSED < status::EMPTY);
    }

    #[test]
    fn drop_reason_codes_index_their_table() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.code() as usize, i);
        }
        let names: Vec<_> = DropReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            names,
            ["priority", "oldest", "newest", "conflated", "dead-letter"]
        );
    }
}
