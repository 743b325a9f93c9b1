//! Bindings of the window aggregator and the downsamplers: results cross as flat numbers, junk
//! never panics, bad options are errors naming the field.

//!
//! Run by `scripts/test-wasm.sh` (wasm-bindgen-test, Node and headless Chromium):
//! `cargo test -p stream-engine-stages --target wasm32-unknown-unknown --test wasm`.
#![cfg(target_arch = "wasm32")]

use js_sys::{Error, Object, RangeError, Reflect, TypeError};
use stream_engine_stages::{lttb, MinMaxDownsamplerCore, WindowAggregatorCore};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;

/// A plain JS object from `(key, value)` pairs.
fn obj(pairs: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    for (k, v) in pairs {
        Reflect::set(&o, &JsValue::from_str(k), v).unwrap();
    }
    o.into()
}

#[derive(Debug, PartialEq)]
enum Kind {
    Type,
    Range,
    Plain,
}

fn expect_err<T>(r: Result<T, JsValue>) -> JsValue {
    match r {
        Ok(_) => panic!("expected an error, got Ok"),
        Err(e) => e,
    }
}

/// The thrown value is an error of `kind` whose message starts with `prefix`.
fn assert_err_prefix(e: &JsValue, kind: Kind, prefix: &str) {
    let m: String = e
        .dyn_ref::<Error>()
        .unwrap_or_else(|| panic!("thrown value is not an Error: {e:?}"))
        .message()
        .into();
    let got_kind = if e.is_instance_of::<TypeError>() {
        Kind::Type
    } else if e.is_instance_of::<RangeError>() {
        Kind::Range
    } else {
        Kind::Plain
    };
    assert_eq!(got_kind, kind, "{m}");
    assert!(m.starts_with(prefix), "{m:?} should start with {prefix:?}");
}

#[wasm_bindgen_test]
fn window_results_and_released_tokens_cross_as_flat_arrays() {
    let mut w = WindowAggregatorCore::new(&obj(&[("size", 1000.0.into())])).unwrap();
    let codes = w.add_many(
        &[10, 11, 12],
        &[0, 1, 0],
        &[100.0, 200.0, 1500.0],
        &[2.0, 5.0, 4.0],
    );
    assert_eq!(codes, vec![0, 0, 0]);
    let r = w.take_results();
    // key, start, end, count, sum, min, max, mean, p50, p95 per result; key 0 then key 1
    assert_eq!(
        r,
        vec![
            0.0, 0.0, 1000.0, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 1.0, 0.0, 1000.0, 1.0, 5.0, 5.0,
            5.0, 5.0, 5.0, 5.0
        ]
    );
    assert_eq!(w.take_lineage(), vec![10, 11]);
    assert_eq!(w.take_released(), vec![10, 11]);
    assert_eq!(w.add_many(&[13], &[0], &[50.0], &[1.0]), vec![1], "late");
    w.flush();
    assert_eq!(w.take_released(), vec![12]);
    assert_eq!(w.stats()[..3], [3.0, 1.0, 0.0]);
}

#[wasm_bindgen_test]
fn junk_never_panics() {
    let mut w =
        WindowAggregatorCore::new(&obj(&[("size", 10.0.into()), ("slide", 1.0.into())])).unwrap();
    // arrays of different lengths: the missing entries read as invalid events
    let codes = w.add_many(
        &[1, 2, 3, u32::MAX],
        &[0],
        &[1.0, f64::NAN],
        &[f64::INFINITY],
    );
    assert_eq!(codes, vec![2, 2, 2, 2]);
    let junk = [
        f64::NAN,
        f64::INFINITY,
        -1e308,
        1e308,
        -0.0,
        9007199254740993.0,
    ];
    for (i, t) in junk.iter().enumerate() {
        w.add_many(&[i as u32, i as u32], &[u32::MAX, 0], &[*t, *t], &[*t, 1.0]);
        w.advance(*t);
    }
    w.flush();
    w.take_results();
    w.take_lineage();
    w.take_released();
    let mut d = MinMaxDownsamplerCore::new(1.0).unwrap();
    d.add_many(&[0, 1, 2], &junk, &[]);
    d.add_many(&[], &[1.0], &[1.0]);
    d.flush();
    d.take();
    assert_eq!(lttb(&[], &[1.0], 5), Vec::<u32>::new());
    assert_eq!(
        lttb(&[0.0, 1.0, 2.0, 3.0], &[0.0, 5.0, 0.0, 1.0], 3),
        vec![0, 1, 3]
    );
    // still working
    assert_eq!(w.add_many(&[9], &[0], &[1e9], &[1.0]), vec![0]);
}

#[wasm_bindgen_test]
fn bad_options_are_errors_naming_the_field() {
    assert_err_prefix(
        &expect_err(WindowAggregatorCore::new(&JsValue::NULL)),
        Kind::Type,
        "window options",
    );
    assert_err_prefix(
        &expect_err(WindowAggregatorCore::new(&obj(&[]))),
        Kind::Type,
        "size",
    );
    assert_err_prefix(
        &expect_err(WindowAggregatorCore::new(&obj(&[("size", "1s".into())]))),
        Kind::Type,
        "size",
    );
    assert_err_prefix(
        &expect_err(WindowAggregatorCore::new(&obj(&[("size", 0.0.into())]))),
        Kind::Range,
        "size",
    );
    assert_err_prefix(
        &expect_err(WindowAggregatorCore::new(&obj(&[
            ("size", 10.0.into()),
            ("slide", 11.0.into()),
        ]))),
        Kind::Range,
        "slide",
    );
    assert_err_prefix(
        &expect_err(WindowAggregatorCore::new(&obj(&[
            ("size", 10.0.into()),
            ("allowedLateness", (-1.0).into()),
        ]))),
        Kind::Range,
        "allowedLateness",
    );
    assert_err_prefix(
        &expect_err(MinMaxDownsamplerCore::new(f64::NAN)),
        Kind::Range,
        "bucketMs",
    );
}
