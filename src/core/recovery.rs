//! Failure recovery: retry back-off and a circuit breaker.
//!
//! When a connection's consumer keeps failing, hammering it makes things
//! worse. [`RetryPolicy`] spaces out retries exponentially (with jitter, so
//! many connections do not retry in lock-step), and [`CircuitBreaker`] stops
//! calling a failing target altogether for a while, then probes it with a
//! single trial call before resuming traffic.
//!
//! Time is passed in explicitly (`now`, milliseconds). Nothing here panics:
//! invalid numeric inputs are clamped as documented on each item.

/// Exponential back-off settings for retrying a failed delivery.
///
/// Why: retries must back off quickly enough to relieve a struggling
/// consumer, but be capped so recovery is noticed within bounded time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// How many retries are allowed after the initial attempt.
    pub retry_attempts: u32,
    /// Base delay before the first retry, in milliseconds.
    pub retry_delay: f64,
    /// Upper bound on any single delay, in milliseconds.
    pub max_retry_delay: f64,
    /// Maximum random extra fraction added to a delay (0.1 = up to +10%).
    pub jitter: f64,
}

impl Default for RetryPolicy {
    /// 3 retries starting at 100 ms, capped at 30 s, with up to 10% jitter.
    fn default() -> Self {
        Self {
            retry_attempts: 3,
            retry_delay: 100.0,
            max_retry_delay: 30_000.0,
            jitter: 0.1,
        }
    }
}

impl RetryPolicy {
    /// Delay in milliseconds before retry number `attempt` (0 = first retry):
    /// `min(max_retry_delay, retry_delay * 2^attempt * (1 + jitter * random01))`.
    ///
    /// `random01` is supplied by the caller (e.g. `Math.random()`) so this
    /// stays deterministic and testable; it is clamped to `[0, 1]` (NaN → 0).
    /// The result is always finite and `>= 0`: NaN or negative `retry_delay`
    /// and `jitter` count as 0, a NaN or negative `max_retry_delay` as 0, an
    /// infinite `max_retry_delay` means "uncapped" and the result saturates
    /// at `f64::MAX`; the exponent saturates instead of overflowing.
    pub fn delay(&self, attempt: u32, random01: f64) -> f64 {
        let base = non_negative(self.retry_delay);
        let jitter = non_negative(self.jitter);
        let cap = non_negative(self.max_retry_delay);
        let r = if random01.is_nan() {
            0.0
        } else {
            super::num::clamp(random01, 0.0, 1.0)
        };
        if base == 0.0 {
            return 0.0;
        }
        // 2^1023 is the largest finite power of two; beyond it the product
        // is capped anyway, and u32 -> i32 can no longer wrap.
        let factor = 2f64.powi(attempt.min(1023) as i32);
        // inf * 0 (infinite jitter, r = 0) is NaN: treat it as no jitter.
        let jitter_mult = 1.0 + jitter * r;
        let jitter_mult = if jitter_mult.is_nan() {
            1.0
        } else {
            jitter_mult
        };
        // All factors are > 0 (base) or >= 1, possibly +inf, so no NaN here.
        let raw = base * factor * jitter_mult;
        let d = raw.min(cap);
        if d.is_finite() {
            d
        } else {
            f64::MAX
        }
    }

    /// Whether retry number `attempt` (0-based) is still allowed, i.e.
    /// `attempt < retry_attempts`.
    pub fn attempts_remain(&self, attempt: u32) -> bool {
        attempt < self.retry_attempts
    }
}

/// NaN and negative become 0; +inf is kept.
fn non_negative(x: f64) -> f64 {
    if x.is_nan() {
        0.0
    } else {
        x.max(0.0)
    }
}

/// Circuit breaker state as reported to JavaScript.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CircuitState {
    /// Normal operation: calls go through, failures are counted.
    Closed,
    /// Too many consecutive failures: calls are refused until the reset
    /// timeout elapses.
    Open,
    /// Reset timeout elapsed: one trial call decides whether to close again.
    HalfOpen,
}

impl CircuitState {
    /// Stable name used in events sent to JavaScript.
    pub fn as_str(&self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half-open",
        }
    }
}

/// Internal state; `HalfOpen` remembers when its trial call was granted.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Inner {
    /// Calls flow; failures are counted.
    Closed,
    /// Calls refused until `opened_at + reset_timeout`.
    Open,
    /// A trial call is in flight.
    HalfOpen {
        /// When the trial call was granted (for the lost-trial safety valve).
        trial_started_at: f64,
    },
}

