//! Alert evaluation with hysteresis.
//!
//! Metrics that hover around a threshold would flood the UI with
//! fire/resolve pairs if alerts were a plain `value >= threshold` check.
//! [`AlertTracker`] keeps per-(connection, alert type) state so that:
//!
//! * an alert fires **once** when its value reaches a threshold
//!   ([`AlertTransition::Fired`]);
//! * it fires again only if its severity **rises** (warning → critical);
//!   falling back from critical to warning level emits nothing;
//! * it resolves ([`AlertTransition::Resolved`]) only once the value is below
//!   `warning * (1 - HYSTERESIS)` (10% under the warning threshold) and has
//!   stayed there for at least `min_clear_ms`.
//!
//! # Invalid input
//!
//! Nothing panics. A NaN metric value is ignored (no transition, state
//! unchanged); ±infinity compares normally. A NaN threshold disables that
//! level, as does an infinite one (an infinite threshold can never be
//! "reached"). A non-finite `now` is replaced by the latest finite `now` the
//! tracker has seen (or `0.0`).

use super::num;
use super::smallmap::SmallMap;

/// Fraction below the warning threshold a value must fall to resolve an
/// alert; the gap absorbs noise around the threshold (no alert storms).
pub const HYSTERESIS: f64 = 0.1;

/// Kind of condition an alert reports. The `as_str` names are the stable
/// identifiers exposed to JavaScript.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AlertType {
    /// p95 latency above its threshold (milliseconds).
    HighLatency,
    /// Error fraction (0..1) above its threshold.
    HighErrorRate,
    /// Buffer utilisation (0..1) above its threshold: consumers lag behind.
    Backpressure,
    /// Engine memory utilisation (0..1) above its threshold (engine-wide).
    Memory,
    /// Messages are being dropped (drop fraction 0..1, or a critical drop).
    Drops,
    /// A connection's circuit breaker is open.
    CircuitOpen,
}

impl AlertType {
    /// All alert types, in a stable order (used for per-key state storage
    /// and deterministic listings).
    pub const ALL: [AlertType; 6] = [
        AlertType::HighLatency,
        AlertType::HighErrorRate,
        AlertType::Backpressure,
        AlertType::Memory,
        AlertType::Drops,
        AlertType::CircuitOpen,
    ];

    /// Stable snake_case name used in events sent to JavaScript.
    pub fn as_str(&self) -> &'static str {
        match self {
            AlertType::HighLatency => "high_latency",
            AlertType::HighErrorRate => "high_error_rate",
            AlertType::Backpressure => "backpressure",
            AlertType::Memory => "memory",
            AlertType::Drops => "drops",
            AlertType::CircuitOpen => "circuit_open",
        }
    }

    /// Inverse of [`as_str`](AlertType::as_str), for configuration coming
    /// from JavaScript; `None` for unknown names.
    pub fn parse(s: &str) -> Option<AlertType> {
        AlertType::ALL.iter().copied().find(|t| t.as_str() == s)
    }

    /// Index into per-key state arrays (position in [`AlertType::ALL`]).
    fn index(self) -> usize {
        match self {
            AlertType::HighLatency => 0,
            AlertType::HighErrorRate => 1,
            AlertType::Backpressure => 2,
            AlertType::Memory => 3,
            AlertType::Drops => 4,
            AlertType::CircuitOpen => 5,
        }
    }
}

/// How serious an alert is. Ordered (`Warning < Critical`) so escalation is
/// a simple comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    /// Degraded but working; worth a look.
    Warning,
    /// Needs attention now.
    Critical,
}

impl Severity {
    /// Stable name used in events sent to JavaScript.
    pub fn as_str(&self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    /// Inverse of [`as_str`](Severity::as_str); `None` for unknown names.
    pub fn parse(s: &str) -> Option<Severity> {
        match s {
            "warning" => Some(Severity::Warning),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }
}

/// A warning/critical threshold pair for one metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Level {
    /// Value at which a warning fires (also the base of the resolve level).
    pub warning: f64,
    /// Value at which the alert becomes critical.
    pub critical: f64,
}

impl Level {
    /// Convenience constructor, mainly for configuration code and tests.
    pub fn new(warning: f64, critical: f64) -> Self {
        Self { warning, critical }
    }
}

/// Alert thresholds for all metric-based alert types.
///
/// Why a struct: the engine configuration lets JS override any of them, and
/// evaluation needs them all in one place.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// p95 latency in milliseconds.
    pub latency: Level,
    /// Error fraction (errors / messages), 0..1.
    pub error_rate: Level,
    /// Buffer utilisation, 0..1.
    pub backpressure: Level,
    /// Memory utilisation, 0..1.
    pub memory: Level,
    /// Drop fraction at which a `Drops` warning fires; critical drops are
    /// reported separately via [`AlertTracker::evaluate_flag`].
    pub drop_rate_warning: f64,
}

