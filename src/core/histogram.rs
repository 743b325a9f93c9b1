//! Bounded-memory, log-bucketed latency histogram.
//!
//! Latency percentiles (p50/p95/p99) drive alerting and the adaptive flow
//! control, but keeping every sample would make memory grow with traffic.
//! This histogram stores counts in log-linear buckets instead, so memory is
//! bounded (at most about 17 KiB) no matter how many samples are recorded,
//! while every reported quantile stays within 1% of the true sample value.
//!
//! # Sparse storage
//!
//! Latencies of one connection sit in a narrow band, so most of the 2,177
//! buckets stay empty. The log buckets are stored in *chunks* of 16
//! consecutive buckets (a quarter of an octave), allocated when a sample first
//! falls in them: an empty histogram owns no bucket memory, a typical one a
//! few chunks of 128 bytes. An engine keeps several histograms per connection
//! (one per sliding-window slot), so this is what makes thousands of
//! connections cheap (e.g. one per WebSocket subscriber of the gateway).
//!
//! # Bucket layout
//!
//! * Bucket 0 is the *zero bucket*: values in `[0, 1e-3)` ms. It is reported
//!   as `0.0` (sub-microsecond precision is meaningless for UI latency).
//! * Buckets `1..=LOG_BUCKETS` are log-linear: each power of two above 1e-3 ms
//!   is split into 64 equal buckets, found from the float's exponent and top
//!   six mantissa bits. A bucket is reported by its midpoint, whose relative
//!   distance to any value in the bucket is at most 1/128 ≈ 0.78%.
//! * Values at or above `1e7` ms (≈ 2.8 hours) are clamped into the last
//!   bucket; the exact maximum is still tracked separately.
//!
//! # Invalid input
//!
//! Recording never panics. NaN, negative and infinite values are ignored
//! (they are not latencies, and counting them would poison `mean`/`max`).

use super::num;

/// Smallest value with its own geometric bucket; anything below counts as zero.
const MIN_VALUE: f64 = 1e-3;
/// Largest value covered by the geometric buckets; larger values are clamped.
const MAX_VALUE: f64 = 1e7;
/// Linear sub-buckets per power of two (log-linear layout, as in HdrHistogram): a bucket spans
/// at most 1/64 of its lower bound, so its midpoint is within 1/128 (0.78%) of any value in it.
/// The index comes from the float's exponent and top mantissa bits: no `ln`, which wasm32
/// computes in software, on the per-message path.
const SUB_BITS: u32 = 6;
const SUB_BUCKETS: usize = 1 << SUB_BITS;
/// Powers of two between MIN_VALUE and MAX_VALUE: 2^34 > 1e10.
const OCTAVES: usize = 34;
/// Number of log-linear buckets.
const LOG_BUCKETS: usize = OCTAVES * SUB_BUCKETS;
/// Total bucket count including the zero bucket.
#[cfg(test)]
const TOTAL_BUCKETS: usize = LOG_BUCKETS + 1;

/// Log buckets per chunk: the unit of allocation of the sparse store (a quarter of an octave).
const CHUNK: usize = 16;
/// Number of chunks covering the log buckets.
const CHUNKS: usize = LOG_BUCKETS / CHUNK;
/// Marks a chunk that has no storage yet (all its counts are zero).
const NO_CHUNK: u8 = u8::MAX;
// Chunk positions must fit the u8 index, with NO_CHUNK left over.
const _: () = assert!(LOG_BUCKETS % CHUNK == 0 && CHUNKS < NO_CHUNK as usize);

/// Bounded-memory latency histogram with at most 1% relative quantile error.
///
/// Why: the engine needs accurate tail latencies over unbounded streams
/// without unbounded memory; see the module docs for the bucket layout and
/// the sparse storage. All values are milliseconds.
///
/// ```
/// use stream_engine::core::histogram::Histogram;
///
/// let mut h = Histogram::new();
/// for v in 1..=100 {
///     h.record(v as f64);
/// }
/// assert!((h.quantile(0.99) - 99.0).abs() <= 0.99); // within 1%
/// assert_eq!(h.max(), 100.0); // exact
/// assert!(h.heap_bytes() < 4096); // 1..100 ms: a few chunks, not 2,177 buckets
/// ```
#[derive(Debug, Clone)]
pub struct Histogram {
    /// Count of the zero bucket (values below `MIN_VALUE`).
    zero: u64,
    /// For each chunk of `CHUNK` log buckets, its position in `chunks`, or `NO_CHUNK`.
    index: [u8; CHUNKS],
    /// Counts of the chunks that have been touched, in order of first use.
    chunks: Vec<[u64; CHUNK]>,
    /// Number of recorded samples (saturating).
    count: u64,
    /// Sum of recorded samples, for the mean.
    sum: f64,
    /// Exact smallest recorded sample (meaningless while `count == 0`).
    min: f64,
    /// Exact largest recorded sample (meaningless while `count == 0`).
    max: f64,
}

