//! What happens to a write, top to bottom: the one place a newcomer reads to know whether a
//! write completes now, completes later, waits for room or is refused.
//!
//! A write is one message or an array of messages, offered to a [`Connection`] at the time the
//! writer called `write()` (`called_at`; the bindings record it in the stream's `size()`
//! callback, so time spent queued in the `WritableStream` counts against the wait budget).
//!
//! 1. **Closed?** A connection that is closing, finished or cancelled refuses every write
//!    ([`ConnError::Closed`], `Status::Closed` at the boundary): [`Admission::Refuse`]. The
//!    write's promise rejects; nothing is counted.
//! 2. **Conflation.** With `conflate` and a key already buffered, the new message takes the old
//!    one's place and the old one is dropped with reason `conflated` ([`Connection::push`]).
//! 3. **Room.** Under the lossless rule (`DropRule::Block`, the default) a full buffer refuses
//!    the message for now: [`Admission::WaitForRoom`] (`Status::Pending`). The caller keeps the
//!    message (and for an array, the rest of it from the first message not taken) and offers it
//!    again after the next delivery; a retried array is offered in chunks sized by
//!    [`retry_chunk`]. Under a dropping rule, victims are chosen among the buffered and the
//!    incoming messages until the buffer is under its drop level (critical messages are never
//!    victims; a buffer of critical messages refuses like the lossless rule). Dropped messages
//!    are counted with their reason and handed to `onDrop`. A message the user's handler marked
//!    droppable (`shouldDropMessage`) is dropped on arrival while backpressure is on
//!    ([`Connection::push_droppable`]).
//! 4. **Accepted.** The message is buffered and counted in `messages_in`. If backpressure is on
//!    (utilisation reached `backpressureThreshold`) and the policy holds writes (`maxWaitTime`,
//!    the adaptive handler), the write is accepted but its promise is held:
//!    [`Admission::Hold`] until `called_at + maxWaitTime`, or earlier when backpressure ends
//!    ([`Connection::hold_until`], asked only when `Status::Hold` is set, so the common write
//!    costs no extra call). A write past its budget completes at once. Otherwise
//!    [`Admission::Accept`]: the write completes now.
//!
//! The bindings read the status bits of a push (`0` = accepted, nothing else to do: the fast
//! path) and call [`Connection::admit`]'s pieces only when a bit is set; JavaScript then merely
//! arms a timer for the time given here and settles promises.
//!
//! [`ConnError::Closed`]: super::ConnError::Closed

use super::{status, Connection};

/// A retried array write is offered in chunks starting at this many messages.
pub const RETRY_CHUNK: u32 = 64;

/// The decision for one write, from the status bits of its push.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Admission {
    /// Taken: the write completes now.
    Accept,
    /// Taken, but backpressure is on: complete the write at `until` (ms, the caller's clock) or
    /// as soon as backpressure ends, whichever comes first.
    Hold {
        /// The end of the write's wait budget.
        until: f64,
    },
    /// Not taken for now (lossless buffer full): offer it again after a delivery.
    WaitForRoom,
    /// Refused for good: the connection is closed.
    Refuse,
}

/// Size of the next chunk of a retried array write: [`RETRY_CHUNK`] first, then doubling while
/// the core takes every message offered, never more than `remaining`. The first offer of an
/// array is not chunked (one call for the whole array); a retry is, so that an array offered
/// again and again to a small buffer costs O(accepted + RETRY_CHUNK) slots per retry instead of
/// O(array length): linear, not quadratic, in the array's length.
///
/// ```
/// use stream_engine::core::connection::admission::{retry_chunk, RETRY_CHUNK};
/// assert_eq!(retry_chunk(0, 1000), RETRY_CHUNK);
/// assert_eq!(retry_chunk(64, 1000), 128);
/// assert_eq!(retry_chunk(512, 100), 100);
/// assert_eq!(retry_chunk(0, 0), 0);
/// ```
pub fn retry_chunk(previous: u32, remaining: u32) -> u32 {
    let next = if previous == 0 {
        RETRY_CHUNK
    } else {
        previous.saturating_mul(2)
    };
    next.min(remaining)
}

