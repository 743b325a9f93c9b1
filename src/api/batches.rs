//! The reading side of a connection: [`Batches`], a `futures::Stream<Item = Vec<T>>`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;

use crate::core::connection::DropReason;
use crate::core::engine::Handle;

use super::events::{ConnectionEventKind, Event};
use super::shared::{Effects, SharedRef};
use super::timer::{lock, Timer};

/// The batches of one connection, in write order: a `Stream<Item = Vec<T>>`. There is exactly
/// one per connection.
///
/// - A batch holds at most `max_batch_size` messages (the adaptive handler may use fewer) and
///   comes when it is full, or `batch_timeout` ms after its first message was taken, whichever
///   is first; with `batch_timeout` 0 whatever is buffered comes at once. Never an empty batch.
/// - Each batch taken frees room: waiting writes proceed and held writes are released.
/// - While the connection is paused nothing comes (writes keep buffering under flow control).
/// - After the connection is closed, the remaining messages come without waiting for the batch
///   timer, then the stream ends (`None`) and the engine forgets the connection.
/// - Dropping `Batches` before the end is the reader going away (as `readable.cancel()` in
///   JS): the connection closes, and what it still buffers is dropped as `dead-letter`,
///   counted and handed to `on_drop`.
///
/// ```
/// use futures::{executor::block_on, StreamExt};
/// use stream_engine::api::{ConnectionOptions, StreamEngine};
///
/// let engine = StreamEngine::<u32>::new();
/// let conn = engine.connect("a->b", ConnectionOptions::new().max_batch_size(3)).unwrap();
/// let (mut tx, rx) = conn.split();
/// block_on(tx.send_all((1..=7).collect())).unwrap();
/// tx.close_connection();
/// let batches: Vec<Vec<u32>> = block_on(rx.collect());
/// assert_eq!(batches, vec![vec![1, 2, 3], vec![4, 5, 6], vec![7]]);
/// ```
pub struct Batches<T, C: Timer> {
    pub(crate) shared: SharedRef<T>,
    pub(crate) timer: C,
    pub(crate) h: Handle,
    pub(crate) gen: u64,
    pub(crate) id: String,
    finished: bool,
    sleep: Option<(f64, C::Sleep)>,
}

// No field is structurally pinned.
impl<T, C: Timer> Unpin for Batches<T, C> {}

impl<T, C: Timer> std::fmt::Debug for Batches<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batches").field("id", &self.id).finish()
    }
}

impl<T, C: Timer> Batches<T, C> {
    pub(crate) fn new(shared: SharedRef<T>, timer: C, h: Handle, gen: u64, id: String) -> Self {
        Batches {
            shared,
            timer,
            h,
            gen,
            id,
            finished: false,
            sleep: None,
        }
    }

    /// The connection's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The connection ended and was forgotten by its reader (a consume loop): nothing to do
    /// on drop.
    pub(crate) fn mark_finished(&mut self) {
        self.finished = true;
        self.sleep = None;
    }

    /// One attempt: a batch, the end, or `Pending` with the reader waker registered and the
    /// batch deadline (if any) returned.
    fn attempt(&mut self, force: bool, cx: &Context<'_>) -> (Poll<Option<Vec<T>>>, Option<f64>) {
        let mut fx = Effects::new();
        let now = self.timer.now();
        let out = {
            let mut g = lock(&self.shared);
            if g.slot(self.h, self.gen).is_none() {
                return (Poll::Ready(None), None);
            }
            let c = g
                .engine
                .get(self.h)
                .expect("slot and core connection live together");
            let closing = c.is_closed();
            if let Some(batch) = c.take_batch(now, force || closing) {
                let st = c.status();
                g.process(self.h, st, &mut fx);
                g.wake_writers(self.h, &mut fx);
                (Poll::Ready(Some(batch)), None)
            } else if closing && c.held() == 0 {
                g.remove(self.h, now, &mut fx);
                (Poll::Ready(None), None)
            } else {
                let deadline = if c.is_paused() {
                    None
                } else {
                    c.batch_deadline()
                };
                let slot = g.slot(self.h, self.gen).expect("checked above");
                slot.reader = Some(cx.waker().clone());
                (Poll::Pending, deadline)
            }
        };
        fx.run();
        out
    }
}

impl<T, C: Timer> Stream for Batches<T, C> {
    type Item = Vec<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Vec<T>>> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(None);
        }
        let mut force = false;
        loop {
            let (poll, deadline) = this.attempt(force, cx);
            match poll {
                Poll::Ready(v) => {
                    this.sleep = None;
                    this.finished = v.is_none();
                    return Poll::Ready(v);
                }
                Poll::Pending => {}
            }
            let Some(d) = deadline else {
                this.sleep = None;
                return Poll::Pending;
            };
            if this.sleep.as_ref().map(|(x, _)| *x) != Some(d) {
                this.sleep = Some((d, this.timer.sleep_until(d)));
            }
            let (_, sleep) = this.sleep.as_mut().expect("set above");
            match Pin::new(sleep).poll(cx) {
                Poll::Ready(()) => {
                    // The batch timer fired: deliver whatever is buffered.
                    this.sleep = None;
                    force = true;
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<T, C: Timer> Drop for Batches<T, C> {
    /// The reader went away: close, dead-letter what is buffered, forget the connection.
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let mut fx = Effects::new();
        let now = self.timer.now();
        {
            let mut g = lock(&self.shared);
            if g.slot(self.h, self.gen).is_none() {
                return;
            }
            let c = g
                .engine
                .get(self.h)
                .expect("slot and core connection live together");
            let was_closed = c.is_closed();
            let items = c.cancel(now);
            fx.dropped
                .extend(items.into_iter().map(|m| (m, DropReason::DeadLetter)));
            let st = c.status();
            g.process(self.h, st, &mut fx);
            fx.on_drop = g.slot(self.h, self.gen).and_then(|s| s.on_drop.clone());
            if !was_closed {
                let id = self.id.clone();
                g.broadcast(
                    Event::Connection {
                        connection_id: id,
                        kind: ConnectionEventKind::Closed,
                    },
                    &mut fx,
                );
            }
            g.remove(self.h, now, &mut fx);
        }
        fx.run();
    }
}
