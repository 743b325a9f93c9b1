//! Messages through the bindings: identity, order, batching, `pushMany`, pause, close, cancel,
//! conflation, drop rules, consumers and the circuit breaker.

use js_sys::Array;
use stream_engine::wasm::EngineCore;
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::*;

use crate::common::*;

fn fresh() -> EngineCore {
    EngineCore::new(&JsValue::UNDEFINED).unwrap()
}

#[wasm_bindgen_test]
fn the_very_objects_pushed_come_back_in_order() {
    let mut e = fresh();
    let h = conn(&mut e, "a", 100, 10, 16.0, &block(), false);
    let ms = msgs(7);
    for (i, m) in ms.iter().enumerate() {
        let st = e.push(h, m.clone(), f64::NAN, 0.0);
        assert_eq!(st & (PENDING | CLOSED), 0, "push {i} refused: {st}");
        assert_eq!(
            st & FIRST != 0,
            i == 0,
            "FIRST only on the first push: {st}"
        );
    }
    let got = e.take(h, 1.0, true).expect("a forced take delivers");
    assert_same(&got, &ms);
    assert!(e.take(h, 1.0, true).is_none(), "nothing left");
}

#[wasm_bindgen_test]
fn any_js_value_is_an_opaque_message() {
    let mut e = fresh();
    let h = conn(&mut e, "a", 100, 100, 16.0, &block(), false);
    let values: Vec<JsValue> = vec![
        JsValue::UNDEFINED,
        JsValue::NULL,
        f64::NAN.into(),
        (-0.0).into(),
        "text".into(),
        true.into(),
        js_sys::Symbol::for_("s").into(),
        js_sys::BigInt::from(1u64 << 60).into(),
        Array::of2(&1.into(), &2.into()).into(),
        js_sys::Function::new_no_args("return 1").into(),
        obj(&[]),
    ];
    for v in &values {
        assert_eq!(e.push(h, v.clone(), 0.5, 0.0) & (PENDING | CLOSED), 0);
    }
    let got = e.take(h, 0.0, true).unwrap();
    assert_same(&got, &values);
}

#[wasm_bindgen_test]
fn batches_never_exceed_max_batch_size_and_keep_order() {
    let mut e = fresh();
    let h = conn(&mut e, "a", 100, 4, 16.0, &block(), false);
    let ms = msgs(10);
    for (i, m) in ms.iter().enumerate() {
        let st = e.push(h, m.clone(), 0.5, 0.0);
        // A full batch is ready once 4 are buffered.
        assert_eq!(st & BATCH_READY != 0, i >= 3, "push {i}: {st}");
    }
    let b1 = e.take(h, 0.0, false).expect("a full batch is due at once");
    let b2 = e.take(h, 0.0, false).expect("second full batch");
    assert_eq!((b1.len(), b2.len()), (4, 4));
    assert!(
        e.take(h, 0.0, false).is_none(),
        "2 left: neither full nor timed out"
    );
    let b3 = e.take(h, 16.0, false).expect("timed out");
    assert_eq!(b3.len(), 2);
    let all: Vec<JsValue> = b1.into_iter().chain(b2).chain(b3).collect();
    assert_same(&all, &ms);
    // A forced take still respects maxBatchSize.
    for m in msgs(9) {
        e.push(h, m, 0.5, 20.0);
    }
    let sizes: Vec<usize> = std::iter::from_fn(|| e.take(h, 20.0, true).map(|b| b.len())).collect();
    assert_eq!(sizes, vec![4, 4, 1]);
}

