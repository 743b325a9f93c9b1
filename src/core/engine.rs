//! The engine: a set of connections, engine-wide defaults, metrics ticks and alerts.

use serde::Serialize;

use super::smallmap::SmallMap;

use super::alerts::{Alert, AlertTracker, AlertTransition, AlertType, Severity, Thresholds};
use super::config::{ConfigError, StreamConfig};
use super::connection::{Connection, ConnectionMetrics, FlowPolicy, Lifecycle};
use super::recovery::CircuitState;

/// Handle of a connection inside an [`Engine`]: the slot's index in the low [`INDEX_BITS`] bits
/// and the slot's generation above them. A slot's generation changes whenever its connection is
/// removed, so a handle kept after [`Engine::remove`] (by a writer, a reader or a consumer that
/// outlives its connection) never addresses the connection that reuses the slot:
/// [`Engine::get`] refuses it.
///
/// ```
/// use stream_engine::core::config::StreamConfig;
/// use stream_engine::core::connection::FlowPolicy;
/// use stream_engine::core::engine::Engine;
///
/// let mut e: Engine<u32> = Engine::new(StreamConfig::default(), 5000.0);
/// let a = e.create("a", StreamConfig::default(), FlowPolicy::block(), false).unwrap();
/// e.remove(a, 0.0);
/// let b = e.create("b", StreamConfig::default(), FlowPolicy::block(), false).unwrap();
/// assert_ne!(a, b); // same slot, new generation
/// assert!(e.get(a).is_none()); // the stale handle addresses nothing
/// assert_eq!(e.get(b).unwrap().id(), "b");
/// ```
pub type Handle = u32;

/// Bits of a [`Handle`] that index the slot; the rest is the slot's generation.
pub const INDEX_BITS: u32 = 16;
const INDEX_MASK: u32 = (1 << INDEX_BITS) - 1;
/// Most connections an engine holds at once (open, closing and finished ones).
pub const MAX_CONNECTIONS: usize = 1 << INDEX_BITS;
/// A slot whose generation reaches this is retired rather than reused, so a generation never
/// wraps around to an old handle's value.
const MAX_GENERATION: u32 = u32::MAX >> INDEX_BITS;

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

/// Engine totals (`EngineMetrics.totals`): sums over exactly the connections that
/// [`Tick::connections`] lists.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    /// Connections listed (one per id: see [`Tick::connections`]).
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
    /// Per connection, by id. When a connection closed with `closeConnection` still drains
    /// while a newer one has taken its id, the id shows the newer one.
    pub connections: SmallMap<ConnectionMetrics>,
    /// Alerts that fired or resolved on this tick.
    pub alerts: Vec<AlertEventOut>,
}

/// One place for a connection.
#[derive(Debug)]
struct Slot<T> {
    generation: u32,
    /// The connection and its creation number.
    conn: Option<(Connection<T>, u64)>,
}

