//! Junk in, no panic out. On wasm32 a panic traps (it would fail the test and can leave the
//! instance in a bad state), so each test here also checks that the engine still works after
//! the junk.

use stream_engine::wasm::{validate_option, EngineCore};
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::*;

use crate::common::*;

const JUNK_HANDLES: [u32; 7] = [0, 1, 7, 1 << 31, u32::MAX - 1, u32::MAX, 0xDEAD_BEEF];
/// Slot numbers at the edges, with repeats: the core must treat slots as opaque, even the
/// duplicates the JS glue never produces.
const JUNK_SLOTS: [u32; 12] = [
    0,
    u32::MAX,
    0,
    u32::MAX,
    1 << 31,
    u32::MAX - 1,
    1,
    0,
    255,
    256,
    u32::MAX,
    0xDEAD_BEEF,
];
const JUNK_NUMBERS: [f64; 10] = [
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
    -1.0,
    -0.0,
    1e308,
    -1e308,
    f64::MIN_POSITIVE,
    4294967296.0,
    9007199254740993.0,
];

/// Every handle method on an unknown handle: no panic, closed / empty / undefined answers.
fn poke_unknown(e: &mut EngineCore, h: u32) {
    for slot in JUNK_SLOTS {
        assert_eq!(e.push(h, slot, 0.5, 0.0), CLOSED, "push of {slot} on {h}");
        assert_eq!(e.push_keyed(h, slot, 0.5, "k", 0.0), CLOSED);
        assert_eq!(e.drop_incoming(h, slot, 0.5, 0.0), CLOSED);
    }
    assert_eq!(e.push_many(h, &JUNK_SLOTS, &[0.5; 3], 0.0), CLOSED);
    assert_eq!(e.push_many(h, &[], &[], 0.0), CLOSED);
    assert_eq!(e.status(h), CLOSED);
    assert!(e.deadline(h).is_nan());
    assert!(e.take(h, 0.0, true).is_none());
    assert!(e.take_with_status(h, 0.0, true).is_none());
    assert!(e.consume_take(h, 0.0, true).is_none());
    assert_eq!(e.consume_success(h, 0.0), CLOSED);
    assert_eq!(e.consume_failure(h, 0.0, true), CLOSED);
    assert_eq!(e.consume_dead_letter(h, 0.0), 0);
    e.set_circuit(h, 3, 100.0);
    assert!(!e.circuit_allow(h, 0.0));
    assert!(e.circuit_next_attempt(h).is_nan());
    e.pause(h);
    e.resume(h);
    e.close(h);
    assert!(e.cancel(h, 0.0).is_empty());
    assert_eq!(e.held(h), 0);
    assert!(e.max_wait(h).is_nan());
    assert_eq!(e.take_events(h).unwrap().length(), 0);
    assert!(e.take_drop_summary(h).unwrap().is_undefined());
    assert!(e.take_dropped(h).is_empty());
    assert!(e.metrics(h, 0.0).unwrap().is_undefined());
    e.reset_metrics(h);
    assert_eq!(items(&e.remove(h, 0.0).unwrap()).len(), 0);
}

#[wasm_bindgen_test]
fn unknown_handles_never_panic() {
    let mut e = EngineCore::new(&JsValue::UNDEFINED).unwrap();
    for h in JUNK_HANDLES {
        poke_unknown(&mut e, h);
    }
    // With live connections around, handles past the end and removed ones are still unknown.
    let a = conn(&mut e, "a", 10, 10, 16.0, &block());
    let b = conn(&mut e, "b", 10, 10, 16.0, &block());
    e.push(a, slot(), 0.5, 0.0);
    e.remove(b, 0.0).unwrap();
    for h in JUNK_HANDLES.into_iter().filter(|&h| h != a) {
        poke_unknown(&mut e, h);
    }
    // The live one is untouched.
    assert_eq!(e.held(a), 1);
    assert_eq!(e.take(a, 0.0, true).map(|v| v.len()), Some(1));
}