#[wasm_bindgen_test]
fn take_waits_for_the_batch_timeout_unless_forced() {
    let mut e = fresh();
    let h = conn(&mut e, "a", 100, 10, 16.0, &block(), false);
    assert!(e.deadline(h).is_nan(), "nothing buffered: no deadline");
    assert!(
        e.take(h, 0.0, true).is_none(),
        "empty: even a forced take is None"
    );
    let m = msg(1);
    e.push(h, m.clone(), 0.5, 100.0);
    e.push(h, msg(2), 0.5, 110.0);
    assert_eq!(e.deadline(h), 116.0, "timed from the head");
    assert!(e.take(h, 100.0, false).is_none());
    assert!(e.take(h, 115.9, false).is_none());
    let b = e.take(h, 116.0, false).expect("due at the deadline");
    assert_eq!(b.len(), 2);
    assert!(js_sys::Object::is(&b[0], &m));
    // Forced before the deadline.
    e.push(h, msg(3), 0.5, 200.0);
    assert!(e.take(h, 201.0, false).is_none());
    assert_eq!(e.take(h, 201.0, true).map(|b| b.len()), Some(1));
}

#[wasm_bindgen_test]
fn zero_batch_timeout_delivers_at_once() {
    let mut e = fresh();
    let h = conn(&mut e, "a", 100, 10, 0.0, &block(), false);
    let st = e.push(h, msg(1), 0.5, 5.0);
    assert_ne!(st & BATCH_READY, 0, "{st}");
    assert_eq!(e.take(h, 5.0, false).map(|b| b.len()), Some(1));
}

#[wasm_bindgen_test]
fn push_many_reports_accepted_and_stops_at_pending() {
    let mut e = fresh();
    let h = conn(&mut e, "a", 5, 2, 16.0, &block(), false);
    let ms = msgs(8);
    let (n, st) = split_many(e.push_many(h, ms.clone(), &[0.5; 8], 0.0));
    assert_eq!(n, 5, "a block buffer of 5 takes 5");
    assert_ne!(st & PENDING, 0, "stopped early: {st}");
    assert_ne!(st & FIRST, 0, "{st}");
    assert_ne!(st & BATCH_READY, 0, "{st}");
    assert_eq!(st & CLOSED, 0);
    assert_eq!(e.held(h), 5);

    let mut taken = e.take(h, 0.0, false).unwrap();
    assert_eq!(taken.len(), 2);
    // Retry the rest, as the JS glue does: 2 more fit.
    let (n, st) = split_many(e.push_many(h, ms[5..].to_vec(), &[0.5; 3], 1.0));
    assert_eq!((n, st & PENDING), (2, PENDING));
    while let Some(b) = e.take(h, 100.0, true) {
        taken.extend(b);
    }
    let (n, st) = split_many(e.push_many(h, ms[7..].to_vec(), &[0.5], 101.0));
    assert_eq!((n, st & PENDING), (1, 0));
    taken.extend(e.take(h, 200.0, true).unwrap());
    assert_same(&taken, &ms);

    // Fewer priorities than messages (missing ones read as "none"), and an empty batch.
    let (n, st) = split_many(e.push_many(h, msgs(3), &[], 300.0));
    assert_eq!((n, st & PENDING), (3, 0));
    let (n, _) = split_many(e.push_many(h, vec![], &[1.0, 2.0], 300.0));
    assert_eq!(n, 0);
    // A full buffer accepts nothing.
    e.push_many(h, msgs(2), &[0.5, 0.5], 300.0);
    let (n, st) = split_many(e.push_many(h, msgs(4), &[0.5; 4], 300.0));
    assert_eq!((n, st & PENDING), (0, PENDING));
    let m = e.metrics(h, 300.0);
    assert_eq!(num(&m, "messagesIn"), 13.0);
    assert_accounting(&m);
}

#[wasm_bindgen_test]
fn a_full_block_buffer_refuses_single_pushes_too() {
    let mut e = fresh();
    let h = conn(&mut e, "a", 2, 10, 16.0, &block(), false);
    assert_eq!(e.push(h, msg(0), 0.5, 0.0) & PENDING, 0);
    assert_eq!(e.push(h, msg(1), 0.5, 0.0) & PENDING, 0);
    assert_eq!(
        e.push(h, msg(2), 1.0, 0.0),
        PENDING,
        "critical or not, block refuses"
    );
    assert_eq!(e.push_keyed(h, msg(3), 0.5, "k", 0.0), PENDING);
    assert_eq!(
        num(&e.metrics(h, 0.0), "messagesIn"),
        2.0,
        "a refused write is not counted"
    );
}

