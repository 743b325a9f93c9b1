//! Sliding-window aggregation: statistics about *the present* rather than
//! the whole history.
//!
//! Lifetime totals hide what is happening now (a connection that was slow an
//! hour ago should not trip a latency alert today). Both types here split a
//! window of `window_ms` into `slots` sub-buckets kept in a ring; each ring
//! entry remembers which time slot it holds, so stale entries are detected
//! and zeroed lazily on access instead of by a timer.
//!
//! # Granularity
//!
//! Time is cut into slots of `window_ms / slots` milliseconds. The window
//! ending at `now` covers the slot containing `now` plus the `slots - 1`
//! slots before it, so an event expires once `now` reaches the start of its
//! slot plus `window_ms`, i.e. between `window_ms - slot_ms` and `window_ms`
//! after it happened. More slots means finer expiry at a small memory cost.
//!
//! # Time handling
//!
//! Time is passed in explicitly (`now`, milliseconds) so callers and tests
//! control the clock. Nothing here panics on bad input:
//! * time going backwards is treated as the latest time already seen
//!   (events land in the current slot);
//! * a non-finite `now` (NaN, ±inf) is likewise treated as the latest time
//!   seen, or `0.0` if none has been seen yet;
//! * an invalid `window_ms` (NaN, infinite, zero or negative) falls back to
//!   [`DEFAULT_WINDOW_MS`]; tiny windows are raised to [`MIN_WINDOW_MS`];
//! * `slots` is clamped to `1..=MAX_SLOTS` (`1..=MAX_HISTOGRAM_SLOTS` for
//!   [`SlidingHistogram`]) so memory stays bounded.

use super::histogram::Histogram;

/// Window used when the requested `window_ms` is unusable (NaN, infinite or
/// not positive); one second is the engine's conventional rate window.
pub const DEFAULT_WINDOW_MS: f64 = 1000.0;

/// Smallest accepted window (1 µs), keeping slot arithmetic well-conditioned.
pub const MIN_WINDOW_MS: f64 = 1e-3;

/// Upper bound on [`SlidingCounter`] slots, so a bogus argument cannot
/// trigger a huge allocation.
pub const MAX_SLOTS: usize = 4096;

/// Upper bound on [`SlidingHistogram`] slots; each slot owns a [`Histogram`]
/// (sparse: usually a few hundred bytes, at most about 17 KiB), so this caps
/// one sliding histogram at roughly 1.1 MiB.
pub const MAX_HISTOGRAM_SLOTS: usize = 64;

/// Shared slot arithmetic for both ring types.
#[derive(Debug, Clone)]
struct SlotClock {
    /// Sanitised window length in milliseconds.
    window_ms: f64,
    /// Width of one slot in milliseconds (`window_ms / slots`).
    slot_ms: f64,
    /// Number of slots in the ring (>= 1).
    slots: usize,
    /// Latest slot index seen; time never moves backwards past it.
    current: Option<i64>,
}

impl SlotClock {
    /// Sanitises the arguments (see module docs) and starts with no time seen.
    fn new(window_ms: f64, slots: usize, max_slots: usize) -> Self {
        let window_ms = if window_ms.is_finite() && window_ms > 0.0 {
            window_ms.max(MIN_WINDOW_MS)
        } else {
            DEFAULT_WINDOW_MS
        };
        let slots = slots.clamp(1, max_slots);
        Self {
            window_ms,
            slot_ms: window_ms / slots as f64,
            slots,
            current: None,
        }
    }

    /// Moves the clock to `now` (never backwards) and returns the current
    /// slot index.
    fn advance(&mut self, now: f64) -> i64 {
        // `as i64` saturates for out-of-range values, so this cannot panic.
        let candidate = if now.is_finite() {
            Some((now / self.slot_ms).floor() as i64)
        } else {
            None
        };
        let cur = match (self.current, candidate) {
            (Some(c), Some(e)) => c.max(e),
            (Some(c), None) => c,
            (None, Some(e)) => e,
            (None, None) => 0,
        };
        self.current = Some(cur);
        cur
    }

    /// Ring position holding slot index `epoch`.
    fn position(&self, epoch: i64) -> usize {
        // rem_euclid of a positive modulus is in 0..slots, even for negative
        // epochs (negative timestamps).
        epoch.rem_euclid(self.slots as i64) as usize
    }

    /// Whether a ring entry holding slot `epoch` is inside the window that
    /// ends in slot `cur`.
    fn is_live(&self, epoch: i64, cur: i64) -> bool {
        epoch <= cur && epoch > cur.saturating_sub(self.slots as i64)
    }