/// The engine core, generic over the message type so that tests use plain values and the
/// bindings use `JsValue`.
#[derive(Debug)]
pub struct Engine<T> {
    slots: Vec<Slot<T>>,
    /// Indexes of empty slots.
    free: Vec<u32>,
    /// Creation counter: tells which of two connections with one id is newer.
    created: u64,
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
            slots: Vec::new(),
            free: Vec::new(),
            created: 0,
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
        if self.conns().any(|c| c.id() == id && !c.is_closed()) {
            return Err(ConfigError::state(
                ["connection ", id, " already exists"].concat(),
            ));
        }
        let index = match self.free.pop() {
            Some(i) => i,
            None if self.slots.len() < MAX_CONNECTIONS => {
                self.slots.push(Slot {
                    generation: 0,
                    conn: None,
                });
                (self.slots.len() - 1) as u32
            }
            None => {
                return Err(ConfigError::state(
                    [
                        "too many connections: an engine holds at most ",
                        &super::num::uint(MAX_CONNECTIONS as u64),
                    ]
                    .concat(),
                ))
            }
        };
        let c = Connection::new(id, cfg, policy, self.window_ms, keep_dropped);
        self.created += 1;
        let slot = &mut self.slots[index as usize];
        slot.conn = Some((c, self.created));
        Ok(slot.generation << INDEX_BITS | index)
    }

    fn conns(&self) -> impl Iterator<Item = &Connection<T>> {
        self.slots
            .iter()
            .filter_map(|s| s.conn.as_ref().map(|(c, _)| c))
    }

    fn slot(&mut self, h: Handle) -> Option<&mut Slot<T>> {
        let s = self.slots.get_mut((h & INDEX_MASK) as usize)?;
        (s.generation == h >> INDEX_BITS && s.conn.is_some()).then_some(s)
    }

    /// The connection behind a handle, or `None` for a handle whose connection was removed
    /// (even if its slot now holds another connection) or that was never issued.
    #[inline]
    pub fn get(&mut self, h: Handle) -> Option<&mut Connection<T>> {
        self.slot(h)?.conn.as_mut().map(|(c, _)| c)
    }

    /// The newest connection with this id that the engine holds (open, closing or finished).
    pub fn find(&mut self, id: &str) -> Option<&mut Connection<T>> {
        self.slots
            .iter_mut()
            .filter_map(|s| s.conn.as_mut())
            .filter(|(c, _)| c.id() == id)
            .max_by_key(|(_, n)| *n)
            .map(|(c, _)| c)
    }

    /// Whether `h`'s connection is the newest with its id (the one metrics show for the id).
    fn is_newest(&self, h: Handle) -> bool {
        let Some(Some((c, n))) = self
            .slots
            .get((h & INDEX_MASK) as usize)
            .map(|s| s.conn.as_ref())
        else {
            return false;
        };
        !self.slots.iter().any(|s| {
            s.conn
                .as_ref()
                .is_some_and(|(o, m)| m > n && o.id() == c.id())
        })
    }

    /// The connection's readable side has ended ([`Connection::finish`]): its figures stay
    /// readable (state `finished`) until [`Engine::remove`]; its alerts resolve now, unless a
    /// newer connection holds the id. Returns those resolutions (none for a stale handle).
    pub fn finish(&mut self, h: Handle, now: f64) -> Vec<AlertEventOut> {
        let newest = self.is_newest(h);
        let Some(c) = self.get(h) else {
            return Vec::new();
        };
        if c.lifecycle() == Lifecycle::Finished {
            return Vec::new();
        }
        c.finish();
        if !newest {
            return Vec::new();
        }
        let id = c.id().to_string();
        self.resolve_alerts(&id, now)
    }

    fn resolve_alerts(&mut self, id: &str, now: f64) -> Vec<AlertEventOut> {
        self.critical_drops_seen.remove(id);
        self.tracker
            .remove_key(id)
            .into_iter()
            .map(|(ty, sev)| {
                resolved_event(
                    ty,
                    sev,
                    id,
                    f64::NAN,
                    self.thresholds.level_for(ty).warning,
                    now,
                )
            })
            .collect()
    }

    /// Forgets a connection, returning it and resolutions of its active alerts. The handle (and
    /// every copy of it) is dead from now on; the slot is reused under a new generation.
    pub fn remove(&mut self, h: Handle, now: f64) -> Option<(Connection<T>, Vec<AlertEventOut>)> {
        let newest = self.is_newest(h);
        let slot = self.slot(h)?;
        let (c, _) = slot.conn.take()?;
        slot.generation += 1;
        if slot.generation < MAX_GENERATION {
            self.free.push(h & INDEX_MASK);
        }
        // Alert state is keyed by id; a newer connection may have taken the id, and keeps it. A
        // finished connection's alerts were resolved when it finished.
        if !newest || c.lifecycle() == Lifecycle::Finished {
            return Some((c, Vec::new()));
        }
        let resolved = self.resolve_alerts(c.id(), now);
        Some((c, resolved))
    }

    /// Every connection the engine holds, with its handle.
    pub fn connections(&mut self) -> impl Iterator<Item = (Handle, &mut Connection<T>)> {
        self.slots.iter_mut().enumerate().filter_map(|(i, s)| {
            let g = s.generation;
            s.conn
                .as_mut()
                .map(|(c, _)| (g << INDEX_BITS | i as u32, c))
        })
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
        // One connection per id, the newest, and the totals over exactly those.
        let mut newest: SmallMap<(u64, usize)> = SmallMap::new();
        for (i, s) in self.slots.iter().enumerate() {
            if let Some((c, n)) = &s.conn {
                match newest.get_mut(c.id()) {
                    Some(e) if *n > e.0 => *e = (*n, i),
                    Some(_) => {}
                    None => {
                        newest.insert(c.id().to_string(), (*n, i));
                    }
                }
            }
        }
        // In slot order. A mark per slot rather than sorting the indices: the only sort in the
        // .wasm would otherwise cost about 4 kB of slice-sort code.
        let mut shown = vec![false; self.slots.len()];
        for (_, &(_, i)) in newest.iter() {
            shown[i] = true;
        }
        for i in (0..shown.len()).filter(|&i| shown[i]) {
            let Some((c, _)) = self.slots[i].conn.as_mut() else {
                continue;
            };
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
            // A finished connection's alerts were resolved when it finished; its figures are
            // final and raise nothing new.
            if m.state == Lifecycle::Finished.as_str() {
                continue;
            }
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
        [ty.as_str(), " resolved"].concat()
    } else {
        [ty.as_str(), " resolved on ", key].concat()
    };
    if !a.value.is_finite() {
        a.value = 0.0;
    }
    AlertEventOut {
        kind: "alert-resolved",
        alert: a,
    }
}
