//! `metrics`, `resetMetrics` and `tick` (totals, connections, alerts) through the bindings.

use stream_engine::wasm::EngineCore;
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::*;

use crate::common::*;

const METRIC_KEYS: [&str; 26] = [
    "connectionId",
    "messagesIn",
    "messagesOut",
    "messagesPerSecond",
    "averageLatency",
    "p50Latency",
    "p95Latency",
    "p99Latency",
    "maxLatency",
    "bufferSize",
    "bufferCapacity",
    "bufferUtilization",
    "backpressureEvents",
    "backpressure",
    "dropped",
    "drops",
    "dropsByPriority",
    "deliveredByPriority",
    "errorRate",
    "errors",
    "retries",
    "circuitState",
    "paused",
    "state",
    "dropRate",
    "lastUpdated",
];

fn fresh() -> EngineCore {
    EngineCore::new(&JsValue::UNDEFINED).unwrap()
}

#[wasm_bindgen_test]
fn metrics_is_a_plain_object_with_correct_counts() {
    let mut e = fresh();
    let h = conn(&mut e, "src:out->dst:in", 10, 3, 16.0, &block());
    let m = e.metrics(h, 0.0).unwrap();
    assert_eq!(keys(&m), sorted(&METRIC_KEYS), "{}", json(&m));
    assert_eq!(string(&m, "connectionId"), "src:out->dst:in");
    assert_eq!(num(&m, "messagesIn"), 0.0);
    assert_eq!(num(&m, "bufferCapacity"), 10.0);
    assert_eq!(string(&m, "circuitState"), "closed");
    assert!(get(&m, "adaptive").is_undefined());
    for k in ["drops", "dropsByPriority", "deliveredByPriority"] {
        assert!(get(&m, k).is_object(), "{k}");
    }

    for i in 0..5 {
        e.push(h, slot(), if i == 0 { 1.0 } else { 0.5 }, 0.0);
    }
    let b = e.take(h, 40.0, true).unwrap();
    assert_eq!(b.len(), 3);
    let m = e.metrics(h, 40.0).unwrap();
    assert_eq!(num(&m, "messagesIn"), 5.0);
    assert_eq!(num(&m, "messagesOut"), 3.0);
    assert_eq!(num(&m, "bufferSize"), 2.0);
    assert_eq!(num(&m, "bufferUtilization"), 0.2);
    assert_eq!(num(&m, "dropped"), 0.0);
    assert_eq!(num(&m, "lastUpdated"), 40.0);
    assert_eq!(num(&m, "maxLatency"), 40.0);
    let p95 = num(&m, "p95Latency");
    assert!((38.0..=42.0).contains(&p95), "p95 {p95}");
    assert!(num(&m, "p50Latency") <= p95 && p95 <= num(&m, "p99Latency"));
    assert!(num(&m, "messagesPerSecond") > 0.0);
    let d = get(&m, "deliveredByPriority");
    assert_eq!((num(&d, "critical"), num(&d, "normal")), (1.0, 2.0));
    assert_accounting(&m);
    assert_eq!(e.held(h), 2);
}

#[wasm_bindgen_test]
fn adaptive_connections_report_their_state() {
    let mut e = fresh();
    let policy = obj(&[(
        "handler",
        handler(
            "adaptive",
            &[("targetLatency", 50.into()), ("maxThreshold", 0.9.into())],
        ),
    )]);
    let h = conn(&mut e, "a", 100, 10, 16.0, &policy);
    for i in 0..20 {
        e.push(h, slot(), 0.5, i as f64);
    }
    let m = e.metrics(h, 20.0).unwrap();
    let a = get(&m, "adaptive");
    assert_eq!(
        keys(&a),
        sorted(&["effectiveThreshold", "dropRate", "batchSize"])
    );
    let t = num(&a, "effectiveThreshold");
    assert!(t > 0.0 && t <= 0.9, "{t}");
    assert!(num(&a, "batchSize") >= 1.0 && num(&a, "batchSize") <= 10.0);
    assert!(!e.max_wait(h).is_nan(), "adaptive holds writes");
}

