//! A connection of the Rust API: its writer side, its batches, and its controls.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;

use crate::core::connection::ConnectionMetrics;
use crate::core::engine::Handle;

use super::batches::Batches;
use super::events::{ConnectionEventKind, Event};
use super::sender::Sender;
use super::shared::{Effects, SharedRef};
use super::timer::{lock, Timer};

/// One connection, as [`super::StreamEngine::connect`] returns it. It *is* the stream of
/// batches (`Stream<Item = Vec<T>>`, see [`Batches`] for the delivery rules) and hands out
/// [`Sender`]s for writing; [`Connection::split`] separates the two for use on different tasks.
///
/// Dropping the `Connection` (or, after `split`, the [`Batches`]) is the reader going away:
/// buffered messages become dead letters (counted, and given to `on_drop`) and writes fail.
///
/// ```
/// use futures::{executor::block_on, StreamExt};
/// use stream_engine::api::{ConnectionOptions, StreamEngine};
///
/// let engine = StreamEngine::<u32>::new();
/// let mut conn = engine.connect("a->b", ConnectionOptions::new().batch_timeout(0.0)).unwrap();
/// let mut tx = conn.sender();
/// block_on(tx.send(42)).unwrap();
/// assert_eq!(block_on(conn.next()), Some(vec![42]));
/// assert_eq!(conn.metrics().unwrap().messages_out, 1);
/// ```
#[derive(Debug)]
pub struct Connection<T, C: Timer> {
    batches: Batches<T, C>,
}

impl<T, C: Timer> Connection<T, C> {
    pub(crate) fn new(shared: SharedRef<T>, timer: C, h: Handle, gen: u64, id: String) -> Self {
        Connection {
            batches: Batches::new(shared, timer, h, gen, id),
        }
    }

    /// The connection's id.
    pub fn id(&self) -> &str {
        &self.batches.id
    }

    /// A new writer for this connection (any number may exist).
    pub fn sender(&self) -> Sender<T, C> {
        let b = &self.batches;
        Sender::new(b.shared.clone(), b.timer.clone(), b.h, b.gen, b.id.clone())
    }

    /// A writer and the batches, for use on different tasks.
    pub fn split(self) -> (Sender<T, C>, Batches<T, C>) {
        (self.sender(), self.batches)
    }

    /// The connection's metrics now, or `None` once it is gone (drained after a close, or its
    /// reader dropped).
    ///
    /// The accounting identity holds at every moment:
    /// `messages_in == messages_out + dropped + buffer_size`.
    pub fn metrics(&self) -> Option<ConnectionMetrics> {
        let b = &self.batches;
        let now = b.timer.now();
        let mut g = lock(&b.shared);
        g.slot(b.h, b.gen)?;
        g.engine.get(b.h).map(|c| c.metrics(now))
    }

    /// Stops delivery; writes keep buffering under the connection's flow control.
    ///
    /// ```
    /// use futures::{executor::block_on, FutureExt, StreamExt};
    /// use stream_engine::api::{ConnectionOptions, StreamEngine};
    ///
    /// let engine = StreamEngine::<u32>::new();
    /// let mut conn = engine.connect("a->b", ConnectionOptions::new().batch_timeout(0.0)).unwrap();
    /// conn.pause();
    /// conn.sender().try_send(1).unwrap();
    /// assert!(conn.next().now_or_never().is_none()); // paused: nothing comes
    /// conn.resume();
    /// assert_eq!(block_on(conn.next()), Some(vec![1]));
    /// ```
    pub fn pause(&self) {
        self.set_paused(true);
    }

    /// Resumes delivery.
    pub fn resume(&self) {
        self.set_paused(false);
    }

    fn set_paused(&self, paused: bool) {
        let b = &self.batches;
        set_paused(&b.shared, b.h, b.gen, paused);
    }

    /// Closes the connection: writes fail from now on; what it holds is still delivered
    /// (without waiting for the batch timer), then the batches end. Its id may be used for a
    /// new connection at once. Closing twice does nothing.
    pub fn close(&self) {
        let b = &self.batches;
        close(&b.shared, b.h, b.gen, b.timer.now());
    }
}

/// Pauses or resumes a live connection (an event on the feed if that changed anything).
pub(crate) fn set_paused<T>(shared: &SharedRef<T>, h: Handle, gen: u64, paused: bool) {
    let mut fx = Effects::new();
    {
        let mut g = lock(shared);
        let Some(slot) = g.slot(h, gen) else { return };
        let id = slot.id.clone();
        let c = g
            .engine
            .get(h)
            .expect("slot and core connection live together");
        if c.is_paused() == paused {
            return;
        }
        if paused {
            c.pause()
        } else {
            c.resume()
        }
        g.wake_all(h, &mut fx);
        g.broadcast(
            Event::Connection {
                connection_id: id,
                kind: if paused {
                    ConnectionEventKind::Paused
                } else {
                    ConnectionEventKind::Resumed
                },
            },
            &mut fx,
        );
    }
    fx.run();
}

/// Closes a connection if it is live and open.
pub(crate) fn close<T>(shared: &SharedRef<T>, h: Handle, gen: u64, _now: f64) {
    let mut fx = Effects::new();
    {
        let mut g = lock(shared);
        let Some(slot) = g.slot(h, gen) else { return };
        let id = slot.id.clone();
        let c = g
            .engine
            .get(h)
            .expect("slot and core connection live together");
        if c.is_closed() {
            return;
        }
        c.close();
        g.wake_all(h, &mut fx);
        g.broadcast(
            Event::Connection {
                connection_id: id,
                kind: ConnectionEventKind::Closed,
            },
            &mut fx,
        );
    }
    fx.run();
}

impl<T, C: Timer> Stream for Connection<T, C> {
    type Item = Vec<T>;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Vec<T>>> {
        Pin::new(&mut self.get_mut().batches).poll_next(cx)
    }
}

// No field is structurally pinned.
impl<T, C: Timer> Unpin for Connection<T, C> {}
