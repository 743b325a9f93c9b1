//! Options of the engine and of a connection, and their resolution into the core's
//! [`StreamConfig`] and [`FlowPolicy`] (validated by [`crate::core::config`], so the Rust API and
//! the JS API accept and refuse the same values with the same messages).

use std::fmt;
use std::sync::Arc;

use crate::core::adaptive::AdaptiveConfig;
use crate::core::config::{
    self, ConfigError, HandlerSpec, PolicyRequest, RecoveryPatch, StreamConfig, StreamConfigPatch,
};
use crate::core::connection::{DropReason, FlowPolicy};

/// Engine-wide options: the per-connection defaults plus the metrics timing.
///
/// ```
/// use stream_engine::api::EngineConfig;
///
/// let cfg = EngineConfig { metrics_interval: 250.0, ..EngineConfig::default() };
/// assert_eq!(cfg.stream.buffer_size, 1000); // the JS API's defaults
/// assert_eq!(cfg.metrics_window, 5000.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EngineConfig {
    /// Defaults of every connection (`bufferSize`, `batchTimeout`, ... of the JS API).
    pub stream: StreamConfig,
    /// Ms between `Metrics` events on an event feed (`metricsInterval`, default 1000).
    pub metrics_interval: f64,
    /// Sliding window for rates, latencies and error rate, ms (`metricsWindow`, default 5000).
    pub metrics_window: f64,
    /// The engine's error recovery for [`super::Connection::consume`] (`setErrorRecovery` in
    /// JS): fields left `None` come from `stream.retry_attempts` / `stream.retry_delay` and the
    /// core's defaults; a connection's own [`ConnectionOptions::recovery`] overrides field by
    /// field. Resolved by [`crate::core::config::resolve_recovery`].
    pub recovery: RecoveryPatch,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            stream: StreamConfig::default(),
            metrics_interval: 1000.0,
            metrics_window: 5000.0,
            recovery: RecoveryPatch::default(),
        }
    }
}

impl EngineConfig {
    /// Checks the values (the same rules and messages as the JS constructor).
    ///
    /// ```
    /// use stream_engine::api::EngineConfig;
    ///
    /// let bad = EngineConfig { metrics_interval: f64::NAN, ..EngineConfig::default() };
    /// assert_eq!(bad.validate().unwrap_err().message, "metricsInterval must be a finite number >= 0 (ms), got NaN");
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_stream(&StreamConfig::default(), &self.stream)?;
        config::time_ms("metricsInterval", self.metrics_interval)?;
        config::time_ms("metricsWindow", self.metrics_window)?;
        crate::core::config::resolve_recovery(
            &self.stream,
            &self.recovery,
            &RecoveryPatch::default(),
        )?;
        Ok(())
    }
}

/// Runs a complete config through the core's validation (via a patch of every field).
fn validate_stream(base: &StreamConfig, s: &StreamConfig) -> Result<StreamConfig, ConfigError> {
    base.apply(&StreamConfigPatch {
        buffer_size: Some(s.buffer_size as f64),
        batch_timeout: Some(s.batch_timeout),
        max_batch_size: Some(s.max_batch_size as f64),
        backpressure_threshold: Some(s.backpressure_threshold),
        retry_attempts: Some(s.retry_attempts as f64),
        retry_delay: Some(s.retry_delay),
    })
}

/// A backpressure handler: how a connection without an explicit [`DropPolicy`] treats a full
/// buffer. The same three choices as the JS API (no handler, `DefaultBackpressureHandler`,
/// `AdaptiveBackpressureHandler`).
///
/// ```
/// use stream_engine::api::Handler;
///
/// let h = Handler::Default { drop_threshold: 0.9, priority_drop: true, max_wait: 100.0 };
/// assert_ne!(h, Handler::None);
/// assert_eq!(Handler::default_handler(), h);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Handler {
    /// Lossless: writes wait for room (the default).
    None,
    /// Backpressure at `backpressure_threshold` holds each write at most `max_wait` ms; at
    /// `drop_threshold` (a fraction of the buffer) the lowest-priority message goes (the oldest
    /// with `priority_drop: false`). Critical messages are never dropped.
    Default {
        /// Utilisation in (0, 1] at which room is made.
        drop_threshold: f64,
        /// Drop by priority (`true`) or the oldest (`false`).
        priority_drop: bool,
        /// Longest hold of a write under backpressure, ms.
        max_wait: f64,
    },
    /// Moves the drop level (and the batch size) so delivered messages stay under a p95
    /// latency target, shedding the lowest priorities first.
    Adaptive(AdaptiveConfig),
}