#[wasm_bindgen_test]
fn junk_priorities_and_times_never_panic() {
    let mut e = EngineCore::new(&JsValue::UNDEFINED).unwrap();
    let policies = [
        block(),
        dropping("priority"),
        dropping("oldest"),
        dropping("newest"),
        obj(&[("dropPolicy", "priority".into()), ("conflate", true.into())]),
        obj(&[("handler", handler("adaptive", &[]))]),
    ];
    let mut handles = Vec::new();
    for (i, p) in policies.iter().enumerate() {
        handles.push(conn(&mut e, &format!("c{i}"), 4, 3, 16.0, p));
    }
    for &h in &handles {
        for (i, &x) in JUNK_NUMBERS.iter().enumerate() {
            for (j, &y) in JUNK_NUMBERS.iter().enumerate() {
                let s = JUNK_SLOTS[(i + j) % JUNK_SLOTS.len()];
                let st = e.push(h, s, x, y);
                assert_eq!(st & CLOSED, 0);
                e.push_keyed(h, s, y, &format!("k{}", i % 2), x);
                e.drop_incoming(h, s, x, y);
                e.deadline(h);
                let _ = e.take(h, x, false);
                let _ = e.take(h, y, i % 3 == 0);
                if let Some(b) = e.take_with_status(h, x, i % 2 == 0) {
                    assert!(b.len() >= 2, "a batch and the status: {b:?}");
                }
                if e.consume_take(h, x, true).is_some() {
                    e.consume_failure(h, y, true);
                    if i % 2 == 0 {
                        e.consume_success(h, x);
                    } else {
                        e.consume_dead_letter(h, y);
                    }
                }
                e.circuit_allow(h, x);
                e.set_circuit(h, 0, x);
                let m = e.metrics(h, y).unwrap();
                assert!(m.is_object(), "metrics at now={y}: {m:?}");
                assert_accounting(&m);
            }
            e.push_many(h, &JUNK_SLOTS[..5], &JUNK_NUMBERS, x);
            e.push_many(h, &JUNK_SLOTS[i % 6..], &[x], x);
            let t = e.tick(x, x).unwrap();
            assert!(t.is_object(), "tick({x}) gave {t:?}");
            e.take_events(h).unwrap();
            e.take_dropped(h);
            e.take_drop_summary(h).unwrap();
        }
        let m = e.metrics(h, f64::NAN).unwrap();
        assert_accounting(&m);
        assert!(
            num(&m, "bufferSize") <= 4.0,
            "bufferSize is a hard bound: {}",
            json(&m)
        );
        e.cancel(h, f64::NAN);
        e.reset_metrics(h);
    }
    for x in JUNK_NUMBERS {
        assert!(e.tick(x, x).unwrap().is_object());
        assert!(e.tick(f64::NAN, x).unwrap().is_object());
    }
    // Still usable afterwards.
    let h = conn(&mut e, "after", 10, 10, 16.0, &block());
    let m = slot();
    e.push(h, m, 0.5, 0.0);
    assert_same(&e.take(h, 0.0, true).unwrap(), &[m]);
}

