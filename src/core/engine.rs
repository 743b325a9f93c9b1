//! The engine: a set of connections, engine-wide defaults, metrics ticks and alerts.

use serde::Serialize;

use super::smallmap::SmallMap;

use super::alerts::{Alert, AlertTracker, AlertTransition, AlertType, Severity, Thresholds};
use super::config::{ConfigError, StreamConfig};
use super::connection::{Connection, ConnectionMetrics, FlowPolicy};
use super::recovery::CircuitState;

/// Handle of a connection inside an [`Engine`]; stable while the connection lives.
pub type Handle = u32;

/// An alert as JS sees it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AlertOut {
    /// `high_latency`, `high_error_rate`, `backpressure`, `memory`, `drops` or `circuit_open`.
    #[serde(rename = "type")]
    pub alert_type: &'static str,
    /// `warning` or `critical`.
    pub severity: &'static str,
    /// The connection, or `""` for engine-wide alerts.
    pub connection_id: String,
    /// Human-readable text.
    pub message: String,
    /// The value that crossed (or, when resolved, the current value).
    pub value: f64,
    /// The threshold crossed.
    pub threshold: f64,
    /// When (ms).
    pub timestamp: f64,
}

impl AlertOut {
    fn from_alert(a: &Alert) -> Self {
        AlertOut {
            alert_type: a.alert_type.as_str(),
            severity: a.severity.as_str(),
            connection_id: a.key.clone(),
            message: a.message.clone(),
            value: a.value,
            threshold: a.threshold,
            timestamp: a.timestamp,
        }
    }
}

/// An alert starting (or rising in severity) or resolving.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AlertEventOut {
    /// `alert` or `alert-resolved`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The alert.
    pub alert: AlertOut,
}

/// Engine totals (`EngineMetrics.totals`).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    /// Connections in the engine (including closed ones still draining).
    pub connections: usize,
    /// Sum of `messages_in`.
    pub messages_in: u64,
    /// Sum of `messages_out`.
    pub messages_out: u64,
    /// Sum of deliveries per second.
    pub messages_per_second: f64,
    /// Sum of drops.
    pub dropped: u64,
    /// Messages held across connections.
    pub buffer_size: usize,
    /// Sum of backpressure starts.
    pub backpressure_events: u64,
    /// Sum of consumer failures.
    pub errors: u64,
    /// Sum of consumer retries.
    pub retries: u64,
}

/// The result of a metrics tick: every connection's metrics and the alert transitions.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Tick {
    /// Engine totals.
    pub totals: Totals,
    /// Per connection, by id.
    pub connections: SmallMap<ConnectionMetrics>,
    /// Alerts that fired or resolved on this tick.
    pub alerts: Vec<AlertEventOut>,
}

/// The engine core, generic over the message type so that tests use plain values and the
/// bindings use `JsValue`.
#[derive(Debug)]
pub struct Engine<T> {
    conns: Vec<Option<Connection<T>>>,
    free: Vec<Handle>,
    defaults: StreamConfig,
    window_ms: f64,
    thresholds: Thresholds,
    tracker: AlertTracker,
    /// Critical drops seen at the previous tick, per connection id.
    critical_drops_seen: SmallMap<u64>,
}

impl<T> Engine<T> {
    /// An engine with the given per-connection defaults and metrics window (ms).
    pub fn new(defaults: StreamConfig, window_ms: f64) -> Self {
        Engine {
            conns: Vec::new(),
            free: Vec::new(),
            defaults,
            window_ms,
            thresholds: Thresholds::default(),
            tracker: AlertTracker::new(),
            critical_drops_seen: SmallMap::new(),
        }
    }

    /// The per-connection defaults.
    pub fn defaults(&self) -> &StreamConfig {
        &self.defaults
    }

    /// The metrics window in ms.
    pub fn window_ms(&self) -> f64 {
        self.window_ms
    }

    /// The alert thresholds.
    pub fn thresholds(&self) -> &Thresholds {
        &self.thresholds
    }

    /// Replaces the alert thresholds.
    pub fn set_thresholds(&mut self, t: Thresholds) {
        self.thresholds = t;
    }

    /// Adds a connection. Ids must be unique.
    pub fn create(
        &mut self,
        id: &str,
        cfg: StreamConfig,
        policy: FlowPolicy,
        keep_dropped: bool,
    ) -> Result<Handle, ConfigError> {
        // A closed connection still draining its buffer does not hold its id: closing forgets
        // the connection at once, so the id may be used again right away.
        if self
            .conns
            .iter()
            .flatten()
            .any(|c| c.id() == id && !c.is_closed())
        {
            return Err(ConfigError::state(format!(
                "connection {id} already exists"
            )));
        }
        let c = Connection::new(id, cfg, policy, self.window_ms, keep_dropped);
        Ok(match self.free.pop() {
            Some(h) => {
                self.conns[h as usize] = Some(c);
                h
            }
            None => {
                self.conns.push(Some(c));
                (self.conns.len() - 1) as Handle
            }
        })
    }

    /// The connection behind a handle.
    #[inline]
    pub fn get(&mut self, h: Handle) -> Option<&mut Connection<T>> {
        self.conns.get_mut(h as usize).and_then(Option::as_mut)
    }

    /// Forgets a connection, returning it and resolutions of its active alerts.
    pub fn remove(&mut self, h: Handle, now: f64) -> Option<(Connection<T>, Vec<AlertEventOut>)> {
        let c = self.conns.get_mut(h as usize)?.take()?;
        self.free.push(h);
        // Alert state is keyed by id; a newer connection may have taken the id, and keeps it.
        if self.conns.iter().flatten().any(|o| o.id() == c.id()) {
            return Some((c, Vec::new()));
        }
        self.critical_drops_seen.remove(c.id());
        let resolved = self
            .tracker
            .remove_key(c.id())
            .into_iter()
            .map(|(ty, sev)| {
                resolved_event(
                    ty,
                    sev,
                    c.id(),
                    f64::NAN,
                    self.thresholds.level_for(ty).warning,
                    now,
                )
            })
            .collect();
        Some((c, resolved))
    }