impl Handler {
    /// `DefaultBackpressureHandler` with its defaults: `{ dropThreshold: 0.9, priorityDrop:
    /// true, maxWaitTime: 100 }`.
    pub fn default_handler() -> Self {
        Handler::Default {
            drop_threshold: 0.9,
            priority_drop: true,
            max_wait: 100.0,
        }
    }

    /// `AdaptiveBackpressureHandler` for a p95 target (ms), other options at their defaults
    /// (`maxWaitTime` = min(10, target / 10), as in the JS API).
    ///
    /// ```
    /// use stream_engine::api::Handler;
    ///
    /// match Handler::adaptive(50.0) {
    ///     Handler::Adaptive(a) => assert_eq!(a.max_wait, 5.0),
    ///     _ => unreachable!(),
    /// }
    /// ```
    pub fn adaptive(target_latency: f64) -> Self {
        Handler::Adaptive(AdaptiveConfig {
            target_latency,
            max_wait: AdaptiveConfig::default_max_wait(target_latency),
            ..AdaptiveConfig::default()
        })
    }
}

/// An explicit drop rule for one connection; overrides the engine's [`Handler`] (as the JS
/// `dropPolicy` option does).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DropPolicy {
    /// Lossless: writes wait for room.
    Block,
    /// When full, the lowest priority among buffered and incoming goes (oldest among equals).
    Priority,
    /// When full, the oldest buffered non-critical message goes.
    Oldest,
    /// When full, the incoming message goes.
    Newest,
}

/// Your own backpressure handler (the JS handler interface `prioritizeMessage(msg)` /
/// `shouldDropMessage(msg)`), set with [`ConnectionOptions::drop_handler`] or
/// [`super::StreamEngine::set_drop_handler`].
///
/// Both methods are called once per message when it is written, with the engine's lock held
/// (they must not use the engine). The connection drops by priority: at `drop_threshold` (a
/// fraction of the buffer, default 0.9) the lowest [`DropHandler::priority`] goes, critical
/// messages (priority 1) never; and while backpressure is on, a message for which
/// [`DropHandler::should_drop`] is `true` is dropped on arrival (reason `priority`). Writes are
/// held under backpressure at most [`DropHandler::max_wait`] ms (default 100). An explicit
/// [`DropPolicy`] on the connection replaces the rule, as in JS; the two methods still apply.
///
/// ```
/// use futures::{executor::block_on, StreamExt};
/// use stream_engine::api::{ConnectionOptions, DropHandler, EngineConfig, ManualTimer, StreamEngine};
/// use stream_engine::core::connection::DropReason;
/// use std::sync::{Arc, Mutex};
///
/// /// Telemetry is expendable under pressure; commands are critical.
/// struct Ops;
/// impl DropHandler<(&'static str, u32)> for Ops {
///     fn priority(&self, m: &(&'static str, u32)) -> f64 { if m.0 == "cmd" { 1.0 } else { 0.3 } }
///     fn should_drop(&self, m: &(&'static str, u32)) -> bool { m.0 == "telemetry" }
/// }
///
/// let engine = StreamEngine::with_timer(EngineConfig::default(), ManualTimer::new()).unwrap();
/// let dropped = Arc::new(Mutex::new(Vec::new()));
/// let log = dropped.clone();
/// let conn = engine.connect("ops", ConnectionOptions::new()
///     .buffer_size(4)
///     .backpressure_threshold(0.5)
///     .drop_handler(Ops)
///     .on_drop(move |m: (&str, u32), why| log.lock().unwrap().push((m.1, why)))).unwrap();
/// let mut tx = conn.sender();
/// for m in [("cmd", 1), ("cmd", 2), ("telemetry", 3), ("cmd", 4)] {
///     tx.try_send(m).unwrap();
/// }
/// // Backpressure started at 2 of 4: the telemetry message was dropped on arrival.
/// assert_eq!(*dropped.lock().unwrap(), vec![(3, DropReason::Priority)]);
/// conn.close();
/// let got: Vec<u32> = block_on(conn.collect::<Vec<_>>()).concat().iter().map(|m| m.1).collect();
/// assert_eq!(got, vec![1, 2, 4]);
/// ```
pub trait DropHandler<T>: MaybeSendSync {
    /// The message's priority in [0, 1], higher is more important (1 = critical, never
    /// dropped). NaN means the default 0.5; other values are clamped to [0, 1].
    fn priority(&self, message: &T) -> f64;
    /// Whether to drop the message on arrival while backpressure is on (obeyed whatever its
    /// priority, as in JS).
    fn should_drop(&self, message: &T) -> bool;
    /// Buffer use in (0, 1] at which the lowest priority is dropped (`None`: 0.9).
    fn drop_threshold(&self) -> Option<f64> {
        None
    }
    /// Longest hold of a write under backpressure, ms (`None`: 100).
    fn max_wait(&self) -> Option<f64> {
        None
    }
}

