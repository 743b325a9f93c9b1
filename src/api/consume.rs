//! [`Connection::consume`]: the engine reads a connection's batches and calls an async handler,
//! retrying failures with the error recovery in force, dead-lettering a batch when retries run
//! out, and not calling while the circuit breaker is open (`connection.consume(handler)` in JS).
//!
//! Every decision is the core's: the batch in flight and its accounting and the circuit breaker
//! are the core connection's (`consume_take`, `circuit_wait`, `consume_success`,
//! `consume_failed`, `consume_dead_letter`, in `src/core/consume.rs`), retry or dead-letter and
//! the back-off included. This file drives the loop: wakers, timers, the stop
//! signal, and handing batches to the handler.

use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use crate::core::connection::consume::{Failure, Next as AfterFailure};
use crate::core::connection::DropReason;

use super::batches::Batches;
use super::connection::Connection;
use super::events::Event;
use super::options::{MaybeSend, MaybeSendSync};
use super::shared::Effects;
use super::timer::{lock, Timer};

// `Send` natively (spawn the loop on any runtime), not on wasm32 where closures and futures
// often hold `JsValue`s.
#[cfg(not(target_arch = "wasm32"))]
type RetryIf<E> = Box<dyn Fn(&E) -> bool + Send + Sync>;
#[cfg(not(target_arch = "wasm32"))]
type Random = Box<dyn FnMut() -> f64 + Send>;
#[cfg(not(target_arch = "wasm32"))]
type LoopFuture<T, C> = Pin<Box<dyn Future<Output = Option<Batches<T, C>>> + Send>>;
#[cfg(target_arch = "wasm32")]
type RetryIf<E> = Box<dyn Fn(&E) -> bool>;
#[cfg(target_arch = "wasm32")]
type Random = Box<dyn FnMut() -> f64>;
#[cfg(target_arch = "wasm32")]
type LoopFuture<T, C> = Pin<Box<dyn Future<Output = Option<Batches<T, C>>>>>;

/// One batch as a consume handler gets it: shared, cheap to clone, read as a slice
/// (`batch.iter()`, `batch.len()`, `&batch[..]`). The engine keeps a reference so that it can
/// offer the same batch again on a retry without copying it.
///
/// ```
/// use stream_engine::api::Batch;
///
/// let b = Batch::from(vec![1, 2, 3]);
/// assert_eq!(b.len(), 3);
/// assert_eq!(b.iter().sum::<i32>(), 6);
/// assert_eq!(b.into_vec(), vec![1, 2, 3]);
/// ```
pub struct Batch<T>(Arc<Vec<T>>);

impl<T> Batch<T> {
    /// The messages, without copying when this is the last reference (copied otherwise).
    pub fn into_vec(self) -> Vec<T>
    where
        T: Clone,
    {
        Arc::try_unwrap(self.0).unwrap_or_else(|shared| (*shared).clone())
    }
}

impl<T> From<Vec<T>> for Batch<T> {
    fn from(v: Vec<T>) -> Self {
        Batch(Arc::new(v))
    }
}

impl<T> Clone for Batch<T> {
    fn clone(&self) -> Self {
        Batch(self.0.clone())
    }
}

impl<T> Deref for Batch<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.0
    }
}

impl<T: fmt::Debug> fmt::Debug for Batch<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter()).finish()
    }
}

/// Options of a consume loop beyond the error recovery (which is the connection's: see
/// [`super::ConnectionOptions::recovery`] and [`super::EngineConfig::recovery`]).
///
/// ```
/// use stream_engine::api::ConsumeOptions;
///
/// #[derive(Debug)]
/// enum WidgetError { Busy, Malformed }
/// impl std::fmt::Display for WidgetError {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { write!(f, "{self:?}") }
/// }
///
/// let opts = ConsumeOptions::<WidgetError>::new()
///     .retry_if(|e| matches!(e, WidgetError::Busy)) // a malformed batch will not get better
///     .random(|| 0.5); // deterministic jitter
/// # let _ = opts;
/// ```
pub struct ConsumeOptions<E> {
    retry_if: Option<RetryIf<E>>,
    random: Option<Random>,
}

