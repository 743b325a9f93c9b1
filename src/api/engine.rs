//! [`StreamEngine`]: the Rust API's engine, a set of connections over the core
//! [`crate::core::engine::Engine`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::core::alerts::Thresholds;
use crate::core::config::resolve_recovery;
use crate::core::config::{ConfigError, RecoveryPatch};
use crate::core::connection::ConnectionMetrics;
use crate::core::engine::{Engine, Tick};

use super::connection::{close, set_paused, Connection};
use super::events::{ConnectionEventKind, Event, EventStream};
use super::options::{ConnectionOptions, DropHandler, EngineConfig, Handler};
use super::shared::{Effects, Shared, SharedRef, Slot};
use super::timer::{lock, Timer};

/// A streaming engine for messages of type `T`, with the semantics of the JS `StreamEngine`:
/// bounded connections with batching, lossless backpressure by default, drop policies and
/// handlers, conflation, exact accounting, metrics, alerts and an event feed.
///
/// `C` is the platform [`Timer`]; [`StreamEngine::new`] uses the default one
/// (`NativeTimer` natively, `WebTimer` on wasm32 with the `web` feature).
/// The engine is a cheap handle: clones share the same connections. It is `Send + Sync` when
/// `T` is `Send` (natively).
///
/// # Example
///
/// ```
/// use futures::{executor::block_on, StreamExt};
/// use stream_engine::api::{ConnectionOptions, StreamEngine};
///
/// #[derive(Debug, PartialEq)]
/// struct Reading { sensor: u32, value: f64 }
///
/// let engine = StreamEngine::<Reading>::new();
/// let conn = engine.connect("sensor->chart", ConnectionOptions::new().max_batch_size(2)).unwrap();
/// let (mut tx, mut batches) = conn.split();
/// block_on(async {
///     tx.send_all(vec![Reading { sensor: 1, value: 0.5 }, Reading { sensor: 2, value: 0.7 }]).await.unwrap();
///     let batch = batches.next().await.unwrap(); // a full batch comes at once
///     assert_eq!(batch.len(), 2);
/// });
/// let m = engine.connection_metrics("sensor->chart").unwrap();
/// assert_eq!((m.messages_in, m.messages_out, m.dropped), (2, 2, 0));
/// ```
pub struct StreamEngine<T, C: Timer = super::DefaultTimer> {
    shared: SharedRef<T>,
    timer: C,
}

impl<T, C: Timer> Clone for StreamEngine<T, C> {
    fn clone(&self) -> Self {
        StreamEngine {
            shared: self.shared.clone(),
            timer: self.timer.clone(),
        }
    }
}

impl<T, C: Timer> std::fmt::Debug for StreamEngine<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamEngine")
            .field("connections", &self.ids())
            .finish()
    }
}

impl<T> StreamEngine<T, super::DefaultTimer> {
    /// An engine with the default options on the platform timer.
    pub fn new() -> Self {
        Self::with_timer(EngineConfig::default(), super::DefaultTimer::default())
            .expect("the defaults are valid")
    }

    /// An engine with the given options on the platform timer; errors name the bad field.
    ///
    /// ```
    /// use stream_engine::api::{EngineConfig, StreamEngine};
    ///
    /// let mut cfg = EngineConfig::default();
    /// cfg.stream.buffer_size = 0;
    /// let err = StreamEngine::<u32>::with_config(cfg).unwrap_err();
    /// assert_eq!(err.message, "bufferSize must be a positive integer, got 0");
    /// ```
    pub fn with_config(config: EngineConfig) -> Result<Self, ConfigError> {
        Self::with_timer(config, super::DefaultTimer::default())
    }
}