impl PartialEq for Histogram {
    /// Equal when they hold the same samples: same counts in every bucket (a chunk without
    /// storage counts as zeros, whatever the order chunks were allocated in), count, sum and
    /// extremes.
    fn eq(&self, other: &Self) -> bool {
        self.zero == other.zero
            && self.count == other.count
            && self.sum == other.sum
            && self.min == other.min
            && self.max == other.max
            && (0..CHUNKS).all(|c| {
                let zeros = [0; CHUNK];
                self.chunk(c).unwrap_or(&zeros) == other.chunk(c).unwrap_or(&zeros)
            })
    }
}

impl Default for Histogram {
    /// Same as [`Histogram::new`]; provided so the histogram can sit in
    /// `#[derive(Default)]` structs.
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    /// Creates an empty histogram. It allocates nothing: bucket storage grows a chunk at a time
    /// as samples arrive (see the module docs).
    pub fn new() -> Self {
        Self {
            zero: 0,
            index: [NO_CHUNK; CHUNKS],
            chunks: Vec::new(),
            count: 0,
            sum: 0.0,
            min: 0.0,
            max: 0.0,
        }
    }

    /// Bytes of bucket storage this histogram owns on the heap (not counting the struct itself,
    /// `size_of::<Histogram>()`): 128 per chunk allocated, at most about 17 KiB.
    pub fn heap_bytes(&self) -> usize {
        self.chunks.capacity() * core::mem::size_of::<[u64; CHUNK]>()
    }

    /// The counts of chunk `c`, or `None` when it has no storage.
    fn chunk(&self, c: usize) -> Option<&[u64; CHUNK]> {
        match self.index[c] {
            NO_CHUNK => None,
            pos => Some(&self.chunks[pos as usize]),
        }
    }

    /// The counts of chunk `c`, allocating them (zeroed) on first use.
    fn chunk_mut(&mut self, c: usize) -> &mut [u64; CHUNK] {
        let mut pos = self.index[c];
        if pos == NO_CHUNK {
            pos = self.chunks.len() as u8;
            // Grow by half (at least one chunk): few reallocations, little slack.
            if self.chunks.len() == self.chunks.capacity() {
                self.chunks.reserve_exact((self.chunks.len() / 2).max(1));
            }
            self.chunks.push([0; CHUNK]);
            self.index[c] = pos;
        }
        &mut self.chunks[pos as usize]
    }

    /// Adds `n` to bucket `idx` (0 is the zero bucket), saturating.
    fn add_to_bucket(&mut self, idx: usize, n: u64) {
        if idx == 0 {
            self.zero = self.zero.saturating_add(n);
        } else {
            let i = idx - 1;
            let slot = &mut self.chunk_mut(i / CHUNK)[i % CHUNK];
            *slot = slot.saturating_add(n);
        }
    }

    /// Records one sample of `v` milliseconds.
    ///
    /// NaN, negative and infinite values are ignored (see module docs).
    pub fn record(&mut self, v: f64) {
        self.record_n(v, 1);
    }

