//! The decisions of a consume loop that are not a connection's own state: which error recovery
//! is in force (layered options, resolved and validated once), what happens after a failed
//! handler call (retry after a delay, or dead-letter), and a small seeded random source for the
//! retry jitter.
//!
//! The connection's accounting and circuit breaker stay in [`super::connection`]
//! (`consume_take`, `circuit_allow`, `consume_success`, `consume_failure`,
//! `consume_dead_letter`); this file only adds what a loop needs between those calls, so the
//! Rust API's loop (`src/api/consume.rs`) makes no decision of its own.

use super::config::{ConfigError, RecoveryOptions, RecoveryPatch, StreamConfig};

/// Resolves the error recovery of one connection from its layers, most specific last: the
/// connection config's `retry_attempts` / `retry_delay` (as the JS engine does when no error
/// recovery was set), then the engine's recovery options, then the connection's own. Every
/// field is validated by [`RecoveryPatch::resolve`] (the same rules and messages as JS
/// `new DefaultErrorRecovery(options)`), and the ones nobody gave take its defaults.
///
/// ```
/// use stream_engine::core::config::{RecoveryPatch, StreamConfig};
/// use stream_engine::core::consume::resolve_recovery;
///
/// let engine = RecoveryPatch { retry_delay: Some(10.0), ..Default::default() };
/// let conn = RecoveryPatch { failure_threshold: Some(2.0), ..Default::default() };
/// let r = resolve_recovery(&StreamConfig::default(), &engine, &conn).unwrap();
/// assert_eq!((r.retry.retry_attempts, r.retry.retry_delay, r.failure_threshold), (3, 10.0, 2));
///
/// let bad = RecoveryPatch { jitter: Some(2.0), ..Default::default() };
/// let err = resolve_recovery(&StreamConfig::default(), &bad, &RecoveryPatch::default()).unwrap_err();
/// assert_eq!(err.message, "jitter must be in [0, 1], got 2");
/// ```
pub fn resolve_recovery(
    stream: &StreamConfig,
    engine: &RecoveryPatch,
    connection: &RecoveryPatch,
) -> Result<RecoveryOptions, ConfigError> {
    let base = RecoveryPatch {
        retry_attempts: Some(stream.retry_attempts as f64),
        retry_delay: Some(stream.retry_delay),
        ..RecoveryPatch::default()
    };
    overlay(&overlay(&base, engine), connection).resolve()
}

/// `top`'s fields where given, else `base`'s.
fn overlay(base: &RecoveryPatch, top: &RecoveryPatch) -> RecoveryPatch {
    RecoveryPatch {
        retry_attempts: top.retry_attempts.or(base.retry_attempts),
        retry_delay: top.retry_delay.or(base.retry_delay),
        max_retry_delay: top.max_retry_delay.or(base.max_retry_delay),
        jitter: top.jitter.or(base.jitter),
        failure_threshold: top.failure_threshold.or(base.failure_threshold),
        reset_timeout: top.reset_timeout.or(base.reset_timeout),
    }
}

/// What a consume loop does after its handler failed on a batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AfterFailure {
    /// Call the handler again on the same batch after `delay` ms.
    Retry {
        /// Back-off before the next call, ms.
        delay: f64,
    },
    /// Give the batch up: it becomes dead letters.
    DeadLetter,
}

impl AfterFailure {
    /// Whether this is a retry (the `will_retry` the connection's `consume_failure` counts).
    pub fn will_retry(&self) -> bool {
        matches!(self, AfterFailure::Retry { .. })
    }
}