#[wasm_bindgen_test]
fn huge_sizes_are_accepted_or_refused_cleanly() {
    // The largest allowed sizes: nothing is preallocated, so this is cheap.
    let mut e = engine(&[
        ("bufferSize", 10_000_000.into()),
        ("maxBatchSize", 100_000.into()),
        ("batchTimeout", 1e308.into()),
        ("metricsWindow", 1e308.into()),
        ("metricsInterval", 1e-300.into()),
    ]);
    let h = e
        .create("big", &JsValue::UNDEFINED, &JsValue::UNDEFINED)
        .unwrap();
    let ms = slots(5000);
    let (n, st) = push_many(&mut e, h, &ms, &[], 0.0);
    assert_eq!((n, st & PENDING), (5000, 0));
    assert!(
        e.take(h, 1e300, false).is_none(),
        "batch timeout 1e308 has not passed"
    );
    assert_eq!(e.deadline(h), 1e308);
    let b = e.take(h, 0.0, true).unwrap();
    assert_same(&b, &ms);
    let m = e.metrics(h, 1e308).unwrap();
    assert_accounting(&m);
    assert!(e.tick(f64::MAX, 1.0).unwrap().is_object());

    // A tiny block buffer offered a huge batch takes what fits and stops.
    let h2 = conn(&mut e, "small", 1000, 100_000, 16.0, &block());
    let (n, st) = push_many(&mut e, h2, &slots(100_000), &[], 0.0);
    assert_eq!((n, st & PENDING), (1000, PENDING));
    assert_eq!(e.take(h2, 0.0, true).map(|b| b.len()), Some(1000));

    // Sizes beyond the limits, or not integers, are RangeErrors.
    for (field, v) in [
        ("bufferSize", 1e300),
        ("bufferSize", 9007199254740993.0),
        ("maxBatchSize", 10_000_001.0),
        ("maxBatchSize", f64::MAX),
        ("bufferSize", -0.5),
        ("maxBatchSize", f64::NEG_INFINITY),
    ] {
        let err = expect_err(EngineCore::new(&obj(&[(field, v.into())])));
        assert_err_prefix(&err, Kind::Range, field);
        let err = expect_err(e.create("x", &obj(&[(field, v.into())]), &JsValue::UNDEFINED));
        assert_err_prefix(&err, Kind::Range, field);
    }
    for (field, v) in [
        ("metricsWindow", f64::INFINITY),
        ("metricsInterval", f64::NAN),
        ("metricsInterval", -1e-300),
        ("batchTimeout", f64::INFINITY),
        ("retryAttempts", 1001.0),
        ("retryDelay", -0.001),
    ] {
        let err = expect_err(EngineCore::new(&obj(&[(field, v.into())])));
        assert_err_prefix(&err, Kind::Range, field);
    }
}

