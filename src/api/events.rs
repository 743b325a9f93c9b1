//! The event feed: a `futures::Stream` of engine events per subscriber, as `engine.events()` in
//! the JS API.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;

use crate::core::connection::DropSummary;
use crate::core::engine::{AlertEventOut, Tick};

use super::shared::{Effects, SharedRef, Sub};
use super::timer::{lock, Timer};

/// What happened to a connection (`connection` events of the JS feed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionEventKind {
    /// [`super::StreamEngine::connect`] created it.
    Created,
    /// It was closed (it stays readable until drained) or its reader went away.
    Closed,
    /// Delivery paused.
    Paused,
    /// Delivery resumed.
    Resumed,
    /// Its circuit breaker opened.
    CircuitOpened,
    /// Its circuit breaker closed.
    CircuitClosed,
}

/// One event of the feed.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A metrics snapshot of every connection, every `metrics_interval` ms while the feed is
    /// read. Its `alerts` field is empty: alert transitions come as [`Event::Alert`].
    Metrics(Tick),
    /// An alert fired, rose in severity, or resolved (`kind` is `alert` or `alert-resolved`).
    Alert(AlertEventOut),
    /// Backpressure started (`active`) or ended on a connection.
    Backpressure {
        /// The connection.
        connection_id: String,
        /// Whether backpressure is on now.
        active: bool,
        /// Buffer use then, in [0, 1].
        utilization: f64,
    },
    /// Messages were dropped since the previous `Drop` event of this connection.
    Drop {
        /// The connection.
        connection_id: String,
        /// How many, why, and which priority classes.
        summary: DropSummary,
    },
    /// A connection's lifecycle changed.
    Connection {
        /// The connection.
        connection_id: String,
        /// What happened.
        kind: ConnectionEventKind,
    },
    /// A [`super::Connection::consume`] handler failed on a batch (`error` events of the JS
    /// feed). `attempt` counts from 0 (the first call); `will_retry` says whether the batch
    /// will be retried or becomes dead letters.
    ConsumerError {
        /// The connection.
        connection_id: String,
        /// The handler's error, as its `Display` renders it.
        error: String,
        /// Which call failed (0 = the first).
        attempt: u32,
        /// Whether the batch will be offered again.
        will_retry: bool,
    },
    /// This subscriber's queue overflowed: this many older events were lost. Comes before the
    /// next event delivered.
    Missed(u64),
}

/// A subscription to the event feed: a `Stream<Item = Event>` that never ends on its own.
///
/// Each subscriber has its own bounded queue (default 1000 events); when it overflows the
/// oldest events go and an [`Event::Missed`] with their count comes next, so a slow reader
/// costs memory proportional to its queue, never more. Metrics snapshots and alert evaluation
/// happen while some feed is being polled, every `metrics_interval` ms. Dropping the stream
/// unsubscribes.
///
/// ```
/// use futures::{executor::block_on, StreamExt};
/// use stream_engine::api::{ConnectionEventKind, ConnectionOptions, Event, StreamEngine};
///
/// let engine = StreamEngine::<u32>::new();
/// let mut feed = engine.events();
/// let _conn = engine.connect("a->b", ConnectionOptions::new()).unwrap();
/// let first = block_on(feed.next()).unwrap();
/// assert_eq!(first, Event::Connection { connection_id: "a->b".into(), kind: ConnectionEventKind::Created });
/// ```
pub struct EventStream<T, C: Timer> {
    pub(crate) shared: SharedRef<T>,
    pub(crate) timer: C,
    pub(crate) id: u64,
    pub(crate) sleep: Option<(f64, C::Sleep)>,
}

impl<T, C: Timer> std::fmt::Debug for EventStream<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream").field("id", &self.id).finish()
    }
}

// No field is structurally pinned (messages are never pinned).
impl<T, C: Timer> Unpin for EventStream<T, C> {}

impl<T, C: Timer> EventStream<T, C> {
    pub(crate) fn subscribe(shared: SharedRef<T>, timer: C, queue_size: usize) -> Self {
        let id = {
            let mut g = lock(&shared);
            let id = g.next_sub;
            g.next_sub += 1;
            g.subs.insert(
                id,
                Sub {
                    queue: VecDeque::new(),
                    cap: queue_size.max(1),
                    missed: 0,
                    waker: None,
                },
            );
            id
        };
        EventStream {
            shared,
            timer,
            id,
            sleep: None,
        }
    }
}

impl<T, C: Timer> Stream for EventStream<T, C> {
    type Item = Event;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        let this = self.get_mut();
        loop {
            let mut fx = Effects::new();
            let now = this.timer.now();
            let (out, next_tick) = {
                let mut g = lock(&this.shared);
                g.pump(&mut fx);
                if now >= g.next_tick {
                    let mut tick = g.engine.tick(now, f64::NAN);
                    let alerts = std::mem::take(&mut tick.alerts);
                    g.next_tick = now + g.metrics_interval.max(1.0);
                    g.broadcast(Event::Metrics(tick), &mut fx);
                    for a in alerts {
                        g.broadcast(Event::Alert(a), &mut fx);
                    }
                }
                let next_tick = g.next_tick;
                let sub = g.subs.get_mut(&this.id).expect("subscribed until dropped");
                let out = if sub.missed > 0 {
                    Some(Event::Missed(std::mem::take(&mut sub.missed)))
                } else {
                    sub.queue.pop_front()
                };
                if out.is_none() {
                    sub.waker = Some(cx.waker().clone());
                }
                (out, next_tick)
            };
            // Our own waker may be among those woken: harmless.
            fx.run();
            if let Some(ev) = out {
                return Poll::Ready(Some(ev));
            }
            if this.sleep.as_ref().map(|(d, _)| *d) != Some(next_tick) {
                this.sleep = Some((next_tick, this.timer.sleep_until(next_tick)));
            }
            let (_, sleep) = this.sleep.as_mut().expect("set above");
            match Pin::new(sleep).poll(cx) {
                Poll::Ready(()) => {
                    this.sleep = None;
                    continue;
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<T, C: Timer> Drop for EventStream<T, C> {
    fn drop(&mut self) {
        lock(&self.shared).subs.remove(&self.id);
    }
}
