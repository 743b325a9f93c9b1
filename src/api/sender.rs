//! The writing side of a connection: [`Sender`], a `futures::Sink<T>` with batch writes.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_sink::Sink;

use crate::core::connection::{status, DropRule, Push};
use crate::core::engine::Handle;

use super::error::{SendError, SinkError, TrySendError};
use super::shared::{Effects, SharedRef};
use super::timer::{lock, Timer};

/// Writes messages into one connection. Cheap to clone; every clone writes into the same
/// connection, and the connection's order is the order in which writes are taken.
///
/// # Capacity and backpressure
///
/// A connection holds at most `buffer_size` messages (buffered plus none in flight: the Rust
/// API has no consumer loop). What a write does when that is reached depends on the flow rule:
///
/// - **Lossless** (no handler, [`super::DropPolicy::Block`], the default): a write is taken only
///   when there is room. [`Sink::poll_ready`] is `Pending` while the buffer is full, and
///   [`Sender::send`] waits, until the reader takes a batch. Nothing is ever dropped.
/// - **Dropping** (a drop policy or a handler): a write is always taken (room is made by
///   dropping a victim, counted and given to `on_drop`), except that a critical write into a
///   buffer full of critical messages waits like a lossless one. While backpressure is on (use
///   at or above `backpressure_threshold`), a write that was taken is *held*: the sink is not
///   ready again (and `send` does not return) until backpressure ends or `max_wait` ms have
///   passed since that write, so producers that await readiness slow down.
///
/// # Close
///
/// Once the connection is closed (by [`Sink::poll_close`] on any sender,
/// [`super::Connection::close`], [`super::StreamEngine::close`], or because the reader was
/// dropped) every write fails and hands its message back. Messages taken before the close stay
/// deliverable. Dropping a `Sender` does not close the connection.
///
/// # Example
///
/// ```
/// use futures::{executor::block_on, SinkExt, StreamExt};
/// use stream_engine::api::{ConnectionOptions, StreamEngine};
///
/// let engine = StreamEngine::<String>::new();
/// let conn = engine.connect("a->b", ConnectionOptions::new().batch_timeout(0.0)).unwrap();
/// let (mut tx, mut rx) = conn.split();
/// block_on(async {
///     tx.send("hello".to_string()).await.unwrap(); // futures::SinkExt::send
///     assert_eq!(rx.next().await, Some(vec!["hello".to_string()]));
///     tx.close().await.unwrap(); // closes the connection: the batches end
///     assert_eq!(rx.next().await, None);
/// });
/// ```
pub struct Sender<T, C: Timer> {
    pub(crate) shared: SharedRef<T>,
    pub(crate) timer: C,
    pub(crate) h: Handle,
    pub(crate) gen: u64,
    pub(crate) id: String,
    /// Messages handed to the sink and not yet taken (only a refused write, in order).
    pending: Vec<T>,
    /// The last taken write is held until this time unless backpressure ends first.
    hold_until: Option<f64>,
    sleep: Option<(f64, C::Sleep)>,
}

// No field is structurally pinned: messages are moved, never pinned.
impl<T, C: Timer> Unpin for Sender<T, C> {}

impl<T, C: Timer> Clone for Sender<T, C> {
    /// Another sender for the same connection (with no pending or held write of its own).
    fn clone(&self) -> Self {
        Sender::new(
            self.shared.clone(),
            self.timer.clone(),
            self.h,
            self.gen,
            self.id.clone(),
        )
    }
}

impl<T, C: Timer> std::fmt::Debug for Sender<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender").field("id", &self.id).finish()
    }
}

/// The outcome of one attempt to place messages.
enum Placed {
    /// Everything taken; `hold` if backpressure holds the write.
    Taken { hold: bool },
    /// Some messages are still waiting for room (kept in `pending`).
    Waiting,
    /// The connection is closed.
    Closed,
}

impl<T, C: Timer> Sender<T, C> {
    pub(crate) fn new(shared: SharedRef<T>, timer: C, h: Handle, gen: u64, id: String) -> Self {
        Sender {
            shared,
            timer,
            h,
            gen,
            id,
            pending: Vec::new(),
            hold_until: None,
            sleep: None,
        }
    }