#[wasm_bindgen_test]
fn paused_connections_deliver_nothing_until_resumed() {
    let mut e = fresh();
    let h = conn(&mut e, "a", 100, 2, 0.0, &block(), false);
    e.pause(h);
    let st = e.push(h, msg(0), 0.5, 0.0);
    assert_eq!(st & BATCH_READY, 0, "paused: no batch is ready ({st})");
    e.push(h, msg(1), 0.5, 0.0);
    assert!(e.take(h, 1000.0, true).is_none());
    assert!(e.consume_take(h, 1000.0, true).is_none());
    assert!(boolean(&e.metrics(h, 0.0), "paused"));
    e.resume(h);
    assert_ne!(e.status(h) & BATCH_READY, 0);
    assert_eq!(e.take(h, 1000.0, false).map(|b| b.len()), Some(2));
    assert!(!boolean(&e.metrics(h, 0.0), "paused"));
}

#[wasm_bindgen_test]
fn a_closed_connection_refuses_writes_but_stays_readable() {
    let mut e = fresh();
    let h = conn(&mut e, "a", 100, 10, 16.0, &block(), true);
    let ms = msgs(3);
    for m in &ms {
        e.push(h, m.clone(), 0.5, 0.0);
    }
    e.close(h);
    assert_eq!(e.push(h, msg(9), 0.5, 1.0), CLOSED);
    assert_eq!(e.push_keyed(h, msg(9), 0.5, "k", 1.0), CLOSED);
    assert_eq!(e.push_many(h, msgs(2), &[0.5, 0.5], 1.0), CLOSED as f64);
    assert_eq!(e.drop_incoming(h, msg(9), 0.5, 1.0), CLOSED);
    assert_same(&e.take(h, 1.0, true).unwrap(), &ms);
    let m = e.metrics(h, 1.0);
    assert_eq!((num(&m, "messagesIn"), num(&m, "messagesOut")), (3.0, 3.0));
    assert_eq!(num(&m, "dropped"), 0.0, "refused writes are not drops");
    assert_eq!(e.take_dropped(h).length(), 0);
    // Closing twice is harmless.
    e.close(h);
    assert_eq!(e.push(h, msg(9), 0.5, 2.0), CLOSED);
}

#[wasm_bindgen_test]
fn cancel_returns_the_buffered_messages_as_dead_letters() {
    let mut e = fresh();
    let h = conn(&mut e, "a", 100, 2, 16.0, &block(), false);
    let ms = msgs(5);
    for m in &ms {
        e.push(h, m.clone(), 0.5, 0.0);
    }
    let first = e.take(h, 0.0, false).unwrap();
    assert_same(&first, &ms[..2]);
    let rest = e.cancel(h, 5.0);
    assert_same(&rest, &ms[2..]);
    assert_eq!(e.push(h, msg(9), 0.5, 6.0), CLOSED);
    assert!(e.take(h, 6.0, true).is_none());
    assert_eq!(e.held(h), 0);
    let m = e.metrics(h, 6.0);
    assert_eq!(num(&m, "dropped"), 3.0);
    assert_eq!(num(&get(&m, "drops"), "dead-letter"), 3.0);
    assert_accounting(&m);
    let s = e.take_drop_summary(h);
    assert_eq!(num(&s, "count"), 3.0);
    assert_eq!(num(&get(&s, "reasons"), "dead-letter"), 3.0);
    // Cancelling again returns nothing more.
    assert!(e.cancel(h, 7.0).is_empty());
}

#[wasm_bindgen_test]
fn removed_connections_read_as_closed() {
    let mut e = fresh();
    let h = conn(&mut e, "a", 100, 2, 16.0, &block(), false);
    e.push(h, msg(0), 0.5, 0.0);
    let resolved = e.remove(h, 1.0);
    assert!(Array::is_array(&resolved), "remove returns an array");
    assert_eq!(e.push(h, msg(1), 0.5, 1.0), CLOSED);
    assert!(e.metrics(h, 1.0).is_undefined());
    assert!(e.take(h, 1.0, true).is_none());
    // Removing again is harmless and returns an empty array.
    assert_eq!(items(&e.remove(h, 2.0)).len(), 0);
}