    /// Records `n` samples of the same value `v` at once, which lets callers
    /// account for batches without looping. `n == 0` and invalid values
    /// (NaN, negative, infinite) are ignored.
    pub fn record_n(&mut self, v: f64, n: u64) {
        if n == 0 || !v.is_finite() || v < 0.0 {
            return;
        }
        // Normalise -0.0 so min()/max() never report a negative zero.
        let v = if v == 0.0 { 0.0 } else { v };
        self.add_to_bucket(bucket_index(v), n);
        if self.count == 0 {
            self.min = v;
            self.max = v;
        } else {
            // Plain comparisons (v is finite here): `f64::min/max` are libm calls on wasm32.
            if v < self.min {
                self.min = v;
            }
            if v > self.max {
                self.max = v;
            }
        }
        self.count = self.count.saturating_add(n);
        self.sum += v * n as f64;
    }
    /// Number of recorded samples (saturates at `u64::MAX`).
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Sum of all recorded samples in milliseconds; may become `+inf` only
    /// if absurdly large values are recorded (it never becomes NaN).
    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// True when nothing has been recorded since creation or the last
    /// [`clear`](Histogram::clear), so callers can skip reporting.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Arithmetic mean of the samples, or `0.0` when empty.
    ///
    /// The result is clamped to `[min, max]`, so even if the running sum
    /// overflows to infinity the mean stays a finite, plausible value.
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let m = self.sum / self.count as f64;
        if m.is_nan() {
            return self.min;
        }
        num::clamp(m, self.min, self.max)
    }

    /// Exact smallest recorded sample, or `0.0` when empty.
    pub fn min(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.min
        }
    }

    /// Exact largest recorded sample, or `0.0` when empty.
    pub fn max(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.max
        }
    }

    /// Estimates the `q`-quantile (`q` in `[0, 1]`, e.g. `0.95` for p95).
    ///
    /// Uses the nearest-rank definition: the answer approximates the sample
    /// of rank `ceil(q * count)` (1-based) within 1% relative error (values
    /// below `1e-3` ms are reported as `0.0`). `q` is clamped to `[0, 1]`
    /// and NaN is treated as `0`; `q <= 0` returns the exact `min()`, `q >= 1`
    /// the exact `max()`. The result always lies in `[min(), max()]`, and is
    /// `0.0` for an empty histogram.
    pub fn quantile(&self, q: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let q = if q.is_nan() {
            0.0
        } else {
            num::clamp(q, 0.0, 1.0)
        };
        if q <= 0.0 {
            return self.min;
        }
        if q >= 1.0 {
            return self.max;
        }
        // `as u64` saturates, and the clamp keeps the rank in 1..=count.
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = self.zero;
        if seen >= rank {
            return num::clamp(bucket_value(0), self.min, self.max);
        }
        // Chunks in bucket order; chunks without storage hold nothing.
        for c in 0..CHUNKS {
            let Some(counts) = self.chunk(c) else {
                continue;
            };
            for (j, &n) in counts.iter().enumerate() {
                seen = seen.saturating_add(n);
                if seen >= rank {
                    return num::clamp(bucket_value(1 + c * CHUNK + j), self.min, self.max);
                }
            }
        }
        self.max
    }

    /// Adds all samples of `other` into `self`, exactly as if they had been
    /// recorded here; used to combine per-slot or per-connection histograms.
    pub fn merge(&mut self, other: &Histogram) {
        if other.count == 0 {
            return;
        }
        self.zero = self.zero.saturating_add(other.zero);
        for c in 0..CHUNKS {
            if let Some(src) = other.chunk(c) {
                // Skip chunks that were cleared: no need to allocate for zeros.
                if src.iter().all(|&n| n == 0) {
                    continue;
                }
                for (dst, &n) in self.chunk_mut(c).iter_mut().zip(src.iter()) {
                    *dst = dst.saturating_add(n);
                }
            }
        }
        if self.count == 0 {
            self.min = other.min;
            self.max = other.max;
        } else {
            self.min = self.min.min(other.min);
            self.max = self.max.max(other.max);
        }
        self.count = self.count.saturating_add(other.count);
        self.sum += other.sum;
    }

    /// Forgets all samples while keeping the bucket allocation, so a
    /// histogram can be reused (e.g. as the scratch of a snapshot) without
    /// allocating again; does no work at all when already empty.
    pub fn clear(&mut self) {
        if self.count == 0 {
            return;
        }
        for counts in &mut self.chunks {
            counts.fill(0);
        }
        self.zero = 0;
        self.count = 0;
        self.sum = 0.0;
        self.min = 0.0;
        self.max = 0.0;
    }

    /// Forgets all samples and frees the bucket storage, as if newly created.
    ///
    /// Why: a sliding window recycles its slots forever; clearing alone would let each slot keep
    /// every chunk it ever touched (a latency spike an hour ago), so recycled slots start empty.
    pub fn release(&mut self) {
        *self = Self::new();
    }
}