/// Classic three-state circuit breaker driven by an explicit clock.
///
/// Why: a consumer that keeps failing should be left alone for
/// `reset_timeout` ms instead of being retried forever; a single trial call
/// then tells whether it recovered, without releasing a thundering herd.
///
/// Lifecycle: `Closed` → (`failure_threshold` consecutive failures) → `Open`
/// → (`reset_timeout` elapsed, next [`allow`](CircuitBreaker::allow)) →
/// `HalfOpen` with one trial call → success: `Closed` / failure: `Open`
/// again with a fresh `opened_at`.
///
/// Safety valve: if the trial call never reports back, a new trial is
/// allowed once `reset_timeout` has elapsed since the previous one was
/// granted, so a lost result cannot wedge the breaker forever.
///
/// Non-finite `now` values are replaced by the latest finite `now` seen
/// (or `0.0`), so NaN can never poison `opened_at`.
#[derive(Debug, Clone, PartialEq)]
pub struct CircuitBreaker {
    /// Consecutive failures that open the circuit (>= 1).
    failure_threshold: u32,
    /// How long the circuit stays open before a trial, in ms (>= 0).
    reset_timeout: f64,
    /// Current state (Open is reported as HalfOpen by `state` once due).
    inner: Inner,
    /// Failures since the last success or reset.
    consecutive_failures: u32,
    /// When the circuit (last) opened; `Some` while Open or HalfOpen.
    opened_at: Option<f64>,
    /// Latest finite `now` seen, substituted for non-finite timestamps.
    last_now: f64,
}

impl CircuitBreaker {
    /// Creates a closed breaker. `failure_threshold` 0 is treated as 1 (a
    /// breaker that can never open would be pointless); a NaN or negative
    /// `reset_timeout` becomes 0 (trial allowed immediately), `+inf` means
    /// the circuit never half-opens by itself (only [`reset`] closes it).
    ///
    /// [`reset`]: CircuitBreaker::reset
    pub fn new(failure_threshold: u32, reset_timeout: f64) -> Self {
        Self {
            failure_threshold: failure_threshold.max(1),
            reset_timeout: non_negative(reset_timeout),
            inner: Inner::Closed,
            consecutive_failures: 0,
            opened_at: None,
            last_now: 0.0,
        }
    }

    /// The effective (sanitised) failure threshold.
    pub fn failure_threshold(&self) -> u32 {
        self.failure_threshold
    }

    /// The effective (sanitised) reset timeout in milliseconds.
    pub fn reset_timeout(&self) -> f64 {
        self.reset_timeout
    }

    /// Sanitises `now` (non-finite -> latest finite time) and records it.
    fn clock(&mut self, now: f64) -> f64 {
        if now.is_finite() {
            self.last_now = now;
            now
        } else {
            self.last_now
        }
    }

    /// Whether `reset_timeout` has passed between `since` and `now`.
    fn timeout_elapsed(&self, since: f64, now: f64) -> bool {
        now - since >= self.reset_timeout
    }

    /// State as observed at `now`, without changing anything: an Open
    /// circuit whose reset timeout has elapsed reports `HalfOpen` (the next
    /// [`allow`](CircuitBreaker::allow) will grant the trial call).
    pub fn state(&self, now: f64) -> CircuitState {
        let now = if now.is_finite() { now } else { self.last_now };
        match self.inner {
            Inner::Closed => CircuitState::Closed,
            Inner::HalfOpen { .. } => CircuitState::HalfOpen,
            Inner::Open => match self.opened_at {
                Some(at) if self.timeout_elapsed(at, now) => CircuitState::HalfOpen,
                _ => CircuitState::Open,
            },
        }
    }

    /// Asks whether a call may be made at `now`.
    ///
    /// Closed: always `true`. Open: `false` until the reset timeout has
    /// elapsed, then the breaker becomes HalfOpen and grants exactly one
    /// trial call (`true`). HalfOpen: `false` until the trial reports via
    /// [`on_success`](CircuitBreaker::on_success) /
    /// [`on_failure`](CircuitBreaker::on_failure) (see the safety valve in
    /// the type docs).
    pub fn allow(&mut self, now: f64) -> bool {
        let now = self.clock(now);
        match self.inner {
            Inner::Closed => true,
            Inner::Open => {
                let at = self.opened_at.unwrap_or(now);
                if self.timeout_elapsed(at, now) {
                    self.inner = Inner::HalfOpen {
                        trial_started_at: now,
                    };
                    true
                } else {
                    false
                }
            }
            Inner::HalfOpen { trial_started_at } => {
                if self.reset_timeout > 0.0 && self.timeout_elapsed(trial_started_at, now) {
                    // The previous trial never reported: grant a new one.
                    self.inner = Inner::HalfOpen {
                        trial_started_at: now,
                    };
                    true
                } else {
                    false
                }
            }
        }
    }