    /// The connection's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Offers `self.pending` in order (registering `cx` as a writer waker if some must wait).
    fn place(&mut self, now: f64, cx: Option<&Context<'_>>) -> Placed {
        if self.pending.is_empty() {
            return Placed::Taken { hold: false };
        }
        let mut fx = Effects::new();
        let placed = {
            let mut g = lock(&self.shared);
            let Some(slot) = g.slot(self.h, self.gen) else {
                return Placed::Closed;
            };
            let (prio, key, custom) =
                (slot.priority.clone(), slot.key.clone(), slot.custom.clone());
            let c = g
                .engine
                .get(self.h)
                .expect("slot and core connection live together");
            if c.is_closed() {
                return Placed::Closed;
            }
            let mut st = 0;
            let mut placed_all = true;
            let items = std::mem::take(&mut self.pending);
            let fast = key.is_none()
                && custom.is_none()
                && c.policy().rule == DropRule::Block
                && c.policy().adaptive.is_none();
            if fast {
                // The core's batch fast path: one capacity check for the whole batch.
                let n = items.len();
                let room = c.config().buffer_size.saturating_sub(c.held());
                let mut it = items.into_iter();
                let take: Vec<(T, f64)> = it
                    .by_ref()
                    .take(room)
                    .map(|m| {
                        let p = prio.as_ref().map_or(f64::NAN, |f| f(&m));
                        (m, p)
                    })
                    .collect();
                let (accepted, s) = c.push_many(take, now).expect("checked open above");
                debug_assert_eq!(accepted, room.min(n));
                st |= s;
                self.pending = it.collect();
                placed_all = self.pending.is_empty();
                if !placed_all {
                    st |= status::PENDING;
                }
            } else {
                let mut it = items.into_iter();
                while let Some(m) = it.next() {
                    let (p, cand) = match &custom {
                        // The user's handler: its priority, and whether it is a drop candidate.
                        Some(h) => (h.priority(&m), h.should_drop(&m)),
                        None => (prio.as_ref().map_or(f64::NAN, |f| f(&m)), false),
                    };
                    let k = key.as_ref().and_then(|f| f(&m));
                    // A drop candidate is dropped on arrival under backpressure: the core's rule.
                    let pushed = if cand {
                        c.push_droppable(m, p, k.as_deref(), now)
                    } else {
                        c.push(m, p, k.as_deref(), now)
                    };
                    match pushed.expect("checked open above") {
                        Push::Done(s) => st |= s,
                        Push::Pending(m) => {
                            st |= status::PENDING;
                            self.pending.push(m);
                            self.pending.extend(it);
                            placed_all = false;
                            break;
                        }
                    }
                }
            }
            let hold = st & status::HOLD != 0;
            g.process(self.h, st, &mut fx);
            let slot = g.slot(self.h, self.gen).expect("still live");
            if st & (status::BATCH_READY | status::FIRST | status::PENDING) != 0 {
                fx.wake.extend(slot.reader.take());
            }
            if !placed_all {
                if let Some(cx) = cx {
                    slot.writers.push(cx.waker().clone());
                }
                Placed::Waiting
            } else {
                Placed::Taken { hold }
            }
        };
        fx.run();
        placed
    }

    /// Whether backpressure still holds this sender's last write (registering `cx` if so).
    fn still_held(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(until) = self.hold_until else {
            return false;
        };
        let now = self.timer.now();
        if now >= until {
            self.hold_until = None;
            return false;
        }
        let mut fx = Effects::new();
        let held = {
            let mut g = lock(&self.shared);
            if g.slot(self.h, self.gen).is_none() {
                return false;
            }
            let c = g
                .engine
                .get(self.h)
                .expect("slot and core connection live together");
            let st = c.status();
            g.process(self.h, st, &mut fx);
            let held = st & status::HOLD != 0;
            if held {
                if let Some(slot) = g.slot(self.h, self.gen) {
                    slot.writers.push(cx.waker().clone());
                }
            }
            held
        };
        fx.run();
        if !held {
            self.hold_until = None;
            return false;
        }
        if self.sleep.as_ref().map(|(d, _)| *d) != Some(until) {
            self.sleep = Some((until, self.timer.sleep_until(until)));
        }
        let (_, sleep) = self.sleep.as_mut().expect("set above");
        if Pin::new(sleep).poll(cx).is_ready() {
            self.sleep = None;
            self.hold_until = None;
            return false;
        }
        true
    }

