//! Options in, errors out: `EngineCore::new`, `resolveConfig`, `create`, `validateOption`,
//! `setThresholds` / `thresholds`.

use js_sys::{Array, Function};
use stream_engine::wasm::{priority_class, validate_option, EngineCore};
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::*;

use crate::common::*;

#[wasm_bindgen_test]
fn defaults_without_a_config() {
    for cfg in [JsValue::UNDEFINED, JsValue::NULL, obj(&[])] {
        let e = EngineCore::new(&cfg).expect("empty config is valid");
        let c = e.config().unwrap();
        assert_eq!(
            keys(&c),
            sorted(&[
                "bufferSize",
                "batchTimeout",
                "maxBatchSize",
                "backpressureThreshold",
                "retryAttempts",
                "retryDelay",
                "metricsInterval",
                "metricsWindow",
            ])
        );
        assert_eq!(num(&c, "bufferSize"), 1000.0);
        assert_eq!(num(&c, "batchTimeout"), 16.0);
        assert_eq!(num(&c, "maxBatchSize"), 50.0);
        assert_eq!(num(&c, "backpressureThreshold"), 0.8);
        assert_eq!(num(&c, "retryAttempts"), 3.0);
        assert_eq!(num(&c, "retryDelay"), 100.0);
        assert_eq!(num(&c, "metricsInterval"), 1000.0);
        assert_eq!(num(&c, "metricsWindow"), 5000.0);
    }
}

#[wasm_bindgen_test]
fn engine_config_is_applied_and_inherited_by_connections() {
    let mut e = engine(&[
        ("bufferSize", 20.into()),
        ("maxBatchSize", 5.into()),
        ("metricsInterval", 250.into()),
        ("metricsWindow", 2000.into()),
    ]);
    let c = e.config().unwrap();
    assert_eq!(num(&c, "bufferSize"), 20.0);
    assert_eq!(num(&c, "maxBatchSize"), 5.0);
    assert_eq!(num(&c, "metricsInterval"), 250.0);
    assert_eq!(num(&c, "metricsWindow"), 2000.0);
    // resolveConfig: engine defaults under the connection's own fields.
    let r = e
        .resolve_config(&obj(&[("batchTimeout", 0.into())]))
        .unwrap();
    assert_eq!(num(&r, "bufferSize"), 20.0);
    assert_eq!(num(&r, "batchTimeout"), 0.0);
    assert_eq!(num(&r, "maxBatchSize"), 5.0);
    assert!(get(&r, "metricsInterval").is_undefined());
    // A connection without its own config gets the engine's.
    let h = e
        .create("a", &JsValue::UNDEFINED, &JsValue::UNDEFINED)
        .unwrap();
    let m = e.metrics(h, 0.0).unwrap();
    assert_eq!(num(&m, "bufferCapacity"), 20.0);
}

#[wasm_bindgen_test]
fn buffer_size_errors_name_the_field() {
    let e = expect_err(EngineCore::new(&obj(&[("bufferSize", (-1).into())])));
    assert_err(
        &e,
        Kind::Range,
        "bufferSize must be a positive integer, got -1",
    );
    let e = expect_err(EngineCore::new(&obj(&[("bufferSize", "8".into())])));
    assert_err(&e, Kind::Type, "bufferSize must be a number, got string");
    let e = expect_err(EngineCore::new(&obj(&[("bufferSize", 2.5.into())])));
    assert_err(
        &e,
        Kind::Range,
        "bufferSize must be a positive integer, got 2.5",
    );
    let e = expect_err(EngineCore::new(&obj(&[("bufferSize", 0.into())])));
    assert_err(
        &e,
        Kind::Range,
        "bufferSize must be a positive integer, got 0",
    );
    let e = expect_err(EngineCore::new(&obj(&[("bufferSize", f64::NAN.into())])));
    assert_err(
        &e,
        Kind::Range,
        "bufferSize must be a positive integer, got NaN",
    );
    let e = expect_err(EngineCore::new(&obj(&[(
        "bufferSize",
        f64::INFINITY.into(),
    )])));
    assert_err(
        &e,
        Kind::Range,
        "bufferSize must be a positive integer, got Infinity",
    );
    let e = expect_err(EngineCore::new(&obj(&[("bufferSize", 10_000_001.into())])));
    assert_err(
        &e,
        Kind::Range,
        "bufferSize must be at most 10000000, got 10000001",
    );
    let e = expect_err(EngineCore::new(&obj(&[("bufferSize", JsValue::NULL)])));
    assert_err(&e, Kind::Type, "bufferSize must be a number, got null");
    let e = expect_err(EngineCore::new(&obj(&[(
        "bufferSize",
        Array::new().into(),
    )])));
    assert_err(&e, Kind::Type, "bufferSize must be a number, got array");
    let e = expect_err(EngineCore::new(&obj(&[("bufferSize", true.into())])));
    assert_err(&e, Kind::Type, "bufferSize must be a number, got boolean");
    let big = js_sys::BigInt::from(8u32);
    let e = expect_err(EngineCore::new(&obj(&[("bufferSize", big.into())])));
    assert_err(&e, Kind::Type, "bufferSize must be a number, got bigint");
}