#[wasm_bindgen_test]
fn reset_metrics_restarts_from_what_is_held() {
    let mut e = fresh();
    let h = conn(&mut e, "a", 3, 10, 16.0, &dropping("oldest"));
    let ss = slots(5);
    for &s in &ss {
        e.push(h, s, 0.5, 0.0);
    }
    assert_same(&e.take(h, 0.0, true).unwrap(), &ss[2..]);
    e.push(h, slot(), 0.5, 0.0);
    e.reset_metrics(h);
    let m = e.metrics(h, 1.0).unwrap();
    assert_eq!(num(&m, "messagesIn"), 1.0);
    assert_eq!(num(&m, "messagesOut"), 0.0);
    assert_eq!(num(&m, "dropped"), 0.0);
    assert_accounting(&m);
    assert!(e.take_drop_summary(h).unwrap().is_undefined());
    // Resetting the counters does not forget the dropped slots: JS still has to free them.
    assert_ne!(e.status(h) & DROPPED, 0);
    assert_eq!(e.take_dropped(h), vec![ss[0], R_OLDEST, ss[1], R_OLDEST]);
    assert_eq!(e.status(h) & DROPPED, 0);
}

#[wasm_bindgen_test]
fn tick_has_totals_connections_and_alerts() {
    let mut e = fresh();
    let t = e.tick(0.0, f64::NAN).unwrap();
    assert_eq!(keys(&t), sorted(&["totals", "connections", "alerts"]));
    assert_eq!(num(&get(&t, "totals"), "connections"), 0.0);
    assert!(js_sys::Array::is_array(&get(&t, "alerts")));
    assert_eq!(keys(&get(&t, "connections")).len(), 0);

    let a = conn(&mut e, "a", 10, 10, 16.0, &block());
    let b = conn(&mut e, "b", 10, 10, 16.0, &block());
    for _ in 0..3 {
        e.push(a, slot(), 0.5, 0.0);
    }
    for _ in 0..2 {
        e.push(b, slot(), 0.5, 0.0);
    }
    e.take(b, 1.0, true);
    let t = e.tick(1.0, f64::NAN).unwrap();
    let totals = get(&t, "totals");
    assert_eq!(
        keys(&totals),
        sorted(&[
            "connections",
            "messagesIn",
            "messagesOut",
            "messagesPerSecond",
            "dropped",
            "bufferSize",
            "backpressureEvents",
            "errors",
            "retries",
        ])
    );
    assert_eq!(num(&totals, "connections"), 2.0);
    assert_eq!(num(&totals, "messagesIn"), 5.0);
    assert_eq!(num(&totals, "messagesOut"), 2.0);
    assert_eq!(num(&totals, "bufferSize"), 3.0);
    let conns = get(&t, "connections");
    assert_eq!(keys(&conns), sorted(&["a", "b"]));
    assert_eq!(keys(&get(&conns, "a")), sorted(&METRIC_KEYS));
    assert_eq!(num(&get(&conns, "a"), "messagesIn"), 3.0);
    assert_eq!(num(&get(&conns, "b"), "messagesOut"), 2.0);
    assert_eq!(items(&get(&t, "alerts")).len(), 0, "{}", json(&t));
}

fn alerts(t: &JsValue) -> Vec<JsValue> {
    items(&get(t, "alerts"))
}

#[wasm_bindgen_test]
fn backpressure_alert_fires_at_seventy_percent_and_resolves() {
    let mut e = fresh();
    let h = conn(&mut e, "a", 10, 10, 16.0, &block());
    for _ in 0..6 {
        e.push(h, slot(), 0.5, 0.0);
    }
    assert_eq!(
        alerts(&e.tick(1.0, f64::NAN).unwrap()).len(),
        0,
        "0.6 is below the warning level"
    );
    e.push(h, slot(), 0.5, 1.0);
    let t = e.tick(2.0, f64::NAN).unwrap();
    let al = alerts(&t);
    assert_eq!(al.len(), 1, "{}", json(&t));
    assert_eq!(string(&al[0], "type"), "alert");
    let a = get(&al[0], "alert");
    assert_eq!(
        keys(&a),
        sorted(&[
            "type",
            "severity",
            "connectionId",
            "message",
            "value",
            "threshold",
            "timestamp"
        ])
    );
    assert_eq!(string(&a, "type"), "backpressure");
    assert_eq!(string(&a, "severity"), "warning");
    assert_eq!(string(&a, "connectionId"), "a");
    assert_eq!(num(&a, "value"), 0.7);
    assert_eq!(num(&a, "threshold"), 0.7);
    assert_eq!(num(&a, "timestamp"), 2.0);
    assert!(
        string(&a, "message").contains("on a"),
        "{}",
        string(&a, "message")
    );
    // Staying there fires nothing new; rising to 0.9 escalates to critical.
    assert_eq!(alerts(&e.tick(3.0, f64::NAN).unwrap()).len(), 0);
    e.push(h, slot(), 0.5, 3.0);
    e.push(h, slot(), 0.5, 3.0);
    let al = alerts(&e.tick(4.0, f64::NAN).unwrap());
    assert_eq!(al.len(), 1);
    assert_eq!(
        path(&al[0], &["alert", "severity"]).as_string().as_deref(),
        Some("critical")
    );
    assert_eq!(path(&al[0], &["alert", "threshold"]).as_f64(), Some(0.9));
    // Draining resolves it.
    e.take(h, 5.0, true);
    let al = alerts(&e.tick(6.0, f64::NAN).unwrap());
    assert_eq!(al.len(), 1, "{:?}", al.iter().map(json).collect::<Vec<_>>());
    assert_eq!(string(&al[0], "type"), "alert-resolved");
    assert_eq!(
        path(&al[0], &["alert", "type"]).as_string().as_deref(),
        Some("backpressure")
    );
}

