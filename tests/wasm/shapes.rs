//! The JS objects the bindings build by hand (`src/wasm/out.rs`, no serde at run time) against
//! the core types' `Serialize` shape, which `tests/types_drift.rs` renders for `tsc` to check
//! against `types/index.d.ts`. Together: what JS receives == the serde shape == the declarations.
//! A field added to a core type but not to `out.rs` (or named differently there) fails here.

use serde::Serialize;
use serde_json::Value;
use stream_engine::wasm::out::ToJs;
use wasm_bindgen_test::*;

use crate::samples::samples;

/// Numbers compared as f64: JSON.stringify writes `9` where serde writes `9.0`.
fn normalise(v: Value) -> Value {
    match v {
        Value::Number(n) => serde_json::json!(n.as_f64().expect("finite")),
        Value::Array(a) => Value::Array(a.into_iter().map(normalise).collect()),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, normalise(v))).collect()),
        other => other,
    }
}

fn same_shape<S: Serialize + ToJs>(what: &str, v: &S) {
    let built = js_sys::JSON::stringify(&v.to_js())
        .expect("stringify")
        .as_string()
        .expect("a string");
    let built = normalise(serde_json::from_str(&built).expect("JSON"));
    let reference = normalise(serde_json::to_value(v).expect("serialise"));
    assert_eq!(
        built, reference,
        "{what}: out.rs builds a different object than the core's Serialize"
    );
}

#[wasm_bindgen_test]
fn hand_built_objects_match_the_serialised_core_types() {
    let s = samples();
    same_shape("ConnectionMetrics", &s.metrics);
    same_shape("Totals", &s.totals);
    same_shape("AlertEventOut (alert)", &s.fired);
    same_shape("AlertEventOut (alert-resolved)", &s.resolved);
    same_shape("DropSummary", &s.summary);
}