    /// Forgets the latest time so earlier timestamps are accepted again.
    fn reset(&mut self) {
        self.current = None;
    }
}

/// Marker for a ring entry that has never held a slot.
const NO_EPOCH: i64 = i64::MIN;

/// Counts events over a sliding time window, e.g. messages per second or
/// errors in the last minute.
///
/// Why: rates must reflect recent traffic, and a ring of per-slot counts
/// gives that in O(slots) memory with no timers.
#[derive(Debug, Clone)]
pub struct SlidingCounter {
    /// Slot arithmetic and the latest time seen.
    clock: SlotClock,
    /// Slot index each ring entry currently holds (`NO_EPOCH` if none).
    epochs: Vec<i64>,
    /// Event count of each ring entry.
    counts: Vec<u64>,
    /// The `now` of the last `add` and the entry it landed in: messages of one batch share a
    /// timestamp, so most adds skip the slot arithmetic.
    last_now: f64,
    last_pos: usize,
}

impl SlidingCounter {
    /// Creates a counter over a window of `window_ms` milliseconds split into
    /// `slots` sub-buckets. Invalid arguments are sanitised as described in
    /// the module docs (never panics).
    pub fn new(window_ms: f64, slots: usize) -> Self {
        let clock = SlotClock::new(window_ms, slots, MAX_SLOTS);
        let n = clock.slots;
        Self {
            clock,
            epochs: vec![NO_EPOCH; n],
            counts: vec![0; n],
            last_now: f64::NAN,
            last_pos: 0,
        }
    }

    /// The effective (sanitised) window length in milliseconds, so callers
    /// can see what a clamped argument turned into.
    pub fn window_ms(&self) -> f64 {
        self.clock.window_ms
    }

    /// The effective (sanitised) number of slots.
    pub fn slots(&self) -> usize {
        self.clock.slots
    }

    /// Adds `n` events happening at `now` (ms). Counts saturate instead of
    /// overflowing.
    pub fn add(&mut self, now: f64, n: u64) {
        // Same instant as the previous add: same slot (NaN never compares equal).
        if now == self.last_now {
            self.counts[self.last_pos] = self.counts[self.last_pos].saturating_add(n);
            return;
        }
        let cur = self.clock.advance(now);
        let pos = self.clock.position(cur);
        if self.epochs[pos] != cur {
            // The entry holds an older (expired) slot: recycle it.
            self.epochs[pos] = cur;
            self.counts[pos] = 0;
        }
        self.counts[pos] = self.counts[pos].saturating_add(n);
        // Only cache a time that mapped to the newest slot (a backwards time lands there too).
        self.last_now = if now.is_finite() && (now / self.clock.slot_ms).floor() as i64 == cur {
            now
        } else {
            f64::NAN
        };
        self.last_pos = pos;
    }

    /// Number of events within the window ending at `now`; expired slots are
    /// zeroed as a side effect (hence `&mut self`).
    // Not inlined: `Connection::metrics` sums five counters, ~300 bytes of `.wasm` per inlined
    // copy (issue 12); the call costs nothing next to the loop over the ring.
    #[inline(never)]
    pub fn sum(&mut self, now: f64) -> u64 {
        // Expiry below may recycle the cached slot.
        self.last_now = f64::NAN;
        let cur = self.clock.advance(now);
        let mut total: u64 = 0;
        for (epoch, count) in self.epochs.iter_mut().zip(self.counts.iter_mut()) {
            if self.clock.is_live(*epoch, cur) {
                total = total.saturating_add(*count);
            } else if *epoch != NO_EPOCH {
                *epoch = NO_EPOCH;
                *count = 0;
            }
        }
        total
    }

    /// Events per second over the window ending at `now`
    /// (`sum / (window_ms / 1000)`).
    pub fn rate_per_sec(&mut self, now: f64) -> f64 {
        self.sum(now) as f64 * 1000.0 / self.clock.window_ms
    }

    /// Forgets all events and the clock, as if newly created (e.g. when a
    /// connection is re-established).
    // Not inlined: a connection resets five counters, and each inlined copy of the fills is
    // ~400 bytes of `.wasm` (issue 12); resetting is rare.
    #[inline(never)]
    pub fn reset(&mut self) {
        self.epochs.fill(NO_EPOCH);
        self.counts.fill(0);
        self.clock.reset();
        self.last_now = f64::NAN;
    }
}