#[wasm_bindgen_test]
fn config_must_be_an_object() {
    let cases: [(JsValue, &str); 5] = [
        ("x".into(), "config must be an object, got string"),
        (5.into(), "config must be an object, got number"),
        (true.into(), "config must be an object, got boolean"),
        (Array::new().into(), "config must be an object, got array"),
        (
            Function::new_no_args("return 1").into(),
            "config must be an object, got function",
        ),
    ];
    for (cfg, message) in &cases {
        let e = expect_err(EngineCore::new(cfg));
        assert_err(&e, Kind::Type, message);
    }
    let mut ok = EngineCore::new(&JsValue::UNDEFINED).unwrap();
    for (cfg, message) in &cases {
        assert_err(&expect_err(ok.resolve_config(cfg)), Kind::Type, message);
        assert_err(
            &expect_err(ok.create("a", cfg, &JsValue::UNDEFINED)),
            Kind::Type,
            message,
        );
    }
    // The failed creates left nothing behind.
    assert!(ok
        .create("a", &JsValue::UNDEFINED, &JsValue::UNDEFINED)
        .is_ok());
}

#[wasm_bindgen_test]
fn every_config_field_is_validated() {
    let cases: [(&str, JsValue, Kind, &str); 10] = [
        (
            "batchTimeout",
            (-1).into(),
            Kind::Range,
            "batchTimeout must be a finite number >= 0 (ms), got -1",
        ),
        (
            "batchTimeout",
            f64::NAN.into(),
            Kind::Range,
            "batchTimeout must be a finite number >= 0 (ms), got NaN",
        ),
        (
            "maxBatchSize",
            0.into(),
            Kind::Range,
            "maxBatchSize must be a positive integer, got 0",
        ),
        (
            "maxBatchSize",
            "50".into(),
            Kind::Type,
            "maxBatchSize must be a number, got string",
        ),
        (
            "backpressureThreshold",
            0.into(),
            Kind::Range,
            "backpressureThreshold must be in (0, 1], got 0",
        ),
        (
            "backpressureThreshold",
            1.5.into(),
            Kind::Range,
            "backpressureThreshold must be in (0, 1], got 1.5",
        ),
        (
            "retryAttempts",
            (-2).into(),
            Kind::Range,
            "retryAttempts must be an integer from 0 to 1000, got -2",
        ),
        (
            "retryDelay",
            f64::INFINITY.into(),
            Kind::Range,
            "retryDelay must be a finite number >= 0 (ms), got Infinity",
        ),
        (
            "metricsInterval",
            0.into(),
            Kind::Range,
            "metricsInterval must be > 0 (ms), got 0",
        ),
        (
            "metricsWindow",
            (-1).into(),
            Kind::Range,
            "metricsWindow must be a finite number >= 0 (ms), got -1",
        ),
    ];
    for (field, v, kind, message) in cases {
        let e = expect_err(EngineCore::new(&obj(&[(field, v.clone())])));
        assert_err(&e, kind, message);
        // The same per-connection fields are checked by resolveConfig and create.
        if !field.starts_with("metrics") {
            let mut ok = EngineCore::new(&JsValue::UNDEFINED).unwrap();
            let cfg = obj(&[(field, v)]);
            assert_err(&expect_err(ok.resolve_config(&cfg)), kind, message);
            assert_err(
                &expect_err(ok.create("a", &cfg, &JsValue::UNDEFINED)),
                kind,
                message,
            );
        }
    }
    let e = expect_err(EngineCore::new(&obj(&[("metricsWindow", 0.into())])));
    assert_err(&e, Kind::Range, "metricsWindow must be > 0 (ms), got 0");
    let e = expect_err(EngineCore::new(&obj(&[("metricsInterval", "1s".into())])));
    assert_err(
        &e,
        Kind::Type,
        "metricsInterval must be a number, got string",
    );
    // Unknown fields are refused, naming the key.
    let e = expect_err(EngineCore::new(&obj(&[("colour", "red".into())])));
    assert_err(&e, Kind::Type, "config has an unknown option \"colour\"");
}