/// A shared [`DropHandler`].
pub type DropHandlerRef<T> = Arc<dyn DropHandler<T>>;

/// Reads a message's priority (a number in [0, 1], higher is more important, 1 = critical).
pub type PriorityFn<T> = Arc<dyn Fn(&T) -> f64 + Send + Sync>;
/// Reads a message's conflation key (`None`: never conflated).
pub type KeyFn<T> = Arc<dyn Fn(&T) -> Option<String> + Send + Sync>;
/// Receives every dropped message with its reason (called outside the engine's lock, on the
/// task that caused the drop). `Send + Sync` natively.
#[cfg(not(target_arch = "wasm32"))]
pub type DropFn<T> = Arc<dyn Fn(T, DropReason) + Send + Sync>;
/// Receives every dropped message with its reason (called outside the engine's lock, on the
/// task that caused the drop). `Send + Sync` natively.
#[cfg(target_arch = "wasm32")]
pub type DropFn<T> = Arc<dyn Fn(T, DropReason)>;

/// `Send + Sync` natively; nothing on wasm32, where callbacks often hold `JsValue`s.
#[cfg(not(target_arch = "wasm32"))]
pub trait MaybeSendSync: Send + Sync {}
#[cfg(not(target_arch = "wasm32"))]
impl<F: ?Sized + Send + Sync> MaybeSendSync for F {}
/// `Send + Sync` natively; nothing on wasm32, where callbacks often hold `JsValue`s.
#[cfg(target_arch = "wasm32")]
pub trait MaybeSendSync {}
#[cfg(target_arch = "wasm32")]
impl<F: ?Sized> MaybeSendSync for F {}

/// `Send` natively; nothing on wasm32 (a consume handler's futures often hold `JsValue`s there).
#[cfg(not(target_arch = "wasm32"))]
pub trait MaybeSend: Send {}
#[cfg(not(target_arch = "wasm32"))]
impl<F: ?Sized + Send> MaybeSend for F {}
/// `Send` natively; nothing on wasm32 (a consume handler's futures often hold `JsValue`s there).
#[cfg(target_arch = "wasm32")]
pub trait MaybeSend {}
#[cfg(target_arch = "wasm32")]
impl<F: ?Sized> MaybeSend for F {}

