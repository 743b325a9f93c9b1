//! The adaptive backpressure controller.
//!
//! Latency of a queued message is roughly `queue length / drain rate`, so to keep p95 latency
//! under a target the queue must stay under `drain rate * target`. The controller combines that
//! model with feedback from measured p95 latency (multiplicative decrease when over the target,
//! additive increase when well under it, as in TCP congestion control) to set the buffer level at
//! which the connection starts shedding its lowest-priority messages. Under light load the queue
//! never reaches that level, so nothing is dropped.

/// Settings of [`AdaptiveController`] (the JS `AdaptiveBackpressureHandler` options).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdaptiveConfig {
    /// p95 latency goal for delivered messages, ms.
    pub target_latency: f64,
    /// Highest effective drop threshold (fraction of the buffer).
    pub max_threshold: f64,
    /// Lowest effective drop threshold.
    pub min_threshold: f64,
    /// Longest hold of a write under backpressure, ms.
    pub max_wait: f64,
}

impl AdaptiveConfig {
    /// The default hold of a write for a latency target: `min(10, target / 10)` ms. It still
    /// slows producers that await `ready`, but every ms a write is held adds to its latency,
    /// which this handler bounds.
    pub fn default_max_wait(target_latency: f64) -> f64 {
        (target_latency / 10.0).min(10.0)
    }
}

impl Default for AdaptiveConfig {
    fn default() -> Self {
        AdaptiveConfig {
            target_latency: 100.0,
            max_threshold: 0.9,
            min_threshold: 0.05,
            max_wait: AdaptiveConfig::default_max_wait(100.0),
        }
    }
}

/// How often the controller re-evaluates, ms: often enough to react within a target of 100 ms,
/// rarely enough that the histogram merge it needs stays off the per-message path.
pub const UPDATE_INTERVAL: f64 = 25.0;

/// State of the adaptive controller of one connection.
#[derive(Debug, Clone)]
pub struct AdaptiveController {
    /// Its settings.
    pub cfg: AdaptiveConfig,
    /// Current drop threshold, fraction of the buffer.
    pub threshold: f64,
    /// Current batch size (<= the connection's maxBatchSize).
    pub batch_size: usize,
    /// Feedback multiplier on the model's queue limit, in (0, 1].
    gain: f64,
    last_update: f64,
}

impl AdaptiveController {
    /// A relaxed controller: full threshold, full batches.
    pub fn new(cfg: AdaptiveConfig, max_batch: usize) -> Self {
        AdaptiveController {
            cfg,
            threshold: cfg.max_threshold,
            batch_size: max_batch.max(1),
            gain: 1.0,
            last_update: f64::NEG_INFINITY,
        }
    }

    /// Whether [`AdaptiveController::update`] is due.
    #[inline]
    pub fn due(&self, now: f64) -> bool {
        now - self.last_update >= UPDATE_INTERVAL || now < self.last_update
    }

    /// Re-evaluates from the measured p95 latency (ms, including the age of the oldest waiting
    /// message), the drain rate (messages per ms over the last second), the buffer capacity and
    /// the connection's maximum batch size.
    pub fn update(
        &mut self,
        now: f64,
        p95: f64,
        drain_per_ms: f64,
        held: usize,
        capacity: usize,
        max_batch: usize,
    ) {
        self.last_update = now;
        let target = self.cfg.target_latency.max(1.0);
        let cap = capacity.max(1) as f64;
        // Shedding (a queue near the drop level) counts as pressure even when latency is low
        // because of it.
        let pressured = p95 > 0.6 * target || (held as f64) >= 0.5 * self.limit(capacity) as f64;
        if p95 > 0.8 * target {
            self.gain = (self.gain * 0.7).max(0.02);
        } else if p95 < 0.4 * target {
            self.gain = (self.gain * 1.1 + 0.02).min(1.0);
        }
        // Queue that drains within half the target at the current drain rate. Only applied when
        // latency is a concern: under light load the drain rate equals the arrival rate and the
        // model would clamp the buffer for no reason. An unknown drain rate imposes no limit.
        let model = if drain_per_ms > 0.0 && p95 > 0.4 * target {
            (drain_per_ms * target * 0.5) / cap
        } else {
            self.cfg.max_threshold
        };
        let t = model.min(self.cfg.max_threshold) * self.gain;
        self.threshold = super::num::clamp(
            t,
            self.cfg.min_threshold.min(self.cfg.max_threshold),
            self.cfg.max_threshold,
        );
        // Under pressure, big batches cut per-batch overhead for a slow reader; when relaxed,
        // smaller batches fill sooner and cut latency.
        let max_batch = max_batch.max(1);
        self.batch_size = if pressured {
            max_batch
        } else {
            (max_batch / 2).max(1)
        };
    }

    /// Current drop level in messages.
    pub fn limit(&self, capacity: usize) -> usize {
        ((self.threshold * capacity as f64).floor() as usize).clamp(1, capacity.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tightens_when_latency_is_high_and_relaxes_after() {
        let mut a = AdaptiveController::new(AdaptiveConfig::default(), 50);
        assert_eq!(a.limit(1000), 900);
        let mut now = 0.0;
        // Reader drains 1 msg/ms; latency far over target.
        for _ in 0..10 {
            now += UPDATE_INTERVAL;
            a.update(now, 400.0, 1.0, 500, 1000, 50);
        }
        let tight = a.limit(1000);
        assert!(tight < 60, "limit {tight}");
        assert_eq!(a.batch_size, 50);
        for _ in 0..200 {
            now += UPDATE_INTERVAL;
            a.update(now, 5.0, 20.0, 0, 1000, 50);
        }
        assert_eq!(a.limit(1000), 900);
        assert_eq!(a.batch_size, 25);
    }

    #[test]
    fn never_below_min_threshold_and_never_panics_on_odd_input() {
        let mut a = AdaptiveController::new(AdaptiveConfig::default(), 0);
        for i in 0..100 {
            a.update(i as f64, f64::INFINITY, 0.0, 0, 0, 0);
        }
        assert!(a.threshold >= 0.05);
        assert_eq!(a.limit(0), 1);
        a.update(1.0, f64::NAN, f64::NAN, 3, 10, 5);
        assert!(a.threshold.is_finite());
    }
}