impl<E> Default for ConsumeOptions<E> {
    fn default() -> Self {
        ConsumeOptions {
            retry_if: None,
            random: None,
        }
    }
}

impl<E> fmt::Debug for ConsumeOptions<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsumeOptions")
            .field("retry_if", &self.retry_if.is_some())
            .field("random", &self.random.is_some())
            .finish()
    }
}

impl<E> ConsumeOptions<E> {
    /// Every error retryable, the platform's random source.
    pub fn new() -> Self {
        Self::default()
    }
    /// Which errors are worth a retry (default: all). A `false` dead-letters the batch at once
    /// (JS: `shouldRetry` is false for `TypeError` or `retryable === false`).
    pub fn retry_if(mut self, f: impl Fn(&E) -> bool + MaybeSendSync + 'static) -> Self {
        self.retry_if = Some(Box::new(f));
        self
    }
    /// The random source of the retry jitter, numbers in [0, 1) (default: natively a seeded
    /// [`crate::core::recovery::XorShift`], on wasm32 `Math.random()`).
    pub fn random(mut self, f: impl FnMut() -> f64 + MaybeSend + 'static) -> Self {
        self.random = Some(Box::new(f));
        self
    }
}

/// The platform's random numbers for jitter.
fn default_random() -> Random {
    #[cfg(target_arch = "wasm32")]
    {
        Box::new(js_sys::Math::random)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        use std::hash::{BuildHasher, Hasher};
        // A per-process random seed from the standard library, without a dependency.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0x5eed);
        let mut rng = crate::core::recovery::XorShift::new(h.finish());
        Box::new(move || rng.next_f64())
    }
}

/// What the handle and the loop share.
struct Ctl<T> {
    stopped: bool,
    waker: Option<Waker>,
    dead: Vec<T>,
}

/// Controls a running consume loop: [`ConsumerHandle::stop`] and the dead letters. Cheap to
/// clone; usable from any task.
///
/// ```
/// use futures::{executor::block_on, FutureExt, StreamExt};
/// use stream_engine::api::{Batch, ConnectionOptions, EngineConfig, ManualTimer, StreamEngine};
///
/// let engine = StreamEngine::with_timer(EngineConfig::default(), ManualTimer::new()).unwrap();
/// let conn = engine.connect("a->b", ConnectionOptions::new().batch_timeout(0.0)).unwrap();
/// let mut tx = conn.sender();
/// let mut consumer = conn.consume(|_: Batch<u32>| async { Ok::<(), String>(()) });
/// let handle = consumer.handle.clone(); // e.g. for a UI's "stop" button
/// assert!((&mut consumer.done).now_or_never().is_none());
/// handle.stop();
/// let mut reader = block_on(consumer.done).expect("stopped, not ended: the reader comes back");
/// tx.try_send(5).unwrap(); // the connection is still open
/// assert_eq!(block_on(reader.next()), Some(vec![5]));
/// ```
pub struct ConsumerHandle<T> {
    ctl: Arc<Mutex<Ctl<T>>>,
}

impl<T> Clone for ConsumerHandle<T> {
    fn clone(&self) -> Self {
        ConsumerHandle {
            ctl: self.ctl.clone(),
        }
    }
}

impl<T> fmt::Debug for ConsumerHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsumerHandle")
            .field("stopped", &self.is_stopped())
            .finish()
    }
}

impl<T> ConsumerHandle<T> {
    /// Stops the loop: no further batch is taken, a retry or circuit wait ends by
    /// dead-lettering its batch, and a handler call under way finishes (its batch is
    /// delivered if it succeeds, dead-lettered if it fails, without retries). The loop's
    /// [`Done`] then completes with the reader, so that the connection's remaining batches can
    /// still be read (dropping it is the reader going away). Stopping twice does nothing.
    pub fn stop(&self) {
        let w = {
            let mut c = lock(&self.ctl);
            c.stopped = true;
            c.waker.take()
        };
        if let Some(w) = w {
            w.wake();
        }
    }

    /// Whether [`ConsumerHandle::stop`] was called.
    pub fn is_stopped(&self) -> bool {
        lock(&self.ctl).stopped
    }