#[wasm_bindgen_test]
fn bad_policies_name_the_field() {
    let mut e = EngineCore::new(&JsValue::UNDEFINED).unwrap();
    let none = JsValue::UNDEFINED;
    let cfg = |pairs: &[(&str, JsValue)]| obj(pairs);
    // (config, handler, kind, message): the connection config's flow options and the handler
    // in force, both resolved in the core.
    let cases: [(JsValue, JsValue, Kind, &str); 10] = [
        (
            cfg(&[("dropPolicy", "random".into())]),
            none.clone(),
            Kind::Type,
            "dropPolicy must be one of 'priority', 'oldest', 'newest', 'block', got 'random'",
        ),
        (
            cfg(&[("dropPolicy", 3.into())]),
            none.clone(),
            Kind::Type,
            "dropPolicy must be one of 'priority', 'oldest', 'newest', 'block', got number",
        ),
        (
            cfg(&[("dropPolicy", JsValue::NULL)]),
            none.clone(),
            Kind::Type,
            "dropPolicy must be one of 'priority', 'oldest', 'newest', 'block', got null",
        ),
        (
            none.clone(),
            "priority".into(),
            Kind::Type,
            "handler must be an object, got string",
        ),
        (
            none.clone(),
            handler("default", &[("dropThreshold", 0.into())]),
            Kind::Range,
            "dropThreshold must be in (0, 1], got 0",
        ),
        (
            cfg(&[
                ("dropPolicy", "oldest".into()),
                ("maxWaitTime", (-5).into()),
            ]),
            none.clone(),
            Kind::Range,
            "maxWaitTime must be a finite number >= 0 (ms), got -5",
        ),
        (
            cfg(&[("conflate", "yes".into())]),
            none.clone(),
            Kind::Type,
            "conflate must be a boolean, got string",
        ),
        (
            none.clone(),
            handler(
                "adaptive",
                &[("minThreshold", 0.9.into()), ("maxThreshold", 0.5.into())],
            ),
            Kind::Range,
            "minThreshold must be <= maxThreshold, got 0.9 > 0.5",
        ),
        (
            none.clone(),
            handler("adaptive", &[("targetLatency", 0.into())]),
            Kind::Range,
            "targetLatency must be > 0 (ms), got 0",
        ),
        (
            none.clone(),
            handler("adaptive", &[("target", 5.into())]),
            Kind::Type,
            "AdaptiveBackpressureHandler options has an unknown option \"target\"",
        ),
    ];
    for (c, h, kind, message) in &cases {
        assert_err(&expect_err(e.create("a", c, h)), *kind, message);
    }
    let e2 = expect_err(e.create("a", &none, &7.into()));
    assert_err(&e2, Kind::Type, "handler must be an object, got number");
    // Every rule name is accepted, and a missing policy means block.
    for (i, rule) in ["priority", "oldest", "newest", "block"].iter().enumerate() {
        let id = format!("ok{i}");
        assert!(e
            .create(&id, &cfg(&[("dropPolicy", (*rule).into())]), &none)
            .is_ok());
    }
    let h = e.create("nopolicy", &none, &none).unwrap();
    assert!(e.max_wait(h).is_nan(), "block policy holds no writes");
    // The handler's defaults are the core's: the adaptive hold is min(10, targetLatency / 10).
    let h = e
        .create(
            "adaptive",
            &none,
            &handler("adaptive", &[("targetLatency", 40.into())]),
        )
        .unwrap();
    assert_eq!(e.max_wait(h), 4.0);
    let o = stream_engine::wasm::resolve_handler_options(
        "adaptive",
        &obj(&[("targetLatency", 40.into())]),
    )
    .unwrap();
    assert_eq!(num(&o, "maxWaitTime"), 4.0);
}