impl Default for Thresholds {
    /// Defaults tuned for live UIs: latency 100/500 ms (p95), error rate
    /// 5%/15%, buffer utilisation 70%/90%, memory 80%/95%, drops 1%.
    fn default() -> Self {
        Self {
            latency: Level::new(100.0, 500.0),
            error_rate: Level::new(0.05, 0.15),
            backpressure: Level::new(0.7, 0.9),
            memory: Level::new(0.8, 0.95),
            drop_rate_warning: 0.01,
        }
    }
}

impl Thresholds {
    /// The level used by [`AlertTracker::evaluate`] for `ty`.
    ///
    /// `Drops` uses `drop_rate_warning` with an infinite (never reached)
    /// critical level; `CircuitOpen` uses `1.0` for both, so a value of `1.0`
    /// (open) is critical and `0.0` (closed) resolves it.
    pub fn level_for(&self, ty: AlertType) -> Level {
        match ty {
            AlertType::HighLatency => self.latency,
            AlertType::HighErrorRate => self.error_rate,
            AlertType::Backpressure => self.backpressure,
            AlertType::Memory => self.memory,
            AlertType::Drops => Level::new(self.drop_rate_warning, f64::INFINITY),
            AlertType::CircuitOpen => Level::new(1.0, 1.0),
        }
    }
}

/// What an evaluation changed; `None` from the evaluators means "nothing to
/// report", which is the common case.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AlertTransition {
    /// The alert became active, or escalated to a higher severity.
    Fired {
        /// The (new) severity.
        severity: Severity,
        /// The threshold that was crossed.
        threshold: f64,
    },
    /// The alert cleared (below the hysteresis level long enough).
    Resolved,
}

/// A fully described alert, ready to be serialised for JavaScript.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// What kind of condition this is.
    pub alert_type: AlertType,
    /// How serious it is.
    pub severity: Severity,
    /// Connection id, or empty for engine-wide alerts (e.g. memory).
    pub key: String,
    /// The metric value that triggered the alert.
    pub value: f64,
    /// The threshold that was crossed.
    pub threshold: f64,
    /// When it happened (ms, caller's clock).
    pub timestamp: f64,
    /// Human-readable summary for logs and UI.
    pub message: String,
}

impl Alert {
    /// Builds an alert with a human-readable message such as
    /// `"p95 latency 612.0 ms over critical threshold 500 ms on conn-x"`,
    /// so every consumer shows the same wording. Fractions (error rate,
    /// utilisation, memory, drops) are shown as percentages; the
    /// `" on <key>"` suffix is omitted for engine-wide (empty) keys.
    pub fn new(
        alert_type: AlertType,
        severity: Severity,
        key: &str,
        value: f64,
        threshold: f64,
        timestamp: f64,
    ) -> Self {
        let message = describe(alert_type, severity, key, value, threshold);
        Self {
            alert_type,
            severity,
            key: key.to_string(),
            value,
            threshold,
            timestamp,
            message,
        }
    }
}

/// Formats a threshold compactly: at most two decimals, trailing zeros
/// trimmed (`500.0 -> "500"`, `7.000000000000001 -> "7"`).
fn fmt_compact(x: f64) -> String {
    if !x.is_finite() {
        return num::js(x);
    }
    let s = num::fixed(x, 2);
    let s = num::trim_zeros(&s);
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// Builds the human-readable message for [`Alert::new`].
fn describe(ty: AlertType, severity: Severity, key: &str, value: f64, threshold: f64) -> String {
    let sev = severity.as_str();
    let mut msg = match ty {
        AlertType::HighLatency => [
            "p95 latency ",
            &num::fixed(value, 1),
            " ms over ",
            sev,
            " threshold ",
            &fmt_compact(threshold),
            " ms",
        ]
        .concat(),
        AlertType::CircuitOpen => "circuit breaker open".to_string(),
        _ => {
            let what = match ty {
                AlertType::HighErrorRate => "error rate",
                AlertType::Backpressure => "buffer utilisation",
                AlertType::Memory => "memory usage",
                _ => "drop rate",
            };
            [
                what,
                " ",
                &num::fixed(value * 100.0, 1),
                "% over ",
                sev,
                " threshold ",
                &fmt_compact(threshold * 100.0),
                "%",
            ]
            .concat()
        }
    };
    if !key.is_empty() {
        msg.push_str(" on ");
        msg.push_str(key);
    }
    msg
}

/// Per-(key, type) hysteresis state.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct AlertState {
    /// Active severity, or `None` when the alert is not firing.
    active: Option<Severity>,
    /// When the value first fell below the resolve level (while active).
    below_since: Option<f64>,
}