/// Latency distribution over a sliding time window, e.g. "p95 over the last
/// 10 seconds".
///
/// Why: alerts on tail latency must recover once latency improves; a
/// lifetime histogram would remember old spikes forever. Each ring slot owns
/// a [`Histogram`]; a snapshot merges the live ones.
#[derive(Debug, Clone)]
pub struct SlidingHistogram {
    /// Slot arithmetic and the latest time seen.
    clock: SlotClock,
    /// Slot index each ring entry currently holds (`NO_EPOCH` if none).
    epochs: Vec<i64>,
    /// Samples of each ring entry; a slot's bucket storage is freed when it expires.
    hists: Vec<Histogram>,
}

impl SlidingHistogram {
    /// Creates a sliding histogram over `window_ms` milliseconds split into
    /// `slots` sub-histograms (clamped to `1..=MAX_HISTOGRAM_SLOTS`).
    /// Invalid arguments are sanitised as described in the module docs.
    pub fn new(window_ms: f64, slots: usize) -> Self {
        let clock = SlotClock::new(window_ms, slots, MAX_HISTOGRAM_SLOTS);
        let n = clock.slots;
        Self {
            clock,
            epochs: vec![NO_EPOCH; n],
            hists: vec![Histogram::new(); n],
        }
    }

    /// The effective (sanitised) window length in milliseconds.
    pub fn window_ms(&self) -> f64 {
        self.clock.window_ms
    }

    /// The effective (sanitised) number of slots.
    pub fn slots(&self) -> usize {
        self.clock.slots
    }

    /// Bytes of bucket storage the slots own on the heap (see [`Histogram::heap_bytes`]).
    pub fn heap_bytes(&self) -> usize {
        self.hists.iter().map(Histogram::heap_bytes).sum()
    }

    /// Records sample `v` (ms) observed at `now`. Invalid samples are ignored
    /// by [`Histogram::record`], but still advance the clock.
    pub fn record(&mut self, now: f64, v: f64) {
        self.current(now).record(v);
    }

    /// Records `n` samples of `v` at `now` (messages that share a latency).
    pub fn record_n(&mut self, now: f64, v: f64, n: u64) {
        self.current(now).record_n(v, n);
    }

    /// The histogram of the slot that `now` falls in, so a caller recording many samples at one
    /// moment finds the slot once.
    pub fn current(&mut self, now: f64) -> &mut Histogram {
        let cur = self.clock.advance(now);
        let pos = self.clock.position(cur);
        if self.epochs[pos] != cur {
            self.epochs[pos] = cur;
            // Free rather than clear: the slot then holds only the chunks its new samples need.
            self.hists[pos].release();
        }
        &mut self.hists[pos]
    }

    /// Returns the merged distribution of all samples within the window
    /// ending at `now`. Allocates a new histogram; see
    /// [`snapshot_into`](SlidingHistogram::snapshot_into) to reuse one.
    pub fn snapshot(&mut self, now: f64) -> Histogram {
        let mut out = Histogram::new();
        self.snapshot_into(now, &mut out);
        out
    }

    /// Like [`snapshot`](SlidingHistogram::snapshot) but writes into `out`
    /// (cleared first), so periodic reporting need not allocate.
    pub fn snapshot_into(&mut self, now: f64, out: &mut Histogram) {
        out.clear();
        let cur = self.clock.advance(now);
        for (epoch, hist) in self.epochs.iter_mut().zip(self.hists.iter_mut()) {
            if self.clock.is_live(*epoch, cur) {
                out.merge(hist);
            } else if *epoch != NO_EPOCH {
                *epoch = NO_EPOCH;
                hist.release();
            }
        }
    }