impl<T> Default for StreamEngine<T, super::DefaultTimer> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, C: Timer> StreamEngine<T, C> {
    /// An engine on a given timer, e.g. a [`super::ManualTimer`] for deterministic tests.
    ///
    /// ```
    /// use stream_engine::api::{EngineConfig, ManualTimer, StreamEngine};
    ///
    /// let timer = ManualTimer::new();
    /// let engine = StreamEngine::<u32, _>::with_timer(EngineConfig::default(), timer.clone()).unwrap();
    /// assert!(engine.ids().is_empty());
    /// ```
    pub fn with_timer(config: EngineConfig, timer: C) -> Result<Self, ConfigError> {
        config.validate()?;
        let now = timer.now();
        let shared = Shared {
            engine: Engine::new(config.stream, config.metrics_window),
            handler: Handler::None,
            custom: None,
            recovery: config.recovery,
            slots: BTreeMap::new(),
            next_gen: 0,
            subs: BTreeMap::new(),
            next_sub: 0,
            metrics_interval: config.metrics_interval,
            next_tick: now + config.metrics_interval.max(1.0),
        };
        Ok(StreamEngine {
            shared: Arc::new(Mutex::new(shared)),
            timer,
        })
    }

    /// The timer the engine runs on.
    pub fn timer(&self) -> &C {
        &self.timer
    }

    /// Sets the handler of connections created from now on without their own
    /// (`setBackpressureHandler` in JS). A connection's [`super::DropPolicy`] overrides it.
    ///
    /// ```
    /// use stream_engine::api::{ConnectionOptions, Handler, StreamEngine};
    ///
    /// let engine = StreamEngine::<u32>::new();
    /// engine.set_handler(Handler::adaptive(100.0));
    /// let conn = engine.connect("a->b", ConnectionOptions::new()).unwrap();
    /// let adaptive = conn.metrics().unwrap().adaptive.unwrap();
    /// assert_eq!(adaptive.effective_threshold, 0.9); // until pressure builds
    /// ```
    pub fn set_handler(&self, handler: Handler) {
        let mut g = lock(&self.shared);
        g.handler = handler;
        g.custom = None;
    }

    /// Sets your own [`DropHandler`] as the handler of connections created from now on without
    /// their own (`setBackpressureHandler(customObject)` in JS); [`StreamEngine::set_handler`]
    /// replaces it again.
    ///
    /// ```
    /// use stream_engine::api::{ConnectionOptions, DropHandler, StreamEngine};
    ///
    /// struct Keep;
    /// impl DropHandler<u32> for Keep {
    ///     fn priority(&self, m: &u32) -> f64 { if *m == 0 { 1.0 } else { 0.5 } }
    ///     fn should_drop(&self, _: &u32) -> bool { false }
    ///     fn drop_threshold(&self) -> Option<f64> { Some(0.5) }
    /// }
    ///
    /// let engine = StreamEngine::<u32>::new();
    /// engine.set_drop_handler(Keep);
    /// let conn = engine.connect("a->b", ConnectionOptions::new().buffer_size(2)).unwrap();
    /// let mut tx = conn.sender();
    /// tx.try_send(1).unwrap();
    /// tx.try_send(2).unwrap(); // at 0.5 of the buffer: the lowest priority goes
    /// assert_eq!(conn.metrics().unwrap().dropped, 1);
    /// ```
    pub fn set_drop_handler(&self, handler: impl DropHandler<T> + 'static) {
        let mut g = lock(&self.shared);
        g.custom = Some(std::sync::Arc::new(handler));
        g.handler = Handler::None;
    }

    /// Replaces the engine's error recovery layer (see [`EngineConfig::recovery`]) for
    /// connections created from now on. Errors name the bad field; nothing changes then.
    ///
    /// ```
    /// use stream_engine::api::StreamEngine;
    /// use stream_engine::core::config::RecoveryPatch;
    ///
    /// let engine = StreamEngine::<u32>::new();
    /// let err = engine.set_recovery(RecoveryPatch { retry_delay: Some(-1.0), ..Default::default() }).unwrap_err();
    /// assert_eq!(err.message, "retryDelay must be a finite number >= 0 (ms), got -1");
    /// ```
    pub fn set_recovery(&self, recovery: RecoveryPatch) -> Result<(), ConfigError> {
        let mut g = lock(&self.shared);
        resolve_recovery(g.engine.defaults(), &recovery, &RecoveryPatch::default())?;
        g.recovery = recovery;
        Ok(())
    }

