//! What happens to a batch handed to a consumer (`connection.consume(handler)`), top to bottom.
//!
//! 1. [`Connection::consume_take`] hands the next batch out; it stays held (in flight) and the
//!    attempt count restarts at 0.
//! 2. Before each call of the handler, [`Connection::circuit_wait`] asks the circuit breaker:
//!    `None` = call now (a half-open circuit lets exactly this one trial through); `Some(t)` =
//!    the circuit is open, ask again at `t`.
//! 3. The handler succeeded: [`Connection::consume_success`] counts the batch delivered and
//!    closes a half-open circuit.
//! 4. The handler failed: the caller says what kind of failure it was ([`Failure`]; reading the
//!    error's fields is the caller's job) and [`Connection::consume_failed`] counts the error,
//!    feeds the breaker and decides [`Next`]: retry at a time (the connection's [`RetryPolicy`]:
//!    attempts left and the back-off delay), or give up. A user's own recovery object decides
//!    retry and delay itself; the core still counts and owns the breaker.
//! 5. A batch given up is dead-lettered with [`Connection::consume_dead_letter`] (counted as
//!    dropped with reason `dead-letter`, never lost silently).

use super::{ConnEvent, Connection};
use crate::core::recovery::RetryPolicy;

/// How long to wait before asking an open circuit again when it names no time (a half-open
/// circuit whose trial is still out), in ms.
pub const CIRCUIT_POLL_MS: f64 = 10.0;

/// The longest wait the core asks for, in ms: the platform timers' limit (2^31 - 1), so a
/// huge delay is a long wait rather than, as `setTimeout` does with larger values, none.
pub const MAX_WAIT_MS: f64 = 2_147_483_647.0;

/// What kind of failure the handler had.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Failure {
    /// An error retrying may fix: retried while the connection's [`RetryPolicy`] has attempts
    /// left, after its back-off delay (`random01` in `[0, 1]` draws the jitter).
    Retryable {
        /// The caller's random number (`Math.random()`).
        random01: f64,
    },
    /// Not to be retried: an error retrying cannot fix (a `TypeError`, `retryable: false`), a
    /// user recovery that said no, or a consumer that is stopping.
    Fatal,
    /// A user recovery object said to retry after `delay` ms (NaN or negative count as 0).
    RetryAfter {
        /// The delay the recovery object gave.
        delay: f64,
    },
}

/// [`Failure`]'s kind as a code at the wasm boundary (exported to JavaScript as the frozen
/// object `FailureKind`), with its number passed beside it: see [`Failure::from_kind`].
#[cfg_attr(target_arch = "wasm32", wasm_bindgen::prelude::wasm_bindgen)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// [`Failure::Retryable`]; the number is `random01`.
    Retryable = 0,
    /// [`Failure::Fatal`]; the number is ignored.
    Fatal = 1,
    /// [`Failure::RetryAfter`]; the number is the delay.
    RetryAfter = 2,
}

impl Failure {
    /// The failure of kind `kind` with its number `x`.
    ///
    /// ```
    /// use stream_engine::core::connection::consume::{Failure, FailureKind};
    /// assert_eq!(Failure::from_kind(FailureKind::RetryAfter, 5.0), Failure::RetryAfter { delay: 5.0 });
    /// ```
    pub fn from_kind(kind: FailureKind, x: f64) -> Failure {
        match kind {
            FailureKind::Retryable => Failure::Retryable { random01: x },
            FailureKind::Fatal => Failure::Fatal,
            FailureKind::RetryAfter => Failure::RetryAfter { delay: x },
        }
    }
}

/// What to do after a failure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Next {
    /// Call the handler again at `at` (ms, the caller's clock).
    Retry {
        /// When to retry.
        at: f64,
    },
    /// Give the batch up: dead-letter it.
    DeadLetter,
}

impl<T> Connection<T> {
    /// Sets the retry policy of the recovery in force (the engine's `DefaultErrorRecovery`
    /// options). A new connection retries by its `retryAttempts` and `retryDelay`.
    pub fn set_retry_policy(&mut self, policy: RetryPolicy) {
        self.retry = policy;
    }