    /// Reports a successful call. Resets the consecutive-failure count and
    /// closes a HalfOpen circuit (returns `Some(Closed)`). A late success
    /// arriving while Open (from a call started before it opened) only
    /// resets the count; the circuit still waits for its trial.
    pub fn on_success(&mut self, now: f64) -> Option<CircuitState> {
        self.clock(now);
        self.consecutive_failures = 0;
        match self.inner {
            Inner::HalfOpen { .. } => {
                self.inner = Inner::Closed;
                self.opened_at = None;
                Some(CircuitState::Closed)
            }
            Inner::Closed | Inner::Open => None,
        }
    }

    /// Reports a failed call. In Closed, the consecutive-failure count
    /// reaching `failure_threshold` opens the circuit (`Some(Open)`). In
    /// HalfOpen, the failed trial re-opens it with a fresh `opened_at`
    /// (`Some(Open)`). While Open, late failures are counted but do not
    /// extend the open period (`None`).
    pub fn on_failure(&mut self, now: f64) -> Option<CircuitState> {
        let now = self.clock(now);
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        match self.inner {
            Inner::Closed if self.consecutive_failures >= self.failure_threshold => {
                self.open(now);
                Some(CircuitState::Open)
            }
            Inner::HalfOpen { .. } => {
                self.open(now);
                Some(CircuitState::Open)
            }
            Inner::Closed | Inner::Open => None,
        }
    }

    /// Transitions to Open, stamping `opened_at`.
    fn open(&mut self, now: f64) {
        self.inner = Inner::Open;
        self.opened_at = Some(now);
    }

    /// Failures since the last success (or reset); shown in diagnostics.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// When the circuit last opened; `None` while Closed.
    pub fn opened_at(&self) -> Option<f64> {
        self.opened_at
    }

    /// While Open: the earliest time a trial call will be allowed
    /// (`opened_at + reset_timeout`), so callers can schedule it. `None`
    /// when Closed or HalfOpen.
    pub fn next_attempt_at(&self) -> Option<f64> {
        match self.inner {
            Inner::Open => self.opened_at.map(|at| at + self.reset_timeout),
            _ => None,
        }
    }

    /// Forces the breaker back to Closed with a zero failure count (e.g.
    /// the user reconnected manually).
    pub fn reset(&mut self) {
        self.inner = Inner::Closed;
        self.consecutive_failures = 0;
        self.opened_at = None;
    }
}

