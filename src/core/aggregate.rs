//! Windowed aggregation by event time: tumbling and sliding windows, grouped by a key, with
//! count, sum, min, max, mean, p50 and p95.
//!
//! Why here: which window an event lands in, when a window closes and which events are late are
//! decisions, so they live in plain Rust and are tested with explicit times (no clock is read;
//! "now" is the event time itself).
//!
//! # Model
//! - A window is `[start, start + size)`; windows start at multiples of `slide` (`slide == size`
//!   for tumbling windows). An event at time `t` belongs to every window containing `t`.
//! - The *watermark* is the largest event time seen. A window closes, and its results are
//!   emitted (one per key, in key order), once `end + allowed_lateness <= watermark`.
//! - An event whose windows have all closed is **late**: it is counted and handed back (never
//!   silently lost). An event that still has an open window but missed an already closed one is
//!   counted in `late_window_misses`.
//! - [`Aggregator::flush`] closes every open window (end of stream, or a partition gone idle).
//!
//! # Accounting by token
//! Each event carries a `u32` token (a slot in the caller's store). A token is *released* once
//! every window it was added to has been emitted, so a caller can acknowledge an input only when
//! its effect is in an emitted result. Every token added ends up exactly once in
//! [`Aggregator::take_released`], or is refused at once as late or invalid.
//!
//! # Memory
//! A group (window × key) keeps its raw values up to [`EXACT_SAMPLES`] (quantiles are then exact,
//! nearest rank); beyond that it moves them into two [`Histogram`]s (positive values and the
//! magnitudes of negative ones; <= 1% relative error for magnitudes in `[1e-3, 1e7]`). Tokens
//! are kept per group until it is emitted.
//!
//! ```
//! use stream_engine::core::aggregate::{Aggregator, WindowOptions, Added};
//! let mut agg = Aggregator::new(WindowOptions::tumbling(1000.0)).unwrap();
//! assert_eq!(agg.add(1, "cpu", 100.0, 2.0), Added::Taken);
//! assert_eq!(agg.add(2, "cpu", 900.0, 4.0), Added::Taken);
//! assert_eq!(agg.add(3, "cpu", 1000.0, 8.0), Added::Taken); // closes [0, 1000)
//! let r = agg.take_results();
//! assert_eq!((r[0].key, r[0].count, r[0].sum, r[0].mean), ("cpu", 2, 6.0, 3.0));
//! assert_eq!(agg.take_released(), vec![1, 2]);
//! ```

use std::collections::BTreeMap;

use super::num::js;

use crate::core::config::ConfigError;
use crate::core::histogram::Histogram;

/// Raw values a group keeps before switching to histograms (exact quantiles up to this count).
pub const EXACT_SAMPLES: usize = 256;

/// Most windows one event may belong to (`size / slide`), so one event costs bounded work.
pub const MAX_WINDOWS_PER_EVENT: f64 = 1000.0;

/// Largest event time magnitude accepted, ms (about 31,000 years): with `slide >= MIN_SPAN`,
/// window indices stay far inside `i64`, so no arithmetic on them can overflow.
pub const MAX_TIME: f64 = 1e15;

/// Smallest window size, slide or bucket, ms.
pub const MIN_SPAN: f64 = 1e-3;

/// A finite event time within +-[`MAX_TIME`] (NaN is not).
pub fn valid_time(t: f64) -> bool {
    t.is_finite() && t.abs() <= MAX_TIME
}

/// Validated window options.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowOptions {
    /// Window length in ms (> 0).
    pub size: f64,
    /// Distance between window starts in ms (`0 < slide <= size`); equal to `size` for tumbling.
    pub slide: f64,
    /// How long after a window's end (in event time) it stays open for late events, ms (>= 0).
    pub allowed_lateness: f64,
}

impl WindowOptions {
    /// Tumbling windows of `size` ms, no allowed lateness.
    pub fn tumbling(size: f64) -> Self {
        WindowOptions {
            size,
            slide: size,
            allowed_lateness: 0.0,
        }
    }

    /// Sliding windows of `size` ms starting every `slide` ms, no allowed lateness.
    pub fn sliding(size: f64, slide: f64) -> Self {
        WindowOptions {
            size,
            slide,
            allowed_lateness: 0.0,
        }
    }

    /// The same options with `allowed_lateness` ms of allowed lateness.
    pub fn with_lateness(mut self, allowed_lateness: f64) -> Self {
        self.allowed_lateness = allowed_lateness;
        self
    }