    /// Sets the whole error recovery in force, resolved by
    /// [`crate::core::config::resolve_recovery`]: the retry policy and the circuit breaker.
    ///
    /// ```
    /// use stream_engine::core::config::{RecoveryPatch, StreamConfig};
    /// use stream_engine::core::connection::{Connection, FlowPolicy};
    ///
    /// let r = RecoveryPatch { retry_attempts: Some(1.0), failure_threshold: Some(2.0), ..Default::default() }.resolve().unwrap();
    /// let mut c: Connection<u32> = Connection::new("a", StreamConfig::default(), FlowPolicy::block(), 5000.0, false);
    /// c.set_recovery(&r);
    /// assert_eq!(c.retry_policy().retry_attempts, 1);
    /// ```
    pub fn set_recovery(&mut self, recovery: &crate::core::config::RecoveryOptions) {
        self.set_retry_policy(recovery.retry);
        self.set_circuit(recovery.failure_threshold, recovery.reset_timeout);
    }

    /// The retry policy in force.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// Failed attempts so far on the batch in flight (0 for a fresh batch).
    pub fn consume_attempt(&self) -> u32 {
        self.attempt
    }

    /// `None` if the handler may be called now; `Some(t)`: the circuit is open, ask again at
    /// `t`. Calling this when it answers `None` uses a half-open circuit's one trial.
    ///
    /// ```
    /// use stream_engine::core::config::StreamConfig;
    /// use stream_engine::core::connection::{Connection, FlowPolicy};
    /// use stream_engine::core::connection::consume::Failure;
    ///
    /// let mut c: Connection<u32> = Connection::new("a", StreamConfig::default(), FlowPolicy::block(), 5000.0, false);
    /// c.set_circuit(1, 1000.0);
    /// assert_eq!(c.circuit_wait(0.0), None);
    /// c.consume_failed(0.0, Failure::Fatal); // opens the circuit
    /// assert_eq!(c.circuit_wait(10.0), Some(1000.0));
    /// assert_eq!(c.circuit_wait(1000.0), None); // the trial call
    /// ```
    pub fn circuit_wait(&mut self, now: f64) -> Option<f64> {
        if self.breaker.allow(now) {
            return None;
        }
        match self.breaker.next_attempt_at() {
            Some(at) if at > now => Some(at.min(now + MAX_WAIT_MS)),
            _ => Some(now + CIRCUIT_POLL_MS),
        }
    }

    /// The handler failed on the batch in flight: counts the error (and the retry, if any),
    /// feeds the circuit breaker, and decides what comes next. The status bits for the event
    /// feed are in [`Connection::status`] afterwards.
    ///
    /// ```
    /// use stream_engine::core::config::StreamConfig;
    /// use stream_engine::core::connection::{Connection, FlowPolicy};
    /// use stream_engine::core::connection::consume::{Failure, Next};
    /// use stream_engine::core::recovery::RetryPolicy;
    ///
    /// let mut c: Connection<u32> = Connection::new("a", StreamConfig::default(), FlowPolicy::block(), 5000.0, false);
    /// c.set_retry_policy(RetryPolicy { retry_attempts: 1, retry_delay: 100.0, max_retry_delay: 1e4, jitter: 0.0 });
    /// assert_eq!(c.consume_failed(0.0, Failure::Retryable { random01: 0.5 }), Next::Retry { at: 100.0 });
    /// assert_eq!(c.consume_failed(100.0, Failure::Retryable { random01: 0.5 }), Next::DeadLetter);
    /// ```
    pub fn consume_failed(&mut self, now: f64, failure: Failure) -> Next {
        let attempt = self.attempt;
        let delay = match failure {
            Failure::Fatal => None,
            Failure::Retryable { random01 } => {
                if self.retry.attempts_remain(attempt) {
                    Some(self.retry.delay(attempt, random01))
                } else {
                    None
                }
            }
            Failure::RetryAfter { delay } => Some(if delay > 0.0 { delay } else { 0.0 }),
        };
        self.consume_failure(now, delay.is_some());
        match delay {
            Some(d) => {
                self.attempt = attempt.saturating_add(1);
                Next::Retry {
                    at: now + d.min(MAX_WAIT_MS),
                }
            }
            None => Next::DeadLetter,
        }
    }
}