#[wasm_bindgen_test]
fn conflation_keeps_the_latest_value_in_the_oldest_place() {
    let mut e = fresh();
    let policy = obj(&[("rule", "block".into()), ("conflate", true.into())]);
    let h = conn(&mut e, "a", 100, 10, 16.0, &policy, true);
    let (a, b, c) = (msg(1), msg(2), msg(3));
    assert_eq!(e.push_keyed(h, a.clone(), 0.5, "k1", 0.0) & PENDING, 0);
    assert_eq!(e.push_keyed(h, b.clone(), 0.5, "k2", 0.0) & PENDING, 0);
    let st = e.push_keyed(h, c.clone(), 0.5, "k1", 1.0);
    assert_ne!(st & DROP_SUMMARY, 0, "{st}");
    assert_ne!(st & DROPPED, 0, "keep_dropped: {st}");
    assert_eq!(e.held(h), 2);
    let dropped = items(&e.take_dropped(h).into());
    assert_eq!(dropped.len(), 2);
    assert!(js_sys::Object::is(&dropped[0], &a));
    assert_eq!(dropped[1].as_string().as_deref(), Some("conflated"));
    // An unkeyed push is never conflated.
    let d = msg(4);
    e.push(h, d.clone(), 0.5, 2.0);
    assert_same(&e.take(h, 2.0, true).unwrap(), &[c, b, d]);
    let m = e.metrics(h, 2.0);
    assert_eq!((num(&m, "messagesIn"), num(&m, "messagesOut")), (4.0, 3.0));
    assert_eq!(num(&get(&m, "drops"), "conflated"), 1.0);
    assert_accounting(&m);
    // After delivery the key is free again.
    let st = e.push_keyed(h, msg(5), 0.5, "k1", 3.0);
    assert_eq!(st & DROP_SUMMARY, 0, "{st}");
}

#[wasm_bindgen_test]
fn keys_are_ignored_without_conflation() {
    let mut e = fresh();
    let h = conn(&mut e, "a", 100, 10, 16.0, &block(), false);
    let ms = msgs(3);
    for m in &ms {
        e.push_keyed(h, m.clone(), 0.5, "same", 0.0);
    }
    assert_same(&e.take(h, 0.0, true).unwrap(), &ms);
}

#[wasm_bindgen_test]
fn oldest_rule_drops_the_oldest_and_reports_it() {
    let mut e = fresh();
    let h = conn(&mut e, "a", 3, 10, 16.0, &dropping("oldest"), true);
    let ms = msgs(5);
    let mut last = 0;
    for m in &ms {
        last = e.push(h, m.clone(), 0.5, 0.0);
        assert_eq!(last & PENDING, 0);
    }
    assert_ne!(last & DROPPED, 0, "{last}");
    assert_ne!(last & DROP_SUMMARY, 0, "{last}");
    let flat = items(&e.take_dropped(h).into());
    assert_eq!(flat.len(), 4, "flat [message, reason, message, reason]");
    assert!(js_sys::Object::is(&flat[0], &ms[0]));
    assert_eq!(flat[1].as_string().as_deref(), Some("oldest"));
    assert!(js_sys::Object::is(&flat[2], &ms[1]));
    assert_eq!(flat[3].as_string().as_deref(), Some("oldest"));
    assert_eq!(e.take_dropped(h).length(), 0, "taken once");
    assert_eq!(e.status(h) & DROPPED, 0);
    assert_same(&e.take(h, 0.0, true).unwrap(), &ms[2..]);
}