    /// Checks the options; errors name the field (`size`, `slide`, `allowedLateness`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.size.is_finite() || self.size < MIN_SPAN || self.size > MAX_TIME {
            return Err(ConfigError::range(format!(
                "size must be a finite number in [{}, {}] (ms), got {}",
                js(MIN_SPAN),
                js(MAX_TIME),
                js(self.size)
            )));
        }
        if !self.slide.is_finite() || self.slide < MIN_SPAN || self.slide > self.size {
            return Err(ConfigError::range(format!(
                "slide must be >= {} and <= size (ms), got {}",
                js(MIN_SPAN),
                js(self.slide)
            )));
        }
        if self.size / self.slide > MAX_WINDOWS_PER_EVENT {
            return Err(ConfigError::range(format!(
                "slide must be at least size / {}, got {}",
                js(MAX_WINDOWS_PER_EVENT),
                js(self.slide)
            )));
        }
        if !self.allowed_lateness.is_finite()
            || self.allowed_lateness < 0.0
            || self.allowed_lateness > MAX_TIME
        {
            return Err(ConfigError::range(format!(
                "allowedLateness must be a finite number >= 0 (ms), got {}",
                js(self.allowed_lateness)
            )));
        }
        Ok(())
    }
}

/// What [`Aggregator::add`] did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// Added to at least one open window; its token is released later.
    Taken,
    /// Every window of the event has closed: counted as late, the token is not kept.
    Late,
    /// The time or value is not a finite number: counted as invalid, the token is not kept.
    Invalid,
}

/// One emitted result: the statistics of one key in one window.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowResult<K = String> {
    /// The group key.
    pub key: K,
    /// Window start (inclusive), ms of event time.
    pub start: f64,
    /// Window end (exclusive).
    pub end: f64,
    /// Number of events.
    pub count: u64,
    /// Sum of values.
    pub sum: f64,
    /// Smallest value (exact).
    pub min: f64,
    /// Largest value (exact).
    pub max: f64,
    /// Mean value.
    pub mean: f64,
    /// Median (nearest rank; exact up to [`EXACT_SAMPLES`] values, else within 1%).
    pub p50: f64,
    /// 95th percentile (same precision as `p50`).
    pub p95: f64,
    /// Tokens of the events in this window, in arrival order (lineage: which inputs it covers).
    pub tokens: Vec<u32>,
}

/// Counters of everything the aggregator has seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AggregateStats {
    /// Events added to at least one window.
    pub taken: u64,
    /// Events refused as late (all their windows had closed).
    pub late: u64,
    /// Events refused for a non-finite time or value.
    pub invalid: u64,
    /// Window memberships missed by taken events because that window had closed already.
    pub late_window_misses: u64,
    /// Results emitted.
    pub results: u64,
    /// Tokens released.
    pub released: u64,
}

/// Values of one group, exact while small.
#[derive(Debug, Clone)]
enum Values {
    Exact(Vec<f64>),
    /// Positive values (and zeros), and magnitudes of negative values.
    Hist(Box<(Histogram, Histogram)>),
}

#[derive(Debug, Clone)]
struct Group {
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    values: Values,
    tokens: Vec<u32>,
}

impl Group {
    fn new() -> Self {
        Group {
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            values: Values::Exact(Vec::new()),
            tokens: Vec::new(),
        }
    }

    fn add(&mut self, token: u32, v: f64) {
        self.count += 1;
        self.sum += v;
        if v < self.min {
            self.min = v;
        }
        if v > self.max {
            self.max = v;
        }
        self.tokens.push(token);
        match &mut self.values {
            Values::Exact(xs) if xs.len() < EXACT_SAMPLES => xs.push(v),
            Values::Exact(xs) => {
                let mut h = Box::new((Histogram::new(), Histogram::new()));
                for &x in xs.iter().chain(std::iter::once(&v)) {
                    record(&mut h, x);
                }
                self.values = Values::Hist(h);
            }
            Values::Hist(h) => record(h, v),
        }
    }

    /// Nearest-rank quantile: the value of rank `ceil(q * count)`.
    fn quantile(&self, q: f64) -> f64 {
        let n = self.count;
        if n == 0 {
            return 0.0;
        }
        let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
        let v = match &self.values {
            Values::Exact(xs) => {
                let mut s = xs.clone();
                s.sort_by(|a, b| a.total_cmp(b));
                s[(rank - 1) as usize]
            }
            Values::Hist(h) => {
                let (pos, neg) = (&h.0, &h.1);
                let n_neg = neg.count();
                if rank <= n_neg {
                    // Negatives sorted ascending are magnitudes descending.
                    -rank_value(neg, n_neg - rank + 1)
                } else {
                    rank_value(pos, rank - n_neg)
                }
            }
        };
        v.clamp(self.min, self.max)
    }