    /// Drives pending and held writes: `Ready(Ok)` once everything handed over is taken and
    /// released.
    fn poll_settled(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ()>> {
        if !self.pending.is_empty() {
            let now = self.timer.now();
            match self.place(now, Some(cx)) {
                Placed::Taken { hold } => {
                    if hold {
                        self.hold_until = Some(now + self.max_wait());
                    }
                }
                Placed::Waiting => return Poll::Pending,
                Placed::Closed => return Poll::Ready(Err(())),
            }
        }
        if self.still_held(cx) {
            return Poll::Pending;
        }
        Poll::Ready(Ok(()))
    }

    fn max_wait(&self) -> f64 {
        let mut g = lock(&self.shared);
        if g.slot(self.h, self.gen).is_none() {
            return 0.0;
        }
        g.engine
            .get(self.h)
            .and_then(|c| c.max_wait())
            .unwrap_or(0.0)
    }

    /// Whether the lossless rule has no room now (registering `cx` as a writer waker if so);
    /// `Err` if closed.
    fn full(&mut self, cx: &mut Context<'_>) -> Result<bool, ()> {
        let reader = {
            let mut g = lock(&self.shared);
            if g.slot(self.h, self.gen).is_none() {
                return Err(());
            }
            let c = g
                .engine
                .get(self.h)
                .expect("slot and core connection live together");
            if c.is_closed() {
                return Err(());
            }
            let full = c.policy().rule == DropRule::Block && c.held() >= c.config().buffer_size;
            if !full {
                return Ok(false);
            }
            let slot = g.slot(self.h, self.gen).expect("checked above");
            slot.writers.push(cx.waker().clone());
            // A full buffer must be drained: a reader waiting for its batch timer looks again.
            slot.reader.take()
        };
        if let Some(w) = reader {
            w.wake();
        }
        Ok(true)
    }

    /// Writes one message, waiting while the connection has no room (lossless rule) or holds
    /// the write (backpressure under a dropping rule, at most `max_wait` ms). `Ok` means the
    /// connection took the message: it is buffered, or it was dropped or conflated and counted
    /// (and given to `on_drop`). If the future is dropped before it completes, a message not
    /// yet taken stays with this sender and goes first on its next write (it was never in the
    /// connection, so no count changes if the sender is dropped instead).
    ///
    /// ```
    /// use futures::{executor::block_on, StreamExt};
    /// use stream_engine::api::{ConnectionOptions, StreamEngine};
    ///
    /// let engine = StreamEngine::<u32>::new();
    /// let conn = engine.connect("a->b", ConnectionOptions::new().batch_timeout(0.0)).unwrap();
    /// let mut tx = conn.sender();
    /// block_on(tx.send(1)).unwrap();
    /// let (_, mut rx) = conn.split();
    /// assert_eq!(block_on(rx.next()), Some(vec![1]));
    /// ```
    pub async fn send(&mut self, item: T) -> Result<(), SendError<T>> {
        self.send_all(vec![item])
            .await
            .map_err(|SendError(mut rest)| SendError(rest.pop().expect("one message")))
    }

    /// Writes a batch in order (the fast path: one lock and, under the lossless rule, one
    /// capacity check for as many as fit), waiting for room for the rest. On close, the
    /// messages not yet taken are handed back in order.
    ///
    /// ```
    /// use futures::{executor::block_on, StreamExt};
    /// use stream_engine::api::{ConnectionOptions, StreamEngine};
    ///
    /// let engine = StreamEngine::<u32>::new();
    /// let conn = engine.connect("a->b", ConnectionOptions::new().max_batch_size(2)).unwrap();
    /// let (mut tx, mut rx) = conn.split();
    /// block_on(tx.send_all(vec![1, 2, 3])).unwrap();
    /// assert_eq!(block_on(rx.next()), Some(vec![1, 2])); // full batch: no wait
    /// ```
    pub async fn send_all(&mut self, items: Vec<T>) -> Result<(), SendError<Vec<T>>> {
        // Messages still pending from an interrupted earlier call go first, keeping order (and
        // come back with this call's on close).
        self.pending.extend(items);
        match std::future::poll_fn(|cx| self.poll_settled(cx)).await {
            Ok(()) => Ok(()),
            Err(()) => Err(SendError(std::mem::take(&mut self.pending))),
        }
    }

    /// Writes one message now if the connection takes it now, without waiting (holds are
    /// ignored: a taken message is `Ok`).
    ///
    /// ```
    /// use stream_engine::api::{ConnectionOptions, StreamEngine, TrySendError};
    ///
    /// let engine = StreamEngine::<u32>::new();
    /// let conn = engine.connect("a->b", ConnectionOptions::new().buffer_size(2)).unwrap();
    /// let mut tx = conn.sender();
    /// assert!(tx.try_send(1).is_ok() && tx.try_send(2).is_ok());
    /// assert_eq!(tx.try_send(3), Err(TrySendError::Full(3)));
    /// conn.close();
    /// assert_eq!(tx.try_send(4), Err(TrySendError::Closed(4)));
    /// ```
    pub fn try_send(&mut self, item: T) -> Result<(), TrySendError<T>> {
        if !self.pending.is_empty() {
            // Keep order behind messages this sender is still waiting to place.
            return Err(TrySendError::Full(item));
        }
        self.pending.push(item);
        let now = self.timer.now();
        match self.place(now, None) {
            Placed::Taken { .. } => Ok(()),
            Placed::Waiting => Err(TrySendError::Full(self.pending.pop().expect("kept"))),
            Placed::Closed => Err(TrySendError::Closed(self.pending.pop().expect("kept"))),
        }
    }

    /// Closes the connection: further writes fail; what was taken stays readable and the
    /// batches end after the last one.
    pub fn close_connection(&self) {
        super::connection::close(&self.shared, self.h, self.gen, self.timer.now());
    }
}

impl<T, C: Timer> Sink<T> for Sender<T, C> {
    type Error = SinkError<T>;