    /// Live connections.
    pub fn connections(&mut self) -> impl Iterator<Item = (Handle, &mut Connection<T>)> {
        self.conns
            .iter_mut()
            .enumerate()
            .filter_map(|(i, c)| c.as_mut().map(|c| (i as Handle, c)))
    }

    /// Snapshots every connection without touching alert state (for on-demand reads, which must
    /// not consume the transitions the periodic tick reports).
    pub fn snapshot(&mut self, now: f64) -> Tick {
        let (totals, connections) = self.collect(now);
        Tick {
            totals,
            connections,
            alerts: Vec::new(),
        }
    }

    fn collect(&mut self, now: f64) -> (Totals, SmallMap<ConnectionMetrics>) {
        let mut totals = Totals::default();
        let mut connections = SmallMap::new();
        for c in self.conns.iter_mut().flatten() {
            let m = c.metrics(now);
            totals.connections += 1;
            totals.messages_in += m.messages_in;
            totals.messages_out += m.messages_out;
            totals.messages_per_second += m.messages_per_second;
            totals.dropped += m.dropped;
            totals.buffer_size += m.buffer_size;
            totals.backpressure_events += m.backpressure_events;
            totals.errors += m.errors;
            totals.retries += m.retries;
            connections.insert(m.connection_id.clone(), m);
        }
        (totals, connections)
    }

    /// Snapshots every connection, evaluates alerts, and returns both. `memory_fraction` is the
    /// platform's heap use over its limit (NaN when unknown).
    pub fn tick(&mut self, now: f64, memory_fraction: f64) -> Tick {
        let (totals, connections) = self.collect(now);
        let mut alerts = Vec::new();
        for (id, m) in &connections {
            self.level(&mut alerts, id, AlertType::HighLatency, m.p95_latency, now);
            self.level(&mut alerts, id, AlertType::HighErrorRate, m.error_rate, now);
            self.level(
                &mut alerts,
                id,
                AlertType::Backpressure,
                m.buffer_utilization,
                now,
            );
            let seen = self
                .critical_drops_seen
                .insert(id.clone(), m.critical_lost)
                .unwrap_or(0);
            // A counter that went backwards was reset (resetMetrics): count from zero again.
            let seen = if seen > m.critical_lost { 0 } else { seen };
            if m.critical_lost > seen {
                let n = (m.critical_lost - seen) as f64;
                self.flag(
                    &mut alerts,
                    id,
                    AlertType::Drops,
                    true,
                    Severity::Critical,
                    n,
                    0.0,
                    now,
                );
            } else {
                self.level(&mut alerts, id, AlertType::Drops, m.drop_rate, now);
            }
            let open = m.circuit_state == CircuitState::Open.as_str();
            self.flag(
                &mut alerts,
                id,
                AlertType::CircuitOpen,
                open,
                Severity::Critical,
                open as u8 as f64,
                1.0,
                now,
            );
        }
        self.level(&mut alerts, "", AlertType::Memory, memory_fraction, now);
        Tick {
            totals,
            connections,
            alerts,
        }
    }

    fn level(
        &mut self,
        out: &mut Vec<AlertEventOut>,
        key: &str,
        ty: AlertType,
        value: f64,
        now: f64,
    ) {
        let before = self.tracker.severity_of(key, ty);
        let t = self.tracker.evaluate(key, ty, value, now, &self.thresholds);
        self.push_transition(out, key, ty, t, before, value, now);
    }

    #[allow(clippy::too_many_arguments)]
    fn flag(
        &mut self,
        out: &mut Vec<AlertEventOut>,
        key: &str,
        ty: AlertType,
        active: bool,
        sev: Severity,
        value: f64,
        threshold: f64,
        now: f64,
    ) {
        let before = self.tracker.severity_of(key, ty);
        let t = self
            .tracker
            .evaluate_flag(key, ty, active, sev, value, threshold, now);
        self.push_transition(out, key, ty, t, before, value, now);
    }

    #[allow(clippy::too_many_arguments)]
    fn push_transition(
        &self,
        out: &mut Vec<AlertEventOut>,
        key: &str,
        ty: AlertType,
        t: Option<AlertTransition>,
        before: Option<Severity>,
        value: f64,
        now: f64,
    ) {
        match t {
            Some(AlertTransition::Fired {
                severity,
                threshold,
            }) => out.push(AlertEventOut {
                kind: "alert",
                alert: AlertOut::from_alert(&Alert::new(ty, severity, key, value, threshold, now)),
            }),
            Some(AlertTransition::Resolved) => {
                let sev = before.unwrap_or(Severity::Warning);
                out.push(resolved_event(
                    ty,
                    sev,
                    key,
                    value,
                    self.thresholds.level_for(ty).warning,
                    now,
                ));
            }
            None => {}
        }
    }
}

fn resolved_event(
    ty: AlertType,
    sev: Severity,
    key: &str,
    value: f64,
    threshold: f64,
    now: f64,
) -> AlertEventOut {
    let mut a = AlertOut::from_alert(&Alert::new(ty, sev, key, value, threshold, now));
    a.message = if key.is_empty() {
        format!("{} resolved", ty.as_str())
    } else {
        format!("{} resolved on {key}", ty.as_str())
    };
    if !a.value.is_finite() {
        a.value = 0.0;
    }
    AlertEventOut {
        kind: "alert-resolved",
        alert: a,
    }
}