#[wasm_bindgen_test]
fn newest_rule_drops_the_incoming_message() {
    let mut e = fresh();
    let h = conn(&mut e, "a", 3, 10, 16.0, &dropping("newest"), true);
    let ms = msgs(5);
    for m in &ms {
        assert_eq!(e.push(h, m.clone(), 0.5, 0.0) & PENDING, 0);
    }
    let flat = items(&e.take_dropped(h).into());
    assert_eq!(flat.len(), 4);
    assert!(js_sys::Object::is(&flat[0], &ms[3]));
    assert_eq!(flat[1].as_string().as_deref(), Some("newest"));
    assert!(js_sys::Object::is(&flat[2], &ms[4]));
    assert_same(&e.take(h, 0.0, true).unwrap(), &ms[..3]);
}

#[wasm_bindgen_test]
fn priority_rule_drops_the_lowest_and_never_a_critical_message() {
    let mut e = fresh();
    let h = conn(&mut e, "a", 3, 10, 16.0, &dropping("priority"), true);
    let (a, b, c, d, x) = (msg(1), msg(2), msg(3), msg(4), msg(5));
    e.push(h, a.clone(), 0.9, 0.0);
    e.push(h, b.clone(), 0.2, 0.0);
    e.push(h, c.clone(), 0.5, 0.0);
    e.push(h, d.clone(), 0.6, 0.0); // evicts b (0.2)
    e.push(h, x.clone(), 0.1, 0.0); // lower than everything buffered: itself dropped
    let flat = items(&e.take_dropped(h).into());
    assert_eq!(flat.len(), 4);
    assert!(js_sys::Object::is(&flat[0], &b));
    assert_eq!(flat[1].as_string().as_deref(), Some("priority"));
    assert!(js_sys::Object::is(&flat[2], &x));
    assert_eq!(flat[3].as_string().as_deref(), Some("priority"));
    assert_same(&e.take(h, 0.0, true).unwrap(), &[a, c, d]);

    // A buffer full of critical messages refuses another critical one and drops a normal one.
    let h2 = conn(&mut e, "b", 2, 10, 16.0, &dropping("priority"), false);
    e.push(h2, msg(1), 1.0, 0.0);
    e.push(h2, msg(2), 1.0, 0.0);
    assert_eq!(e.push(h2, msg(3), 1.0, 0.0) & PENDING, PENDING);
    let st = e.push(h2, msg(4), 0.5, 0.0);
    assert_eq!(st & PENDING, 0);
    assert_ne!(st & DROP_SUMMARY, 0);
    assert_eq!(st & DROPPED, 0, "keep_dropped is off: {st}");
    assert_eq!(e.take_dropped(h2).length(), 0);
    let m = e.metrics(h2, 0.0);
    assert_eq!(num(&get(&m, "drops"), "priority"), 1.0);
    assert_eq!(num(&get(&m, "dropsByPriority"), "critical"), 0.0);
    assert_eq!(num(&get(&m, "dropsByPriority"), "normal"), 1.0);
    assert_accounting(&m);
}

/// BUG (src/core/priority.rs `sanitize` + src/core/buffer.rs priority index): a priority of
/// `-0` (which `priorityOf` in js/priority.js passes through, since `-0 >= 0`) is kept as
/// `-0.0`, and the index orders priorities by `f64::to_bits`, where `-0.0` sorts above every
/// positive number. So a `-0` message is treated as the *most* important non-critical message
/// and a 0.5 message is dropped in its place. `sanitize` should map `-0.0` to `0.0` (e.g.
/// `p.clamp(0.0, 1.0) + 0.0`).
#[wasm_bindgen_test]
fn negative_zero_priority_is_the_lowest() {
    let mut e = fresh();
    let h = conn(&mut e, "a", 2, 10, 16.0, &dropping("priority"), true);
    let (z, n, n2) = (msg(1), msg(2), msg(3));
    e.push(h, z.clone(), -0.0, 0.0);
    e.push(h, n.clone(), 0.5, 0.0);
    e.push(h, n2.clone(), 0.5, 0.0);
    let flat = items(&e.take_dropped(h).into());
    assert!(
        js_sys::Object::is(&flat[0], &z),
        "dropped {} instead of the priority -0 message",
        json(&flat[0])
    );
}