    /// `Ready(Ok)` when a write would be taken now (after placing and releasing earlier ones);
    /// `Pending` under backpressure: the lossless buffer is full, or the last write is held.
    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = self.get_mut();
        match this.poll_settled(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(())) => return Poll::Ready(Err(SinkError(this.pending.pop()))),
            Poll::Ready(Ok(())) => {}
        }
        match this.full(cx) {
            Ok(true) => Poll::Pending,
            Ok(false) => Poll::Ready(Ok(())),
            Err(()) => Poll::Ready(Err(SinkError(None))),
        }
    }

    /// Offers the message; if it must wait after all (another sender took the room), the
    /// sink keeps it and places it on the next `poll_ready` / `poll_flush`.
    fn start_send(self: Pin<&mut Self>, item: T) -> Result<(), Self::Error> {
        let this = self.get_mut();
        this.pending.push(item);
        let now = this.timer.now();
        match this.place(now, None) {
            Placed::Taken { hold } => {
                if hold {
                    this.hold_until = Some(now + this.max_wait());
                }
                Ok(())
            }
            Placed::Waiting => Ok(()),
            Placed::Closed => Err(SinkError(this.pending.pop())),
        }
    }

    /// `Ready(Ok)` once every message handed over is taken and no write is held.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = self.get_mut();
        match this.poll_settled(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Ready(Err(())) => Poll::Ready(Err(SinkError(this.pending.pop()))),
        }
    }

    /// Flushes, then closes the connection (like `writer.close()` in JS): the batches end after
    /// the last message.
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = self.get_mut();
        match this.poll_settled(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(())) => {
                // Already closed: closing again is not an error, unless a message is left.
                return Poll::Ready(match this.pending.pop() {
                    Some(m) => Err(SinkError(Some(m))),
                    None => Ok(()),
                });
            }
            Poll::Ready(Ok(())) => {}
        }
        this.close_connection();
        Poll::Ready(Ok(()))
    }
}