/// Options of one connection: overrides of the engine's [`StreamConfig`], the flow rules, and
/// how to read a message's priority and key. Built with chained setters.
///
/// ```
/// use stream_engine::api::{ConnectionOptions, DropPolicy};
///
/// #[derive(Debug)]
/// struct Tick { symbol: String, price: f64, urgent: bool }
///
/// let opts = ConnectionOptions::<Tick>::new()
///     .buffer_size(500)
///     .batch_timeout(16.0)
///     .drop_policy(DropPolicy::Priority)
///     .priority(|t: &Tick| if t.urgent { 1.0 } else { 0.5 })
///     .conflate_by(|t: &Tick| Some(t.symbol.clone()))
///     .on_drop(|t: Tick, why| eprintln!("dropped {} ({})", t.symbol, why.as_str()));
/// # let _ = opts;
/// ```
pub struct ConnectionOptions<T> {
    pub(crate) patch: StreamConfigPatch,
    pub(crate) drop_policy: Option<DropPolicy>,
    pub(crate) max_wait: Option<f64>,
    pub(crate) handler: Option<Handler>,
    pub(crate) priority: Option<PriorityFn<T>>,
    pub(crate) key: Option<KeyFn<T>>,
    pub(crate) on_drop: Option<DropFn<T>>,
    pub(crate) custom: Option<DropHandlerRef<T>>,
    pub(crate) recovery: RecoveryPatch,
}

impl<T> Default for ConnectionOptions<T> {
    fn default() -> Self {
        ConnectionOptions {
            patch: StreamConfigPatch::default(),
            drop_policy: None,
            max_wait: None,
            handler: None,
            priority: None,
            key: None,
            on_drop: None,
            custom: None,
            recovery: RecoveryPatch::default(),
        }
    }
}

impl<T> fmt::Debug for ConnectionOptions<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionOptions")
            .field("patch", &self.patch)
            .field("drop_policy", &self.drop_policy)
            .field("max_wait", &self.max_wait)
            .field("handler", &self.handler)
            .field("priority", &self.priority.is_some())
            .field("key", &self.key.is_some())
            .field("on_drop", &self.on_drop.is_some())
            .field("drop_handler", &self.custom.is_some())
            .field("recovery", &self.recovery)
            .finish()
    }
}

impl<T> ConnectionOptions<T> {
    /// Every option at the engine's defaults.
    pub fn new() -> Self {
        Self::default()
    }
    /// Messages held at most (`bufferSize`, a positive integer).
    pub fn buffer_size(mut self, n: usize) -> Self {
        self.patch.buffer_size = Some(n as f64);
        self
    }
    /// A partial batch is delivered this many ms after its first message (`batchTimeout`;
    /// 0 = at once).
    pub fn batch_timeout(mut self, ms: f64) -> Self {
        self.patch.batch_timeout = Some(ms);
        self
    }
    /// Messages per batch at most (`maxBatchSize`).
    pub fn max_batch_size(mut self, n: usize) -> Self {
        self.patch.max_batch_size = Some(n as f64);
        self
    }
    /// Buffer use in (0, 1] at which backpressure starts (`backpressureThreshold`).
    pub fn backpressure_threshold(mut self, f: f64) -> Self {
        self.patch.backpressure_threshold = Some(f);
        self
    }
    /// An explicit drop rule (overrides the handler).
    pub fn drop_policy(mut self, p: DropPolicy) -> Self {
        self.drop_policy = Some(p);
        self
    }
    /// Longest hold of a write under backpressure with a non-blocking [`DropPolicy`], ms
    /// (`maxWaitTime`, default 100).
    pub fn max_wait(mut self, ms: f64) -> Self {
        self.max_wait = Some(ms);
        self
    }
    /// This connection's handler instead of the engine's (replaces a
    /// [`ConnectionOptions::drop_handler`]).
    pub fn handler(mut self, h: Handler) -> Self {
        self.handler = Some(h);
        self.custom = None;
        self
    }
    /// Your own handler ([`DropHandler`]) instead of the engine's (replaces a
    /// [`ConnectionOptions::handler`]); its priorities replace [`ConnectionOptions::priority`].
    pub fn drop_handler(self, h: impl DropHandler<T> + 'static) -> Self {
        self.drop_handler_ref(Arc::new(h))
    }
    /// [`ConnectionOptions::drop_handler`] with a handler shared with other connections.
    pub fn drop_handler_ref(mut self, h: DropHandlerRef<T>) -> Self {
        self.custom = Some(h);
        self.handler = None;
        self
    }
    /// This connection's error recovery for [`super::Connection::consume`], field by field over
    /// the engine's ([`EngineConfig::recovery`]); validated when the connection is created.
    ///
    /// ```
    /// use stream_engine::api::{ConnectionOptions, StreamEngine};
    /// use stream_engine::core::config::RecoveryPatch;
    ///
    /// let engine = StreamEngine::<u32>::new();
    /// let bad = RecoveryPatch { failure_threshold: Some(0.0), ..Default::default() };
    /// let err = engine.connect("a->b", ConnectionOptions::new().recovery(bad)).unwrap_err();
    /// assert_eq!(err.message, "circuitBreaker.failureThreshold must be a positive integer, got 0");
    /// ```
    pub fn recovery(mut self, r: RecoveryPatch) -> Self {
        self.recovery = r;
        self
    }
    /// How to read a message's priority (default: 0.5 for every message). Called once per
    /// write with the engine's lock held: it must not use the engine.
    pub fn priority(mut self, f: impl Fn(&T) -> f64 + Send + Sync + 'static) -> Self {
        self.priority = Some(Arc::new(f));
        self
    }
    /// Turns conflation on: a message whose key matches a buffered one replaces it in place
    /// (latest value wins; the replaced one is dropped with reason `conflated`).
    /// Called once per write with the engine's lock held: it must not use the engine.
    pub fn conflate_by(mut self, f: impl Fn(&T) -> Option<String> + Send + Sync + 'static) -> Self {
        self.key = Some(Arc::new(f));
        self
    }
    /// Called with every message the connection drops, and why.
    pub fn on_drop(mut self, f: impl Fn(T, DropReason) + MaybeSendSync + 'static) -> Self {
        self.on_drop = Some(Arc::new(f));
        self
    }