impl<T> Connection<T> {
    /// When a write accepted with `Status::Hold` may complete: `Some(called_at + maxWaitTime)`
    /// while backpressure is still on and that time is after `now`; `None` when the write should
    /// complete now (backpressure ended in between, e.g. a waiting reader took a batch; the
    /// budget is spent; or the policy does not hold writes).
    ///
    /// ```
    /// use stream_engine::core::config::StreamConfig;
    /// use stream_engine::core::connection::{Connection, FlowPolicy};
    ///
    /// let cfg = StreamConfig { buffer_size: 4, backpressure_threshold: 0.5, ..StreamConfig::default() };
    /// let policy = FlowPolicy { max_wait: Some(100.0), ..FlowPolicy::block() };
    /// let mut c: Connection<u32> = Connection::new("a", cfg, policy, 5000.0, false);
    /// c.push(1, 0.5, None, 0.0).unwrap();
    /// assert_eq!(c.hold_until(0.0, 1.0), None); // 1 of 4: no backpressure
    /// c.push(2, 0.5, None, 0.0).unwrap();
    /// assert_eq!(c.hold_until(0.0, 1.0), Some(100.0)); // 2 of 4: held until the budget ends
    /// assert_eq!(c.hold_until(0.0, 100.0), None); // budget spent
    /// ```
    pub fn hold_until(&mut self, called_at: f64, now: f64) -> Option<f64> {
        let wait = self.policy.max_wait?;
        if self.status() & status::HOLD == 0 {
            return None;
        }
        let until = called_at + wait;
        // NaN (a bad clock reading) compares false: complete at once rather than hold forever.
        if until > now {
            Some(until)
        } else {
            None
        }
    }

    /// Offers a message that the user's backpressure handler marked droppable
    /// (`shouldDropMessage` answered true): while backpressure is on it is dropped on arrival
    /// (counted in, then dropped with reason `priority`); otherwise it is offered like any
    /// other message ([`Connection::push`]).
    ///
    /// ```
    /// use stream_engine::core::config::StreamConfig;
    /// use stream_engine::core::connection::{Connection, FlowPolicy, Push};
    ///
    /// let cfg = StreamConfig { buffer_size: 4, backpressure_threshold: 0.5, ..StreamConfig::default() };
    /// let mut c: Connection<u32> = Connection::new("a", cfg, FlowPolicy::block(), 5000.0, true);
    /// assert!(matches!(c.push_droppable(1, 0.5, None, 0.0), Ok(Push::Done(_))));
    /// c.push(2, 0.5, None, 0.0).unwrap(); // 2 of 4: backpressure
    /// c.push_droppable(3, 0.5, None, 0.0).unwrap();
    /// assert_eq!(c.buffered(), 2);
    /// assert_eq!(c.take_dropped().len(), 1);
    /// ```
    pub fn push_droppable(
        &mut self,
        item: T,
        priority: f64,
        key: Option<&str>,
        now: f64,
    ) -> Result<super::Push<T>, super::ConnError> {
        self.update_backpressure();
        if self.bp_active {
            let st = self.drop_incoming(item, priority, super::DropReason::Priority, now)?;
            Ok(super::Push::Done(st))
        } else {
            self.push(item, priority, key, now)
        }
    }