    fn into_result<K>(self, key: K, start: f64, end: f64) -> WindowResult<K> {
        WindowResult {
            key,
            start,
            end,
            count: self.count,
            sum: self.sum,
            min: self.min,
            max: self.max,
            mean: (self.sum / self.count as f64).clamp(self.min, self.max),
            p50: self.quantile(0.5),
            p95: self.quantile(0.95),
            tokens: self.tokens,
        }
    }
}

fn record(h: &mut (Histogram, Histogram), v: f64) {
    if v < 0.0 {
        h.1.record(-v);
    } else {
        h.0.record(v);
    }
}

/// The value of 1-based `rank` in a histogram (its quantile asks for `ceil(q * count)`).
fn rank_value(h: &Histogram, rank: u64) -> f64 {
    h.quantile((rank as f64 - 0.5) / h.count() as f64)
}

/// Event-time window aggregator over events grouped by a key of type `K` (a `String`, a
/// `&str`, or an interned id as the wasm layer uses). See the module docs.
#[derive(Debug, Clone)]
pub struct Aggregator<K = String> {
    opts: WindowOptions,
    /// Open windows by index `k` (window start = `k * slide`), then groups by key.
    windows: BTreeMap<i64, BTreeMap<K, Group>>,
    /// Largest event time seen (`-inf` before the first event).
    watermark: f64,
    /// Windows with index below this have been closed (emitted or never opened).
    closed_below: i64,
    /// How many open windows each token is still in.
    pending: BTreeMap<u32, u32>,
    results: Vec<WindowResult<K>>,
    released: Vec<u32>,
    stats: AggregateStats,
}

impl<K: Ord + Clone> Aggregator<K> {
    /// Creates an aggregator; errors name the bad option.
    pub fn new(opts: WindowOptions) -> Result<Self, ConfigError> {
        opts.validate()?;
        Ok(Aggregator {
            opts,
            windows: BTreeMap::new(),
            watermark: f64::NEG_INFINITY,
            closed_below: i64::MIN,
            pending: BTreeMap::new(),
            results: Vec::new(),
            released: Vec::new(),
            stats: AggregateStats::default(),
        })
    }

    /// The options in use.
    pub fn options(&self) -> WindowOptions {
        self.opts
    }

    /// Adds an event with token `token`, group `key`, event time `time` (ms) and `value`.
    /// Advances the watermark, which may close windows (see [`Aggregator::take_results`]).
    /// A time beyond +-[`MAX_TIME`] or a non-finite value is invalid.
    pub fn add(&mut self, token: u32, key: K, time: f64, value: f64) -> Added {
        if !valid_time(time) || !value.is_finite() {
            self.stats.invalid += 1;
            return Added::Invalid;
        }
        let (first, last) = self.indices(time);
        if last < self.closed_below {
            self.stats.late += 1;
            return Added::Late;
        }
        let first_open = first.max(self.closed_below);
        self.stats.late_window_misses += (first_open - first) as u64;
        let mut n = 0u32;
        for k in first_open..=last {
            self.windows
                .entry(k)
                .or_default()
                .entry(key.clone())
                .or_insert_with(Group::new)
                .add(token, value);
            n += 1;
        }
        *self.pending.entry(token).or_insert(0) += n;
        self.stats.taken += 1;
        if time > self.watermark {
            self.watermark = time;
            self.close_until(time);
        }
        Added::Taken
    }

    /// Advances the watermark to `time` without an event (e.g. a heartbeat carrying event time),
    /// closing the windows it passes. A time below the watermark changes nothing.
    pub fn advance(&mut self, time: f64) {
        if valid_time(time) && time > self.watermark {
            self.watermark = time;
            self.close_until(time);
        }
    }

    /// Closes every open window now (end of stream, or an idle partition). Later events for
    /// those windows are late.
    pub fn flush(&mut self) {
        if let Some((&k, _)) = self.windows.iter().next_back() {
            self.close_windows_below(k.saturating_add(1));
        }
    }

    /// Results emitted since the last call, in window order, then key order.
    pub fn take_results(&mut self) -> Vec<WindowResult<K>> {
        std::mem::take(&mut self.results)
    }