    /// Returns the messages dead-lettered by this loop so far, and forgets them
    /// (`connection.deadLetters()` in JS). They are also counted as dropped with reason
    /// `dead-letter` and given to `on_drop`.
    pub fn dead_letters(&self) -> Vec<T> {
        std::mem::take(&mut lock(&self.ctl).dead)
    }
}

/// The loop of [`Connection::consume`]: a future to spawn on (or await from) any executor. It
/// completes when the connection has ended (closed and everything delivered or dead-lettered)
/// with `None`, or after [`ConsumerHandle::stop`] with `Some(reader)`: the connection's
/// [`Batches`], still open.
///
/// Dropping it before it completes is the reader going away: a batch in flight is
/// dead-lettered, then everything buffered (as dropping [`Batches`] does).
///
/// Natively it is `Send`, so it can be spawned on any runtime (tokio, async-std, a thread
/// pool); that is why the handler, its futures, its error type and the messages must be `Send`
/// (and messages `Sync`) natively. On wasm32 nothing needs to be `Send` (handlers hold
/// `JsValue`s): spawn it with `wasm_bindgen_futures::spawn_local`.
///
/// ```
/// use stream_engine::api::{Batch, ConnectionOptions, StreamEngine};
/// use std::sync::{Arc, Mutex};
///
/// let engine = StreamEngine::<u32>::new();
/// let conn = engine.connect("a->b", ConnectionOptions::new().batch_timeout(0.0)).unwrap();
/// let mut tx = conn.sender();
/// let got = Arc::new(Mutex::new(Vec::new()));
/// let sink = got.clone();
/// let consumer = conn.consume(move |b: Batch<u32>| {
///     sink.lock().unwrap().extend(b.iter().copied());
///     async { Ok::<(), String>(()) }
/// });
/// // The loop runs on another thread (any runtime's spawn works the same way).
/// let ended = std::thread::spawn(move || futures::executor::block_on(consumer.done).is_none());
/// tx.try_send(1).unwrap();
/// tx.close_connection();
/// assert!(ended.join().unwrap()); // the loop ended with the connection
/// assert_eq!(*got.lock().unwrap(), vec![1]);
/// ```
#[must_use = "the loop runs only while its future is polled"]
pub struct Done<T, C: Timer> {
    fut: LoopFuture<T, C>,
}

impl<T, C: Timer> fmt::Debug for Done<T, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Done(..)")
    }
}

impl<T, C: Timer> Future for Done<T, C> {
    type Output = Option<Batches<T, C>>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.fut.as_mut().poll(cx)
    }
}

/// A consume loop as [`Connection::consume`] returns it: its [`Done`] future (the loop itself,
/// to spawn or await) and its [`ConsumerHandle`].
pub struct Consumer<T, C: Timer> {
    /// The loop; it runs only while polled.
    pub done: Done<T, C>,
    /// Stops the loop and hands out its dead letters.
    pub handle: ConsumerHandle<T>,
}

impl<T, C: Timer> fmt::Debug for Consumer<T, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("handle", &self.handle)
            .finish()
    }
}

impl<T, C: Timer> Consumer<T, C> {
    /// See [`ConsumerHandle::stop`].
    pub fn stop(&self) {
        self.handle.stop()
    }
    /// See [`ConsumerHandle::dead_letters`].
    pub fn dead_letters(&self) -> Vec<T> {
        self.handle.dead_letters()
    }
}