impl AlertState {
    /// True when the state carries no information and can be pruned.
    fn is_idle(&self) -> bool {
        self.active.is_none() && self.below_since.is_none()
    }
}

/// What the current observation says about the condition.
#[derive(Clone, Copy)]
enum Observation {
    /// Condition holds at this severity and threshold.
    Over(Severity, f64),
    /// Between the resolve level and the warning threshold: hold state.
    Band,
    /// Below the resolve level: may resolve.
    Clear,
}

/// Tracks which alerts are active per connection and decides when to fire
/// and resolve them.
///
/// Why: the engine evaluates metrics every tick; the tracker turns that
/// stream of values into a sparse stream of transitions (see module docs).
/// Memory is proportional to keys with an active alert: idle keys are
/// pruned automatically.
#[derive(Debug, Clone, Default)]
pub struct AlertTracker {
    /// State per key, one slot per [`AlertType`] (indexed by `index()`).
    states: SmallMap<[AlertState; 6]>,
    /// How long a value must stay below the resolve level before resolving.
    min_clear_ms: f64,
    /// Latest finite `now` seen, substituted for non-finite timestamps.
    last_now: f64,
}

impl AlertTracker {
    /// Creates an empty tracker that resolves immediately once a value is
    /// below the hysteresis level (`min_clear_ms = 0`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Builder: require values to stay below the resolve level for `ms`
    /// milliseconds before resolving, damping flapping further. NaN,
    /// negative values become 0; `+inf` means "never resolve by value".
    pub fn with_min_clear_ms(mut self, ms: f64) -> Self {
        self.set_min_clear_ms(ms);
        self
    }

    /// Changes `min_clear_ms` on an existing tracker (same sanitising as
    /// [`with_min_clear_ms`](AlertTracker::with_min_clear_ms)).
    pub fn set_min_clear_ms(&mut self, ms: f64) {
        self.min_clear_ms = if ms.is_nan() { 0.0 } else { ms.max(0.0) };
    }

    /// The effective `min_clear_ms`.
    pub fn min_clear_ms(&self) -> f64 {
        self.min_clear_ms
    }

    /// Evaluates a level-based metric for `key` (connection id, or `""` for
    /// engine-wide metrics) against the level for `ty` from `thresholds`
    /// (see [`Thresholds::level_for`]; for `CircuitOpen` pass `1.0` = open,
    /// `0.0` = closed).
    ///
    /// Returns `Some(Fired{..})` when the alert starts or escalates,
    /// `Some(Resolved)` when it clears, otherwise `None`. NaN values are
    /// ignored.
    pub fn evaluate(
        &mut self,
        key: &str,
        ty: AlertType,
        value: f64,
        now: f64,
        thresholds: &Thresholds,
    ) -> Option<AlertTransition> {
        if value.is_nan() {
            return None;
        }
        let level = thresholds.level_for(ty);
        let warning = sanitize_threshold(level.warning);
        let critical = sanitize_threshold(level.critical);
        let obs = if critical.is_finite() && value >= critical {
            Observation::Over(Severity::Critical, critical)
        } else if warning.is_finite() && value >= warning {
            Observation::Over(Severity::Warning, warning)
        } else if value < resolve_level(warning.min(critical)) {
            Observation::Clear
        } else {
            Observation::Band
        };
        self.step(key, ty, obs, now)
    }

    /// Evaluates a boolean condition (e.g. circuit open, a critical drop):
    /// `active == true` fires at `severity` (escalating if higher than the
    /// current one), `active == false` resolves (after `min_clear_ms`); no
    /// hysteresis band applies. `value` is informational only and does not
    /// influence the decision; `threshold` is echoed in `Fired`.
    ///
    /// The state is shared with [`evaluate`](AlertTracker::evaluate) for the
    /// same `(key, ty)`, so e.g. a critical drop flag escalates a drop-rate
    /// warning instead of raising a second alert.
    #[allow(clippy::too_many_arguments)]
    pub fn evaluate_flag(
        &mut self,
        key: &str,
        ty: AlertType,
        active: bool,
        severity: Severity,
        value: f64,
        threshold: f64,
        now: f64,
    ) -> Option<AlertTransition> {
        let _ = value;
        let obs = if active {
            Observation::Over(severity, threshold)
        } else {
            Observation::Clear
        };
        self.step(key, ty, obs, now)
    }