#[wasm_bindgen_test]
fn duplicate_ids_are_a_plain_error() {
    let mut e = EngineCore::new(&JsValue::UNDEFINED).unwrap();
    let h = e
        .create("a->b", &JsValue::UNDEFINED, &JsValue::UNDEFINED)
        .unwrap();
    let err = expect_err(e.create("a->b", &JsValue::UNDEFINED, &JsValue::UNDEFINED));
    assert_err(&err, Kind::Plain, "connection a->b already exists");
    // After removal the id (and the handle slot) can be reused; the old handle stays dead.
    e.remove(h, 0.0).unwrap();
    let h2 = e.create("a->b", &block(), &JsValue::UNDEFINED).unwrap();
    assert_ne!(h2, h);
    assert_eq!(h2 & 0xFFFF, h & 0xFFFF, "same slot, new generation");
    assert!(e.metrics(h, 0.0).unwrap().is_undefined());
    assert!(!e.metrics(h2, 0.0).unwrap().is_undefined());
}

#[wasm_bindgen_test]
fn a_stale_handle_reads_as_closed_everywhere() {
    let mut e = EngineCore::new(&JsValue::UNDEFINED).unwrap();
    let old = e.create("a", &block(), &JsValue::UNDEFINED).unwrap();
    e.remove(old, 0.0).unwrap();
    let h = e.create("b", &block(), &JsValue::UNDEFINED).unwrap();
    let closed = CLOSED;
    assert_eq!(e.push(h, 0, 0.5, 0.0) & closed, 0);
    assert_eq!(e.push(old, 1, 0.5, 0.0), closed);
    assert_eq!(e.push_keyed(old, 1, 0.5, "k", 0.0), closed);
    assert_eq!(e.push_many(old, &[1, 2], &[0.5, 0.5], 0.0), closed);
    assert_eq!(e.last_accepted(), 0);
    assert_eq!(e.drop_incoming(old, 1, 0.5, 0.0), closed);
    assert_eq!(e.status(old), closed);
    assert_eq!(e.take_io(old, 1.0, true), -1);
    assert!(e.consume_take(old, 1.0, true).is_none());
    assert_eq!(e.consume_success(old, 1.0), closed);
    assert_eq!(e.consume_failure(old, 1.0, true), closed);
    assert_eq!(e.consume_dead_letter(old, 1.0), 0);
    use stream_engine::core::connection::consume::FailureKind;
    assert!(e
        .consume_failed(old, 1.0, FailureKind::RetryAfter, 5.0)
        .is_nan());
    assert_eq!(e.consume_attempt(old), 0);
    assert_eq!(e.circuit_wait(old, 1.0), f64::INFINITY);
    assert!(e.hold_until(old, 0.0, 1.0).is_nan());
    assert_eq!(e.push_droppable(old, 1, 0.5, None, 0.0), closed);
    assert!(e.cancel(old, 1.0).is_empty());
    assert_eq!(e.held(old), 0);
    e.pause(old);
    e.shut(old);
    e.close(old);
    assert!(e.take_dropped(old).is_empty());
    assert!(e.take_drop_summary(old).unwrap().is_undefined());
    assert_eq!(Array::from(&e.finish(old, 1.0).unwrap()).length(), 0);
    assert_eq!(Array::from(&e.remove(old, 1.0).unwrap()).length(), 0);
    // The connection in the slot is untouched by all of that.
    assert_eq!(e.held(h), 1);
    assert_eq!(get(&e.metrics(h, 1.0).unwrap(), "state"), "open");
    assert_eq!(get(&e.metrics(h, 1.0).unwrap(), "messagesIn"), 1);
}