    /// The alert thresholds in force (`getThresholds()` in JS).
    ///
    /// ```
    /// use stream_engine::api::StreamEngine;
    ///
    /// let engine = StreamEngine::<u32>::new();
    /// let mut t = engine.thresholds();
    /// assert_eq!(t, stream_engine::core::alerts::Thresholds::default());
    /// t.error_rate.warning = 0.5;
    /// engine.set_thresholds(t);
    /// assert_eq!(engine.thresholds().error_rate.warning, 0.5);
    /// ```
    pub fn thresholds(&self) -> Thresholds {
        *lock(&self.shared).engine.thresholds()
    }

    /// Replaces the alert thresholds.
    pub fn set_thresholds(&self, thresholds: Thresholds) {
        lock(&self.shared).engine.set_thresholds(thresholds);
    }

    /// Creates a connection. Ids are unique among open connections (a closed one still
    /// draining does not hold its id). Errors name the bad option (`bufferSize must be a
    /// positive integer, got 0`) or the duplicate id.
    ///
    /// ```
    /// use stream_engine::api::{ConnectionOptions, StreamEngine};
    ///
    /// let engine = StreamEngine::<u32>::new();
    /// let _a = engine.connect("a->b", ConnectionOptions::new()).unwrap();
    /// assert!(engine.connect("a->b", ConnectionOptions::new()).is_err());
    /// let err = engine.connect("c->d", ConnectionOptions::new().backpressure_threshold(1.5)).unwrap_err();
    /// assert_eq!(err.message, "backpressureThreshold must be in (0, 1], got 1.5");
    /// ```
    pub fn connect(
        &self,
        id: &str,
        options: ConnectionOptions<T>,
    ) -> Result<Connection<T, C>, ConfigError> {
        let mut fx = Effects::new();
        let (h, gen) = {
            let mut g = lock(&self.shared);
            let custom = options.custom_in_force(g.custom.as_ref()).cloned();
            let (cfg, policy) = options.resolve(g.engine.defaults(), g.handler, custom.as_ref())?;
            let recovery = resolve_recovery(&cfg, &g.recovery, &options.recovery)?;
            let h = g
                .engine
                .create(id, cfg, policy, options.on_drop.is_some())?;
            g.engine
                .get(h)
                .expect("just created")
                .set_recovery(&recovery);
            let gen = g.next_gen;
            g.next_gen += 1;
            g.slots.insert(
                h,
                Slot {
                    id: id.to_string(),
                    gen,
                    reader: None,
                    writers: Vec::new(),
                    priority: options.priority,
                    key: options.key,
                    on_drop: options.on_drop,
                    custom,
                },
            );
            g.broadcast(
                Event::Connection {
                    connection_id: id.to_string(),
                    kind: ConnectionEventKind::Created,
                },
                &mut fx,
            );
            (h, gen)
        };
        fx.run();
        Ok(Connection::new(
            self.shared.clone(),
            self.timer.clone(),
            h,
            gen,
            id.to_string(),
        ))
    }

    /// Ids of the open connections.
    pub fn ids(&self) -> Vec<String> {
        let mut g = lock(&self.shared);
        let mut ids: Vec<String> = g
            .engine
            .connections()
            .filter(|(_, c)| !c.is_closed())
            .map(|(_, c)| c.id().to_string())
            .collect();
        ids.sort();
        ids
    }

    /// Closes the open connection with this id (see [`Connection::close`]); `false` if there
    /// is none.
    pub fn close(&self, id: &str) -> bool {
        match self.live(id) {
            Some((h, gen)) => {
                close(&self.shared, h, gen, self.timer.now());
                true
            }
            None => false,
        }
    }

    /// Pauses delivery on the connection with this id (the open one, else one still draining;
    /// see [`Connection::pause`]), e.g. one whose [`Connection`] was handed to
    /// [`Connection::consume`]; `false` if there is none.
    ///
    /// ```
    /// use stream_engine::api::{ConnectionOptions, StreamEngine};
    ///
    /// let engine = StreamEngine::<u32>::new();
    /// let conn = engine.connect("a->b", ConnectionOptions::new()).unwrap();
    /// assert!(engine.pause("a->b"));
    /// assert!(conn.metrics().unwrap().paused);
    /// assert!(engine.resume("a->b"));
    /// assert!(!conn.metrics().unwrap().paused);
    /// assert!(!engine.pause("nope"));
    /// ```
    pub fn pause(&self, id: &str) -> bool {
        self.set_paused(id, true)
    }