#[wasm_bindgen_test]
fn junk_options_never_panic() {
    let mut e = EngineCore::new(&JsValue::UNDEFINED).unwrap();
    let junk_values: Vec<JsValue> = vec![
        JsValue::UNDEFINED,
        JsValue::NULL,
        f64::NAN.into(),
        f64::INFINITY.into(),
        (-0.0).into(),
        "".into(),
        "\u{1F600}".into(),
        true.into(),
        js_sys::Symbol::for_("x").into(),
        js_sys::BigInt::from(5u32).into(),
        js_sys::Array::new().into(),
        obj(&[]),
        js_sys::Function::new_no_args("return 1").into(),
    ];
    for kind in [
        "fraction",
        "time",
        "positiveInt",
        "count",
        "number01",
        "",
        "\u{0}",
    ] {
        for v in &junk_values {
            let _ = validate_option(kind, "f\u{e9}ld \"x\"", v);
        }
    }
    let fields = [
        "bufferSize",
        "batchTimeout",
        "maxBatchSize",
        "backpressureThreshold",
        "retryAttempts",
        "retryDelay",
        "metricsInterval",
        "metricsWindow",
    ];
    let policy_fields = ["dropPolicy", "maxWaitTime", "conflate"];
    let handler_fields = [
        "dropThreshold",
        "priorityDrop",
        "maxWaitTime",
        "targetLatency",
        "maxThreshold",
        "minThreshold",
    ];
    let mut created = 0;
    for v in &junk_values {
        let _ = EngineCore::new(v);
        for f in fields {
            let cfg = obj(&[(f, v.clone())]);
            let _ = EngineCore::new(&cfg);
            let _ = e.resolve_config(&cfg);
            if e.create(&format!("c{created}"), &cfg, &JsValue::UNDEFINED)
                .is_ok()
            {
                created += 1;
            }
        }
        for f in policy_fields {
            let p = obj(&[(f, v.clone())]);
            if e.create(&format!("c{created}"), &p, &JsValue::UNDEFINED)
                .is_ok()
            {
                created += 1;
            }
        }
        for kind in ["default", "adaptive", "custom", "junk"] {
            let _ = stream_engine::wasm::resolve_handler_options(kind, v);
            for f in handler_fields {
                let h = handler(kind, &[(f, v.clone())]);
                let _ = stream_engine::wasm::resolve_handler_options(kind, &h);
                if e.create(&format!("c{created}"), &JsValue::UNDEFINED, &h)
                    .is_ok()
                {
                    created += 1;
                }
            }
        }
        for name in ["latency", "errorRate", "backpressure", "memory", "dropRate"] {
            let _ = e.set_thresholds(&obj(&[(name, v.clone())]));
            let _ = e.set_thresholds(&obj(&[(name, obj(&[("warning", v.clone())]))]));
            let _ = e.set_thresholds(&obj(&[(name, obj(&[("critical", v.clone())]))]));
        }
        let _ = e.set_thresholds(v);
    }
    // Odd but valid ids.
    for id in ["", " ", "\u{1F600}->\u{0}", &"x".repeat(10_000)] {
        assert!(
            e.create(id, &JsValue::UNDEFINED, &JsValue::UNDEFINED)
                .is_ok(),
            "id {id:?}"
        );
    }
    // A frozen config object and one whose getter throws: read without panicking.
    let frozen = obj(&[("bufferSize", 5.into())]);
    js_sys::Object::freeze(frozen.unchecked_ref::<js_sys::Object>());
    assert!(EngineCore::new(&frozen).is_ok());
    let throwing = js_sys::Function::new_no_args(
        "return Object.defineProperty({}, 'bufferSize', { get() { throw new Error('boom'); } })",
    )
    .call0(&JsValue::UNDEFINED)
    .unwrap();
    let _ = EngineCore::new(&throwing);
    let proxy = js_sys::Function::new_no_args(
        "return new Proxy({}, { get() { throw new Error('trap'); } })",
    )
    .call0(&JsValue::UNDEFINED)
    .unwrap();
    let _ = EngineCore::new(&proxy);
    // Still usable; thresholds are still valid numbers.
    let t = e.thresholds().unwrap();
    for name in ["latency", "errorRate", "backpressure", "memory"] {
        let l = get(&t, name);
        assert!(num(&l, "warning") <= num(&l, "critical"), "{}", json(&t));
    }
    let h = conn(&mut e, "last", 10, 10, 16.0, &block());
    assert_eq!(e.push(h, slot(), 0.5, 0.0) & (PENDING | CLOSED), 0);
    assert!(e.tick(0.0, f64::NAN).unwrap().is_object());
}

#[wasm_bindgen_test]
fn many_connections_and_handle_reuse() {
    let mut e = EngineCore::new(&JsValue::UNDEFINED).unwrap();
    let hs: Vec<u32> = (0..200)
        .map(|i| conn(&mut e, &format!("c{i}"), 4, 2, 16.0, &block()))
        .collect();
    for &h in &hs {
        e.push(h, slot(), 0.5, 0.0);
    }
    let t = e.tick(1.0, f64::NAN).unwrap();
    assert_eq!(num(&get(&t, "totals"), "connections"), 200.0);
    assert_eq!(num(&get(&t, "totals"), "messagesIn"), 200.0);
    for &h in hs.iter().step_by(2) {
        e.remove(h, 2.0).unwrap();
    }
    let t = e.tick(3.0, f64::NAN).unwrap();
    assert_eq!(num(&get(&t, "totals"), "connections"), 100.0);
    // Freed slots are reused (under a new generation: the old handles stay dead), and a reused
    // handle starts clean.
    let h = conn(&mut e, "new", 4, 2, 16.0, &block());
    assert!(hs.iter().step_by(2).any(|&x| x & 0xFFFF == h & 0xFFFF));
    assert!(!hs.contains(&h));
    let m = e.metrics(h, 4.0).unwrap();
    assert_eq!(string(&m, "connectionId"), "new");
    assert_eq!(num(&m, "messagesIn"), 0.0);
}