    /// Forgets all state of `key` (e.g. the connection closed) and returns
    /// the alerts that were active for it, in [`AlertType::ALL`] order, so
    /// the caller can emit resolutions for them.
    pub fn remove_key(&mut self, key: &str) -> Vec<(AlertType, Severity)> {
        match self.states.remove(key) {
            Some(states) => AlertType::ALL
                .iter()
                .filter_map(|&ty| states[ty.index()].active.map(|sev| (ty, sev)))
                .collect(),
            None => Vec::new(),
        }
    }

    /// All active alerts as `(key, type, severity)`, ordered by key then
    /// type, for status snapshots.
    pub fn active(&self) -> Vec<(String, AlertType, Severity)> {
        let mut out = Vec::new();
        for (key, states) in &self.states {
            for &ty in &AlertType::ALL {
                if let Some(sev) = states[ty.index()].active {
                    out.push((key.clone(), ty, sev));
                }
            }
        }
        out
    }

    /// Current severity of one alert, or `None` if it is not active.
    pub fn severity_of(&self, key: &str, ty: AlertType) -> Option<Severity> {
        self.states.get(key).and_then(|s| s[ty.index()].active)
    }

    /// Forgets every alert without reporting anything (engine reset).
    pub fn clear(&mut self) {
        self.states.clear();
    }

    /// Applies one observation to the `(key, ty)` state, inserting the key
    /// only if it becomes non-idle and pruning it once all types are idle.
    fn step(
        &mut self,
        key: &str,
        ty: AlertType,
        obs: Observation,
        now: f64,
    ) -> Option<AlertTransition> {
        let now = if now.is_finite() {
            self.last_now = now;
            now
        } else {
            self.last_now
        };
        let min_clear = self.min_clear_ms;
        let idx = ty.index();
        match self.states.get_mut(key) {
            Some(states) => {
                let t = transition(&mut states[idx], obs, now, min_clear);
                if states.iter().all(AlertState::is_idle) {
                    self.states.remove(key);
                }
                t
            }
            None => {
                let mut st = AlertState::default();
                let t = transition(&mut st, obs, now, min_clear);
                if !st.is_idle() {
                    let mut states = [AlertState::default(); 6];
                    states[idx] = st;
                    self.states.insert(key.to_string(), states);
                }
                t
            }
        }
    }
}

/// NaN thresholds disable the level (treated as never reached).
fn sanitize_threshold(t: f64) -> f64 {
    if t.is_nan() {
        f64::INFINITY
    } else {
        t
    }
}

/// Value below which an active alert may resolve: `HYSTERESIS` below the
/// warning threshold (measured by magnitude, so it also works for zero or
/// negative thresholds). A disabled (+inf) level resolves for any finite
/// value.
fn resolve_level(warning: f64) -> f64 {
    if warning.is_infinite() {
        return warning;
    }
    warning - warning.abs() * HYSTERESIS
}

