//! Helpers shared by the binding tests: building JS option objects, reading results back, and
//! checking thrown errors.

#![allow(dead_code)]

use js_sys::{Array, Error, Object, RangeError, Reflect, TypeError};
use stream_engine::wasm::EngineCore;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

/// Status bits: the one definition in `core::connection::Status` (the JS glue reads the same
/// enum through wasm-bindgen), never copied as numbers.
pub use stream_engine::core::connection::status::{
    BATCH_READY, CLOSED, DROPPED, DROP_SUMMARY, EMPTY, EVENTS, FIRST, HOLD, PENDING,
};
use stream_engine::core::connection::DropReason;

/// A plain JS object from `(key, value)` pairs.
pub fn obj(pairs: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    for (k, v) in pairs {
        Reflect::set(&o, &JsValue::from_str(k), v).unwrap();
    }
    o.into()
}

/// `o[k]`.
pub fn get(o: &JsValue, k: &str) -> JsValue {
    Reflect::get(o, &JsValue::from_str(k)).unwrap_or(JsValue::UNDEFINED)
}

/// `o[a][b]...` along a path.
pub fn path(o: &JsValue, keys: &[&str]) -> JsValue {
    keys.iter().fold(o.clone(), |v, k| get(&v, k))
}

/// `o[k]` as a number; panics (fails the test) when it is not one.
pub fn num(o: &JsValue, k: &str) -> f64 {
    let v = get(o, k);
    v.as_f64()
        .unwrap_or_else(|| panic!("{k} is not a number: {v:?} in {}", json(o)))
}

/// `o[k]` as a string.
pub fn string(o: &JsValue, k: &str) -> String {
    let v = get(o, k);
    v.as_string()
        .unwrap_or_else(|| panic!("{k} is not a string: {v:?} in {}", json(o)))
}

/// `o[k]` as a boolean.
pub fn boolean(o: &JsValue, k: &str) -> bool {
    let v = get(o, k);
    v.as_bool()
        .unwrap_or_else(|| panic!("{k} is not a boolean: {v:?} in {}", json(o)))
}

/// The own enumerable keys of an object, sorted.
pub fn keys(o: &JsValue) -> Vec<String> {
    let o: &Object = o.dyn_ref().expect("not an object");
    let mut k: Vec<String> = Object::keys(o)
        .iter()
        .map(|k| k.as_string().unwrap())
        .collect();
    k.sort();
    k
}

/// Sorted owned strings, for comparing key sets.
pub fn sorted(v: &[&str]) -> Vec<String> {
    let mut k: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    k.sort();
    k
}

/// `JSON.stringify(v)`, for failure messages.
pub fn json(v: &JsValue) -> String {
    js_sys::JSON::stringify(v)
        .ok()
        .and_then(|s| s.as_string())
        .unwrap_or_else(|| format!("{v:?}"))
}

// How many slots [`slot`] has handed out (plus one).
thread_local! {
    static NEXT_SLOT: std::cell::Cell<u32> = const { std::cell::Cell::new(1) };
}

/// A fresh slot number: every call is a distinct slot, as the JS glue's store never has two
/// live messages in one slot. The n-th call gives `n * 0x9E37_79B1 (mod 2^32)`, a bijection, so
/// slots never repeat, are far from 0..n (a core returning its own sequence numbers or indices
/// instead of the slots it was given would not pass by coincidence) and span the whole u32
/// range.
pub fn slot() -> u32 {
    NEXT_SLOT.with(|c| {
        let n = c.get();
        c.set(n.wrapping_add(1));
        n.wrapping_mul(0x9E37_79B1)
    })
}

/// `n` fresh slots.
pub fn slots(n: u32) -> Vec<u32> {
    (0..n).map(|_| slot()).collect()
}

/// Reason codes of `takeDropped`: `DropReason`'s discriminants (JS maps them to names with
/// `dropReasonNames()`).
pub const R_PRIORITY: u32 = DropReason::Priority as u32;
pub const R_OLDEST: u32 = DropReason::Oldest as u32;
pub const R_NEWEST: u32 = DropReason::Newest as u32;
pub const R_CONFLATED: u32 = DropReason::Conflated as u32;
pub const R_DEAD_LETTER: u32 = DropReason::DeadLetter as u32;

/// Checks the flat `[slot, reason, slot, reason, ...]` of `takeDropped` (even length, known
/// reason codes) and splits it into pairs.
pub fn dropped_pairs(flat: &[u32]) -> Vec<(u32, u32)> {
    assert_eq!(
        flat.len() % 2,
        0,
        "takeDropped is [slot, reason, ...]: {flat:?}"
    );
    flat.chunks(2)
        .map(|p| {
            assert!(
                p[1] <= R_DEAD_LETTER,
                "unknown reason code {} in {flat:?}",
                p[1]
            );
            (p[0], p[1])
        })
        .collect()
}

