//! Downsampling for charts: a chart needs about as many points as it has pixels, not every
//! message.
//!
//! - [`MinMaxDownsampler`]: streaming, per key, one summary per time bucket with the minimum
//!   and maximum (and when they occurred), so spikes survive. A bucket is emitted when a point of
//!   a later bucket arrives for any key (the watermark passes its end) or on [`flush`]. A point
//!   for a bucket already emitted is counted as late and refused (never silently lost).
//! - [`lttb`]: Largest-Triangle-Three-Buckets over a finished series, keeping the shape with a
//!   fixed number of points.
//!
//! [`flush`]: MinMaxDownsampler::flush
//!
//! ```
//! use stream_engine::core::downsample::lttb;
//! let xs: Vec<f64> = (0..100).map(f64::from).collect();
//! let ys: Vec<f64> = xs.iter().map(|x| (x / 10.0).sin()).collect();
//! let keep = lttb(&xs, &ys, 10);
//! assert_eq!(keep.len(), 10);
//! assert_eq!((keep[0], keep[9]), (0, 99)); // the ends are always kept
//! ```

use std::collections::BTreeMap;

use super::num::js;

use crate::core::aggregate::{valid_time, Added, MAX_TIME, MIN_SPAN};
use crate::core::config::ConfigError;

/// One bucket of one key.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket<K = String> {
    /// The series key.
    pub key: K,
    /// Bucket start (inclusive), ms.
    pub start: f64,
    /// Bucket end (exclusive), ms.
    pub end: f64,
    /// Points in the bucket.
    pub count: u64,
    /// Smallest value and its time.
    pub min: f64,
    /// Time of `min` (the first such point).
    pub min_time: f64,
    /// Largest value.
    pub max: f64,
    /// Time of `max` (the first such point).
    pub max_time: f64,
    /// Value of the last point added.
    pub last: f64,
}

/// Streaming min/max-per-bucket downsampler. Every added point is either in exactly one emitted
/// bucket or refused (late or invalid) and counted.
#[derive(Debug, Clone)]
pub struct MinMaxDownsampler<K = String> {
    bucket: f64,
    open: BTreeMap<i64, BTreeMap<K, Bucket<K>>>,
    closed_below: i64,
    out: Vec<Bucket<K>>,
    /// Points taken into a bucket.
    pub taken: u64,
    /// Points refused because their bucket had been emitted.
    pub late: u64,
    /// Points refused for a non-finite time or value.
    pub invalid: u64,
}

impl<K: Ord + Clone> MinMaxDownsampler<K> {
    /// Buckets of `bucket` ms (finite, > 0); the error names `bucketMs`.
    pub fn new(bucket: f64) -> Result<Self, ConfigError> {
        if !bucket.is_finite() || !(MIN_SPAN..=MAX_TIME).contains(&bucket) {
            return Err(ConfigError::range(format!(
                "bucketMs must be a finite number in [{}, {}] (ms), got {}",
                js(MIN_SPAN),
                js(MAX_TIME),
                js(bucket)
            )));
        }
        Ok(MinMaxDownsampler {
            bucket,
            open: BTreeMap::new(),
            closed_below: i64::MIN,
            out: Vec::new(),
            taken: 0,
            late: 0,
            invalid: 0,
        })
    }

    /// Adds a point; may emit the buckets before its own.
    pub fn add(&mut self, key: K, time: f64, value: f64) -> Added {
        if !valid_time(time) || !value.is_finite() {
            self.invalid += 1;
            return Added::Invalid;
        }
        let k = (time / self.bucket).floor() as i64;
        if k < self.closed_below {
            self.late += 1;
            return Added::Late;
        }
        let start = k as f64 * self.bucket;
        let end = start + self.bucket;
        let b = self
            .open
            .entry(k)
            .or_default()
            .entry(key.clone())
            .or_insert_with(|| Bucket {
                key,
                start,
                end,
                count: 0,
                min: value,
                min_time: time,
                max: value,
                max_time: time,
                last: value,
            });
        b.count += 1;
        b.last = value;
        if value < b.min {
            b.min = value;
            b.min_time = time;
        }
        if value > b.max {
            b.max = value;
            b.max_time = time;
        }
        self.taken += 1;
        self.close_below(k);
        Added::Taken
    }

    /// Emits every open bucket.
    pub fn flush(&mut self) {
        if let Some((&k, _)) = self.open.iter().next_back() {
            self.close_below(k.saturating_add(1));
        }
    }

    /// Buckets emitted since the last call, in time order, then key order.
    pub fn take(&mut self) -> Vec<Bucket<K>> {
        std::mem::take(&mut self.out)
    }

    fn close_below(&mut self, below: i64) {
        while let Some((&k, _)) = self.open.iter().next() {
            if k >= below {
                break;
            }
            if let Some(keys) = self.open.remove(&k) {
                self.out.extend(keys.into_values());
            }
        }
        if below > self.closed_below {
            self.closed_below = below;
        }
    }
}