#[wasm_bindgen_test]
fn validate_option_each_kind() {
    let ok = |kind: &str, v: JsValue| validate_option(kind, "opt", &v).expect("valid");
    let bad = |kind: &str, v: JsValue| expect_err(validate_option(kind, "opt", &v));

    assert_eq!(ok("fraction", 0.5.into()), 0.5);
    assert_eq!(ok("fraction", 1.into()), 1.0);
    assert_err(
        &bad("fraction", 0.into()),
        Kind::Range,
        "opt must be in (0, 1], got 0",
    );
    assert_err(
        &bad("fraction", 1.01.into()),
        Kind::Range,
        "opt must be in (0, 1], got 1.01",
    );
    assert_err(
        &bad("fraction", f64::NAN.into()),
        Kind::Range,
        "opt must be in (0, 1], got NaN",
    );

    assert_eq!(ok("time", 0.into()), 0.0);
    assert_eq!(ok("time", 250.5.into()), 250.5);
    assert_err(
        &bad("time", (-1).into()),
        Kind::Range,
        "opt must be a finite number >= 0 (ms), got -1",
    );
    assert_err(
        &bad("time", f64::INFINITY.into()),
        Kind::Range,
        "opt must be a finite number >= 0 (ms), got Infinity",
    );

    assert_eq!(ok("positiveInt", 3.into()), 3.0);
    assert_eq!(ok("positiveInt", 1e9.into()), 1e9);
    assert_err(
        &bad("positiveInt", 0.into()),
        Kind::Range,
        "opt must be a positive integer, got 0",
    );
    assert_err(
        &bad("positiveInt", 2.5.into()),
        Kind::Range,
        "opt must be a positive integer, got 2.5",
    );
    assert_err(
        &bad("positiveInt", 1e10.into()),
        Kind::Range,
        "opt must be at most 1000000000, got 10000000000",
    );

    assert_eq!(ok("count", 0.into()), 0.0);
    assert_eq!(ok("count", 1e6.into()), 1e6);
    assert_err(
        &bad("count", (-1).into()),
        Kind::Range,
        "opt must be an integer from 0 to 1000000, got -1",
    );
    assert_err(
        &bad("count", 1_000_001.into()),
        Kind::Range,
        "opt must be an integer from 0 to 1000000, got 1000001",
    );

    assert_eq!(ok("number01", 0.into()), 0.0);
    assert_eq!(ok("number01", 1.into()), 1.0);
    assert_err(
        &bad("number01", 1.5.into()),
        Kind::Range,
        "opt must be in [0, 1], got 1.5",
    );
    assert_err(
        &bad("number01", f64::NAN.into()),
        Kind::Range,
        "opt must be in [0, 1], got NaN",
    );

    for kind in ["fraction", "time", "positiveInt", "count", "number01"] {
        assert_err(
            &bad(kind, "1".into()),
            Kind::Type,
            "opt must be a number, got string",
        );
        assert_err(
            &bad(kind, JsValue::NULL),
            Kind::Type,
            "opt must be a number, got null",
        );
        assert_err(
            &bad(kind, JsValue::UNDEFINED),
            Kind::Type,
            "opt must be a number, got undefined",
        );
        assert_err(
            &bad(kind, obj(&[])),
            Kind::Type,
            "opt must be a number, got object",
        );
    }
    assert_err(
        &bad("bogus", 1.into()),
        Kind::Type,
        "unknown option kind bogus",
    );
    assert_err(&bad("", 1.into()), Kind::Type, "unknown option kind ");
}

fn level(w: f64, c: f64) -> JsValue {
    obj(&[("warning", w.into()), ("critical", c.into())])
}

fn assert_level(t: &JsValue, name: &str, w: f64, c: f64) {
    let l = get(t, name);
    assert_eq!(
        (num(&l, "warning"), num(&l, "critical")),
        (w, c),
        "{name} in {}",
        json(t)
    );
}

#[wasm_bindgen_test]
fn thresholds_round_trip() {
    let mut e = EngineCore::new(&JsValue::UNDEFINED).unwrap();
    let t = e.thresholds().unwrap();
    assert_eq!(
        keys(&t),
        sorted(&["latency", "errorRate", "backpressure", "memory", "dropRate"])
    );
    assert_level(&t, "latency", 100.0, 500.0);
    assert_level(&t, "errorRate", 0.05, 0.15);
    assert_level(&t, "backpressure", 0.7, 0.9);
    assert_level(&t, "memory", 0.8, 0.95);
    assert_eq!(num(&get(&t, "dropRate"), "warning"), 0.01);

    // A partial update changes only what it names.
    e.set_thresholds(&obj(&[("latency", obj(&[("warning", 50.into())]))]))
        .unwrap();
    let t = e.thresholds().unwrap();
    assert_level(&t, "latency", 50.0, 500.0);
    assert_level(&t, "backpressure", 0.7, 0.9);

    // A full object round-trips exactly.
    let full = obj(&[
        ("latency", level(10.0, 20.0)),
        ("errorRate", level(0.1, 0.2)),
        ("backpressure", level(0.5, 0.6)),
        ("memory", level(0.3, 0.4)),
        ("dropRate", obj(&[("warning", 0.25.into())])),
    ]);
    e.set_thresholds(&full).unwrap();
    assert_eq!(json(&e.thresholds().unwrap()), json(&full));
    // Feeding the output back in is a no-op.
    let out = e.thresholds().unwrap();
    e.set_thresholds(&out).unwrap();
    assert_eq!(json(&e.thresholds().unwrap()), json(&full));
    // undefined / null / {} change nothing.
    for v in [JsValue::UNDEFINED, JsValue::NULL, obj(&[])] {
        e.set_thresholds(&v).unwrap();
        assert_eq!(json(&e.thresholds().unwrap()), json(&full));
    }
}