impl<T, C> Connection<T, C>
where
    T: Clone + MaybeSendSync + 'static,
    C: Timer + MaybeSend,
    C::Sleep: MaybeSend,
{
    /// Makes the engine read this connection's batches and call `handler(batch)`, every error
    /// retryable (see [`Connection::consume_with`]).
    ///
    /// A failing call is retried with the connection's error recovery (`retry_attempts`
    /// retries, back-off `min(max_retry_delay, retry_delay * 2^attempt * (1 + jitter *
    /// random))`); when retries run out the batch becomes dead letters (counted as dropped with
    /// reason `dead-letter`, given to `on_drop`, a `Drop` event on the feed, and kept for
    /// [`ConsumerHandle::dead_letters`]). Each failure is an [`Event::ConsumerError`]. After
    /// `failure_threshold` consecutive failures the circuit opens: no calls for
    /// `reset_timeout` ms (messages keep buffering, so backpressure and dropping apply
    /// upstream), then one trial call decides. A batch stays counted in the buffer while the
    /// handler has it, and is counted delivered when a call succeeds.
    ///
    /// `T: Clone` only so that a handler that keeps its batch beyond a failed call cannot take
    /// the messages away from the dead letters (they are copied then; never otherwise).
    ///
    /// ```
    /// use futures::{executor::block_on, FutureExt};
    /// use stream_engine::api::{Batch, ConnectionOptions, EngineConfig, ManualTimer, StreamEngine};
    /// use stream_engine::core::config::RecoveryPatch;
    /// use std::sync::{Arc, Mutex};
    ///
    /// let engine = StreamEngine::with_timer(EngineConfig::default(), ManualTimer::new()).unwrap();
    /// let no_retries = RecoveryPatch { retry_attempts: Some(0.0), ..Default::default() };
    /// let opts = ConnectionOptions::new().batch_timeout(0.0).max_batch_size(1).recovery(no_retries);
    /// let conn = engine.connect("jobs", opts).unwrap();
    /// let mut tx = conn.sender();
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let log = seen.clone();
    /// let mut consumer = conn.consume(move |batch: Batch<u32>| {
    ///     let log = log.clone();
    ///     async move {
    ///         if batch.contains(&13) { return Err("unlucky"); }
    ///         log.lock().unwrap().extend(batch.iter().copied());
    ///         Ok(())
    ///     }
    /// });
    /// tx.try_send(1).unwrap();
    /// tx.try_send(13).unwrap();
    /// // Spawn `consumer.done` on your executor; here one poll runs it until it waits.
    /// assert!((&mut consumer.done).now_or_never().is_none());
    /// assert_eq!(*seen.lock().unwrap(), vec![1]);
    /// assert_eq!(consumer.dead_letters(), vec![13]);
    /// let m = engine.connection_metrics("jobs").unwrap();
    /// assert_eq!((m.messages_out, m.drops.dead_letter, m.errors), (1, 1, 1));
    /// consumer.stop(); // the loop ends and hands the reader back
    /// let reader = block_on(consumer.done).unwrap();
    /// assert_eq!(reader.id(), "jobs");
    /// ```
    pub fn consume<F, Fut, E>(self, handler: F) -> Consumer<T, C>
    where
        F: FnMut(Batch<T>) -> Fut + MaybeSend + 'static,
        Fut: Future<Output = Result<(), E>> + MaybeSend + 'static,
        E: fmt::Display + MaybeSend + 'static,
    {
        self.consume_with(handler, ConsumeOptions::new())
    }

    /// [`Connection::consume`] with [`ConsumeOptions`]: which errors to retry, and the random
    /// source of the jitter.
    ///
    /// ```
    /// use futures::FutureExt;
    /// use stream_engine::api::{Batch, ConnectionOptions, ConsumeOptions, EngineConfig, ManualTimer, StreamEngine};
    ///
    /// let engine = StreamEngine::with_timer(EngineConfig::default(), ManualTimer::new()).unwrap();
    /// let conn = engine.connect("a->b", ConnectionOptions::new().batch_timeout(0.0)).unwrap();
    /// let mut tx = conn.sender();
    /// let mut consumer = conn.consume_with(
    ///     |_batch: Batch<u32>| async { Err::<(), _>("malformed") },
    ///     ConsumeOptions::new().retry_if(|e: &&str| *e != "malformed"),
    /// );
    /// tx.try_send(7).unwrap();
    /// assert!((&mut consumer.done).now_or_never().is_none());
    /// assert_eq!(consumer.dead_letters(), vec![7]); // no retry wait: dead-lettered at once
    /// assert_eq!(engine.connection_metrics("a->b").unwrap().retries, 0);
    /// ```
    pub fn consume_with<F, Fut, E>(self, handler: F, options: ConsumeOptions<E>) -> Consumer<T, C>
    where
        F: FnMut(Batch<T>) -> Fut + MaybeSend + 'static,
        Fut: Future<Output = Result<(), E>> + MaybeSend + 'static,
        E: fmt::Display + MaybeSend + 'static,
    {
        let (_, batches) = self.split();
        batches.consume_with(handler, options)
    }
}