/// Whether `e` reports the circuit opening (for tests and callers draining events).
pub fn is_circuit_open(e: &ConnEvent) -> bool {
    matches!(e, ConnEvent::Circuit(true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::StreamConfig;
    use crate::core::connection::FlowPolicy;

    fn conn() -> Connection<u32> {
        let cfg = StreamConfig {
            batch_timeout: 0.0,
            ..StreamConfig::default()
        };
        Connection::new("a", cfg, FlowPolicy::block(), 5000.0, false)
    }

    fn policy(attempts: u32) -> RetryPolicy {
        RetryPolicy {
            retry_attempts: attempts,
            retry_delay: 10.0,
            max_retry_delay: 1000.0,
            jitter: 0.5,
        }
    }

    #[test]
    fn retries_back_off_until_attempts_run_out_then_dead_letter() {
        let mut c = conn();
        c.set_retry_policy(policy(3));
        c.push(7, 0.5, None, 0.0).unwrap();
        assert_eq!(c.consume_take(0.0, true), Some(vec![7]));
        let mut t = 0.0;
        let mut waits = Vec::new();
        loop {
            match c.consume_failed(t, Failure::Retryable { random01: 1.0 }) {
                Next::Retry { at } => {
                    waits.push(at - t);
                    t = at;
                }
                Next::DeadLetter => break,
            }
        }
        // 10 * 2^k * 1.5
        assert_eq!(waits, vec![15.0, 30.0, 60.0]);
        assert_eq!(c.consume_attempt(), 3);
        let m = c.metrics(t);
        assert_eq!((m.errors, m.retries), (4, 3));
        assert_eq!(c.consume_dead_letter(t), 1);
        assert_eq!(c.metrics(t).drops.dead_letter, 1);
    }

    #[test]
    fn a_new_batch_starts_from_attempt_zero() {
        let mut c = conn();
        c.set_retry_policy(policy(1));
        c.push(1, 0.5, None, 0.0).unwrap();
        assert!(c.consume_take(0.0, true).is_some());
        assert!(matches!(
            c.consume_failed(0.0, Failure::Retryable { random01: 0.0 }),
            Next::Retry { .. }
        ));
        c.consume_success(1.0);
        c.push(2, 0.5, None, 1.0).unwrap();
        assert_eq!(c.consume_take(1.0, true), Some(vec![2]));
        assert_eq!(c.consume_attempt(), 0);
        assert_eq!(
            c.consume_failed(1.0, Failure::Retryable { random01: 0.0 }),
            Next::Retry { at: 11.0 }
        );
    }

    #[test]
    fn fatal_failures_and_user_verdicts() {
        let mut c = conn();
        c.set_retry_policy(policy(5));
        assert_eq!(c.consume_failed(0.0, Failure::Fatal), Next::DeadLetter);
        assert_eq!(
            c.consume_failed(0.0, Failure::RetryAfter { delay: 7.0 }),
            Next::Retry { at: 7.0 }
        );
        assert_eq!(
            c.consume_failed(0.0, Failure::RetryAfter { delay: f64::NAN }),
            Next::Retry { at: 0.0 }
        );
        assert_eq!(
            c.consume_failed(0.0, Failure::RetryAfter { delay: -3.0 }),
            Next::Retry { at: 0.0 }
        );
        assert_eq!(
            c.consume_failed(
                0.0,
                Failure::RetryAfter {
                    delay: f64::INFINITY
                }
            ),
            Next::Retry { at: MAX_WAIT_MS }
        );
        let m = c.metrics(0.0);
        assert_eq!((m.errors, m.retries), (5, 4));
    }

    #[test]
    fn the_circuit_opens_waits_and_lets_one_trial_through() {
        let mut c = conn();
        c.set_circuit(2, 100.0);
        assert_eq!(c.circuit_wait(0.0), None);
        c.consume_failed(0.0, Failure::Fatal);
        assert_eq!(c.circuit_wait(1.0), None);
        c.consume_failed(1.0, Failure::Fatal);
        assert!(c.take_events().iter().any(is_circuit_open));
        assert_eq!(c.circuit_wait(50.0), Some(101.0));
        assert_eq!(c.circuit_wait(101.0), None);
        // The trial is out: others wait a poll interval.
        assert_eq!(c.circuit_wait(102.0), Some(102.0 + CIRCUIT_POLL_MS));
        c.consume_success(103.0);
        assert_eq!(c.circuit_wait(104.0), None);
    }
}