    /// The whole admission decision for a write whose push returned `status` (the bits of
    /// [`Connection::push`] / [`Connection::push_many`], `Status::Pending` for
    /// [`Push::Pending`](super::Push::Pending), `Status::Closed` for an error). The bindings
    /// make the same decision bit by bit so that the common case (`status == 0`) costs nothing.
    ///
    /// ```
    /// use stream_engine::core::config::StreamConfig;
    /// use stream_engine::core::connection::{status, Connection, FlowPolicy};
    /// use stream_engine::core::connection::admission::Admission;
    ///
    /// let mut c: Connection<u32> = Connection::new("a", StreamConfig::default(), FlowPolicy::block(), 5000.0, false);
    /// assert_eq!(c.admit(0, 0.0, 0.0), Admission::Accept);
    /// assert_eq!(c.admit(status::PENDING, 0.0, 0.0), Admission::WaitForRoom);
    /// assert_eq!(c.admit(status::CLOSED, 0.0, 0.0), Admission::Refuse);
    /// ```
    pub fn admit(&mut self, status: u32, called_at: f64, now: f64) -> Admission {
        if status & status::CLOSED != 0 {
            Admission::Refuse
        } else if status & status::PENDING != 0 {
            Admission::WaitForRoom
        } else if status & status::HOLD != 0 {
            match self.hold_until(called_at, now) {
                Some(until) => Admission::Hold { until },
                None => Admission::Accept,
            }
        } else {
            Admission::Accept
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::StreamConfig;
    use crate::core::connection::{FlowPolicy, Push};

    fn held(max_wait: Option<f64>) -> Connection<u32> {
        let cfg = StreamConfig {
            buffer_size: 4,
            backpressure_threshold: 0.5,
            ..StreamConfig::default()
        };
        let policy = FlowPolicy {
            max_wait,
            ..FlowPolicy::block()
        };
        Connection::new("a", cfg, policy, 5000.0, false)
    }

    fn push(c: &mut Connection<u32>, m: u32, now: f64) -> u32 {
        match c.push(m, 0.5, None, now) {
            Ok(Push::Done(s)) => s,
            Ok(Push::Pending(_)) => status::PENDING,
            Err(_) => status::CLOSED,
        }
    }

    #[test]
    fn a_write_under_backpressure_is_held_until_its_budget_ends() {
        let mut c = held(Some(50.0));
        assert_eq!(push(&mut c, 1, 0.0), status::FIRST);
        let s = push(&mut c, 2, 10.0);
        assert_ne!(s & status::HOLD, 0);
        // Called at 8 (queued in the stream for 2 ms): the budget counts from the call.
        assert_eq!(c.admit(s, 8.0, 10.0), Admission::Hold { until: 58.0 });
        assert_eq!(c.admit(s, 8.0, 58.0), Admission::Accept);
        assert_eq!(c.admit(s, f64::NAN, 10.0), Admission::Accept);
    }

    #[test]
    fn a_hold_ends_when_backpressure_ends() {
        let mut c = held(Some(50.0));
        push(&mut c, 1, 0.0);
        let s = push(&mut c, 2, 0.0);
        assert_eq!(c.admit(s, 0.0, 0.0), Admission::Hold { until: 50.0 });
        assert_eq!(c.take_batch(1.0, true).map(|b| b.len()), Some(2));
        assert_eq!(c.hold_until(0.0, 1.0), None);
        assert_eq!(c.admit(s, 0.0, 1.0), Admission::Accept);
    }

    #[test]
    fn without_a_wait_budget_writes_are_never_held() {
        let mut c = held(None);
        push(&mut c, 1, 0.0);
        let s = push(&mut c, 2, 0.0);
        assert_eq!(s & status::HOLD, 0);
        assert!(c.backpressure());
        assert_eq!(c.hold_until(0.0, 0.0), None);
        assert_eq!(c.admit(status::HOLD, 0.0, 0.0), Admission::Accept);
    }

    #[test]
    fn a_full_lossless_buffer_waits_and_a_closed_one_refuses() {
        let mut c = held(Some(50.0));
        for m in 0..4 {
            assert_eq!(push(&mut c, m, 0.0) & status::PENDING, 0);
        }
        let s = push(&mut c, 4, 0.0);
        assert_eq!(c.admit(s, 0.0, 0.0), Admission::WaitForRoom);
        c.close();
        let s = push(&mut c, 5, 0.0);
        assert_eq!(c.admit(s, 0.0, 0.0), Admission::Refuse);
    }

    #[test]
    fn retry_chunks_double_and_stop_at_the_rest() {
        let mut sizes = Vec::new();
        let (mut prev, mut left) = (0, 1000);
        while left > 0 {
            prev = retry_chunk(prev, left);
            sizes.push(prev);
            left -= prev;
        }
        assert_eq!(sizes, vec![64, 128, 256, 512, 40]);
        assert_eq!(retry_chunk(u32::MAX, u32::MAX), u32::MAX);
    }
}