    /// Forgets all samples and the clock, freeing the slots' bucket storage.
    pub fn reset(&mut self) {
        self.epochs.fill(NO_EPOCH);
        for h in &mut self.hists {
            h.release();
        }
        self.clock.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_counts_within_window() {
        let mut c = SlidingCounter::new(1000.0, 10);
        c.add(0.0, 1);
        c.add(50.0, 2);
        c.add(550.0, 3);
        assert_eq!(c.sum(600.0), 6);
        assert_eq!(c.sum(999.0), 6);
    }

    #[test]
    fn counter_events_expire_after_window() {
        let mut c = SlidingCounter::new(1000.0, 10);
        c.add(0.0, 1); // slot [0, 100)
        c.add(150.0, 2); // slot [100, 200)
        assert_eq!(c.sum(999.9), 3);
        // Slot [0,100) expires at exactly 1000.
        assert_eq!(c.sum(1000.0), 2);
        assert_eq!(c.sum(1099.0), 2);
        assert_eq!(c.sum(1100.0), 0);
        // Long idle gap: everything gone, and new events count normally.
        assert_eq!(c.sum(1_000_000.0), 0);
        c.add(1_000_000.0, 4);
        assert_eq!(c.sum(1_000_500.0), 4);
    }

    #[test]
    fn counter_ring_reuse_does_not_leak_old_counts() {
        let mut c = SlidingCounter::new(1000.0, 10);
        // Ring position 0, epoch 0.
        c.add(10.0, 100);
        // Same ring position, ten slots later: the old count must be dropped.
        c.add(1010.0, 1);
        assert_eq!(c.sum(1010.0), 1);
    }

    #[test]
    fn counter_rate_over_one_second() {
        let mut c = SlidingCounter::new(1000.0, 10);
        // 50 events per 100 ms for 3 seconds -> 500/s steady state.
        let mut t = 0.0;
        while t < 3000.0 {
            c.add(t, 5);
            t += 10.0;
        }
        assert_eq!(c.sum(2999.0), 500);
        assert_eq!(c.rate_per_sec(2999.0), 500.0);
        // Two-second window halves the per-second rate of a single burst.
        let mut c2 = SlidingCounter::new(2000.0, 4);
        c2.add(0.0, 100);
        assert_eq!(c2.rate_per_sec(10.0), 50.0);
    }

    #[test]
    fn counter_time_going_backwards_uses_latest_slot() {
        let mut c = SlidingCounter::new(1000.0, 10);
        c.add(500.0, 1);
        c.add(100.0, 1); // backwards: counted in the latest slot
        assert_eq!(c.sum(0.0), 2);
        assert_eq!(c.sum(1499.0), 2);
        assert_eq!(c.sum(1500.0), 0);
    }

    #[test]
    fn counter_non_finite_now_is_latest_time() {
        let mut c = SlidingCounter::new(1000.0, 10);
        c.add(f64::NAN, 1); // no history: treated as t = 0
        c.add(200.0, 1);
        c.add(f64::INFINITY, 1); // treated as t = 200
        c.add(f64::NEG_INFINITY, 1);
        assert_eq!(c.sum(f64::NAN), 4);
        assert_eq!(c.sum(1000.0), 3);
        assert_eq!(c.sum(1200.0), 0);
    }

    #[test]
    fn counter_negative_and_huge_times_do_not_panic() {
        let mut c = SlidingCounter::new(1000.0, 10);
        c.add(-5000.0, 1);
        assert_eq!(c.sum(-4500.0), 1);
        c.add(1e300, 1);
        c.add(f64::MAX, 2);
        assert_eq!(c.sum(f64::MAX), 3);
        c.add(u64::MAX as f64, u64::MAX);
        assert_eq!(c.sum(f64::MAX), u64::MAX);
    }

    #[test]
    fn counter_sanitises_arguments() {
        for w in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.0, -10.0] {
            let c = SlidingCounter::new(w, 10);
            assert_eq!(c.window_ms(), DEFAULT_WINDOW_MS);
        }
        assert_eq!(SlidingCounter::new(1e-9, 1).window_ms(), MIN_WINDOW_MS);
        assert_eq!(SlidingCounter::new(1000.0, 0).slots(), 1);
        assert_eq!(SlidingCounter::new(1000.0, usize::MAX).slots(), MAX_SLOTS);
        // A one-slot window still works.
        let mut c = SlidingCounter::new(1000.0, 0);
        c.add(10.0, 3);
        assert_eq!(c.sum(999.0), 3);
        assert_eq!(c.sum(1000.0), 0);
        // A tiny window with a huge clock does not panic.
        let mut t = SlidingCounter::new(1e-9, 7);
        t.add(1e18, 1);
        let _ = t.sum(1e18);
    }

    #[test]
    fn counter_reset_clears_counts_and_clock() {
        let mut c = SlidingCounter::new(1000.0, 10);
        c.add(5000.0, 7);
        c.reset();
        // Clock was reset too: an earlier time is no longer "backwards",
        // so this event lands in slot [100, 200) and expires at 1100.
        c.add(100.0, 1);
        assert_eq!(c.sum(1099.0), 1);
        assert_eq!(c.sum(1100.0), 0);
        c.reset();
        assert_eq!(c.sum(5000.0), 0);
    }

