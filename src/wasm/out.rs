//! The per-tick results (metrics, alerts, drop summaries) as plain JS objects, built by hand.
//!
//! serde-wasm-bindgen did this generically; its serializer and the derived `Serialize` code were
//! about 12 KB of the `.wasm` (issue 12: footprint). These objects are built once per metrics tick
//! or on request, never per message, so one `Reflect::set` per field costs nothing that matters.
//! The shapes are the documented ones (`ConnectionMetrics`, `EngineMetrics.totals`, `Alert`,
//! the `drop` event's summary); the core types keep their `Serialize` derives for Rust users.

use js_sys::{Array, Object, Reflect};
use wasm_bindgen::JsValue;

use crate::core::connection::{ConnectionMetrics, DropCounts, DropSummary};
use crate::core::engine::{AlertEventOut, AlertOut, Tick, Totals};
use crate::core::priority::ClassCounts;

/// Something that becomes a plain JS value.
pub trait ToJs {
    /// The JS value.
    fn to_js(&self) -> JsValue;
}

fn set(o: &Object, k: &str, v: JsValue) {
    let _ = Reflect::set(o, &JsValue::from_str(k), &v);
}

/// Counters are u64 in Rust and numbers in JS (exact up to 2^53).
fn num(v: u64) -> JsValue {
    JsValue::from_f64(v as f64)
}

impl ToJs for ClassCounts {
    fn to_js(&self) -> JsValue {
        let o = Object::new();
        set(&o, "critical", num(self.critical));
        set(&o, "high", num(self.high));
        set(&o, "normal", num(self.normal));
        set(&o, "low", num(self.low));
        o.into()
    }
}

impl ToJs for DropCounts {
    fn to_js(&self) -> JsValue {
        let o = Object::new();
        set(&o, "priority", num(self.priority));
        set(&o, "oldest", num(self.oldest));
        set(&o, "newest", num(self.newest));
        set(&o, "conflated", num(self.conflated));
        set(&o, "dead-letter", num(self.dead_letter));
        o.into()
    }
}

impl ToJs for DropSummary {
    fn to_js(&self) -> JsValue {
        let o = Object::new();
        set(&o, "count", num(self.count));
        set(&o, "reasons", self.reasons.to_js());
        set(&o, "byPriority", self.by_priority.to_js());
        o.into()
    }
}

impl ToJs for ConnectionMetrics {
    fn to_js(&self) -> JsValue {
        let m = self;
        let o = Object::new();
        set(&o, "connectionId", JsValue::from_str(&m.connection_id));
        set(&o, "messagesIn", num(m.messages_in));
        set(&o, "messagesOut", num(m.messages_out));
        set(&o, "messagesPerSecond", m.messages_per_second.into());
        set(&o, "averageLatency", m.average_latency.into());
        set(&o, "p50Latency", m.p50_latency.into());
        set(&o, "p95Latency", m.p95_latency.into());
        set(&o, "p99Latency", m.p99_latency.into());
        set(&o, "maxLatency", m.max_latency.into());
        set(&o, "bufferSize", num(m.buffer_size as u64));
        set(&o, "bufferCapacity", num(m.buffer_capacity as u64));
        set(&o, "bufferUtilization", m.buffer_utilization.into());
        set(&o, "backpressureEvents", num(m.backpressure_events));
        set(&o, "backpressure", m.backpressure.into());
        set(&o, "dropped", num(m.dropped));
        set(&o, "drops", m.drops.to_js());
        set(&o, "dropsByPriority", m.drops_by_priority.to_js());
        set(&o, "deliveredByPriority", m.delivered_by_priority.to_js());
        set(&o, "errorRate", m.error_rate.into());
        set(&o, "errors", num(m.errors));
        set(&o, "retries", num(m.retries));
        set(&o, "circuitState", JsValue::from_str(m.circuit_state));
        set(&o, "paused", m.paused.into());
        set(&o, "state", JsValue::from_str(m.state));
        if let Some(a) = m.adaptive {
            let ad = Object::new();
            set(&ad, "effectiveThreshold", a.effective_threshold.into());
            set(&ad, "dropRate", a.drop_rate.into());
            set(&ad, "batchSize", num(a.batch_size as u64));
            set(&o, "adaptive", ad.into());
        }
        set(&o, "dropRate", m.drop_rate.into());
        set(&o, "lastUpdated", m.last_updated.into());
        o.into()
    }
}

impl ToJs for Totals {
    fn to_js(&self) -> JsValue {
        let o = Object::new();
        set(&o, "connections", num(self.connections as u64));
        set(&o, "messagesIn", num(self.messages_in));
        set(&o, "messagesOut", num(self.messages_out));
        set(&o, "messagesPerSecond", self.messages_per_second.into());
        set(&o, "dropped", num(self.dropped));
        set(&o, "bufferSize", num(self.buffer_size as u64));
        set(&o, "backpressureEvents", num(self.backpressure_events));
        set(&o, "errors", num(self.errors));
        set(&o, "retries", num(self.retries));
        o.into()
    }
}

impl ToJs for AlertOut {
    fn to_js(&self) -> JsValue {
        let o = Object::new();
        set(&o, "type", JsValue::from_str(self.alert_type));
        set(&o, "severity", JsValue::from_str(self.severity));
        set(&o, "connectionId", JsValue::from_str(&self.connection_id));
        set(&o, "message", JsValue::from_str(&self.message));
        set(&o, "value", self.value.into());
        set(&o, "threshold", self.threshold.into());
        set(&o, "timestamp", self.timestamp.into());
        o.into()
    }
}

impl ToJs for AlertEventOut {
    fn to_js(&self) -> JsValue {
        let o = Object::new();
        set(&o, "type", JsValue::from_str(self.kind));
        set(&o, "alert", self.alert.to_js());
        o.into()
    }
}

impl<T: ToJs> ToJs for [T] {
    fn to_js(&self) -> JsValue {
        let a = Array::new();
        for x in self {
            a.push(&x.to_js());
        }
        a.into()
    }
}

impl ToJs for Tick {
    fn to_js(&self) -> JsValue {
        let o = Object::new();
        set(&o, "totals", self.totals.to_js());
        let c = Object::new();
        for (id, m) in &self.connections {
            set(&c, id, m.to_js());
        }
        set(&o, "connections", c.into());
        set(&o, "alerts", self.alerts.to_js());
        o.into()
    }
}