#[wasm_bindgen_test]
fn drop_summary_shape() {
    let mut e = fresh();
    assert!(e.take_drop_summary(0).is_undefined(), "unknown handle");
    let h = conn(&mut e, "a", 2, 10, 16.0, &dropping("oldest"), false);
    assert!(e.take_drop_summary(h).is_undefined(), "no drops yet");
    e.push(h, msg(0), 0.9, 0.0);
    e.push(h, msg(1), 0.2, 0.0);
    e.push(h, msg(2), 0.5, 0.0); // drops msg 0 (high)
    e.push(h, msg(3), 0.5, 0.0); // drops msg 1 (low)
    let st = e.drop_incoming(h, msg(4), 1.0, 0.0); // a handler's drop counts as 'priority'
    assert_ne!(st & DROP_SUMMARY, 0);
    let s = e.take_drop_summary(h);
    assert_eq!(keys(&s), sorted(&["count", "reasons", "byPriority"]));
    assert_eq!(num(&s, "count"), 3.0);
    let r = get(&s, "reasons");
    assert_eq!(
        keys(&r),
        sorted(&["priority", "oldest", "newest", "conflated", "dead-letter"])
    );
    assert_eq!(
        (
            num(&r, "priority"),
            num(&r, "oldest"),
            num(&r, "newest"),
            num(&r, "conflated"),
            num(&r, "dead-letter")
        ),
        (1.0, 2.0, 0.0, 0.0, 0.0)
    );
    let p = get(&s, "byPriority");
    assert_eq!(keys(&p), sorted(&["critical", "high", "normal", "low"]));
    assert_eq!(
        (
            num(&p, "critical"),
            num(&p, "high"),
            num(&p, "normal"),
            num(&p, "low")
        ),
        (1.0, 1.0, 0.0, 1.0)
    );
    assert!(
        e.take_drop_summary(h).is_undefined(),
        "a summary is taken once"
    );
    let m = e.metrics(h, 0.0);
    assert_eq!(num(&m, "messagesIn"), 5.0);
    assert_eq!(num(&m, "dropped"), 3.0);
    assert_accounting(&m);
}

#[wasm_bindgen_test]
fn drop_incoming_keeps_the_message_for_on_drop() {
    let mut e = fresh();
    let h = conn(&mut e, "a", 10, 10, 16.0, &block(), true);
    let m = msg(0);
    let st = e.drop_incoming(h, m.clone(), 0.3, 0.0);
    assert_ne!(st & DROPPED, 0);
    let flat = items(&e.take_dropped(h).into());
    assert!(js_sys::Object::is(&flat[0], &m));
    assert_eq!(flat[1].as_string().as_deref(), Some("priority"));
}

#[wasm_bindgen_test]
fn backpressure_events_start_and_end() {
    let mut e = fresh();
    let h = conn(&mut e, "a", 10, 5, 16.0, &block(), false);
    for i in 0..7 {
        let st = e.push(h, msg(i), 0.5, 0.0);
        assert_eq!(st & EVENTS, 0, "below 0.8: {st}");
    }
    let st = e.push(h, msg(7), 0.5, 0.0);
    assert_ne!(st & EVENTS, 0, "8/10 reaches the 0.8 threshold: {st}");
    assert_eq!(st & HOLD, 0, "block policy does not hold writes");
    let ev = items(&e.take_events(h).into());
    assert_eq!(ev.len(), 1);
    assert_eq!(string(&ev[0], "type"), "backpressure");
    assert_eq!(string(&ev[0], "state"), "start");
    assert_eq!(num(&ev[0], "bufferUtilization"), 0.8);
    assert!(boolean(&e.metrics(h, 0.0), "backpressure"));
    e.take(h, 0.0, true);
    assert_ne!(e.status(h) & EVENTS, 0);
    let ev = items(&e.take_events(h).into());
    assert_eq!(ev.len(), 1);
    assert_eq!(string(&ev[0], "state"), "end");
    assert_eq!(num(&ev[0], "bufferUtilization"), 0.3);
    assert_eq!(e.take_events(h).length(), 0);
    let m = e.metrics(h, 0.0);
    assert_eq!(num(&m, "backpressureEvents"), 1.0);
    assert!(!boolean(&m, "backpressure"));
}

