//! Messages through the bindings: slot identity, order, batching, `pushMany`, pause, close,
//! cancel, conflation, drop rules (dropped slots and their reason codes), consumers and the
//! circuit breaker.

use js_sys::Array;
use stream_engine::wasm::EngineCore;
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::*;

use crate::common::*;

fn fresh() -> EngineCore {
    EngineCore::new(&JsValue::UNDEFINED).unwrap()
}

#[wasm_bindgen_test]
fn the_very_slots_pushed_come_back_in_order() {
    let mut e = fresh();
    let h = conn(&mut e, "a", 100, 10, 16.0, &block());
    let ms = slots(7);
    for (i, &m) in ms.iter().enumerate() {
        let st = e.push(h, m, f64::NAN, 0.0);
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
fn any_slot_number_is_opaque() {
    let mut e = fresh();
    let h = conn(&mut e, "a", 100, 100, 16.0, &block());
    // Small, large, the status-bit and `accepted * 256` boundaries, and the u32 extremes.
    let values: Vec<u32> = vec![
        0,
        u32::MAX,
        1,
        u32::MAX - 1,
        1 << 31,
        (1 << 31) - 1,
        255,
        256,
        65_535,
        65_536,
        0xDEAD_BEEF,
    ];
    for &v in &values {
        assert_eq!(e.push(h, v, 0.5, 0.0) & (PENDING | CLOSED), 0);
    }
    let got = e.take(h, 0.0, true).unwrap();
    assert_same(&got, &values);
    // The same through pushMany and pushKeyed.
    let (n, _) = push_many(&mut e, h, &values, &[], 1.0);
    assert_eq!(n as usize, values.len());
    assert_same(&e.take(h, 1.0, true).unwrap(), &values);
    for &v in &values {
        e.push_keyed(h, v, 0.5, "k", 2.0);
    }
    assert_same(&e.take(h, 2.0, true).unwrap(), &values);
}

#[wasm_bindgen_test]
fn batches_never_exceed_max_batch_size_and_keep_order() {
    let mut e = fresh();
    let h = conn(&mut e, "a", 100, 4, 16.0, &block());
    let ms = slots(10);
    for (i, &m) in ms.iter().enumerate() {
        let st = e.push(h, m, 0.5, 0.0);
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
    let all: Vec<u32> = b1.into_iter().chain(b2).chain(b3).collect();
    assert_same(&all, &ms);
    // A forced take still respects maxBatchSize.
    for m in slots(9) {
        e.push(h, m, 0.5, 20.0);
    }
    let sizes: Vec<usize> = std::iter::from_fn(|| e.take(h, 20.0, true).map(|b| b.len())).collect();
    assert_eq!(sizes, vec![4, 4, 1]);
}

#[wasm_bindgen_test]
fn take_waits_for_the_batch_timeout_unless_forced() {
    let mut e = fresh();
    let h = conn(&mut e, "a", 100, 10, 16.0, &block());
    assert!(e.deadline(h).is_nan(), "nothing buffered: no deadline");
    assert!(
        e.take(h, 0.0, true).is_none(),
        "empty: even a forced take is None"
    );
    let m = slot();
    e.push(h, m, 0.5, 100.0);
    e.push(h, slot(), 0.5, 110.0);
    assert_eq!(e.deadline(h), 116.0, "timed from the head");
    assert!(e.take(h, 100.0, false).is_none());
    assert!(e.take(h, 115.9, false).is_none());
    let b = e.take(h, 116.0, false).expect("due at the deadline");
    assert_eq!(b.len(), 2);
    assert_eq!(b[0], m);
    // Forced before the deadline.
    e.push(h, slot(), 0.5, 200.0);
    assert!(e.take(h, 201.0, false).is_none());
    assert_eq!(e.take(h, 201.0, true).map(|b| b.len()), Some(1));
}

#[wasm_bindgen_test]
fn zero_batch_timeout_delivers_at_once() {
    let mut e = fresh();
    let h = conn(&mut e, "a", 100, 10, 0.0, &block());
    let st = e.push(h, slot(), 0.5, 5.0);
    assert_ne!(st & BATCH_READY, 0, "{st}");
    assert_eq!(e.take(h, 5.0, false).map(|b| b.len()), Some(1));
}

#[wasm_bindgen_test]
fn push_many_reports_accepted_and_stops_at_pending() {
    let mut e = fresh();
    let h = conn(&mut e, "a", 5, 2, 16.0, &block());
    let ms = slots(8);
    let (n, st) = push_many(&mut e, h, &ms, &[0.5; 8], 0.0);
    assert_eq!(n, 5, "a block buffer of 5 takes 5");
    assert_ne!(st & PENDING, 0, "stopped early: {st}");
    assert_ne!(st & FIRST, 0, "{st}");
    assert_ne!(st & BATCH_READY, 0, "{st}");
    assert_eq!(st & CLOSED, 0);
    assert_eq!(e.held(h), 5);

    let mut taken = e.take(h, 0.0, false).unwrap();
    assert_eq!(taken.len(), 2);
    // Retry the rest, as the JS glue does: 2 more fit.
    let (n, st) = push_many(&mut e, h, &ms[5..], &[0.5; 3], 1.0);
    assert_eq!((n, st & PENDING), (2, PENDING));
    while let Some(b) = e.take(h, 100.0, true) {
        taken.extend(b);
    }
    let (n, st) = push_many(&mut e, h, &ms[7..], &[0.5], 101.0);
    assert_eq!((n, st & PENDING), (1, 0));
    taken.extend(e.take(h, 200.0, true).unwrap());
    assert_same(&taken, &ms);

    // Fewer priorities than messages (missing ones read as "none"), and an empty batch.
    let (n, st) = push_many(&mut e, h, &slots(3), &[], 300.0);
    assert_eq!((n, st & PENDING), (3, 0));
    let (n, _) = push_many(&mut e, h, &[], &[1.0, 2.0], 300.0);
    assert_eq!(n, 0);
    // A full buffer accepts nothing.
    e.push_many(h, &slots(2), &[0.5, 0.5], 300.0);
    let (n, st) = push_many(&mut e, h, &slots(4), &[0.5; 4], 300.0);
    assert_eq!((n, st & PENDING), (0, PENDING));
    let m = e.metrics(h, 300.0).unwrap();
    assert_eq!(num(&m, "messagesIn"), 13.0);
    assert_accounting(&m);
}

#[wasm_bindgen_test]
fn a_full_block_buffer_refuses_single_pushes_too() {
    let mut e = fresh();
    let h = conn(&mut e, "a", 2, 10, 16.0, &block());
    assert_eq!(e.push(h, slot(), 0.5, 0.0) & PENDING, 0);
    assert_eq!(e.push(h, slot(), 0.5, 0.0) & PENDING, 0);
    assert_eq!(
        e.push(h, slot(), 1.0, 0.0),
        PENDING,
        "critical or not, block refuses"
    );
    assert_eq!(e.push_keyed(h, slot(), 0.5, "k", 0.0), PENDING);
    assert_eq!(
        num(&e.metrics(h, 0.0).unwrap(), "messagesIn"),
        2.0,
        "a refused write is not counted"
    );
}

#[wasm_bindgen_test]
fn paused_connections_deliver_nothing_until_resumed() {
    let mut e = fresh();
    let h = conn(&mut e, "a", 100, 2, 0.0, &block());
    e.pause(h);
    let st = e.push(h, slot(), 0.5, 0.0);
    assert_eq!(st & BATCH_READY, 0, "paused: no batch is ready ({st})");
    e.push(h, slot(), 0.5, 0.0);
    assert!(e.take(h, 1000.0, true).is_none());
    assert!(e.consume_take(h, 1000.0, true).is_none());
    assert!(boolean(&e.metrics(h, 0.0).unwrap(), "paused"));
    e.resume(h);
    assert_ne!(e.status(h) & BATCH_READY, 0);
    assert_eq!(e.take(h, 1000.0, false).map(|b| b.len()), Some(2));
    assert!(!boolean(&e.metrics(h, 0.0).unwrap(), "paused"));
}

#[wasm_bindgen_test]
fn a_closed_connection_refuses_writes_but_stays_readable() {
    let mut e = fresh();
    let h = conn(&mut e, "a", 100, 10, 16.0, &block());
    let ms = slots(3);
    for &m in &ms {
        e.push(h, m, 0.5, 0.0);
    }
    e.close(h);
    assert_eq!(e.push(h, slot(), 0.5, 1.0), CLOSED);
    assert_eq!(e.push_keyed(h, slot(), 0.5, "k", 1.0), CLOSED);
    assert_eq!(e.push_many(h, &slots(2), &[0.5, 0.5], 1.0), CLOSED);
    assert_eq!(e.drop_incoming(h, slot(), 0.5, 1.0), CLOSED);
    assert_same(&e.take(h, 1.0, true).unwrap(), &ms);
    let m = e.metrics(h, 1.0).unwrap();
    assert_eq!((num(&m, "messagesIn"), num(&m, "messagesOut")), (3.0, 3.0));
    assert_eq!(num(&m, "dropped"), 0.0, "refused writes are not drops");
    assert_eq!(e.take_dropped(h).len(), 0);
    // Closing twice is harmless.
    e.close(h);
    assert_eq!(e.push(h, slot(), 0.5, 2.0), CLOSED);
}

#[wasm_bindgen_test]
fn cancel_returns_the_buffered_messages_as_dead_letters() {
    let mut e = fresh();
    let h = conn(&mut e, "a", 100, 2, 16.0, &block());
    let ms = slots(5);
    for &m in &ms {
        e.push(h, m, 0.5, 0.0);
    }
    let first = e.take(h, 0.0, false).unwrap();
    assert_same(&first, &ms[..2]);
    let rest = e.cancel(h, 5.0);
    assert_same(&rest, &ms[2..]);
    assert_eq!(e.push(h, slot(), 0.5, 6.0), CLOSED);
    assert!(e.take(h, 6.0, true).is_none());
    assert_eq!(e.held(h), 0);
    let m = e.metrics(h, 6.0).unwrap();
    assert_eq!(num(&m, "dropped"), 3.0);
    assert_eq!(num(&get(&m, "drops"), "dead-letter"), 3.0);
    assert_accounting(&m);
    let s = e.take_drop_summary(h).unwrap();
    assert_eq!(num(&s, "count"), 3.0);
    assert_eq!(num(&get(&s, "reasons"), "dead-letter"), 3.0);
    // The dead letters came back from cancel: they are not reported again as dropped slots.
    assert_eq!(e.status(h) & DROPPED, 0);
    assert!(e.take_dropped(h).is_empty());
    // Cancelling again returns nothing more.
    assert!(e.cancel(h, 7.0).is_empty());
}

#[wasm_bindgen_test]
fn removed_connections_read_as_closed() {
    let mut e = fresh();
    let h = conn(&mut e, "a", 100, 2, 16.0, &block());
    e.push(h, slot(), 0.5, 0.0);
    let resolved = e.remove(h, 1.0).unwrap();
    assert!(Array::is_array(&resolved), "remove returns an array");
    assert_eq!(e.push(h, slot(), 0.5, 1.0), CLOSED);
    assert!(e.metrics(h, 1.0).unwrap().is_undefined());
    assert!(e.take(h, 1.0, true).is_none());
    // Removing again is harmless and returns an empty array.
    assert_eq!(items(&e.remove(h, 2.0).unwrap()).len(), 0);
}

#[wasm_bindgen_test]
fn conflation_keeps_the_latest_value_in_the_oldest_place() {
    let mut e = fresh();
    let policy = obj(&[("conflate", true.into())]);
    let h = conn(&mut e, "a", 100, 10, 16.0, &policy);
    let (a, b, c) = (slot(), slot(), slot());
    assert_eq!(e.push_keyed(h, a, 0.5, "k1", 0.0) & PENDING, 0);
    assert_eq!(e.push_keyed(h, b, 0.5, "k2", 0.0) & PENDING, 0);
    let st = e.push_keyed(h, c, 0.5, "k1", 1.0);
    assert_ne!(st & DROP_SUMMARY, 0, "{st}");
    assert_ne!(st & DROPPED, 0, "dropped slots are always reported: {st}");
    assert_eq!(e.held(h), 2);
    assert_eq!(
        e.take_dropped(h),
        vec![a, R_CONFLATED],
        "the older slot is dropped"
    );
    assert_eq!(e.status(h) & DROPPED, 0, "taken once");
    // An unkeyed push is never conflated.
    let d = slot();
    e.push(h, d, 0.5, 2.0);
    assert_same(&e.take(h, 2.0, true).unwrap(), &[c, b, d]);
    let m = e.metrics(h, 2.0).unwrap();
    assert_eq!((num(&m, "messagesIn"), num(&m, "messagesOut")), (4.0, 3.0));
    assert_eq!(num(&get(&m, "drops"), "conflated"), 1.0);
    assert_accounting(&m);
    // After delivery the key is free again.
    let st = e.push_keyed(h, slot(), 0.5, "k1", 3.0);
    assert_eq!(st & (DROP_SUMMARY | DROPPED), 0, "{st}");
    assert!(e.take_dropped(h).is_empty());
}

#[wasm_bindgen_test]
fn keys_are_ignored_without_conflation() {
    let mut e = fresh();
    let h = conn(&mut e, "a", 100, 10, 16.0, &block());
    let ms = slots(3);
    for &m in &ms {
        e.push_keyed(h, m, 0.5, "same", 0.0);
    }
    assert_same(&e.take(h, 0.0, true).unwrap(), &ms);
}

#[wasm_bindgen_test]
fn oldest_rule_drops_the_oldest_and_reports_it() {
    let mut e = fresh();
    let h = conn(&mut e, "a", 3, 10, 16.0, &dropping("oldest"));
    let ms = slots(5);
    let mut last = 0;
    for &m in &ms {
        last = e.push(h, m, 0.5, 0.0);
        assert_eq!(last & PENDING, 0);
    }
    assert_ne!(last & DROPPED, 0, "{last}");
    assert_ne!(last & DROP_SUMMARY, 0, "{last}");
    assert_eq!(
        e.take_dropped(h),
        vec![ms[0], R_OLDEST, ms[1], R_OLDEST],
        "flat [slot, reason, slot, reason]"
    );
    assert_eq!(e.take_dropped(h).len(), 0, "taken once");
    assert_eq!(e.status(h) & DROPPED, 0);
    assert_same(&e.take(h, 0.0, true).unwrap(), &ms[2..]);
}

#[wasm_bindgen_test]
fn newest_rule_drops_the_incoming_message() {
    let mut e = fresh();
    let h = conn(&mut e, "a", 3, 10, 16.0, &dropping("newest"));
    let ms = slots(5);
    for &m in &ms {
        assert_eq!(e.push(h, m, 0.5, 0.0) & PENDING, 0);
    }
    assert_eq!(e.take_dropped(h), vec![ms[3], R_NEWEST, ms[4], R_NEWEST]);
    assert_same(&e.take(h, 0.0, true).unwrap(), &ms[..3]);
}

#[wasm_bindgen_test]
fn priority_rule_drops_the_lowest_and_never_a_critical_message() {
    let mut e = fresh();
    let h = conn(&mut e, "a", 3, 10, 16.0, &dropping("priority"));
    let (a, b, c, d, x) = (slot(), slot(), slot(), slot(), slot());
    e.push(h, a, 0.9, 0.0);
    e.push(h, b, 0.2, 0.0);
    e.push(h, c, 0.5, 0.0);
    e.push(h, d, 0.6, 0.0); // evicts b (0.2)
    e.push(h, x, 0.1, 0.0); // lower than everything buffered: itself dropped
    assert_eq!(e.take_dropped(h), vec![b, R_PRIORITY, x, R_PRIORITY]);
    assert_same(&e.take(h, 0.0, true).unwrap(), &[a, c, d]);

    // A buffer full of critical messages refuses another critical one and drops a normal one.
    let h2 = conn(&mut e, "b", 2, 10, 16.0, &dropping("priority"));
    let crit = slots(2);
    e.push(h2, crit[0], 1.0, 0.0);
    e.push(h2, crit[1], 1.0, 0.0);
    assert_eq!(e.push(h2, slot(), 1.0, 0.0), PENDING);
    assert!(
        e.take_dropped(h2).is_empty(),
        "a refused write is not a drop"
    );
    let normal = slot();
    let st = e.push(h2, normal, 0.5, 0.0);
    assert_eq!(st & PENDING, 0);
    assert_ne!(st & DROP_SUMMARY, 0);
    assert_ne!(st & DROPPED, 0, "dropped slots are always reported: {st}");
    assert_eq!(e.take_dropped(h2), vec![normal, R_PRIORITY]);
    assert!(e.take_dropped(h2).is_empty());
    assert_same(&e.take(h2, 0.0, true).unwrap(), &crit);
    let m = e.metrics(h2, 0.0).unwrap();
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
    let h = conn(&mut e, "a", 2, 10, 16.0, &dropping("priority"));
    let (z, n, n2) = (slot(), slot(), slot());
    e.push(h, z, -0.0, 0.0);
    e.push(h, n, 0.5, 0.0);
    e.push(h, n2, 0.5, 0.0);
    let flat = e.take_dropped(h);
    assert_eq!(
        dropped_pairs(&flat)[0],
        (z, R_PRIORITY),
        "dropped {flat:?} instead of the priority -0 slot {z}"
    );
}

#[wasm_bindgen_test]
fn drop_summary_shape() {
    let mut e = fresh();
    assert!(
        e.take_drop_summary(0).unwrap().is_undefined(),
        "unknown handle"
    );
    let h = conn(&mut e, "a", 2, 10, 16.0, &dropping("oldest"));
    assert!(
        e.take_drop_summary(h).unwrap().is_undefined(),
        "no drops yet"
    );
    let ss = slots(5);
    assert_eq!(e.push(h, ss[0], 0.9, 0.0) & DROPPED, 0);
    assert_eq!(e.push(h, ss[1], 0.2, 0.0) & DROPPED, 0);
    assert_ne!(e.push(h, ss[2], 0.5, 0.0) & DROPPED, 0); // drops slot 0 (high)
    assert_ne!(e.push(h, ss[3], 0.5, 0.0) & DROPPED, 0); // drops slot 1 (low)
    let st = e.drop_incoming(h, ss[4], 1.0, 0.0); // a handler's drop counts as 'priority'
    assert_ne!(st & DROP_SUMMARY, 0);
    assert_ne!(st & DROPPED, 0);
    // The summary and the dropped slots are separate: taking one leaves the other.
    assert_eq!(
        e.take_dropped(h),
        vec![ss[0], R_OLDEST, ss[1], R_OLDEST, ss[4], R_PRIORITY]
    );
    let s = e.take_drop_summary(h).unwrap();
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
        e.take_drop_summary(h).unwrap().is_undefined(),
        "a summary is taken once"
    );
    let m = e.metrics(h, 0.0).unwrap();
    assert_eq!(num(&m, "messagesIn"), 5.0);
    assert_eq!(num(&m, "dropped"), 3.0);
    assert_accounting(&m);
}

#[wasm_bindgen_test]
fn drop_incoming_reports_the_slot_for_on_drop() {
    let mut e = fresh();
    let h = conn(&mut e, "a", 10, 10, 16.0, &block());
    let m = slot();
    let st = e.drop_incoming(h, m, 0.3, 0.0);
    assert_ne!(st & DROPPED, 0);
    assert_eq!(e.take_dropped(h), vec![m, R_PRIORITY]);
    assert_eq!(e.status(h) & DROPPED, 0);
    assert_eq!(e.held(h), 0, "the slot is not buffered");
}

#[wasm_bindgen_test]
fn backpressure_events_start_and_end() {
    let mut e = fresh();
    let h = conn(&mut e, "a", 10, 5, 16.0, &block());
    for _ in 0..7 {
        let st = e.push(h, slot(), 0.5, 0.0);
        assert_eq!(st & EVENTS, 0, "below 0.8: {st}");
    }
    let st = e.push(h, slot(), 0.5, 0.0);
    assert_ne!(st & EVENTS, 0, "8/10 reaches the 0.8 threshold: {st}");
    assert_eq!(st & HOLD, 0, "block policy does not hold writes");
    let ev = items(&e.take_events(h).unwrap().into());
    assert_eq!(ev.len(), 1);
    assert_eq!(string(&ev[0], "type"), "backpressure");
    assert_eq!(string(&ev[0], "state"), "start");
    assert_eq!(num(&ev[0], "bufferUtilization"), 0.8);
    assert!(boolean(&e.metrics(h, 0.0).unwrap(), "backpressure"));
    e.take(h, 0.0, true);
    assert_ne!(e.status(h) & EVENTS, 0);
    let ev = items(&e.take_events(h).unwrap().into());
    assert_eq!(ev.len(), 1);
    assert_eq!(string(&ev[0], "state"), "end");
    assert_eq!(num(&ev[0], "bufferUtilization"), 0.3);
    assert_eq!(e.take_events(h).unwrap().length(), 0);
    let m = e.metrics(h, 0.0).unwrap();
    assert_eq!(num(&m, "backpressureEvents"), 1.0);
    assert!(!boolean(&m, "backpressure"));
}

#[wasm_bindgen_test]
fn writes_are_held_under_backpressure_when_max_wait_is_set() {
    let mut e = fresh();
    let policy = obj(&[("dropPolicy", "oldest".into()), ("maxWaitTime", 100.into())]);
    let h = conn(&mut e, "a", 10, 5, 16.0, &policy);
    assert_eq!(e.max_wait(h), 100.0);
    for _ in 0..7 {
        assert_eq!(e.push(h, slot(), 0.5, 0.0) & HOLD, 0);
    }
    assert_ne!(e.push(h, slot(), 0.5, 0.0) & HOLD, 0);
    assert_ne!(e.status(h) & HOLD, 0);
    e.take(h, 0.0, true);
    assert_eq!(e.status(h) & HOLD, 0, "released once below the end level");
}

#[wasm_bindgen_test]
fn consumer_batches_stay_held_until_resolved() {
    let mut e = fresh();
    let h = conn(&mut e, "a", 10, 3, 0.0, &block());
    let ms = slots(5);
    for &m in &ms {
        e.push(h, m, 0.5, 0.0);
    }
    let b = e.consume_take(h, 1.0, false).unwrap();
    assert_same(&b, &ms[..3]);
    assert_eq!(e.held(h), 5, "in flight still counts as held");
    assert!(
        e.consume_take(h, 1.0, true).is_none(),
        "one batch in flight at a time"
    );
    e.consume_success(h, 11.0);
    let m = e.metrics(h, 11.0).unwrap();
    assert_eq!(num(&m, "messagesOut"), 3.0);
    assert_eq!(num(&m, "maxLatency"), 11.0);
    let b = e.consume_take(h, 12.0, false).unwrap();
    assert_same(&b, &ms[3..]);
    e.consume_failure(h, 13.0, true);
    e.consume_failure(h, 14.0, false);
    assert_eq!(e.consume_dead_letter(h, 15.0), 2);
    // Those slots came back from consumeTake already: not reported again as dropped.
    assert!(e.take_dropped(h).is_empty());
    assert_eq!(
        e.consume_dead_letter(h, 15.0),
        0,
        "nothing in flight any more"
    );
    let m = e.metrics(h, 15.0).unwrap();
    assert_eq!((num(&m, "errors"), num(&m, "retries")), (2.0, 1.0));
    assert_eq!(num(&get(&m, "drops"), "dead-letter"), 2.0);
    assert!(num(&m, "errorRate") > 0.0);
    assert_accounting(&m);
}

#[wasm_bindgen_test]
fn the_circuit_opens_after_repeated_failures() {
    let mut e = fresh();
    let h = conn(&mut e, "a", 10, 3, 0.0, &block());
    e.set_circuit(h, 2, 1000.0);
    assert!(e.circuit_allow(h, 0.0));
    assert!(e.circuit_next_attempt(h).is_nan());
    e.push(h, slot(), 0.5, 0.0);
    e.consume_take(h, 0.0, false).unwrap();
    e.consume_failure(h, 10.0, true);
    assert!(e.circuit_allow(h, 10.0), "one failure of two");
    let st = e.consume_failure(h, 10.0, true);
    assert_ne!(st & EVENTS, 0);
    assert!(!e.circuit_allow(h, 10.0));
    assert_eq!(e.circuit_next_attempt(h), 1010.0);
    let ev = items(&e.take_events(h).unwrap().into());
    assert_eq!(ev.len(), 1);
    assert_eq!(string(&ev[0], "type"), "circuit");
    assert!(boolean(&ev[0], "open"));
    assert_eq!(string(&e.metrics(h, 10.0).unwrap(), "circuitState"), "open");
    assert!(
        e.circuit_allow(h, 1010.0),
        "a trial after the reset timeout"
    );
    e.consume_success(h, 1011.0);
    let ev = items(&e.take_events(h).unwrap().into());
    assert_eq!(ev.len(), 1);
    assert!(!boolean(&ev[0], "open"));
    assert_eq!(
        string(&e.metrics(h, 1011.0).unwrap(), "circuitState"),
        "closed"
    );
}

#[wasm_bindgen_test]
fn the_dropped_bit_stays_until_take_dropped() {
    let mut e = fresh();
    let h = conn(&mut e, "a", 2, 10, 16.0, &dropping("newest"));
    let ss = slots(6);
    assert_eq!(e.push(h, ss[0], 0.5, 0.0) & DROPPED, 0);
    assert_eq!(e.push(h, ss[1], 0.5, 0.0) & DROPPED, 0);
    assert_ne!(e.push(h, ss[2], 0.5, 0.0) & DROPPED, 0, "ss[2] dropped");
    // Untaken drops keep the bit on every status that follows, even of writes that drop
    // nothing, and drops accumulate in order.
    assert_ne!(e.status(h) & DROPPED, 0);
    assert_ne!(e.push(h, ss[3], 0.5, 1.0) & DROPPED, 0, "ss[3] dropped");
    assert_eq!(e.take(h, 1.0, true).map(|b| b.len()), Some(2));
    assert_ne!(e.status(h) & DROPPED, 0, "delivery does not clear it");
    let st = e.push(h, ss[4], 0.5, 2.0);
    assert_eq!(st & DROP_SUMMARY, 0, "ss[4] fits: {st}");
    assert_ne!(st & DROPPED, 0, "still untaken: {st}");
    let (n, st) = push_many(&mut e, h, &ss[5..], &[0.5], 2.0);
    assert_eq!(n, 1);
    assert_ne!(st & DROPPED, 0, "pushMany reports it too: {st}");
    assert_eq!(e.take_dropped(h), vec![ss[2], R_NEWEST, ss[3], R_NEWEST]);
    assert_eq!(e.status(h) & DROPPED, 0);
    assert!(e.take_dropped(h).is_empty());
    assert_same(&e.take(h, 3.0, true).unwrap(), &ss[4..]);
    // The bit survives closing: the slots still need freeing.
    e.push(h, slot(), 0.5, 4.0);
    e.push(h, slot(), 0.5, 4.0);
    let dropped = slot();
    assert_ne!(e.push(h, dropped, 0.5, 4.0) & DROPPED, 0);
    e.close(h);
    assert_ne!(e.status(h) & DROPPED, 0);
    assert_eq!(e.take_dropped(h), vec![dropped, R_NEWEST]);
}

/// A tiny xorshift generator: deterministic, no dependencies.
struct Rng(u32);

impl Rng {
    fn next(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u32) -> u32 {
        self.next() % n
    }
}

/// The JS glue's slot store (`_alloc` / `_release` in js/connection.js): a slot array and a
/// free list, so slots are reused as soon as they are freed. Freeing a slot that is not live
/// fails the test (the core returned a slot twice, or one it was never given).
struct Store {
    live: Vec<bool>,
    free: Vec<u32>,
    count: usize,
}

impl Store {
    fn new() -> Self {
        Store {
            live: Vec::new(),
            free: Vec::new(),
            count: 0,
        }
    }
    fn alloc(&mut self) -> u32 {
        let s = self.free.pop().unwrap_or(self.live.len() as u32);
        if s as usize == self.live.len() {
            self.live.push(false);
        }
        assert!(!self.live[s as usize]);
        self.live[s as usize] = true;
        self.count += 1;
        s
    }
    fn release(&mut self, s: u32, what: &str) {
        assert!(
            self.live.get(s as usize).copied().unwrap_or(false),
            "{what} returned slot {s}, which is not live"
        );
        self.live[s as usize] = false;
        self.free.push(s);
        self.count -= 1;
    }
}

/// Every slot the core takes comes back exactly once: delivered (`take`, `consumeTake`),
/// dead-lettered (`cancel`) or dropped (`takeDropped`), and a refused write (PENDING, CLOSED)
/// keeps none. After every write the DROPPED bit is set exactly when `takeDropped` has
/// something. Random operations under every rule, with the glue's slot reuse.
#[wasm_bindgen_test]
fn every_slot_comes_back_exactly_once() {
    let policies: Vec<(&str, JsValue, &[u32])> = vec![
        ("block", block(), &[R_PRIORITY]),
        ("oldest", dropping("oldest"), &[R_PRIORITY, R_OLDEST]),
        ("newest", dropping("newest"), &[R_PRIORITY, R_NEWEST]),
        ("priority", dropping("priority"), &[R_PRIORITY]),
        (
            "oldest-0.5",
            obj(&[(
                "handler",
                handler(
                    "default",
                    &[
                        ("priorityDrop", false.into()),
                        ("dropThreshold", 0.5.into()),
                    ],
                ),
            )]),
            &[R_PRIORITY, R_OLDEST],
        ),
        (
            "block-conflate",
            obj(&[("conflate", true.into())]),
            &[R_PRIORITY, R_CONFLATED],
        ),
        (
            "newest-conflate",
            obj(&[("dropPolicy", "newest".into()), ("conflate", true.into())]),
            &[R_PRIORITY, R_NEWEST, R_CONFLATED],
        ),
        (
            "adaptive-conflate",
            obj(&[
                ("handler", handler("adaptive", &[])),
                ("conflate", true.into()),
            ]),
            &[R_PRIORITY, R_CONFLATED],
        ),
    ];
    const PRIOS: [f64; 6] = [0.1, 0.3, 0.5, 0.8, 1.0, f64::NAN];
    let mut e = fresh();
    for (pi, (name, policy, codes)) in policies.iter().enumerate() {
        let h = conn(&mut e, name, 8, 3, 5.0, policy);
        let mut rng = Rng(0x1234_5678 ^ (pi as u32 + 1).wrapping_mul(0x9E37_79B9));
        let mut st_ = Store::new();
        let mut inflight = 0u32;
        let mut t = 0.0;
        let (mut delivered, mut refused, mut dropped) = (0u32, 0u32, 0u32);
        // After a write: the DROPPED bit says exactly whether there is something to collect.
        let collect = |e: &mut EngineCore, store: &mut Store, st: u32, dropped: &mut u32| {
            let flat = e.take_dropped(h);
            assert_eq!(
                st & DROPPED != 0,
                !flat.is_empty(),
                "{name}: status {st} vs takeDropped {flat:?}"
            );
            for (s, r) in dropped_pairs(&flat) {
                assert!(codes.contains(&r), "{name}: reason {r} for slot {s}");
                store.release(s, "takeDropped");
                *dropped += 1;
            }
        };
        for step in 0..1500 {
            t += f64::from(rng.below(3));
            let p = PRIOS[rng.below(PRIOS.len() as u32) as usize];
            match rng.below(10) {
                0..=2 => {
                    let s = st_.alloc();
                    let st = e.push(h, s, p, t);
                    if st & (PENDING | CLOSED) != 0 {
                        st_.release(s, "refused push");
                        refused += 1;
                    }
                    collect(&mut e, &mut st_, st, &mut dropped);
                }
                3 | 4 => {
                    let s = st_.alloc();
                    let key = format!("k{}", rng.below(4));
                    let st = e.push_keyed(h, s, p, &key, t);
                    if st & (PENDING | CLOSED) != 0 {
                        st_.release(s, "refused pushKeyed");
                        refused += 1;
                    }
                    collect(&mut e, &mut st_, st, &mut dropped);
                }
                5 => {
                    let n = 1 + rng.below(6) as usize;
                    let ss: Vec<u32> = (0..n).map(|_| st_.alloc()).collect();
                    let ps: Vec<f64> = (0..n)
                        .map(|_| PRIOS[rng.below(PRIOS.len() as u32) as usize])
                        .collect();
                    let (acc, st) = push_many(&mut e, h, &ss, &ps, t);
                    let acc = acc as usize;
                    assert!(acc <= n, "{name}: accepted {acc} of {n}");
                    assert_eq!(
                        acc < n,
                        st & (PENDING | CLOSED) != 0,
                        "{name}: {acc}/{n}, {st}"
                    );
                    for &s in &ss[acc..] {
                        st_.release(s, "refused pushMany");
                        refused += 1;
                    }
                    collect(&mut e, &mut st_, st, &mut dropped);
                }
                6 => {
                    let s = st_.alloc();
                    let st = e.drop_incoming(h, s, p, t);
                    assert_ne!(st & DROPPED, 0, "{name}: dropIncoming always drops: {st}");
                    collect(&mut e, &mut st_, st, &mut dropped);
                }
                7 => {
                    let force = rng.below(2) == 0;
                    let got = if rng.below(2) == 0 {
                        e.take(h, t, force)
                    } else {
                        e.take_with_status(h, t, force).map(|mut b| {
                            let st = b.pop().expect("takeWithStatus: at least the status");
                            assert_eq!(st & !EMPTY, e.status(h), "{name}: takeWithStatus status");
                            b
                        })
                    };
                    if let Some(b) = got {
                        assert!(!b.is_empty() && b.len() <= 3, "{name}: batch {b:?}");
                        for s in b {
                            st_.release(s, "take");
                            delivered += 1;
                        }
                    }
                }
                8 => {
                    if inflight == 0 {
                        if let Some(b) = e.consume_take(h, t, rng.below(2) == 0) {
                            inflight = b.len() as u32;
                            for s in b {
                                st_.release(s, "consumeTake");
                                delivered += 1;
                            }
                        }
                    } else {
                        assert!(e.consume_take(h, t, true).is_none(), "one batch in flight");
                        match rng.below(3) {
                            0 => {
                                e.consume_success(h, t);
                                inflight = 0;
                            }
                            1 => {
                                e.consume_failure(h, t, false);
                                assert_eq!(e.consume_dead_letter(h, t), inflight);
                                inflight = 0;
                            }
                            _ => {
                                // A retry: the batch stays in flight.
                                e.consume_failure(h, t, true);
                            }
                        }
                    }
                }
                _ => {
                    if rng.below(2) == 0 {
                        e.pause(h);
                    } else {
                        e.resume(h);
                    }
                }
            }
            assert_eq!(
                st_.count as u32 + inflight,
                e.held(h),
                "{name} step {step}: live slots + in flight != held"
            );
            assert_eq!(
                e.status(h) & DROPPED,
                0,
                "{name} step {step}: all drops collected"
            );
        }
        if inflight > 0 {
            e.consume_success(h, t);
        }
        for s in e.cancel(h, t + 1.0) {
            st_.release(s, "cancel");
        }
        assert_eq!(st_.count, 0, "{name}: slots never returned");
        assert_eq!(e.held(h), 0);
        assert!(e.take_dropped(h).is_empty(), "{name}");
        // Every kind of return happened, so the run exercised what it claims to.
        assert!(
            delivered > 0 && dropped > 0,
            "{name}: {delivered} delivered, {dropped} dropped"
        );
        if *name == "block" {
            assert!(refused > 0, "block refuses when full");
        }
        assert_accounting(&e.metrics(h, t + 1.0).unwrap());
    }
}

#[wasm_bindgen_test]
fn take_io_writes_slots_then_status_into_the_exchange_area() {
    let mut e = fresh();
    let mut twin = fresh();
    assert_eq!(e.take_io(0, 0.0, true), -1, "unknown handle");
    let h = conn(&mut e, "a", 10, 2, 16.0, &block());
    let h2 = conn(&mut twin, "a", 10, 2, 16.0, &block());
    assert_eq!(e.take_io(h, 0.0, true), -1, "empty");
    let ptr = e.io_reserve(3);
    assert!(e.io_length() >= 3);
    assert_eq!(e.io_reserve(2), ptr, "no move without growth");
    let ss = slots(5);
    for &s in &ss {
        assert_eq!(e.push(h, s, 0.5, 0.0), twin.push(h2, s, 0.5, 0.0));
    }
    let mut got = Vec::new();
    loop {
        let k = e.take_io(h, 100.0, true);
        let b = twin.take_with_status(h2, 100.0, true);
        if k < 0 {
            assert!(b.is_none());
            break;
        }
        let k = k as usize;
        // Read the exchange area through a view, as the JS glue does.
        let mem: js_sys::WebAssembly::Memory =
            stream_engine::wasm::wasm_memory().unwrap().unchecked_into();
        let view = js_sys::Uint32Array::new_with_byte_offset_and_length(
            &mem.buffer(),
            e.io_reserve(k + 1) as u32,
            (k + 1) as u32,
        );
        let io = view.to_vec();
        assert_eq!(
            Some(io.clone()),
            b,
            "same slots and status as takeWithStatus"
        );
        got.extend_from_slice(&io[..k]);
    }
    assert_same(&got, &ss);
    // A batch larger than the area grows it (and moves it).
    let h3 = conn(&mut e, "b", 100, 50, 0.0, &block());
    let more = slots(40);
    for &s in &more {
        e.push(h3, s, 0.5, 0.0);
    }
    let k = e.take_io(h3, 0.0, true);
    assert_eq!(k, 40);
    assert!(e.io_length() >= 41);
}

#[wasm_bindgen_test]
fn take_with_status_is_take_then_status() {
    let mut e = fresh();
    assert!(e.take_with_status(0, 0.0, true).is_none(), "unknown handle");
    let h = conn(&mut e, "a", 10, 2, 16.0, &block());
    assert!(e.take_with_status(h, 0.0, true).is_none(), "empty");
    let ss = slots(5);
    for &s in &ss {
        e.push(h, s, 0.5, 0.0);
    }
    // The batch's slots, then the status after the take as one extra element.
    let b = e.take_with_status(h, 0.0, false).unwrap();
    assert_eq!(b.len(), 3);
    assert_same(&b[..2], &ss[..2]);
    assert_eq!(b[2], e.status(h));
    assert_ne!(
        b[2] & BATCH_READY,
        0,
        "3 left, a full batch is ready: {}",
        b[2]
    );
    let b = e.take_with_status(h, 0.0, false).unwrap();
    assert_same(&b[..2], &ss[2..4]);
    assert_eq!(b[2] & BATCH_READY, 0, "1 left, not due: {}", b[2]);
    assert!(e.take_with_status(h, 15.0, false).is_none(), "not due yet");
    let b = e.take_with_status(h, 16.0, false).unwrap();
    assert_eq!(b, vec![ss[4], e.status(h) | EMPTY]);
    assert_eq!(b[1], EMPTY, "nothing left: only the EMPTY bit");
    e.pause(h);
    e.push(h, slot(), 0.5, 20.0);
    assert!(e.take_with_status(h, 100.0, true).is_none(), "paused");
    e.resume(h);
    assert_eq!(e.take_with_status(h, 100.0, true).map(|b| b.len()), Some(2));

    // Side by side with take + status on a twin engine: same slots, same status, including
    // the backpressure-end EVENTS and untaken DROPPED bits.
    let mut twin = fresh();
    let mut e = fresh();
    let policy = dropping("oldest");
    let h1 = conn(&mut e, "x", 5, 2, 16.0, &policy);
    let h2 = conn(&mut twin, "x", 5, 2, 16.0, &policy);
    let ss = slots(9);
    for (i, &s) in ss.iter().enumerate() {
        let t = i as f64;
        assert_eq!(e.push(h1, s, 0.5, t), twin.push(h2, s, 0.5, t));
    }
    let mut saw = 0;
    for i in 0..6 {
        let t = 10.0 + 10.0 * i as f64;
        let a = e.take_with_status(h1, t, i % 2 == 0);
        let b = twin.take(h2, t, i % 2 == 0).map(|mut b| {
            let empty = if twin.held(h2) == 0 { EMPTY } else { 0 };
            b.push(twin.status(h2) | empty);
            b
        });
        assert_eq!(a, b, "take {i}");
        if let Some(a) = a {
            saw |= a[a.len() - 1];
        }
    }
    assert_ne!(
        saw & EVENTS,
        0,
        "backpressure ended during the takes: {saw}"
    );
    assert_ne!(
        saw & DROPPED,
        0,
        "the 4 dropped slots were never taken: {saw}"
    );
    assert_eq!(e.take_dropped(h1), twin.take_dropped(h2));
    // Closed: still readable, the same way.
    e.push(h1, slot(), 0.5, 100.0);
    e.close(h1);
    let b = e.take_with_status(h1, 100.0, true).unwrap();
    assert_eq!((b.len(), b[1] & CLOSED), (2, 0), "{b:?}");
    assert!(e.take_with_status(h1, 100.0, true).is_none());
}

#[wasm_bindgen_test]
fn the_exchange_area_is_not_reserved_up_front_and_is_trimmed_after_a_big_batch() {
    let mut e = fresh();
    let h = conn(&mut e, "a", 10_000, 10_000, 0.0, &block());
    assert_eq!(e.io_length(), 0, "nothing reserved for maxBatchSize");
    let ss = slots(5000);
    let (n, st) = push_many(&mut e, h, &ss, &[], 0.0);
    assert_eq!((n, st & PENDING), (5000, 0));
    assert_eq!(e.take_io(h, 0.0, true), 5000);
    assert!(
        e.io_length() > 5000,
        "grown to fit the batch and its status"
    );
    assert!(e.io_trim(), "a big area is given back");
    assert_eq!(e.io_length(), 0);
    assert!(!e.io_trim(), "nothing left to give back");
    // Small batches keep the area.
    e.push_many(h, &slots(3), &[], 1.0);
    assert_eq!(e.take_io(h, 1.0, true), 3);
    assert!(!e.io_trim());
    // pushMany's count: all when not PENDING, none when CLOSED.
    e.close(h);
    assert_eq!(push_many(&mut e, h, &slots(2), &[], 2.0), (0, CLOSED));
}

/// The consumer's decisions cross as numbers: retry time or NaN (dead-letter), circuit wait or
/// NaN (call now), with the kinds from the exported `FailureKind`.
#[wasm_bindgen_test]
fn consumer_decisions_come_from_the_core() {
    use stream_engine::core::connection::consume::FailureKind;
    let mut e = fresh();
    let h = conn(&mut e, "a", 10, 10, 0.0, &block());
    e.set_retry_policy(h, 2, 10.0, 1000.0, 0.0);
    e.set_circuit(h, 3, 100.0);
    assert_eq!(e.push(h, 7, 0.5, 0.0) & CLOSED, 0);
    assert_eq!(e.consume_take(h, 0.0, true).as_deref(), Some(&[7u32][..]));
    assert!(e.circuit_wait(h, 0.0).is_nan());
    assert_eq!(e.consume_failed(h, 0.0, FailureKind::Retryable, 0.5), 10.0);
    assert_eq!(e.consume_attempt(h), 1);
    assert_eq!(e.consume_failed(h, 10.0, FailureKind::Retryable, 0.5), 30.0);
    assert!(e
        .consume_failed(h, 30.0, FailureKind::Retryable, 0.5)
        .is_nan());
    // Three failures in a row opened the circuit: wait until it half-opens.
    assert_eq!(e.circuit_wait(h, 31.0), 130.0);
    assert_ne!(e.status(h) & EVENTS, 0);
    assert_eq!(e.consume_dead_letter(h, 31.0), 1);
    let m = e.metrics(h, 31.0).unwrap();
    assert_eq!(num(&m, "errors"), 3.0);
    assert_eq!(num(&m, "retries"), 2.0);
    assert_accounting(&m);
}

/// A held write's deadline comes from the core's wait budget, and only under backpressure.
#[wasm_bindgen_test]
fn hold_deadlines_come_from_the_core() {
    let mut e = fresh();
    let policy = obj(&[
        ("dropPolicy", "oldest".into()),
        ("maxWaitTime", 40.0.into()),
        ("backpressureThreshold", 0.5.into()),
    ]);
    let h = conn(&mut e, "a", 4, 4, 1000.0, &policy);
    assert_eq!(e.push(h, 1, 0.5, 0.0) & HOLD, 0);
    assert!(e.hold_until(h, 0.0, 0.0).is_nan());
    assert_ne!(e.push(h, 2, 0.5, 5.0) & HOLD, 0);
    assert_eq!(e.hold_until(h, 3.0, 5.0), 43.0);
    assert!(e.hold_until(h, 3.0, 43.0).is_nan());
    assert_eq!(stream_engine::wasm::retry_chunk(0, 500), 64);
    assert_eq!(stream_engine::wasm::retry_chunk(64, 100), 100);
}