    /// Tokens whose every window has been emitted since the last call (in emission order).
    pub fn take_released(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.released)
    }

    /// The counters.
    pub fn stats(&self) -> AggregateStats {
        self.stats
    }

    /// Largest event time seen, or `-inf`.
    pub fn watermark(&self) -> f64 {
        self.watermark
    }

    /// Tokens held in open windows (not yet released).
    pub fn held(&self) -> usize {
        self.pending.len()
    }

    /// Open windows.
    pub fn open_windows(&self) -> usize {
        self.windows.len()
    }

    /// First and last window index containing `t`.
    fn indices(&self, t: f64) -> (i64, i64) {
        let last = (t / self.opts.slide).floor();
        // Windows with start > t - size contain t.
        let mut first = ((t - self.opts.size) / self.opts.slide).floor() + 1.0;
        if first * self.opts.slide + self.opts.size <= t {
            first += 1.0; // float rounding at an exact boundary
        }
        let first = first.min(last);
        (clamp_i64(first), clamp_i64(last))
    }

    fn window_end(&self, k: i64) -> f64 {
        k as f64 * self.opts.slide + self.opts.size
    }

    fn close_until(&mut self, watermark: f64) {
        // Window k is closed once end(k) + lateness <= watermark.
        let horizon = watermark - self.opts.allowed_lateness - self.opts.size;
        let mut below = clamp_i64((horizon / self.opts.slide).floor()).saturating_add(1);
        // Correct float rounding at the boundary in either direction.
        while below > i64::MIN
            && self.window_end(below - 1) + self.opts.allowed_lateness > watermark
        {
            below -= 1;
        }
        while below < i64::MAX && self.window_end(below) + self.opts.allowed_lateness <= watermark {
            below += 1;
        }
        if below > self.closed_below {
            self.close_windows_below(below);
        }
    }

    fn close_windows_below(&mut self, below: i64) {
        while let Some((&k, _)) = self.windows.iter().next() {
            if k >= below {
                break;
            }
            let groups = self.windows.remove(&k).unwrap_or_default();
            let (start, end) = (k as f64 * self.opts.slide, self.window_end(k));
            for (key, g) in groups {
                let r = g.into_result(key, start, end);
                self.stats.results += 1;
                for &t in &r.tokens {
                    if let Some(n) = self.pending.get_mut(&t) {
                        *n -= 1;
                        if *n == 0 {
                            self.pending.remove(&t);
                            self.released.push(t);
                            self.stats.released += 1;
                        }
                    }
                }
                self.results.push(r);
            }
        }
        if below > self.closed_below {
            self.closed_below = below;
        }
    }
}