    #[test]
    fn histogram_snapshot_merges_live_slots() {
        let mut h = SlidingHistogram::new(1000.0, 10);
        for i in 0..100 {
            h.record(i as f64 * 5.0, 10.0 + i as f64); // t in [0, 495]
        }
        let snap = h.snapshot(500.0);
        assert_eq!(snap.count(), 100);
        assert_eq!(snap.min(), 10.0);
        assert_eq!(snap.max(), 109.0);
    }

    #[test]
    fn histogram_snapshot_after_partial_expiry() {
        let mut h = SlidingHistogram::new(1000.0, 10);
        // Slow samples early, fast samples later.
        for i in 0..10 {
            h.record(i as f64 * 10.0, 500.0); // t in [0, 90]  -> slot 0
        }
        for i in 0..10 {
            h.record(500.0 + i as f64 * 10.0, 5.0); // t in [500, 590] -> slot 5
        }
        let both = h.snapshot(900.0);
        assert_eq!(both.count(), 20);
        assert_eq!(both.max(), 500.0);
        // At t=1000 slot 0 has expired; only the fast samples remain.
        let recent = h.snapshot(1000.0);
        assert_eq!(recent.count(), 10);
        assert_eq!(recent.max(), 5.0);
        assert_eq!(recent.quantile(0.95), 5.0);
        // At t=1500 everything has expired.
        assert!(h.snapshot(1500.0).is_empty());
    }

    #[test]
    fn histogram_slot_reuse_clears_old_samples() {
        let mut h = SlidingHistogram::new(100.0, 2);
        h.record(0.0, 1000.0); // epoch 0, position 0
        h.record(100.0, 1.0); // epoch 2, position 0 again
        let s = h.snapshot(100.0);
        assert_eq!(s.count(), 1);
        assert_eq!(s.max(), 1.0);
    }

    #[test]
    fn histogram_snapshot_into_reuses_output() {
        let mut h = SlidingHistogram::new(1000.0, 4);
        h.record(0.0, 3.0);
        let mut out = Histogram::new();
        out.record(999.0); // stale content must be cleared
        h.snapshot_into(10.0, &mut out);
        assert_eq!(out.count(), 1);
        assert_eq!(out.max(), 3.0);
    }

    #[test]
    fn histogram_backwards_time_and_invalid_values() {
        let mut h = SlidingHistogram::new(1000.0, 10);
        h.record(800.0, 10.0);
        h.record(100.0, 20.0); // backwards: latest slot
        h.record(f64::NAN, 30.0); // non-finite now: latest slot
        h.record(900.0, f64::NAN); // ignored sample, clock advances
        h.record(900.0, -1.0);
        let s = h.snapshot(0.0);
        assert_eq!(s.count(), 3);
        assert_eq!(h.snapshot(1799.0).count(), 3);
        assert_eq!(h.snapshot(1800.0).count(), 0);
    }

    #[test]
    fn histogram_sanitises_and_resets() {
        let h = SlidingHistogram::new(f64::NAN, usize::MAX);
        assert_eq!(h.window_ms(), DEFAULT_WINDOW_MS);
        assert_eq!(h.slots(), MAX_HISTOGRAM_SLOTS);
        assert_eq!(SlidingHistogram::new(10.0, 0).slots(), 1);

        let mut h = SlidingHistogram::new(1000.0, 10);
        h.record(5000.0, 1.0);
        h.reset();
        assert!(h.snapshot(5000.0).is_empty());
        h.record(0.0, 2.0);
        assert_eq!(h.snapshot(0.0).count(), 1);
    }

    #[test]
    fn histogram_expired_slots_free_their_storage() {
        let mut h = SlidingHistogram::new(1000.0, 5);
        assert_eq!(h.heap_bytes(), 0);
        // A spike across many octaves in the first slot.
        for v in [0.01, 0.1, 1.0, 10.0, 100.0, 1000.0, 10_000.0] {
            h.record(0.0, v);
        }
        let spike = h.heap_bytes();
        assert!(spike > 0);
        // Later slots see a narrow band; once the spike's slot expires its chunks are gone.
        for t in 1..=10 {
            h.record(t as f64 * 200.0, 5.0);
        }
        assert!(h.heap_bytes() < spike, "{} >= {spike}", h.heap_bytes());
        let s = h.snapshot(2000.0);
        assert_eq!(s.max(), 5.0);
        h.reset();
        assert_eq!(h.heap_bytes(), 0);
    }
}
