//! Message priorities: a number in [0, 1], higher is more important; 1 is critical.

use serde::Serialize;

/// Priority of a message without `metadata.priority`.
pub const DEFAULT_PRIORITY: f64 = 0.5;
/// Priority at or above which a message is critical and never dropped.
pub const CRITICAL: f64 = 1.0;

/// The priority class names [`from_name`] knows, highest first.
pub const NAMES: [&str; 4] = ["critical", "high", "normal", "low"];

/// Maps a class name to its number, as the old API did (`'critical'` 1, `'high'` 0.75,
/// `'normal'` 0.5, `'low'` 0.25).
pub fn from_name(name: &str) -> Option<f64> {
    match name {
        "critical" => Some(1.0),
        "high" => Some(0.75),
        "normal" => Some(0.5),
        "low" => Some(0.25),
        _ => None,
    }
}

/// Clamps anything the bindings pass into [0, 1]; NaN means "no priority given".
pub fn sanitize(p: f64) -> f64 {
    if p.is_nan() {
        DEFAULT_PRIORITY
    } else {
        // `+ 0.0` turns -0.0 into 0.0: the priority index orders by bit pattern.
        super::num::clamp(p, 0.0, 1.0) + 0.0
    }
}

/// Whether the message may never be dropped.
#[inline]
pub fn is_critical(p: f64) -> bool {
    p >= CRITICAL
}

/// The class a priority is counted under in drop statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// priority 1
    Critical = 0,
    /// [0.75, 1)
    High = 1,
    /// [0.5, 0.75)
    Normal = 2,
    /// [0, 0.5)
    Low = 3,
}

impl Class {
    /// The class of a priority value.
    #[inline]
    pub fn of(p: f64) -> Class {
        if p >= 1.0 {
            Class::Critical
        } else if p >= 0.75 {
            Class::High
        } else if p >= 0.5 {
            Class::Normal
        } else {
            Class::Low
        }
    }
}

/// Counts per priority class (`{ critical, high, normal, low }` in JS).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ClassCounts {
    /// Priority 1.
    pub critical: u64,
    /// Priority in [0.75, 1).
    pub high: u64,
    /// Priority in [0.5, 0.75).
    pub normal: u64,
    /// Priority below 0.5.
    pub low: u64,
}

impl ClassCounts {
    /// Adds `n` to the class of priority `p`.
    #[inline]
    pub fn add(&mut self, p: f64, n: u64) {
        match Class::of(p) {
            Class::Critical => self.critical += n,
            Class::High => self.high += n,
            Class::Normal => self.normal += n,
            Class::Low => self.low += n,
        }
    }
    /// Sum over classes.
    pub fn total(&self) -> u64 {
        self.critical + self.high + self.normal + self.low
    }
    /// Adds another set of counts.
    pub fn merge(&mut self, o: &ClassCounts) {
        self.critical += o.critical;
        self.high += o.high;
        self.normal += o.normal;
        self.low += o.low;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_numbers() {
        assert_eq!(from_name("critical"), Some(1.0));
        assert_eq!(from_name("high"), Some(0.75));
        assert_eq!(from_name("normal"), Some(0.5));
        assert_eq!(from_name("low"), Some(0.25));
        assert_eq!(from_name("urgent"), None);
    }

    #[test]
    fn classes_and_sanitize() {
        assert_eq!(Class::of(1.0), Class::Critical);
        assert_eq!(Class::of(0.75), Class::High);
        assert_eq!(Class::of(0.5), Class::Normal);
        assert_eq!(Class::of(0.49), Class::Low);
        assert_eq!(sanitize(f64::NAN), 0.5);
        assert_eq!(sanitize(7.0), 1.0);
        assert_eq!(sanitize(-1.0), 0.0);
        assert_eq!(sanitize(-0.0).to_bits(), 0.0f64.to_bits());
        let mut c = ClassCounts::default();
        c.add(1.0, 2);
        c.add(0.1, 1);
        assert_eq!((c.critical, c.low, c.total()), (2, 1, 3));
    }
}