/// Huge, zero and repeated slot numbers through every write path and every rule: no panic, and
/// the core hands back exactly the slot numbers it took, repeats included (it never looks at
/// them).
#[wasm_bindgen_test]
fn junk_slot_numbers_never_panic() {
    let mut e = EngineCore::new(&JsValue::UNDEFINED).unwrap();
    // A lossless round trip: repeats come back as often as they went in, in order.
    let h = conn(&mut e, "roundtrip", 1000, 1000, 16.0, &block());
    let mut want = Vec::new();
    for &s in &JUNK_SLOTS {
        assert_eq!(e.push(h, s, 0.5, 0.0) & (PENDING | CLOSED), 0);
        want.push(s);
    }
    for &s in &JUNK_SLOTS {
        assert_eq!(e.push_keyed(h, s, 0.5, "same", 0.0) & (PENDING | CLOSED), 0);
        want.push(s);
    }
    let (n, _) = push_many(&mut e, h, &JUNK_SLOTS, &JUNK_NUMBERS, 0.0);
    assert_eq!(n as usize, JUNK_SLOTS.len());
    want.extend_from_slice(&JUNK_SLOTS);
    let all_same = [u32::MAX; 50];
    let (n, _) = push_many(&mut e, h, &all_same, &[], 0.0);
    assert_eq!(n, 50);
    want.extend_from_slice(&all_same);
    assert_same(&e.take(h, 0.0, true).unwrap(), &want);
    assert!(e.take_dropped(h).is_empty());

    // Every rule, a small buffer: what goes in comes out (delivered, dropped or cancelled).
    let policies = [
        block(),
        dropping("priority"),
        dropping("oldest"),
        dropping("newest"),
        obj(&[("dropPolicy", "priority".into()), ("conflate", true.into())]),
        obj(&[("conflate", true.into())]),
        obj(&[("handler", handler("adaptive", &[]))]),
    ];
    for (pi, policy) in policies.iter().enumerate() {
        let h = conn(&mut e, &format!("p{pi}"), 4, 3, 16.0, policy);
        let mut taken: Vec<u32> = Vec::new();
        let mut out: Vec<u32> = Vec::new();
        let collect = |e: &mut EngineCore, out: &mut Vec<u32>| {
            for (s, _) in dropped_pairs(&e.take_dropped(h)) {
                out.push(s);
            }
        };
        for (i, &s) in JUNK_SLOTS.iter().cycle().take(120).enumerate() {
            let t = i as f64;
            let p = JUNK_NUMBERS[i % JUNK_NUMBERS.len()];
            let st = match i % 4 {
                0 => e.push(h, s, p, t),
                1 => e.push_keyed(h, s, p, if s == 0 { "zero" } else { "k" }, t),
                2 => e.drop_incoming(h, s, p, t),
                _ => {
                    let batch = [s, s, u32::MAX, 0];
                    let (n, st) = push_many(&mut e, h, &batch, &[p], t);
                    taken.extend_from_slice(&batch[..n as usize]);
                    st
                }
            };
            assert_eq!(st & CLOSED, 0, "policy {pi} write {i}: {st}");
            if i % 4 != 3 && st & PENDING == 0 {
                taken.push(s);
            }
            collect(&mut e, &mut out);
            if i % 5 == 0 {
                out.extend(e.take(h, t, i % 10 == 0).unwrap_or_default());
            }
            if i % 7 == 0 {
                if let Some(b) = e.consume_take(h, t, true) {
                    out.extend(b);
                    e.consume_dead_letter(h, t);
                }
            }
        }
        out.extend(e.cancel(h, 1e9));
        collect(&mut e, &mut out);
        taken.sort_unstable();
        out.sort_unstable();
        assert_eq!(taken, out, "policy {pi}: slots in vs out");
        assert_eq!(e.held(h), 0);
        assert_accounting(&e.metrics(h, 1e9).unwrap());
    }
    // Still usable afterwards.
    let h = conn(&mut e, "after", 10, 10, 16.0, &block());
    e.push(h, u32::MAX, 0.5, 0.0);
    e.push(h, 0, 0.5, 0.0);
    assert_same(&e.take(h, 0.0, true).unwrap(), &[u32::MAX, 0]);
}