#[wasm_bindgen_test]
fn writes_are_held_under_backpressure_when_max_wait_is_set() {
    let mut e = fresh();
    let policy = obj(&[
        ("rule", "oldest".into()),
        ("dropThreshold", 1.into()),
        ("maxWait", 100.into()),
    ]);
    let h = conn(&mut e, "a", 10, 5, 16.0, &policy, false);
    assert_eq!(e.max_wait(h), 100.0);
    for i in 0..7 {
        assert_eq!(e.push(h, msg(i), 0.5, 0.0) & HOLD, 0);
    }
    assert_ne!(e.push(h, msg(7), 0.5, 0.0) & HOLD, 0);
    assert_ne!(e.status(h) & HOLD, 0);
    e.take(h, 0.0, true);
    assert_eq!(e.status(h) & HOLD, 0, "released once below the end level");
}

#[wasm_bindgen_test]
fn consumer_batches_stay_held_until_resolved() {
    let mut e = fresh();
    let h = conn(&mut e, "a", 10, 3, 0.0, &block(), false);
    let ms = msgs(5);
    for m in &ms {
        e.push(h, m.clone(), 0.5, 0.0);
    }
    let b = e.consume_take(h, 1.0, false).unwrap();
    assert_same(&b, &ms[..3]);
    assert_eq!(e.held(h), 5, "in flight still counts as held");
    assert!(
        e.consume_take(h, 1.0, true).is_none(),
        "one batch in flight at a time"
    );
    e.consume_success(h, 11.0);
    let m = e.metrics(h, 11.0);
    assert_eq!(num(&m, "messagesOut"), 3.0);
    assert_eq!(num(&m, "maxLatency"), 11.0);
    let b = e.consume_take(h, 12.0, false).unwrap();
    assert_same(&b, &ms[3..]);
    e.consume_failure(h, 13.0, true);
    e.consume_failure(h, 14.0, false);
    assert_eq!(e.consume_dead_letter(h, 15.0), 2);
    assert_eq!(
        e.consume_dead_letter(h, 15.0),
        0,
        "nothing in flight any more"
    );
    let m = e.metrics(h, 15.0);
    assert_eq!((num(&m, "errors"), num(&m, "retries")), (2.0, 1.0));
    assert_eq!(num(&get(&m, "drops"), "dead-letter"), 2.0);
    assert!(num(&m, "errorRate") > 0.0);
    assert_accounting(&m);
}

#[wasm_bindgen_test]
fn the_circuit_opens_after_repeated_failures() {
    let mut e = fresh();
    let h = conn(&mut e, "a", 10, 3, 0.0, &block(), false);
    e.set_circuit(h, 2, 1000.0);
    assert!(e.circuit_allow(h, 0.0));
    assert!(e.circuit_next_attempt(h).is_nan());
    e.push(h, msg(0), 0.5, 0.0);
    e.consume_take(h, 0.0, false).unwrap();
    e.consume_failure(h, 10.0, true);
    assert!(e.circuit_allow(h, 10.0), "one failure of two");
    let st = e.consume_failure(h, 10.0, true);
    assert_ne!(st & EVENTS, 0);
    assert!(!e.circuit_allow(h, 10.0));
    assert_eq!(e.circuit_next_attempt(h), 1010.0);
    let ev = items(&e.take_events(h).into());
    assert_eq!(ev.len(), 1);
    assert_eq!(string(&ev[0], "type"), "circuit");
    assert!(boolean(&ev[0], "open"));
    assert_eq!(string(&e.metrics(h, 10.0), "circuitState"), "open");
    assert!(
        e.circuit_allow(h, 1010.0),
        "a trial after the reset timeout"
    );
    e.consume_success(h, 1011.0);
    let ev = items(&e.take_events(h).into());
    assert_eq!(ev.len(), 1);
    assert!(!boolean(&ev[0], "open"));
    assert_eq!(string(&e.metrics(h, 1011.0), "circuitState"), "closed");
}