/// A small seeded random source (xorshift64*) for retry jitter where the platform gives none
/// cheaply, and for reproducible tests. Not for anything secret.
///
/// ```
/// use stream_engine::core::recovery::XorShift;
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
    fn retry_defaults() {
        let p = RetryPolicy::default();
        assert_eq!(p.retry_attempts, 3);
        assert_eq!(p.retry_delay, 100.0);
        assert_eq!(p.max_retry_delay, 30_000.0);
        assert_eq!(p.jitter, 0.1);
    }

    #[test]
    fn delay_doubles_without_jitter() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(0, 0.0), 100.0);
        assert_eq!(p.delay(1, 0.0), 200.0);
        assert_eq!(p.delay(2, 0.0), 400.0);
        assert_eq!(p.delay(8, 0.0), 25_600.0);
    }

    #[test]
    fn delay_is_capped() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(9, 0.0), 30_000.0);
        assert_eq!(p.delay(9, 1.0), 30_000.0);
        assert_eq!(p.delay(1000, 0.5), 30_000.0);
        assert_eq!(p.delay(u32::MAX, 1.0), 30_000.0);
    }

    #[test]
    fn delay_jitter_bounds() {
        let p = RetryPolicy::default();
        for attempt in 0..8 {
            let lo = p.delay(attempt, 0.0);
            let hi = p.delay(attempt, 1.0);
            assert!((hi - lo * 1.1).abs() < 1e-9, "attempt {attempt}");
            for i in 0..=10 {
                let d = p.delay(attempt, i as f64 / 10.0);
                assert!(d >= lo && d <= hi);
            }
        }
        assert!((p.delay(0, 0.5) - 105.0).abs() < 1e-9);
        // random01 outside [0, 1] is clamped; NaN counts as 0.
        assert_eq!(p.delay(0, -3.0), 100.0);
        assert!((p.delay(0, 7.0) - 110.0).abs() < 1e-9);
        assert_eq!(p.delay(0, f64::NAN), 100.0);
        assert!((p.delay(0, f64::INFINITY) - 110.0).abs() < 1e-9);
    }

    #[test]
    fn delay_never_nan_or_infinite() {
        let weird = [
            0.0,
            -1.0,
            1.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MAX,
        ];
        for &retry_delay in &weird {
            for &max_retry_delay in &weird {
                for &jitter in &weird {
                    let p = RetryPolicy {
                        retry_attempts: 3,
                        retry_delay,
                        max_retry_delay,
                        jitter,
                    };
                    for attempt in [0, 1, 30, 1023, 1024, u32::MAX] {
                        for r in [0.0, 0.5, 1.0, f64::NAN] {
                            let d = p.delay(attempt, r);
                            assert!(d.is_finite() && d >= 0.0, "{p:?} {attempt} {r} -> {d}");
                        }
                    }
                }
            }
        }
        let uncapped = RetryPolicy {
            max_retry_delay: f64::INFINITY,
            ..RetryPolicy::default()
        };
        assert_eq!(uncapped.delay(20, 0.0), 100.0 * 1_048_576.0);
        assert_eq!(uncapped.delay(u32::MAX, 0.0), f64::MAX);
    }

    #[test]
    fn attempts_remain() {
        let p = RetryPolicy::default();
        assert!(p.attempts_remain(0));
        assert!(p.attempts_remain(2));
        assert!(!p.attempts_remain(3));
        assert!(!p.attempts_remain(u32::MAX));
        let none = RetryPolicy {
            retry_attempts: 0,
            ..RetryPolicy::default()
        };
        assert!(!none.attempts_remain(0));
    }

    #[test]
    fn state_names() {
        assert_eq!(CircuitState::Closed.as_str(), "closed");
        assert_eq!(CircuitState::Open.as_str(), "open");
        assert_eq!(CircuitState::HalfOpen.as_str(), "half-open");
    }

    #[test]
    fn full_cycle_closed_open_half_open_closed() {
        let mut cb = CircuitBreaker::new(3, 1000.0);
        assert_eq!(cb.state(0.0), CircuitState::Closed);
        assert!(cb.allow(0.0));
        assert_eq!(cb.on_failure(10.0), None);
        assert_eq!(cb.on_failure(20.0), None);
        assert_eq!(cb.consecutive_failures(), 2);
        assert_eq!(cb.on_failure(30.0), Some(CircuitState::Open));
        assert_eq!(cb.state(30.0), CircuitState::Open);
        assert_eq!(cb.opened_at(), Some(30.0));
        assert_eq!(cb.next_attempt_at(), Some(1030.0));

        // Refused while open.
        assert!(!cb.allow(500.0));
        assert!(!cb.allow(1029.9));
        // state() reports half-open once the timeout elapsed, without mutating.
        assert_eq!(cb.state(1030.0), CircuitState::HalfOpen);
        assert_eq!(cb.next_attempt_at(), Some(1030.0));

        // Exactly one trial call.
        assert!(cb.allow(1030.0));
        assert_eq!(cb.state(1030.0), CircuitState::HalfOpen);
        assert_eq!(cb.next_attempt_at(), None);
        assert!(!cb.allow(1031.0));
        assert!(!cb.allow(1500.0));

        // Trial succeeds: closed, count reset.
        assert_eq!(cb.on_success(1100.0), Some(CircuitState::Closed));
        assert_eq!(cb.state(1100.0), CircuitState::Closed);
        assert_eq!(cb.consecutive_failures(), 0);
        assert_eq!(cb.opened_at(), None);
        assert!(cb.allow(1100.0));
        assert!(cb.allow(1100.0));
        assert_eq!(cb.on_success(1200.0), None);
    }

    #[test]
    fn half_open_failure_reopens_with_fresh_timestamp() {
        let mut cb = CircuitBreaker::new(2, 1000.0);
        cb.on_failure(0.0);
        assert_eq!(cb.on_failure(0.0), Some(CircuitState::Open));
        assert!(cb.allow(1000.0));
        assert_eq!(cb.on_failure(1200.0), Some(CircuitState::Open));
        assert_eq!(cb.opened_at(), Some(1200.0));
        assert_eq!(cb.next_attempt_at(), Some(2200.0));
        assert_eq!(cb.state(2199.0), CircuitState::Open);
        assert!(!cb.allow(2199.0));
        assert!(cb.allow(2200.0));
        assert_eq!(cb.on_success(2250.0), Some(CircuitState::Closed));
    }

    #[test]
    fn success_resets_consecutive_count() {
        let mut cb = CircuitBreaker::new(3, 1000.0);
        cb.on_failure(0.0);
        cb.on_failure(1.0);
        assert_eq!(cb.on_success(2.0), None);
        assert_eq!(cb.consecutive_failures(), 0);
        assert_eq!(cb.on_failure(3.0), None);
        assert_eq!(cb.on_failure(4.0), None);
        assert_eq!(cb.state(4.0), CircuitState::Closed);
        assert_eq!(cb.on_failure(5.0), Some(CircuitState::Open));
    }

    #[test]
    fn late_results_while_open_do_not_change_state() {
        let mut cb = CircuitBreaker::new(1, 1000.0);
        assert_eq!(cb.on_failure(0.0), Some(CircuitState::Open));
        assert_eq!(cb.on_failure(500.0), None);
        assert_eq!(cb.opened_at(), Some(0.0)); // not extended
        assert_eq!(cb.on_success(600.0), None);
        assert_eq!(cb.state(600.0), CircuitState::Open);
        assert!(!cb.allow(999.0));
        assert!(cb.allow(1000.0));
    }

    #[test]
    fn lost_trial_is_replaced_after_reset_timeout() {
        let mut cb = CircuitBreaker::new(1, 1000.0);
        cb.on_failure(0.0);
        assert!(cb.allow(1000.0));
        assert!(!cb.allow(1999.0));
        assert!(cb.allow(2000.0)); // safety valve
        assert!(!cb.allow(2001.0));
    }

    #[test]
    fn zero_reset_timeout_grants_one_trial_at_a_time() {
        let mut cb = CircuitBreaker::new(1, 0.0);
        assert_eq!(cb.on_failure(5.0), Some(CircuitState::Open));
        assert_eq!(cb.state(5.0), CircuitState::HalfOpen);
        assert!(cb.allow(5.0));
        assert!(!cb.allow(5.0));
        assert!(!cb.allow(100.0));
        assert_eq!(cb.on_failure(6.0), Some(CircuitState::Open));
        assert!(cb.allow(6.0));
    }

    #[test]
    fn constructor_sanitises_arguments() {
        let cb = CircuitBreaker::new(0, f64::NAN);
        assert_eq!(cb.failure_threshold(), 1);
        assert_eq!(cb.reset_timeout(), 0.0);
        assert_eq!(CircuitBreaker::new(5, -10.0).reset_timeout(), 0.0);
        let mut never = CircuitBreaker::new(1, f64::INFINITY);
        never.on_failure(0.0);
        assert!(!never.allow(1e300));
        assert_eq!(never.state(f64::MAX), CircuitState::Open);
        assert_eq!(never.next_attempt_at(), Some(f64::INFINITY));
        never.reset();
        assert!(never.allow(0.0));
    }

    #[test]
    fn non_finite_now_uses_last_time() {
        let mut cb = CircuitBreaker::new(1, 100.0);
        assert!(cb.allow(50.0));
        assert_eq!(cb.on_failure(f64::NAN), Some(CircuitState::Open));
        assert_eq!(cb.opened_at(), Some(50.0));
        assert!(!cb.allow(f64::INFINITY));
        assert_eq!(cb.state(f64::NAN), CircuitState::Open);
        assert!(cb.allow(150.0));
    }

    #[test]
    fn time_going_backwards_keeps_circuit_open() {
        let mut cb = CircuitBreaker::new(1, 100.0);
        cb.on_failure(1000.0);
        assert!(!cb.allow(0.0));
        assert_eq!(cb.state(-1e9), CircuitState::Open);
        assert!(cb.allow(1100.0));
    }

    #[test]
    fn failure_count_saturates() {
        let mut cb = CircuitBreaker::new(u32::MAX, 100.0);
        cb.consecutive_failures = u32::MAX - 1;
        assert_eq!(cb.on_failure(0.0), Some(CircuitState::Open));
        assert_eq!(cb.on_failure(1.0), None);
        assert_eq!(cb.consecutive_failures(), u32::MAX);
    }

    #[test]
    fn reset_closes_everything() {
        let mut cb = CircuitBreaker::new(1, 1000.0);
        cb.on_failure(0.0);
        cb.reset();
        assert_eq!(cb.state(0.0), CircuitState::Closed);
        assert_eq!(cb.consecutive_failures(), 0);
        assert_eq!(cb.opened_at(), None);
        assert_eq!(cb.next_attempt_at(), None);
        assert!(cb.allow(1.0));
    }

    #[test]
    fn xorshift_stays_in_unit_interval_and_varies() {
        let mut r = XorShift::new(0);
        let xs: Vec<f64> = (0..1000).map(|_| r.next_f64()).collect();
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        assert!(xs.iter().any(|x| *x < 0.1) && xs.iter().any(|x| *x > 0.9));
    }
}