/// Decides what follows failure number `attempt` (0 = the first call failed) on one batch:
/// a retry while the error is retryable, attempts remain and the loop is neither stopped nor
/// its connection ended; its delay is [`crate::core::recovery::RetryPolicy::delay`] with the
/// caller's random number in [0, 1).
///
/// ```
/// use stream_engine::core::config::RecoveryPatch;
/// use stream_engine::core::consume::{after_failure, AfterFailure};
///
/// let r = RecoveryPatch { retry_attempts: Some(2.0), retry_delay: Some(10.0), jitter: Some(0.0), ..Default::default() }
///     .resolve()
///     .unwrap();
/// assert_eq!(after_failure(&r, 0, true, false, 0.5), AfterFailure::Retry { delay: 10.0 });
/// assert_eq!(after_failure(&r, 1, true, false, 0.5), AfterFailure::Retry { delay: 20.0 });
/// assert_eq!(after_failure(&r, 2, true, false, 0.5), AfterFailure::DeadLetter); // attempts used up
/// assert_eq!(after_failure(&r, 0, false, false, 0.5), AfterFailure::DeadLetter); // not retryable
/// assert_eq!(after_failure(&r, 0, true, true, 0.5), AfterFailure::DeadLetter); // stopped
/// ```
pub fn after_failure(
    recovery: &RecoveryOptions,
    attempt: u32,
    retryable: bool,
    stopped: bool,
    random01: f64,
) -> AfterFailure {
    if stopped || !retryable || !recovery.retry.attempts_remain(attempt) {
        return AfterFailure::DeadLetter;
    }
    AfterFailure::Retry {
        delay: recovery.retry.delay(attempt, random01),
    }
}

/// How long a loop waits for an open circuit whose trial time is unknown, ms (as the JS loop).
pub const CIRCUIT_POLL_MS: f64 = 10.0;

/// When a loop refused by the circuit should look again: the breaker's next trial time, or
/// [`CIRCUIT_POLL_MS`] from now when it has none.
///
/// ```
/// use stream_engine::core::consume::circuit_wait_until;
/// assert_eq!(circuit_wait_until(Some(500.0), 100.0), 500.0);
/// assert_eq!(circuit_wait_until(None, 100.0), 110.0);
/// ```
pub fn circuit_wait_until(next_attempt: Option<f64>, now: f64) -> f64 {
    match next_attempt {
        Some(at) if at.is_finite() => at,
        _ => now + CIRCUIT_POLL_MS,
    }
}

/// A small seeded random source (xorshift64*) for retry jitter where the platform gives none
/// cheaply, and for reproducible tests. Not for anything secret.
///
/// ```
/// use stream_engine::core::consume::XorShift;
///
/// let mut a = XorShift::new(42);
/// let mut b = XorShift::new(42);
/// let x = a.next_f64();
/// assert!((0.0..1.0).contains(&x));
/// assert_eq!(x, b.next_f64()); // same seed, same sequence
/// ```
#[derive(Debug, Clone)]
pub struct XorShift {
    state: u64,
}

impl XorShift {
    /// A source seeded with `seed` (0 is replaced by a fixed non-zero constant: xorshift
    /// never leaves 0).
    pub fn new(seed: u64) -> Self {
        XorShift {
            state: if seed == 0 {
                0x9E37_79B9_7F4A_7C15
            } else {
                seed
            },
        }
    }

    /// The next number in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        let r = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
        // The top 53 bits as a fraction of 2^53: uniform in [0, 1).
        (r >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_layer_wins_over_engine_layer_over_stream_config() {
        let stream = StreamConfig {
            retry_attempts: 7,
            retry_delay: 3.0,
            ..StreamConfig::default()
        };
        let none = RecoveryPatch::default();
        let r = resolve_recovery(&stream, &none, &none).unwrap();
        assert_eq!((r.retry.retry_attempts, r.retry.retry_delay), (7, 3.0));
        let eng = RecoveryPatch {
            retry_attempts: Some(1.0),
            jitter: Some(0.5),
            ..none
        };
        let conn = RecoveryPatch {
            jitter: Some(0.0),
            ..none
        };
        let r = resolve_recovery(&stream, &eng, &conn).unwrap();
        assert_eq!(
            (r.retry.retry_attempts, r.retry.retry_delay, r.retry.jitter),
            (1, 3.0, 0.0)
        );
    }

    #[test]
    fn xorshift_stays_in_unit_interval_and_varies() {
        let mut r = XorShift::new(0);
        let xs: Vec<f64> = (0..1000).map(|_| r.next_f64()).collect();
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        assert!(xs.iter().any(|x| *x < 0.1) && xs.iter().any(|x| *x > 0.9));
    }
}