/// Maps a valid (finite, non-negative) value to its bucket index.
fn bucket_index(v: f64) -> usize {
    if v < MIN_VALUE {
        return 0;
    }
    if v >= MAX_VALUE {
        return LOG_BUCKETS;
    }
    // x >= 1 here, so its biased exponent is >= 1023.
    let bits = (v / MIN_VALUE).to_bits();
    let exp = ((bits >> 52) & 0x7ff).saturating_sub(1023) as usize;
    let sub = ((bits >> (52 - SUB_BITS)) as usize) & (SUB_BUCKETS - 1);
    1 + (exp * SUB_BUCKETS + sub).min(LOG_BUCKETS - 1)
}

/// Lower bound of log-linear bucket `i` (0-based, not counting the zero bucket).
fn bucket_lower(i: usize) -> f64 {
    let exp = (i / SUB_BUCKETS) as i32;
    let sub = (i % SUB_BUCKETS) as f64;
    MIN_VALUE * 2f64.powi(exp) * (1.0 + sub / SUB_BUCKETS as f64)
}

/// The representative value reported for a bucket: 0 for the zero bucket,
/// otherwise the midpoint of the bucket's bounds.
fn bucket_value(idx: usize) -> f64 {
    if idx == 0 {
        return 0.0;
    }
    let i = idx - 1;
    let lo = bucket_lower(i);
    let width = MIN_VALUE * 2f64.powi((i / SUB_BUCKETS) as i32) / SUB_BUCKETS as f64;
    lo + width / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tiny deterministic xorshift64* PRNG so tests need no external crates.
    struct XorShift(u64);

    impl XorShift {
        fn next_u64(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            x.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        /// Uniform in [0, 1).
        fn next_f64(&mut self) -> f64 {
            (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// Nearest-rank quantile of sorted data, the same definition the
    /// histogram approximates.
    fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
        let n = sorted.len() as u64;
        let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
        sorted[(rank - 1) as usize]
    }

    /// Every bucket's count, in bucket order (the zero bucket first), whatever the storage.
    fn dense(h: &Histogram) -> Vec<u64> {
        let mut out = vec![h.zero];
        for c in 0..CHUNKS {
            out.extend_from_slice(h.chunk(c).unwrap_or(&[0; CHUNK]));
        }
        assert_eq!(out.len(), TOTAL_BUCKETS);
        out
    }

    fn rel_err(estimate: f64, exact: f64) -> f64 {
        if exact == 0.0 {
            estimate.abs()
        } else {
            ((estimate - exact) / exact).abs()
        }
    }

    fn check_accuracy(values: &[f64]) {
        let mut h = Histogram::new();
        for &v in values {
            h.record(v);
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
        for &q in &[0.5, 0.9, 0.95, 0.99, 0.999] {
            let exact = exact_quantile(&sorted, q);
            let est = h.quantile(q);
            assert!(
                rel_err(est, exact) <= 0.01,
                "q={q} exact={exact} est={est} err={}",
                rel_err(est, exact)
            );
        }
        assert_eq!(h.count(), values.len() as u64);
        assert_eq!(h.min(), sorted[0]);
        assert_eq!(h.max(), *sorted.last().unwrap());
        let exact_mean = values.iter().sum::<f64>() / values.len() as f64;
        assert!(rel_err(h.mean(), exact_mean) < 1e-9);
    }

    #[test]
    fn constants_are_consistent() {
        assert!(MIN_VALUE * 2f64.powi(OCTAVES as i32) >= MAX_VALUE);
        assert!(MIN_VALUE * 2f64.powi(OCTAVES as i32 - 1) < MAX_VALUE);
        // Midpoint error bound is below 1%.
        assert!(0.5 / SUB_BUCKETS as f64 <= 0.01);
        assert_eq!(bucket_index(MIN_VALUE), 1);
        assert_eq!(bucket_lower(0), MIN_VALUE);
    }

    #[test]
    fn accuracy_uniform_0_to_1000() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let values: Vec<f64> = (0..50_000).map(|_| rng.next_f64() * 1000.0).collect();
        check_accuracy(&values);
    }

    #[test]
    fn accuracy_exponential() {
        let mut rng = XorShift(42);
        // Exponential with mean 50 ms via inverse transform.
        let values: Vec<f64> = (0..50_000)
            .map(|_| -50.0 * (1.0 - rng.next_f64()).ln())
            .collect();
        check_accuracy(&values);
    }

    #[test]
    fn accuracy_heavy_tail() {
        let mut rng = XorShift(7);
        // Pareto-like: most values small, a long tail up to ~1e6.
        let values: Vec<f64> = (0..50_000)
            .map(|_| 1.0 / (1.0 - rng.next_f64() * 0.999_999))
            .collect();
        check_accuracy(&values);
    }

    #[test]
    fn accuracy_wide_log_uniform() {
        let mut rng = XorShift(12345);
        // Log-uniform between 1e-3 and 1e7 exercises every bucket region.
        let values: Vec<f64> = (0..50_000)
            .map(|_| 10f64.powf(-3.0 + 10.0 * rng.next_f64()))
            .filter(|v| *v < MAX_VALUE)
            .collect();
        check_accuracy(&values);
    }

    #[test]
    fn accuracy_constant() {
        let values = vec![42.0; 1000];
        check_accuracy(&values);
        let mut h = Histogram::new();
        for v in values {
            h.record(v);
        }
        // Clamping to [min, max] makes a constant stream exact.
        assert_eq!(h.quantile(0.5), 42.0);
        assert_eq!(h.quantile(0.99), 42.0);
        assert_eq!(h.mean(), 42.0);
    }

    #[test]
    fn every_bucket_boundary_within_one_percent() {
        // Values exactly at and just inside bucket boundaries.
        for i in 0..LOG_BUCKETS {
            for &v in &[
                bucket_lower(i),
                bucket_lower(i) * 1.000_000_1,
                bucket_lower(i + 1) * 0.999_999_9,
            ] {
                if v >= MAX_VALUE {
                    continue;
                }
                let est = bucket_value(bucket_index(v));
                assert!(rel_err(est, v) <= 0.01, "v={v} est={est}");
            }
        }
    }

    #[test]
    fn quantile_never_outside_min_max() {
        let mut h = Histogram::new();
        h.record(100.0);
        h.record(100.5);
        for i in 0..=100 {
            let q = i as f64 / 100.0;
            let v = h.quantile(q);
            assert!((100.0..=100.5).contains(&v), "q={q} v={v}");
        }
    }

    #[test]
    fn quantile_extremes_are_exact() {
        let mut h = Histogram::new();
        for v in [3.3, 7.7, 123.456, 999.9] {
            h.record(v);
        }
        assert_eq!(h.quantile(0.0), 3.3);
        assert_eq!(h.quantile(1.0), 999.9);
        assert_eq!(h.quantile(-5.0), 3.3);
        assert_eq!(h.quantile(5.0), 999.9);
        assert_eq!(h.quantile(f64::NAN), 3.3);
        assert_eq!(h.quantile(f64::INFINITY), 999.9);
        assert_eq!(h.quantile(f64::NEG_INFINITY), 3.3);
    }

    #[test]
    fn empty_histogram_reports_zeros() {
        let h = Histogram::new();
        assert!(h.is_empty());
        assert_eq!(h.count(), 0);
        assert_eq!(h.mean(), 0.0);
        assert_eq!(h.min(), 0.0);
        assert_eq!(h.max(), 0.0);
        assert_eq!(h.sum(), 0.0);
        for q in [0.0, 0.5, 0.99, 1.0, f64::NAN] {
            assert_eq!(h.quantile(q), 0.0);
        }
    }

    #[test]
    fn invalid_values_are_ignored() {
        let mut h = Histogram::new();
        h.record(f64::NAN);
        h.record(-1.0);
        h.record(f64::INFINITY);
        h.record(f64::NEG_INFINITY);
        h.record(-f64::MIN_POSITIVE);
        h.record_n(5.0, 0);
        assert!(h.is_empty());
        assert_eq!(h, Histogram::new());
        h.record(5.0);
        h.record(f64::NAN);
        assert_eq!(h.count(), 1);
        assert_eq!(h.max(), 5.0);
    }

    #[test]
    fn tiny_values_go_to_zero_bucket() {
        let mut h = Histogram::new();
        h.record(0.0);
        h.record(-0.0);
        h.record(1e-9);
        h.record(5e-4);
        assert_eq!(h.count(), 4);
        assert_eq!(h.min(), 0.0);
        assert!(h.min().is_sign_positive());
        assert_eq!(h.max(), 5e-4);
        assert_eq!(h.quantile(0.5), 0.0);
        // Zero-bucket report 0.0 is clamped up to min when min > 0.
        let mut g = Histogram::new();
        g.record(5e-4);
        g.record(6e-4);
        assert_eq!(g.quantile(0.5), 5e-4);
    }

    #[test]
    fn huge_values_clamp_to_last_bucket_but_keep_exact_max() {
        let mut h = Histogram::new();
        h.record(1e12);
        h.record(1e7);
        h.record_n(f64::MAX, 2);
        assert_eq!(h.count(), 4);
        assert_eq!(h.max(), f64::MAX);
        assert_eq!(h.min(), 1e7);
        let p50 = h.quantile(0.5);
        assert!((1e7..=f64::MAX).contains(&p50));
        // Sum overflowed to +inf, but mean stays finite and in range.
        assert!(h.sum().is_infinite());
        let m = h.mean();
        assert!(m.is_finite() && m >= h.min() && m <= h.max());
    }

    #[test]
    fn record_n_matches_repeated_record() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        a.record_n(12.5, 10);
        a.record_n(300.0, 5);
        for _ in 0..10 {
            b.record(12.5);
        }
        for _ in 0..5 {
            b.record(300.0);
        }
        assert_eq!(a, b);
        assert_eq!(a.count(), 15);
        assert_eq!(a.sum(), 125.0 + 1500.0);
    }

    #[test]
    fn record_n_saturates_instead_of_overflowing() {
        let mut h = Histogram::new();
        h.record_n(1.0, u64::MAX);
        h.record_n(2.0, u64::MAX);
        assert_eq!(h.count(), u64::MAX);
        let p = h.quantile(0.99);
        assert!((1.0..=2.0).contains(&p));
        assert!(h.mean().is_finite());
    }

    #[test]
    fn merge_equals_recording_both() {
        let mut rng = XorShift(99);
        let xs: Vec<f64> = (0..5000).map(|_| rng.next_f64() * 200.0).collect();
        let ys: Vec<f64> = (0..3000).map(|_| 100.0 + rng.next_f64() * 900.0).collect();
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        let mut both = Histogram::new();
        for &x in &xs {
            a.record(x);
            both.record(x);
        }
        for &y in &ys {
            b.record(y);
            both.record(y);
        }
        a.merge(&b);
        assert_eq!(dense(&a), dense(&both));
        assert_eq!(a.count(), both.count());
        assert_eq!(a.min(), both.min());
        assert_eq!(a.max(), both.max());
        assert!(rel_err(a.sum(), both.sum()) < 1e-12);
        for q in [0.1, 0.5, 0.95, 0.99] {
            assert_eq!(a.quantile(q), both.quantile(q));
        }
    }

    #[test]
    fn merge_with_empty_sides() {
        let mut a = Histogram::new();
        let empty = Histogram::new();
        a.merge(&empty);
        assert!(a.is_empty());
        let mut b = Histogram::new();
        b.record(7.0);
        b.record(9.0);
        a.merge(&b);
        assert_eq!(a, b);
        a.merge(&empty);
        assert_eq!(a, b);
        // Merge into non-empty keeps exact extremes.
        let mut c = Histogram::new();
        c.record(1.0);
        c.merge(&b);
        assert_eq!(c.min(), 1.0);
        assert_eq!(c.max(), 9.0);
        assert_eq!(c.count(), 3);
    }

    #[test]
    fn clear_resets_everything_and_keeps_allocation() {
        let mut h = Histogram::new();
        for i in 0..100 {
            h.record(i as f64);
        }
        let ptr = h.chunks.as_ptr();
        let bytes = h.heap_bytes();
        assert!(bytes > 0);
        h.clear();
        assert_eq!(h, Histogram::new());
        assert_eq!(h.chunks.as_ptr(), ptr);
        assert_eq!(h.heap_bytes(), bytes);
        h.clear(); // clearing an empty histogram is a no-op
        assert!(h.is_empty());
        h.record(3.0);
        assert_eq!(h.min(), 3.0);
        assert_eq!(h.max(), 3.0);
    }

    #[test]
    fn default_is_empty() {
        assert_eq!(Histogram::default(), Histogram::new());
    }

    #[test]
    fn small_sample_quantiles_use_nearest_rank() {
        let mut h = Histogram::new();
        for v in [10.0, 20.0, 30.0, 40.0] {
            h.record(v);
        }
        // rank ceil(0.5*4)=2 -> 20; ceil(0.75*4)=3 -> 30; ceil(0.76*4)=4 -> 40
        assert!(rel_err(h.quantile(0.5), 20.0) <= 0.01);
        assert!(rel_err(h.quantile(0.75), 30.0) <= 0.01);
        assert!(rel_err(h.quantile(0.76), 40.0) <= 0.01);
        assert!(rel_err(h.quantile(0.01), 10.0) <= 0.01);
    }

    #[test]
    fn empty_histogram_owns_no_bucket_memory() {
        let mut h = Histogram::new();
        assert_eq!(h.heap_bytes(), 0);
        h.record(f64::NAN);
        h.record(0.0); // the zero bucket is inline
        assert_eq!(h.heap_bytes(), 0);
    }

    #[test]
    fn narrow_band_allocates_only_its_chunks() {
        // 5,000 samples between 20 and 30 ms: [16, 32) ms is one octave, 4 chunks at most.
        let mut rng = XorShift(5);
        let mut h = Histogram::new();
        for _ in 0..5000 {
            h.record(20.0 + rng.next_f64() * 10.0);
        }
        let used = (0..CHUNKS).filter(|&c| h.chunk(c).is_some()).count();
        assert!((1..=4).contains(&used), "{used} chunks");
        assert!(
            h.heap_bytes() <= 4 * CHUNK * 8 * 3 / 2,
            "{} bytes",
            h.heap_bytes()
        );
        // The dense layout would have needed every bucket.
        assert!(h.heap_bytes() * 20 < TOTAL_BUCKETS * 8);
    }

    #[test]
    fn worst_case_memory_is_the_dense_size() {
        // One sample in every bucket below MAX_VALUE (above it, values clamp into the last
        // bucket) allocates every chunk but the two that only clamped values could reach.
        let mut h = Histogram::new();
        let mut recorded = 0;
        for i in 0..LOG_BUCKETS {
            if bucket_value(i + 1) < MAX_VALUE {
                h.record(bucket_value(i + 1));
                recorded += 1;
            }
        }
        h.record(MAX_VALUE);
        assert_eq!(h.chunks.len(), CHUNKS - 2);
        assert!(h.heap_bytes() <= (CHUNKS + CHUNKS / 2) * CHUNK * 8);
        let d = dense(&h);
        assert_eq!(d[1..].iter().filter(|&&n| n == 1).count(), recorded + 1);
        assert_eq!(d.iter().sum::<u64>(), recorded as u64 + 1);
    }

    #[test]
    fn release_frees_and_keeps_working() {
        let mut h = Histogram::new();
        for v in [1.0, 10.0, 100.0, 1000.0] {
            h.record(v);
        }
        assert!(h.heap_bytes() > 0);
        h.release();
        assert_eq!(h.heap_bytes(), 0);
        assert_eq!(h, Histogram::new());
        h.record(7.0);
        assert_eq!(h.quantile(0.5), 7.0);
    }

    #[test]
    fn equality_ignores_chunk_order_and_cleared_chunks() {
        let mut a = Histogram::new();
        a.record(1.0);
        a.record(1000.0);
        let mut b = Histogram::new();
        b.record(1000.0);
        b.record(1.0);
        // Same samples, chunks allocated in the opposite order.
        assert_eq!(a, b);
        // A cleared histogram with storage equals a fresh one, and merging it allocates nothing.
        a.clear();
        assert_eq!(a, Histogram::new());
        let mut c = Histogram::new();
        c.merge(&a);
        assert_eq!(c.heap_bytes(), 0);
        b.record(2.0);
        assert_ne!(a, b);
    }

    #[test]
    fn quantiles_match_dense_walk() {
        // The sparse walk must give the bucket a dense walk over every count would.
        let mut rng = XorShift(77);
        let mut h = Histogram::new();
        for _ in 0..20_000 {
            h.record(10f64.powf(-4.0 + 9.0 * rng.next_f64()));
        }
        let d = dense(&h);
        for q in [0.01, 0.1, 0.5, 0.9, 0.99, 0.999] {
            let rank = ((q * h.count() as f64).ceil() as u64).clamp(1, h.count());
            let mut seen = 0u64;
            let idx = d.iter().position(|&n| {
                seen += n;
                seen >= rank
            });
            let expected = num::clamp(bucket_value(idx.unwrap()), h.min(), h.max());
            assert_eq!(h.quantile(q), expected, "q={q}");
        }
    }
}