#[wasm_bindgen_test]
fn custom_thresholds_drive_alerts() {
    let mut e = fresh();
    e.set_thresholds(&obj(&[(
        "backpressure",
        obj(&[("warning", 0.2.into()), ("critical", 0.5.into())]),
    )]))
    .unwrap();
    let h = conn(&mut e, "a", 10, 10, 16.0, &block());
    e.push(h, slot(), 0.5, 0.0);
    e.push(h, slot(), 0.5, 0.0);
    let al = alerts(&e.tick(1.0, f64::NAN).unwrap());
    assert_eq!(al.len(), 1);
    assert_eq!(path(&al[0], &["alert", "threshold"]).as_f64(), Some(0.2));
}

#[wasm_bindgen_test]
fn memory_alert_is_engine_wide() {
    let mut e = fresh();
    let al = alerts(&e.tick(0.0, 0.85).unwrap());
    assert_eq!(al.len(), 1);
    let a = get(&al[0], "alert");
    assert_eq!(string(&a, "type"), "memory");
    assert_eq!(string(&a, "severity"), "warning");
    assert_eq!(string(&a, "connectionId"), "");
    assert_eq!(num(&a, "value"), 0.85);
    // Unknown memory (NaN) neither fires nor resolves.
    assert_eq!(alerts(&e.tick(1.0, f64::NAN).unwrap()).len(), 0);
    let al = alerts(&e.tick(2.0, 0.1).unwrap());
    assert_eq!(al.len(), 1);
    assert_eq!(string(&al[0], "type"), "alert-resolved");
}

#[wasm_bindgen_test]
fn removing_a_connection_resolves_its_alerts() {
    let mut e = fresh();
    let h = conn(&mut e, "a", 10, 10, 16.0, &block());
    for _ in 0..8 {
        e.push(h, slot(), 0.5, 0.0);
    }
    assert_eq!(alerts(&e.tick(1.0, f64::NAN).unwrap()).len(), 1);
    let r = items(&e.remove(h, 2.0).unwrap());
    assert_eq!(r.len(), 1);
    assert_eq!(string(&r[0], "type"), "alert-resolved");
    assert_eq!(
        path(&r[0], &["alert", "connectionId"])
            .as_string()
            .as_deref(),
        Some("a")
    );
    assert_eq!(path(&r[0], &["alert", "value"]).as_f64(), Some(0.0));
    let t = e.tick(3.0, f64::NAN).unwrap();
    assert_eq!(num(&get(&t, "totals"), "connections"), 0.0);
    assert_eq!(alerts(&t).len(), 0);
}

#[wasm_bindgen_test]
fn critical_drops_and_open_circuits_alert() {
    let mut e = fresh();
    let h = conn(&mut e, "a", 100, 10, 0.0, &block());
    e.drop_incoming(h, slot(), 1.0, 0.0);
    e.set_circuit(h, 1, 1000.0);
    e.push(h, slot(), 0.5, 0.0);
    e.consume_take(h, 0.0, false).unwrap();
    e.consume_failure(h, 0.0, false);
    let al = alerts(&e.tick(1.0, f64::NAN).unwrap());
    let types: Vec<String> = al
        .iter()
        .map(|a| path(a, &["alert", "type"]).as_string().unwrap())
        .collect();
    assert!(types.contains(&"drops".to_string()), "{types:?}");
    assert!(types.contains(&"circuit_open".to_string()), "{types:?}");
    for a in &al {
        if path(a, &["alert", "type"]).as_string().as_deref() == Some("drops") {
            assert_eq!(
                path(a, &["alert", "severity"]).as_string().as_deref(),
                Some("critical")
            );
        }
    }
}