    /// Resumes delivery on the connection with this id (the open one, else one still
    /// draining); `false` if there is none.
    pub fn resume(&self, id: &str) -> bool {
        self.set_paused(id, false)
    }

    fn set_paused(&self, id: &str, paused: bool) -> bool {
        // A closed connection still draining may be paused or resumed too: after consume()
        // the engine is the only way to reach it.
        let found = self.live(id).or_else(|| {
            let mut g = lock(&self.shared);
            let h = g
                .engine
                .connections()
                .find(|(_, c)| c.id() == id)
                .map(|(h, _)| h);
            h.and_then(|h| g.slots.get(&h).map(|s| (h, s.gen)))
        });
        match found {
            Some((h, gen)) => {
                set_paused(&self.shared, h, gen, paused);
                true
            }
            None => false,
        }
    }

    /// The handle and generation of the open connection with this id.
    fn live(&self, id: &str) -> Option<(crate::core::engine::Handle, u64)> {
        let mut g = lock(&self.shared);
        let h = g
            .engine
            .connections()
            .find(|(_, c)| c.id() == id && !c.is_closed())
            .map(|(h, _)| h);
        h.and_then(|h| g.slots.get(&h).map(|s| (h, s.gen)))
    }

    /// Closes every connection (`destroy()` in JS): readers get what was taken, then end.
    pub fn close_all(&self) {
        for id in self.ids() {
            self.close(&id);
        }
    }

    /// Metrics of the connection with this id (the open one, or else one still draining).
    pub fn connection_metrics(&self, id: &str) -> Option<ConnectionMetrics> {
        let now = self.timer.now();
        let mut g = lock(&self.shared);
        let mut found = None;
        for (_, c) in g.engine.connections() {
            if c.id() == id && (found.is_none() || !c.is_closed()) {
                found = Some(c.metrics(now));
            }
        }
        found
    }

    /// Restarts one connection's figures from what it holds now (`resetMetrics(id)` in JS):
    /// counters and windows go to zero except `messages_in`, which becomes the number held,
    /// so the accounting identity still holds. `false` if there is no such connection.
    ///
    /// ```
    /// use stream_engine::api::{ConnectionOptions, StreamEngine};
    ///
    /// let engine = StreamEngine::<u32>::new();
    /// let conn = engine.connect("a->b", ConnectionOptions::new()).unwrap();
    /// conn.sender().try_send(1).unwrap();
    /// assert!(engine.reset_metrics("a->b"));
    /// let m = conn.metrics().unwrap();
    /// assert_eq!((m.messages_in, m.messages_out, m.buffer_size), (1, 0, 1));
    /// assert!(!engine.reset_metrics("nope"));
    /// ```
    pub fn reset_metrics(&self, id: &str) -> bool {
        let mut g = lock(&self.shared);
        let mut found = None;
        for (h, c) in g.engine.connections() {
            if c.id() == id && (found.is_none() || !c.is_closed()) {
                found = Some(h);
            }
        }
        match found.and_then(|h| g.engine.get(h)) {
            Some(c) => {
                c.reset_metrics();
                true
            }
            None => false,
        }
    }

    /// A snapshot of every connection and the totals, without touching alert state (alerts
    /// are evaluated on the event feed's metrics ticks).
    pub fn metrics(&self) -> Tick {
        let now = self.timer.now();
        lock(&self.shared).engine.snapshot(now)
    }

    /// Subscribes to the event feed with a queue of 1000 events (see [`EventStream`]).
    pub fn events(&self) -> EventStream<T, C> {
        self.events_with_queue(1000)
    }

    /// Subscribes with a queue of `queue_size` events (at least 1).
    pub fn events_with_queue(&self, queue_size: usize) -> EventStream<T, C> {
        EventStream::subscribe(self.shared.clone(), self.timer.clone(), queue_size)
    }
}