/// The hysteresis state machine for one `(key, type)`.
fn transition(
    st: &mut AlertState,
    obs: Observation,
    now: f64,
    min_clear_ms: f64,
) -> Option<AlertTransition> {
    match obs {
        Observation::Over(severity, threshold) => {
            st.below_since = None;
            match st.active {
                Some(current) if severity <= current => None,
                _ => {
                    st.active = Some(severity);
                    Some(AlertTransition::Fired {
                        severity,
                        threshold,
                    })
                }
            }
        }
        Observation::Band => {
            st.below_since = None;
            None
        }
        Observation::Clear => {
            st.active?;
            let since = *st.below_since.get_or_insert(now);
            if now - since >= min_clear_ms {
                st.active = None;
                st.below_since = None;
                Some(AlertTransition::Resolved)
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Severity = Severity::Warning;
    const C: Severity = Severity::Critical;

    fn fired(severity: Severity, threshold: f64) -> Option<AlertTransition> {
        Some(AlertTransition::Fired {
            severity,
            threshold,
        })
    }

    fn lat(t: &mut AlertTracker, key: &str, v: f64, now: f64) -> Option<AlertTransition> {
        t.evaluate(key, AlertType::HighLatency, v, now, &Thresholds::default())
    }

    #[test]
    fn names_are_stable() {
        let names: Vec<&str> = AlertType::ALL.iter().map(|t| t.as_str()).collect();
        assert_eq!(
            names,
            [
                "high_latency",
                "high_error_rate",
                "backpressure",
                "memory",
                "drops",
                "circuit_open"
            ]
        );
        for (i, ty) in AlertType::ALL.iter().enumerate() {
            assert_eq!(ty.index(), i);
            assert_eq!(AlertType::parse(ty.as_str()), Some(*ty));
        }
        assert_eq!(AlertType::parse("nope"), None);
        assert_eq!(Severity::Warning.as_str(), "warning");
        assert_eq!(Severity::Critical.as_str(), "critical");
        assert_eq!(Severity::parse("critical"), Some(C));
        assert_eq!(Severity::parse("x"), None);
        assert!(W < C);
    }

    #[test]
    fn default_thresholds() {
        let t = Thresholds::default();
        assert_eq!(t.latency, Level::new(100.0, 500.0));
        assert_eq!(t.error_rate, Level::new(0.05, 0.15));
        assert_eq!(t.backpressure, Level::new(0.7, 0.9));
        assert_eq!(t.memory, Level::new(0.8, 0.95));
        assert_eq!(t.drop_rate_warning, 0.01);
        assert_eq!(t.level_for(AlertType::Drops).critical, f64::INFINITY);
        assert_eq!(t.level_for(AlertType::CircuitOpen), Level::new(1.0, 1.0));
    }

    #[test]
    fn fires_once_while_condition_stays() {
        let mut t = AlertTracker::new();
        assert_eq!(lat(&mut t, "a", 50.0, 0.0), None);
        assert_eq!(lat(&mut t, "a", 150.0, 1.0), fired(W, 100.0));
        for i in 0..100 {
            assert_eq!(lat(&mut t, "a", 150.0 + i as f64, 2.0 + i as f64), None);
        }
        assert_eq!(t.severity_of("a", AlertType::HighLatency), Some(W));
    }

    #[test]
    fn escalates_once_and_no_storm_on_deescalation() {
        let mut t = AlertTracker::new();
        assert_eq!(lat(&mut t, "a", 150.0, 0.0), fired(W, 100.0));
        assert_eq!(lat(&mut t, "a", 612.0, 1.0), fired(C, 500.0));
        assert_eq!(lat(&mut t, "a", 700.0, 2.0), None);
        // Back to warning level, then critical again: silent.
        for i in 0..20 {
            let v = if i % 2 == 0 { 200.0 } else { 600.0 };
            assert_eq!(lat(&mut t, "a", v, 3.0 + i as f64), None);
        }
        assert_eq!(t.severity_of("a", AlertType::HighLatency), Some(C));
    }

    #[test]
    fn fires_critical_directly() {
        let mut t = AlertTracker::new();
        assert_eq!(lat(&mut t, "a", 10_000.0, 0.0), fired(C, 500.0));
        assert_eq!(lat(&mut t, "a", 150.0, 1.0), None);
        assert_eq!(lat(&mut t, "a", 10.0, 2.0), Some(AlertTransition::Resolved));
    }

    #[test]
    fn hovering_around_threshold_fires_exactly_once() {
        let mut t = AlertTracker::new();
        let mut fired_count = 0;
        let mut resolved_count = 0;
        for i in 0..1000 {
            let v = if i % 2 == 0 { 99.0 } else { 101.0 };
            match lat(&mut t, "a", v, i as f64) {
                Some(AlertTransition::Fired { .. }) => fired_count += 1,
                Some(AlertTransition::Resolved) => resolved_count += 1,
                None => {}
            }
        }
        assert_eq!(fired_count, 1);
        assert_eq!(resolved_count, 0);
    }

    #[test]
    fn exact_threshold_counts_as_reached() {
        let mut t = AlertTracker::new();
        assert_eq!(lat(&mut t, "a", 100.0, 0.0), fired(W, 100.0));
        assert_eq!(lat(&mut t, "a", 500.0, 1.0), fired(C, 500.0));
    }

    #[test]
    fn resolves_only_below_hysteresis_level() {
        let mut t = AlertTracker::new();
        assert_eq!(lat(&mut t, "a", 150.0, 0.0), fired(W, 100.0));
        // Resolve level is 90: 95 and exactly 90 do not resolve.
        assert_eq!(lat(&mut t, "a", 95.0, 1.0), None);
        assert_eq!(lat(&mut t, "a", 90.0, 2.0), None);
        assert_eq!(lat(&mut t, "a", 89.9, 3.0), Some(AlertTransition::Resolved));
        assert_eq!(lat(&mut t, "a", 10.0, 4.0), None);
        assert!(t.active().is_empty());
        // It can fire again after resolving.
        assert_eq!(lat(&mut t, "a", 120.0, 5.0), fired(W, 100.0));
    }

    #[test]
    fn min_clear_ms_requires_sustained_recovery() {
        let mut t = AlertTracker::new().with_min_clear_ms(1000.0);
        assert_eq!(t.min_clear_ms(), 1000.0);
        assert_eq!(lat(&mut t, "a", 150.0, 0.0), fired(W, 100.0));
        assert_eq!(lat(&mut t, "a", 50.0, 100.0), None); // below since 100
        assert_eq!(lat(&mut t, "a", 50.0, 900.0), None);
        // Back into the band resets the timer.
        assert_eq!(lat(&mut t, "a", 95.0, 1000.0), None);
        assert_eq!(lat(&mut t, "a", 50.0, 1100.0), None); // below since 1100
        assert_eq!(lat(&mut t, "a", 50.0, 2099.0), None);
        assert_eq!(
            lat(&mut t, "a", 50.0, 2100.0),
            Some(AlertTransition::Resolved)
        );
        // Re-firing also resets the timer.
        assert_eq!(lat(&mut t, "b", 150.0, 0.0), fired(W, 100.0));
        assert_eq!(lat(&mut t, "b", 50.0, 10.0), None);
        assert_eq!(lat(&mut t, "b", 150.0, 20.0), None);
        assert_eq!(lat(&mut t, "b", 50.0, 1015.0), None);
        assert_eq!(
            lat(&mut t, "b", 50.0, 2015.0),
            Some(AlertTransition::Resolved)
        );
    }

    #[test]
    fn min_clear_ms_sanitised() {
        assert_eq!(
            AlertTracker::new()
                .with_min_clear_ms(f64::NAN)
                .min_clear_ms(),
            0.0
        );
        assert_eq!(
            AlertTracker::new().with_min_clear_ms(-5.0).min_clear_ms(),
            0.0
        );
        let mut t = AlertTracker::new().with_min_clear_ms(f64::INFINITY);
        assert_eq!(lat(&mut t, "a", 150.0, 0.0), fired(W, 100.0));
        assert_eq!(lat(&mut t, "a", 0.0, 1e300), None);
        t.set_min_clear_ms(0.0);
        assert_eq!(
            lat(&mut t, "a", 0.0, 1e300),
            Some(AlertTransition::Resolved)
        );
    }

    #[test]
    fn keys_and_types_are_independent() {
        let mut t = AlertTracker::new();
        let th = Thresholds::default();
        assert_eq!(lat(&mut t, "a", 150.0, 0.0), fired(W, 100.0));
        assert_eq!(lat(&mut t, "b", 600.0, 0.0), fired(C, 500.0));
        assert_eq!(
            t.evaluate("a", AlertType::Backpressure, 0.95, 0.0, &th),
            fired(C, 0.9)
        );
        assert_eq!(
            t.evaluate("", AlertType::Memory, 0.85, 0.0, &th),
            fired(W, 0.8)
        );
        assert_eq!(
            t.active(),
            vec![
                ("".to_string(), AlertType::Memory, W),
                ("a".to_string(), AlertType::HighLatency, W),
                ("a".to_string(), AlertType::Backpressure, C),
                ("b".to_string(), AlertType::HighLatency, C),
            ]
        );
        assert_eq!(lat(&mut t, "a", 10.0, 1.0), Some(AlertTransition::Resolved));
        assert_eq!(t.severity_of("a", AlertType::Backpressure), Some(C));
        assert_eq!(t.severity_of("b", AlertType::HighLatency), Some(C));
    }

    #[test]
    fn nan_values_are_ignored() {
        let mut t = AlertTracker::new();
        assert_eq!(lat(&mut t, "a", f64::NAN, 0.0), None);
        assert!(t.active().is_empty());
        assert_eq!(lat(&mut t, "a", 150.0, 1.0), fired(W, 100.0));
        assert_eq!(lat(&mut t, "a", f64::NAN, 2.0), None);
        assert_eq!(t.severity_of("a", AlertType::HighLatency), Some(W));
    }

    #[test]
    fn infinities_compare_normally() {
        let mut t = AlertTracker::new();
        assert_eq!(lat(&mut t, "a", f64::INFINITY, 0.0), fired(C, 500.0));
        assert_eq!(
            lat(&mut t, "a", f64::NEG_INFINITY, 1.0),
            Some(AlertTransition::Resolved)
        );
    }

    #[test]
    fn non_finite_now_uses_last_time() {
        let mut t = AlertTracker::new().with_min_clear_ms(100.0);
        assert_eq!(lat(&mut t, "a", 150.0, 1000.0), fired(W, 100.0));
        assert_eq!(lat(&mut t, "a", 10.0, f64::NAN), None); // below since 1000
        assert_eq!(lat(&mut t, "a", 10.0, f64::INFINITY), None);
        assert_eq!(
            lat(&mut t, "a", 10.0, 1100.0),
            Some(AlertTransition::Resolved)
        );
    }

    #[test]
    fn time_going_backwards_does_not_resolve_early() {
        let mut t = AlertTracker::new().with_min_clear_ms(100.0);
        assert_eq!(lat(&mut t, "a", 150.0, 1000.0), fired(W, 100.0));
        assert_eq!(lat(&mut t, "a", 10.0, 1000.0), None);
        assert_eq!(lat(&mut t, "a", 10.0, 500.0), None);
        assert_eq!(
            lat(&mut t, "a", 10.0, 1100.0),
            Some(AlertTransition::Resolved)
        );
    }

    #[test]
    fn invalid_thresholds_do_not_fire() {
        let mut t = AlertTracker::new();
        let mut th = Thresholds {
            latency: Level::new(f64::NAN, f64::NAN),
            ..Thresholds::default()
        };
        for v in [0.0, 1e9, f64::INFINITY] {
            assert_eq!(t.evaluate("a", AlertType::HighLatency, v, 0.0, &th), None);
        }
        // NaN warning but valid critical: only critical fires, and resolve
        // is based on the critical level.
        th.latency = Level::new(f64::NAN, 500.0);
        assert_eq!(
            t.evaluate("a", AlertType::HighLatency, 300.0, 0.0, &th),
            None
        );
        assert_eq!(
            t.evaluate("a", AlertType::HighLatency, 600.0, 0.0, &th),
            fired(C, 500.0)
        );
        assert_eq!(
            t.evaluate("a", AlertType::HighLatency, 460.0, 1.0, &th),
            None
        );
        assert_eq!(
            t.evaluate("a", AlertType::HighLatency, 440.0, 2.0, &th),
            Some(AlertTransition::Resolved)
        );
        // Thresholds disabled while active: the alert resolves.
        th.latency = Level::new(100.0, 500.0);
        assert_eq!(
            t.evaluate("a", AlertType::HighLatency, 150.0, 3.0, &th),
            fired(W, 100.0)
        );
        th.latency = Level::new(f64::INFINITY, f64::INFINITY);
        assert_eq!(
            t.evaluate("a", AlertType::HighLatency, 150.0, 4.0, &th),
            Some(AlertTransition::Resolved)
        );
    }

    #[test]
    fn zero_threshold_has_no_negative_band_issue() {
        let mut t = AlertTracker::new();
        let th = Thresholds {
            drop_rate_warning: 0.0,
            ..Thresholds::default()
        };
        assert_eq!(
            t.evaluate("a", AlertType::Drops, 0.0, 0.0, &th),
            fired(W, 0.0)
        );
        assert_eq!(t.evaluate("a", AlertType::Drops, 0.0, 1.0, &th), None);
    }

    #[test]
    fn drops_rate_and_flag_share_state() {
        let mut t = AlertTracker::new();
        let th = Thresholds::default();
        assert_eq!(t.evaluate("a", AlertType::Drops, 0.005, 0.0, &th), None);
        assert_eq!(
            t.evaluate("a", AlertType::Drops, 0.02, 1.0, &th),
            fired(W, 0.01)
        );
        // Drop rate alone never goes critical.
        assert_eq!(t.evaluate("a", AlertType::Drops, 1.0, 2.0, &th), None);
        // A critical drop escalates the same alert.
        assert_eq!(
            t.evaluate_flag("a", AlertType::Drops, true, C, 1.0, 1.0, 3.0),
            fired(C, 1.0)
        );
        assert_eq!(
            t.evaluate_flag("a", AlertType::Drops, true, C, 1.0, 1.0, 4.0),
            None
        );
        assert_eq!(
            t.evaluate("a", AlertType::Drops, 0.0, 5.0, &th),
            Some(AlertTransition::Resolved)
        );
        assert_eq!(
            t.evaluate_flag("a", AlertType::Drops, false, C, 0.0, 1.0, 6.0),
            None
        );
    }

    #[test]
    fn circuit_open_via_evaluate_and_flag() {
        let mut t = AlertTracker::new();
        let th = Thresholds::default();
        assert_eq!(t.evaluate("a", AlertType::CircuitOpen, 0.0, 0.0, &th), None);
        assert_eq!(
            t.evaluate("a", AlertType::CircuitOpen, 1.0, 1.0, &th),
            fired(C, 1.0)
        );
        assert_eq!(t.evaluate("a", AlertType::CircuitOpen, 1.0, 2.0, &th), None);
        assert_eq!(
            t.evaluate("a", AlertType::CircuitOpen, 0.0, 3.0, &th),
            Some(AlertTransition::Resolved)
        );

        let ty = AlertType::CircuitOpen;
        assert_eq!(t.evaluate_flag("b", ty, false, C, 0.0, 5.0, 0.0), None);
        assert_eq!(
            t.evaluate_flag("b", ty, true, C, 5.0, 5.0, 1.0),
            fired(C, 5.0)
        );
        assert_eq!(t.evaluate_flag("b", ty, true, C, 6.0, 5.0, 2.0), None);
        // Lower severity while critical: silent.
        assert_eq!(t.evaluate_flag("b", ty, true, W, 6.0, 5.0, 3.0), None);
        assert_eq!(
            t.evaluate_flag("b", ty, false, C, 0.0, 5.0, 4.0),
            Some(AlertTransition::Resolved)
        );
    }

    #[test]
    fn flag_respects_min_clear_ms() {
        let mut t = AlertTracker::new().with_min_clear_ms(50.0);
        let ty = AlertType::CircuitOpen;
        assert_eq!(
            t.evaluate_flag("a", ty, true, C, 1.0, 1.0, 0.0),
            fired(C, 1.0)
        );
        assert_eq!(t.evaluate_flag("a", ty, false, C, 0.0, 1.0, 10.0), None);
        assert_eq!(
            t.evaluate_flag("a", ty, false, C, 0.0, 1.0, 60.0),
            Some(AlertTransition::Resolved)
        );
    }

    #[test]
    fn remove_key_returns_active_alerts_and_forgets_state() {
        let mut t = AlertTracker::new();
        let th = Thresholds::default();
        lat(&mut t, "a", 600.0, 0.0);
        t.evaluate("a", AlertType::Backpressure, 0.75, 0.0, &th);
        lat(&mut t, "b", 600.0, 0.0);
        assert_eq!(
            t.remove_key("a"),
            vec![(AlertType::HighLatency, C), (AlertType::Backpressure, W)]
        );
        assert_eq!(t.remove_key("a"), vec![]);
        assert_eq!(t.remove_key("missing"), vec![]);
        assert_eq!(
            t.active(),
            vec![("b".to_string(), AlertType::HighLatency, C)]
        );
        // A re-opened connection starts fresh.
        assert_eq!(lat(&mut t, "a", 150.0, 1.0), fired(W, 100.0));
    }

    #[test]
    fn idle_keys_are_pruned() {
        let mut t = AlertTracker::new();
        for i in 0..1000 {
            lat(&mut t, &format!("conn-{i}"), 10.0, 0.0);
        }
        assert!(t.states.is_empty());
        lat(&mut t, "x", 150.0, 0.0);
        assert_eq!(t.states.len(), 1);
        lat(&mut t, "x", 10.0, 1.0);
        assert!(t.states.is_empty());
        lat(&mut t, "y", 150.0, 0.0);
        t.clear();
        assert!(t.active().is_empty());
    }

    #[test]
    fn alert_messages() {
        let a = Alert::new(AlertType::HighLatency, C, "conn-x", 612.0, 500.0, 42.0);
        assert_eq!(
            a.message,
            "p95 latency 612.0 ms over critical threshold 500 ms on conn-x"
        );
        assert_eq!(a.key, "conn-x");
        assert_eq!(a.timestamp, 42.0);
        assert_eq!(a.threshold, 500.0);
        assert_eq!(a.value, 612.0);
        assert_eq!(a.alert_type, AlertType::HighLatency);
        assert_eq!(a.severity, C);
        assert_eq!(
            Alert::new(AlertType::HighErrorRate, W, "c1", 0.07, 0.05, 0.0).message,
            "error rate 7.0% over warning threshold 5% on c1"
        );
        assert_eq!(
            Alert::new(AlertType::Backpressure, C, "c1", 0.925, 0.9, 0.0).message,
            "buffer utilisation 92.5% over critical threshold 90% on c1"
        );
        assert_eq!(
            Alert::new(AlertType::Memory, C, "", 0.96, 0.95, 0.0).message,
            "memory usage 96.0% over critical threshold 95%"
        );
        assert_eq!(
            Alert::new(AlertType::Drops, W, "c2", 0.02, 0.015, 0.0).message,
            "drop rate 2.0% over warning threshold 1.5% on c2"
        );
        assert_eq!(
            Alert::new(AlertType::CircuitOpen, C, "c3", 1.0, 1.0, 0.0).message,
            "circuit breaker open on c3"
        );
        // Non-finite numbers format without panicking.
        let m = Alert::new(AlertType::HighLatency, W, "k", f64::NAN, f64::INFINITY, 0.0).message;
        assert_eq!(
            m,
            "p95 latency NaN ms over warning threshold Infinity ms on k"
        );
    }

    #[test]
    fn compact_number_formatting() {
        assert_eq!(fmt_compact(500.0), "500");
        assert_eq!(fmt_compact(0.07 * 100.0), "7");
        assert_eq!(fmt_compact(1.5), "1.5");
        assert_eq!(fmt_compact(0.126), "0.13");
        assert_eq!(fmt_compact(-0.001), "0");
        assert_eq!(fmt_compact(10.0), "10");
        // Printed as JavaScript prints it (the message is read in JS).
        assert_eq!(fmt_compact(f64::NEG_INFINITY), "-Infinity");
    }
}