/// Asserts the core handed back exactly the slots given, in order.
pub fn assert_same(got: &[u32], want: &[u32]) {
    assert_eq!(
        got.len(),
        want.len(),
        "length differs: got {} want {}",
        got.len(),
        want.len()
    );
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(
            g, w,
            "item {i} is not the slot pushed: got {got:?} want {want:?}"
        );
    }
}

/// The items of a JS array.
pub fn items(a: &JsValue) -> Vec<JsValue> {
    let a: &Array = a.dyn_ref().expect("not an array");
    a.iter().collect()
}

/// Which error class a thrown value is.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Kind {
    Type,
    Range,
    /// A plain `Error`, neither `TypeError` nor `RangeError`.
    Plain,
}

/// Checks a thrown value: its class and its exact message.
pub fn assert_err(e: &JsValue, kind: Kind, message: &str) {
    let got_kind = if e.is_instance_of::<TypeError>() {
        Kind::Type
    } else if e.is_instance_of::<RangeError>() {
        Kind::Range
    } else if e.is_instance_of::<Error>() {
        Kind::Plain
    } else {
        panic!("thrown value is not an Error: {e:?}");
    };
    let m: String = e.unchecked_ref::<Error>().message().into();
    assert_eq!((got_kind, m.as_str()), (kind, message));
}

/// Checks a thrown value's class and that its message starts with `prefix` (the field name).
pub fn assert_err_prefix(e: &JsValue, kind: Kind, prefix: &str) {
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
    assert_eq!(got_kind, kind, "wrong error class for {m:?}");
    assert!(
        m.starts_with(prefix),
        "{m:?} does not start with {prefix:?}"
    );
}

/// Unwraps an `Err`, failing the test on `Ok`.
pub fn expect_err<T>(r: Result<T, JsValue>) -> JsValue {
    match r {
        Ok(_) => panic!("expected an error, got Ok"),
        Err(e) => e,
    }
}

/// An engine from a config object.
pub fn engine(cfg: &[(&str, JsValue)]) -> EngineCore {
    EngineCore::new(&obj(cfg)).expect("valid engine config")
}

/// The block (lossless) policy: a connection config's flow part (see [`conn`]).
pub fn block() -> JsValue {
    obj(&[("dropPolicy", "block".into())])
}

/// A fixed drop policy (drop threshold 1) with the given rule.
pub fn dropping(rule: &str) -> JsValue {
    obj(&[("dropPolicy", rule.into())])
}

/// A built-in handler (`kind`: `default` or `adaptive`) with options, as `handler` in a
/// [`conn`] policy.
pub fn handler(kind: &str, options: &[(&str, JsValue)]) -> JsValue {
    let mut pairs = vec![("kind", JsValue::from_str(kind))];
    pairs.extend(options.iter().cloned());
    obj(&pairs)
}

/// A connection with `bufferSize`, `maxBatchSize` and `batchTimeout`.
pub fn conn(
    e: &mut EngineCore,
    id: &str,
    buffer: u32,
    batch: u32,
    timeout: f64,
    policy: &JsValue,
) -> u32 {
    // `policy` holds the connection config's flow options (dropPolicy, maxWaitTime, conflate)
    // and optionally `handler`, which `create` takes as its own argument.
    let cfg = Object::assign(&Object::new(), policy.unchecked_ref());
    let handler = get(policy, "handler");
    Reflect::delete_property(&cfg, &"handler".into()).unwrap();
    for (k, v) in [
        ("bufferSize", buffer as f64),
        ("maxBatchSize", batch as f64),
        ("batchTimeout", timeout),
    ] {
        Reflect::set(&cfg, &k.into(), &v.into()).unwrap();
    }
    e.create(id, &cfg, &handler).expect("valid connection")
}

/// `pushMany` and then, as JS does, `lastAccepted`: (accepted, status bits).
pub fn push_many(e: &mut EngineCore, h: u32, slots: &[u32], prios: &[f64], now: f64) -> (u32, u32) {
    let st = e.push_many(h, slots, prios, now);
    (e.last_accepted(), st)
}

/// Checks `messagesIn == messagesOut + dropped + bufferSize` on a metrics object.
pub fn assert_accounting(m: &JsValue) {
    let (i, o, d, b) = (
        num(m, "messagesIn"),
        num(m, "messagesOut"),
        num(m, "dropped"),
        num(m, "bufferSize"),
    );
    assert_eq!(i, o + d + b, "in != out + dropped + held in {}", json(m));
}