/// Largest-Triangle-Three-Buckets: indices (ascending) of at most `threshold` points of the
/// series `(xs[i], ys[i])` that keep its visual shape. The first and last points are always
/// kept; with `threshold >= len` or `threshold < 3` every index (up to `threshold`, at least the
/// ends) is returned as is. Non-finite values are treated as 0 for the area (never a panic).
pub fn lttb(xs: &[f64], ys: &[f64], threshold: usize) -> Vec<usize> {
    let n = xs.len().min(ys.len());
    if threshold >= n || n <= 2 {
        return (0..n).collect();
    }
    if threshold < 3 {
        return if threshold == 0 {
            vec![]
        } else if threshold == 1 {
            vec![0]
        } else {
            vec![0, n - 1]
        };
    }
    let f = |v: f64| if v.is_finite() { v } else { 0.0 };
    let mut out = Vec::with_capacity(threshold);
    out.push(0);
    // Buckets for the points between the ends.
    let every = (n - 2) as f64 / (threshold - 2) as f64;
    let mut a = 0usize;
    for i in 0..threshold - 2 {
        let start = (i as f64 * every) as usize + 1;
        let end = (((i + 1) as f64 * every) as usize + 1).min(n - 1);
        // Average of the next bucket (or the last point).
        let next_start = end;
        let next_end = ((((i + 2) as f64) * every) as usize + 1).min(n);
        let (mut ax, mut ay, mut cnt) = (0.0, 0.0, 0.0);
        for j in next_start..next_end.max(next_start + 1).min(n) {
            ax += f(xs[j]);
            ay += f(ys[j]);
            cnt += 1.0;
        }
        let (avg_x, avg_y) = (ax / cnt, ay / cnt);
        let (px, py) = (f(xs[a]), f(ys[a]));
        let mut best = start;
        let mut best_area = -1.0;
        for j in start..end.max(start + 1) {
            let area = ((px - avg_x) * (f(ys[j]) - py) - (px - f(xs[j])) * (avg_y - py)).abs();
            if area > best_area {
                best_area = area;
                best = j;
            }
        }
        out.push(best);
        a = best;
    }
    out.push(n - 1);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minmax_keeps_spikes_and_emits_when_a_later_bucket_starts() {
        let mut d = MinMaxDownsampler::new(100.0).unwrap();
        for (t, v) in [(0.0, 1.0), (10.0, 50.0), (20.0, -5.0), (99.0, 2.0)] {
            assert_eq!(d.add("s", t, v), Added::Taken);
        }
        assert!(d.take().is_empty());
        d.add("s", 100.0, 3.0);
        let b = d.take();
        assert_eq!(b.len(), 1);
        assert_eq!(
            (
                b[0].count,
                b[0].min,
                b[0].min_time,
                b[0].max,
                b[0].max_time,
                b[0].last
            ),
            (4, -5.0, 20.0, 50.0, 10.0, 2.0)
        );
        assert_eq!((b[0].start, b[0].end), (0.0, 100.0));
        assert_eq!(d.add("s", 50.0, 1.0), Added::Late);
        assert_eq!(d.add("s", f64::NAN, 1.0), Added::Invalid);
        d.flush();
        let b = d.take();
        assert_eq!((b.len(), b[0].start, b[0].count), (1, 100.0, 1));
        assert_eq!((d.taken, d.late, d.invalid), (5, 1, 1));
    }

    #[test]
    fn minmax_counts_every_point_once_across_keys() {
        let mut d = MinMaxDownsampler::new(7.0).unwrap();
        let mut total = 0;
        for i in 0..1000 {
            let key = if i % 3 == 0 { "a" } else { "b" };
            d.add(key, i as f64 * 0.9, (i % 17) as f64);
            total += d.take().iter().map(|b| b.count).sum::<u64>();
        }
        d.flush();
        total += d.take().iter().map(|b| b.count).sum::<u64>();
        assert_eq!(total, 1000);
        assert_eq!(d.taken, 1000);
    }

    #[test]
    fn minmax_rejects_a_bad_bucket_naming_the_field() {
        assert!(MinMaxDownsampler::<u32>::new(0.0)
            .unwrap_err()
            .message
            .starts_with("bucketMs"));
        assert!(MinMaxDownsampler::<u32>::new(f64::INFINITY).is_err());
        let mut d = MinMaxDownsampler::<u32>::new(MIN_SPAN).unwrap();
        for t in [MAX_TIME, -MAX_TIME, 1e308, 0.0] {
            d.add(0, t, 1.0);
        }
        d.flush();
        assert_eq!((d.taken, d.late, d.invalid), (1, 2, 1));
    }

    #[test]
    fn lttb_keeps_ends_and_the_peak_and_returns_threshold_points() {
        let xs: Vec<f64> = (0..1000).map(f64::from).collect();
        let mut ys = vec![0.0; 1000];
        ys[437] = 100.0; // a single spike must survive
        let keep = lttb(&xs, &ys, 50);
        assert_eq!(keep.len(), 50);
        assert_eq!(keep[0], 0);
        assert_eq!(keep[49], 999);
        assert!(keep.contains(&437));
        assert!(
            keep.windows(2).all(|w| w[0] < w[1]),
            "ascending and distinct"
        );
    }

    #[test]
    fn lttb_edge_cases_never_panic() {
        assert_eq!(lttb(&[], &[], 10), Vec::<usize>::new());
        assert_eq!(lttb(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0], 10), vec![0, 1, 2]);
        assert_eq!(lttb(&[1.0, 2.0, 3.0, 4.0], &[1.0, 2.0], 10), vec![0, 1]);
        assert_eq!(lttb(&[0.0, 1.0, 2.0, 3.0], &[0.0; 4], 2), vec![0, 3]);
        let xs: Vec<f64> = (0..10).map(f64::from).collect();
        let ys = vec![f64::NAN; 10];
        assert_eq!(lttb(&xs, &ys, 4).len(), 4);
        for t in 3..12 {
            let k = lttb(&xs, &xs, t);
            assert_eq!(k.len(), t.min(10));
            assert!(k.windows(2).all(|w| w[0] < w[1]));
        }
    }
}