#[wasm_bindgen_test]
fn bad_thresholds_throw_and_change_nothing() {
    let mut e = EngineCore::new(&JsValue::UNDEFINED).unwrap();
    let before = json(&e.thresholds().unwrap());
    let cases: [(JsValue, Kind, &str); 9] = [
        (
            obj(&[("latency", level(600.0, 500.0))]),
            Kind::Range,
            "latency.warning must be <= latency.critical, got 600 > 500",
        ),
        (
            obj(&[("latency", obj(&[("warning", (-1).into())]))]),
            Kind::Range,
            "latency.warning must be a finite number >= 0, got -1",
        ),
        (
            obj(&[("latency", obj(&[("critical", f64::NAN.into())]))]),
            Kind::Range,
            "latency.critical must be a finite number >= 0, got NaN",
        ),
        (
            obj(&[("errorRate", obj(&[("critical", 2.into())]))]),
            Kind::Range,
            "errorRate.critical must be in [0, 1], got 2",
        ),
        (
            obj(&[("memory", obj(&[("warning", "high".into())]))]),
            Kind::Type,
            "memory.warning must be a number, got string",
        ),
        (
            obj(&[("backpressure", "x".into())]),
            Kind::Type,
            "backpressure must be an object, got string",
        ),
        (
            obj(&[("dropRate", obj(&[("warning", 2.into())]))]),
            Kind::Range,
            "dropRate.warning must be in [0, 1], got 2",
        ),
        (
            obj(&[("dropRate", 0.5.into())]),
            Kind::Type,
            "dropRate must be an object, got number",
        ),
        (
            "strict".into(),
            Kind::Type,
            "thresholds must be an object, got string",
        ),
    ];
    for (t, kind, message) in &cases {
        assert_err(&expect_err(e.set_thresholds(t)), *kind, message);
        assert_eq!(
            json(&e.thresholds().unwrap()),
            before,
            "a failed setThresholds changed state"
        );
    }
    // A valid field followed by an invalid one: all or nothing.
    let mixed = obj(&[("latency", level(1.0, 2.0)), ("memory", level(0.9, 0.5))]);
    assert!(e.set_thresholds(&mixed).is_err());
    assert_eq!(json(&e.thresholds().unwrap()), before);
}

#[wasm_bindgen_test]
fn priority_class_names() {
    assert_eq!(priority_class(1.0), "critical");
    assert_eq!(priority_class(0.75), "high");
    assert_eq!(priority_class(0.5), "normal");
    assert_eq!(priority_class(0.49), "low");
    assert_eq!(priority_class(0.0), "low");
    assert_eq!(priority_class(f64::NAN), "normal");
    assert_eq!(priority_class(f64::INFINITY), "critical");
    assert_eq!(priority_class(f64::NEG_INFINITY), "low");
    assert_eq!(priority_class(7.0), "critical");
}

#[wasm_bindgen_test]
fn wasm_memory_is_reported() {
    let b = stream_engine::wasm::wasm_memory_bytes();
    assert!(b > 0.0 && b % 65536.0 == 0.0, "{b}");
}

/// BUG (src/wasm/options.rs `read_level`): a threshold of the wrong type is reported without its
/// parent, e.g. `warning must be a number, got string` for `{ memory: { warning: 'high' } }`,
/// while the RangeErrors of the same fields say `memory.warning ...`. The message should name
/// the full field.
#[wasm_bindgen_test]
fn threshold_type_errors_name_the_full_field() {
    let mut e = EngineCore::new(&JsValue::UNDEFINED).unwrap();
    let t = obj(&[("memory", obj(&[("warning", "high".into())]))]);
    assert_err(
        &expect_err(e.set_thresholds(&t)),
        Kind::Type,
        "memory.warning must be a number, got string",
    );
}