fn clamp_i64(x: f64) -> i64 {
    // `as` saturates; NaN cannot reach here (times are finite).
    x as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(rs: &[WindowResult<&str>]) -> Vec<(String, f64, u64)> {
        rs.iter()
            .map(|r| (r.key.to_string(), r.start, r.count))
            .collect()
    }

    #[test]
    fn tumbling_windows_group_by_key_and_close_on_the_watermark() {
        let mut a = Aggregator::new(WindowOptions::tumbling(1000.0)).unwrap();
        a.add(1, "b", 10.0, 1.0);
        a.add(2, "a", 20.0, 3.0);
        a.add(3, "a", 999.0, 5.0);
        assert!(
            a.take_results().is_empty(),
            "nothing closes before the watermark passes 1000"
        );
        a.add(4, "a", 1000.0, 7.0);
        let r = a.take_results();
        assert_eq!(ids(&r), vec![("a".into(), 0.0, 2), ("b".into(), 0.0, 1)]);
        assert_eq!(
            (r[0].sum, r[0].min, r[0].max, r[0].mean),
            (8.0, 3.0, 5.0, 4.0)
        );
        assert_eq!(r[0].end, 1000.0);
        assert_eq!(
            (r[0].tokens.clone(), r[1].tokens.clone()),
            (vec![2, 3], vec![1])
        );
        assert_eq!(a.take_released(), vec![2, 3, 1]);
        assert_eq!(a.held(), 1);
        a.flush();
        assert_eq!(ids(&a.take_results()), vec![("a".into(), 1000.0, 1)]);
        assert_eq!(a.take_released(), vec![4]);
    }

    #[test]
    fn sliding_windows_count_an_event_in_every_window_containing_it() {
        let mut a = Aggregator::new(WindowOptions::sliding(1000.0, 250.0)).unwrap();
        a.add(1, "k", 600.0, 1.0); // windows starting at -250, 0, 250, 500
        a.flush();
        let r = a.take_results();
        let starts: Vec<f64> = r.iter().map(|r| r.start).collect();
        assert_eq!(starts, vec![-250.0, 0.0, 250.0, 500.0]);
        assert!(r.iter().all(|r| r.start <= 600.0 && 600.0 < r.end));
        // Released only once, after its last window.
        assert_eq!(a.take_released(), vec![1]);
    }

    #[test]
    fn sliding_token_is_released_only_after_its_last_window() {
        let mut a = Aggregator::new(WindowOptions::sliding(1000.0, 500.0)).unwrap();
        a.add(1, "k", 700.0, 1.0); // windows [0,1000) and [500,1500)
        a.add(2, "k", 1200.0, 1.0); // closes [0,1000)? no: watermark 1200 >= 1000 -> yes
        assert_eq!(ids(&a.take_results()), vec![("k".into(), 0.0, 1)]);
        assert!(
            a.take_released().is_empty(),
            "token 1 is still in [500,1500)"
        );
        a.add(3, "k", 1500.0, 1.0);
        assert_eq!(ids(&a.take_results()), vec![("k".into(), 500.0, 2)]);
        assert_eq!(a.take_released(), vec![1]);
    }

    #[test]
    fn late_events_are_counted_and_refused_not_lost() {
        let mut a = Aggregator::new(WindowOptions::tumbling(100.0).with_lateness(50.0)).unwrap();
        assert_eq!(a.add(1, "k", 10.0, 1.0), Added::Taken);
        assert_eq!(a.add(2, "k", 140.0, 1.0), Added::Taken);
        assert!(a.take_results().is_empty(), "[0,100) stays open until 150");
        assert_eq!(
            a.add(3, "k", 99.0, 1.0),
            Added::Taken,
            "within allowed lateness"
        );
        assert_eq!(a.add(4, "k", 150.0, 1.0), Added::Taken);
        assert_eq!(ids(&a.take_results()), vec![("k".into(), 0.0, 2)]);
        assert_eq!(a.add(5, "k", 50.0, 1.0), Added::Late);
        let s = a.stats();
        assert_eq!((s.taken, s.late, s.invalid), (4, 1, 0));
        a.flush();
        a.take_results();
        let mut rel = a.take_released();
        rel.sort();
        assert_eq!(
            rel,
            vec![1, 2, 3, 4],
            "every taken token released once, the late one never"
        );
    }

    #[test]
    fn partially_late_sliding_event_joins_its_open_windows() {
        let mut a = Aggregator::new(WindowOptions::sliding(100.0, 50.0)).unwrap();
        a.add(1, "k", 120.0, 1.0); // closes windows ending <= 120: [0,100)
        a.take_results();
        assert_eq!(
            a.add(2, "k", 60.0, 1.0),
            Added::Taken,
            "[50,150) is still open"
        );
        assert_eq!(a.stats().late_window_misses, 1, "it missed [0,100)");
    }

    #[test]
    fn invalid_times_and_values_are_refused_and_counted() {
        let mut a = Aggregator::new(WindowOptions::tumbling(10.0)).unwrap();
        assert_eq!(a.add(1, "k", f64::NAN, 1.0), Added::Invalid);
        assert_eq!(a.add(2, "k", 1.0, f64::INFINITY), Added::Invalid);
        assert_eq!(a.add(3, "k", 1e308, 1.0), Added::Invalid);
        assert_eq!(a.add(4, "k", -1e16, 1.0), Added::Invalid);
        assert_eq!(a.stats().invalid, 4);
        assert_eq!(a.held(), 0);
    }

    #[test]
    fn extreme_but_valid_times_and_spans_never_overflow() {
        for (size, slide) in [
            (MIN_SPAN, MIN_SPAN),
            (MAX_TIME, MAX_TIME),
            (1.0, MIN_SPAN * 1000.0),
        ] {
            let mut a =
                Aggregator::new(WindowOptions::sliding(size, slide).with_lateness(MAX_TIME))
                    .unwrap();
            for (i, t) in [-MAX_TIME, MAX_TIME, 0.0, -MAX_TIME, MAX_TIME]
                .into_iter()
                .enumerate()
            {
                a.add(i as u32, "k", t, 1.0);
                a.advance(t);
            }
            a.advance(MAX_TIME);
            a.flush();
            let s = a.stats();
            assert_eq!(s.taken + s.late, 5);
            assert_eq!(s.released, s.taken);
            assert_eq!(a.held(), 0);
        }
    }

    #[test]
    fn options_are_validated_naming_the_field() {
        let e = Aggregator::<u32>::new(WindowOptions::tumbling(0.0)).unwrap_err();
        assert!(e.message.starts_with("size"), "{}", e.message);
        let e = Aggregator::<u32>::new(WindowOptions::sliding(10.0, 20.0)).unwrap_err();
        assert!(e.message.starts_with("slide"), "{}", e.message);
        let e = Aggregator::<u32>::new(WindowOptions::sliding(1e6, 1.0)).unwrap_err();
        assert!(e.message.starts_with("slide"), "{}", e.message);
        let e =
            Aggregator::<u32>::new(WindowOptions::tumbling(10.0).with_lateness(-1.0)).unwrap_err();
        assert!(e.message.starts_with("allowedLateness"), "{}", e.message);
        let e = Aggregator::<u32>::new(WindowOptions::tumbling(f64::NAN)).unwrap_err();
        assert!(e.message.starts_with("size"), "{}", e.message);
    }

    #[test]
    fn quantiles_are_exact_for_small_groups() {
        let mut a = Aggregator::new(WindowOptions::tumbling(1000.0)).unwrap();
        for (i, v) in (1..=20).rev().enumerate() {
            a.add(i as u32, "k", 1.0, v as f64);
        }
        a.flush();
        let r = &a.take_results()[0];
        assert_eq!(
            (r.p50, r.p95, r.min, r.max, r.count),
            (10.0, 19.0, 1.0, 20.0, 20)
        );
    }

    #[test]
    fn quantiles_of_large_groups_stay_within_one_percent_including_negatives() {
        let mut a = Aggregator::new(WindowOptions::tumbling(1e9)).unwrap();
        let mut vals = Vec::new();
        for i in 0..2000u32 {
            let v = (i as f64 * 7.3) % 1000.0 - 300.0; // mix of negative and positive
            vals.push(v);
            a.add(i, "k", 0.0, v);
        }
        a.flush();
        let r = &a.take_results()[0];
        vals.sort_by(|x, y| x.total_cmp(y));
        let exact = |q: f64| vals[((q * vals.len() as f64).ceil() as usize).max(1) - 1];
        for (got, want) in [(r.p50, exact(0.5)), (r.p95, exact(0.95))] {
            assert!(
                (got - want).abs() <= want.abs() * 0.01 + 1e-3,
                "{got} vs {want}"
            );
        }
        assert_eq!(r.count, 2000);
        assert_eq!(r.min, vals[0]);
        assert_eq!(r.max, vals[1999]);
        assert_eq!(a.take_released().len(), 2000);
    }

    #[test]
    fn random_streams_account_for_every_token_exactly_once() {
        // xorshift: deterministic pseudo-random event times around a moving clock.
        let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        for (size, slide, late) in [(100.0, 100.0, 0.0), (100.0, 30.0, 20.0), (50.0, 7.0, 5.0)] {
            let mut a =
                Aggregator::new(WindowOptions::sliding(size, slide).with_lateness(late)).unwrap();
            let mut refused = Vec::new();
            let mut released = Vec::new();
            let mut memberships = 0u64;
            for tok in 0..5000u32 {
                let t = tok as f64 * 0.5 - (rnd() % 60) as f64; // up to 60 ms out of order
                let key = ["a", "b", "c"][(rnd() % 3) as usize];
                match a.add(tok, key, t, (rnd() % 100) as f64) {
                    Added::Taken => {}
                    _ => refused.push(tok),
                }
                memberships += a.take_results().iter().map(|r| r.count).sum::<u64>();
                released.extend(a.take_released());
            }
            a.flush();
            memberships += a.take_results().iter().map(|r| r.count).sum::<u64>();
            released.extend(a.take_released());
            let mut all: Vec<u32> = released.iter().chain(refused.iter()).copied().collect();
            all.sort();
            assert_eq!(all, (0..5000).collect::<Vec<_>>(), "each token once");
            let st = a.stats();
            assert_eq!(st.taken + st.late, 5000);
            assert_eq!(st.released, st.taken);
            assert!(
                memberships >= st.taken,
                "every taken event is in some result"
            );
            assert_eq!(a.held(), 0);
            assert_eq!(a.open_windows(), 0);
        }
    }
}