impl<T, C> Batches<T, C>
where
    T: Clone + MaybeSendSync + 'static,
    C: Timer + MaybeSend,
    C::Sleep: MaybeSend,
{
    /// [`Connection::consume`] on the reader after [`Connection::split`].
    ///
    /// ```
    /// use futures::executor::block_on;
    /// use stream_engine::api::{Batch, ConnectionOptions, StreamEngine};
    ///
    /// let engine = StreamEngine::<u32>::new();
    /// let (mut tx, batches) = engine.connect("a->b", ConnectionOptions::new()).unwrap().split();
    /// let consumer = batches.consume(|b: Batch<u32>| async move {
    ///     if b.is_empty() { Err("never empty") } else { Ok(()) }
    /// });
    /// block_on(tx.send_all(vec![1, 2])).unwrap();
    /// tx.close_connection();
    /// assert!(block_on(consumer.done).is_none());
    /// assert!(consumer.handle.dead_letters().is_empty());
    /// ```
    pub fn consume<F, Fut, E>(self, handler: F) -> Consumer<T, C>
    where
        F: FnMut(Batch<T>) -> Fut + MaybeSend + 'static,
        Fut: Future<Output = Result<(), E>> + MaybeSend + 'static,
        E: fmt::Display + MaybeSend + 'static,
    {
        self.consume_with(handler, ConsumeOptions::new())
    }

    /// [`Connection::consume_with`] on the reader after [`Connection::split`].
    pub fn consume_with<F, Fut, E>(self, handler: F, options: ConsumeOptions<E>) -> Consumer<T, C>
    where
        F: FnMut(Batch<T>) -> Fut + MaybeSend + 'static,
        Fut: Future<Output = Result<(), E>> + MaybeSend + 'static,
        E: fmt::Display + MaybeSend + 'static,
    {
        let ctl = Arc::new(Mutex::new(Ctl {
            stopped: false,
            waker: None,
            dead: Vec::new(),
        }));
        let lp = Loop {
            reader: Some(self),
            ctl: ctl.clone(),
            inflight: None,
            sleep: None,
        };
        Consumer {
            done: Done {
                fut: Box::pin(lp.run(handler, options)),
            },
            handle: ConsumerHandle { ctl },
        }
    }
}

/// What the next-batch wait ended with.
enum Next<T> {
    /// A batch, and whether the circuit let a call through (asked under the same lock).
    Batch(Vec<T>, bool),
    Ended,
    Stopped,
}

/// The loop's state. Its `Drop` settles a batch in flight if the loop future is dropped
/// mid-call; the reader's own `Drop` then dead-letters the buffer.
struct Loop<T: Clone + 'static, C: Timer> {
    reader: Option<Batches<T, C>>,
    ctl: Arc<Mutex<Ctl<T>>>,
    inflight: Option<Batch<T>>,
    sleep: Option<(f64, C::Sleep)>,
}