    /// Resolves the options against the engine's defaults and handler, validating every value.
    pub(crate) fn resolve(
        &self,
        defaults: &StreamConfig,
        engine_handler: Handler,
        engine_custom: Option<&DropHandlerRef<T>>,
    ) -> Result<(StreamConfig, FlowPolicy), ConfigError> {
        let cfg = defaults.apply(&self.patch)?;
        // One resolution, the core's (the JS API's `dropPolicy`, `maxWaitTime` and handler
        // options go through the same function): this only translates the Rust types.
        let handler = match self.custom_in_force(engine_custom) {
            Some(h) => Some(HandlerSpec::Custom {
                drop_threshold: h.drop_threshold(),
                max_wait: h.max_wait(),
            }),
            None => match self.handler.unwrap_or(engine_handler) {
                Handler::None => None,
                Handler::Default {
                    drop_threshold,
                    priority_drop,
                    max_wait,
                } => Some(HandlerSpec::Default {
                    drop_threshold: Some(drop_threshold),
                    priority_drop: Some(priority_drop),
                    max_wait: Some(max_wait),
                }),
                Handler::Adaptive(a) => Some(HandlerSpec::Adaptive {
                    target_latency: Some(a.target_latency),
                    max_threshold: Some(a.max_threshold),
                    min_threshold: Some(a.min_threshold),
                    max_wait: Some(a.max_wait),
                }),
            },
        };
        let policy = PolicyRequest {
            drop_policy: self.drop_policy.map(|p| match p {
                DropPolicy::Block => "block",
                DropPolicy::Priority => "priority",
                DropPolicy::Oldest => "oldest",
                DropPolicy::Newest => "newest",
            }),
            max_wait_time: self.max_wait,
            conflate: Some(self.key.is_some()),
            handler,
        }
        .resolve()?;
        Ok((cfg, policy))
    }

    /// The custom handler in force: the connection's own, else the engine's unless the
    /// connection names a built-in [`Handler`].
    pub(crate) fn custom_in_force<'a>(
        &'a self,
        engine_custom: Option<&'a DropHandlerRef<T>>,
    ) -> Option<&'a DropHandlerRef<T>> {
        match (&self.custom, &self.handler) {
            (Some(h), _) => Some(h),
            (None, Some(_)) => None,
            (None, None) => engine_custom,
        }
    }
}