impl<T: Clone + 'static, C: Timer> Loop<T, C> {
    fn r(&self) -> &Batches<T, C> {
        self.reader.as_ref().expect("present until the loop ends")
    }

    fn stopped(&self, cx: Option<&Context<'_>>) -> bool {
        let mut c = lock(&self.ctl);
        if !c.stopped {
            if let Some(cx) = cx {
                c.waker = Some(cx.waker().clone());
            }
        }
        c.stopped
    }

    /// Waits until `deadline` (true) or until stopped (false).
    fn poll_sleep(&mut self, deadline: f64, cx: &mut Context<'_>) -> Poll<bool> {
        if self.stopped(Some(cx)) {
            self.sleep = None;
            return Poll::Ready(false);
        }
        let timer = self.r().timer.clone();
        if self.sleep.as_ref().map(|(d, _)| *d) != Some(deadline) {
            self.sleep = Some((deadline, timer.sleep_until(deadline)));
        }
        let (_, s) = self.sleep.as_mut().expect("set above");
        match Pin::new(s).poll(cx) {
            Poll::Ready(()) => {
                self.sleep = None;
                Poll::Ready(true)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// The next batch (taken in flight by the core), the end of the connection, or a stop.
    fn poll_take(&mut self, force: &mut bool, cx: &mut Context<'_>) -> Poll<Next<T>> {
        loop {
            if self.stopped(Some(cx)) {
                return Poll::Ready(Next::Stopped);
            }
            let r = self.r();
            let now = r.timer.now();
            let mut fx = Effects::new();
            let (out, deadline) = {
                let mut g = lock(&r.shared);
                if g.slot(r.h, r.gen).is_none() {
                    (Some(Next::Ended), None)
                } else {
                    let c = g
                        .engine
                        .get(r.h)
                        .expect("slot and core connection live together");
                    let closing = c.is_closed();
                    if let Some(batch) = c.consume_take(now, *force || closing) {
                        let allowed = c.circuit_allow(now);
                        let st = c.status();
                        g.process(r.h, st, &mut fx);
                        (Some(Next::Batch(batch, allowed)), None)
                    } else if closing && c.held() == 0 {
                        g.remove(r.h, now, &mut fx);
                        (Some(Next::Ended), None)
                    } else {
                        let deadline = if c.is_paused() {
                            None
                        } else {
                            c.batch_deadline()
                        };
                        let slot = g.slot(r.h, r.gen).expect("checked above");
                        slot.reader = Some(cx.waker().clone());
                        (None, deadline)
                    }
                }
            };
            fx.run();
            *force = false;
            match out {
                Some(Next::Ended) => {
                    if let Some(r) = self.reader.as_mut() {
                        r.mark_finished();
                    }
                    return Poll::Ready(Next::Ended);
                }
                Some(n) => {
                    self.sleep = None;
                    return Poll::Ready(n);
                }
                None => {}
            }
            let Some(d) = deadline else {
                self.sleep = None;
                return Poll::Pending;
            };
            match self.poll_sleep(d, cx) {
                // The batch timer fired: take whatever is buffered.
                Poll::Ready(true) => *force = true,
                Poll::Ready(false) => return Poll::Ready(Next::Stopped),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// Runs `f` on the live core connection under the lock, then the follow-up effects.
    fn with_core<R>(
        &self,
        f: impl FnOnce(&mut crate::core::connection::Connection<T>, f64) -> (R, u32),
    ) -> Option<R> {
        let r = self.r();
        let now = r.timer.now();
        let mut fx = Effects::new();
        let out = {
            let mut g = lock(&r.shared);
            g.slot(r.h, r.gen)?;
            let c = g
                .engine
                .get(r.h)
                .expect("slot and core connection live together");
            let (out, st) = f(c, now);
            g.process(r.h, st, &mut fx);
            // Settling a batch frees room and may end backpressure.
            g.wake_writers(r.h, &mut fx);
            out
        };
        fx.run();
        Some(out)
    }

    /// `None` if the circuit lets a call through now, else when to look again.
    fn circuit_wait(&self) -> Option<f64> {
        let r = self.r();
        let now = r.timer.now();
        let mut g = lock(&r.shared);
        g.slot(r.h, r.gen)?;
        let c = g
            .engine
            .get(r.h)
            .expect("slot and core connection live together");
        c.circuit_wait(now)
    }

    /// The batch in flight is given up: counted, to `on_drop`, kept for `dead_letters()`.
    fn dead_letter(&mut self) {
        let Some(batch) = self.inflight.take() else {
            return;
        };
        let r = self.reader.as_ref().expect("present until the loop ends");
        let now = r.timer.now();
        let mut fx = Effects::new();
        let on_drop = {
            let mut g = lock(&r.shared);
            let live = g.slot(r.h, r.gen).is_some();
            if live {
                let c = g
                    .engine
                    .get(r.h)
                    .expect("slot and core connection live together");
                c.consume_dead_letter(now);
                let st = c.status();
                g.process(r.h, st, &mut fx);
                g.wake_writers(r.h, &mut fx);
                // The drop summary is collected when a feed is polled: poll now, not at the tick.
                g.wake_subs(&mut fx);
            }
            g.slot(r.h, r.gen).and_then(|s| s.on_drop.clone())
        };
        fx.run();
        let items = batch.into_vec();
        if let Some(f) = on_drop {
            for m in &items {
                f(m.clone(), DropReason::DeadLetter);
            }
        }
        lock(&self.ctl).dead.extend(items);
    }

    async fn run<F, Fut, E>(
        mut self,
        mut handler: F,
        options: ConsumeOptions<E>,
    ) -> Option<Batches<T, C>>
    where
        F: FnMut(Batch<T>) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: fmt::Display,
    {
        let ConsumeOptions { retry_if, random } = options;
        let mut random = random.unwrap_or_else(default_random);
        let live = {
            let r = self.r();
            let mut g = lock(&r.shared);
            g.slot(r.h, r.gen).is_some()
        };
        if !live {
            // The connection was already gone.
            if let Some(r) = self.reader.as_mut() {
                r.mark_finished();
            }
            return None;
        }
        loop {
            let mut force = false;
            let next = std::future::poll_fn(|cx| self.poll_take(&mut force, cx)).await;
            let (batch, mut allowed) = match next {
                Next::Batch(b, allowed) => (Batch::from(b), allowed),
                Next::Ended => return None,
                Next::Stopped => return self.reader.take(),
            };
            self.inflight = Some(batch.clone());
            let mut attempt: u32 = 0;
            loop {
                // A call the circuit already allowed goes ahead (a half-open circuit's one
                // trial must be settled by a call, not abandoned).
                if !std::mem::take(&mut allowed) {
                    if self.stopped(None) {
                        self.dead_letter();
                        break;
                    }
                    // The circuit breaker: no call while it is open.
                    if let Some(until) = self.circuit_wait() {
                        std::future::poll_fn(|cx| self.poll_sleep(until, cx)).await;
                        continue;
                    }
                }
                let result = handler(batch.clone()).await;
                match result {
                    Ok(()) => {
                        self.inflight = None;
                        self.with_core(|c, now| ((), c.consume_success(now)));
                        break;
                    }
                    Err(e) => {
                        let retryable = retry_if.as_ref().map_or(true, |f| f(&e));
                        let stopped = self.stopped(None);
                        // The core decides (retries left, back-off, the breaker); the loop
                        // only says what kind of failure it was.
                        let failure = if retryable && !stopped {
                            Failure::Retryable { random01: random() }
                        } else {
                            Failure::Fatal
                        };
                        let next = self
                            .with_core(|c, now| {
                                let next = c.consume_failed(now, failure);
                                (next, c.status())
                            })
                            // The connection is gone: nothing to retry against.
                            .unwrap_or(AfterFailure::DeadLetter);
                        self.report(&e, attempt, matches!(next, AfterFailure::Retry { .. }));
                        match next {
                            AfterFailure::DeadLetter => {
                                self.dead_letter();
                                break;
                            }
                            AfterFailure::Retry { at: until } => {
                                attempt = attempt.saturating_add(1);
                                // A stop during the wait dead-letters at the top of the loop.
                                std::future::poll_fn(|cx| self.poll_sleep(until, cx)).await;
                            }
                        }
                    }
                }
            }
        }
    }

    /// An `Event::ConsumerError` on the feed.
    fn report(&self, e: &dyn fmt::Display, attempt: u32, will_retry: bool) {
        let r = self.r();
        let mut fx = Effects::new();
        {
            let mut g = lock(&r.shared);
            if g.subs.is_empty() {
                return;
            }
            g.broadcast(
                Event::ConsumerError {
                    connection_id: r.id.clone(),
                    error: e.to_string(),
                    attempt,
                    will_retry,
                },
                &mut fx,
            );
        }
        fx.run();
    }
}

impl<T: Clone + 'static, C: Timer> Drop for Loop<T, C> {
    /// The loop future was dropped mid-call: its batch in flight becomes dead letters (the
    /// reader's own drop then dead-letters the buffer).
    fn drop(&mut self) {
        if self.inflight.is_some() && self.reader.is_some() {
            self.dead_letter();
        }
    }
}
