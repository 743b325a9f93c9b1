//! The Rust API (feature `futures`), natively, on a manual clock: batching, lossless
//! backpressure, drop policies, holds, conflation, close and cancel semantics, the event feed,
//! and per-message accounting. Run with `cargo test --features futures --test rust_api`.
#![cfg(all(feature = "futures", not(target_arch = "wasm32")))]

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use futures::{FutureExt, Sink, SinkExt, Stream, StreamExt};
use stream_engine::api::{
    ConnectionEventKind, ConnectionOptions, DropPolicy, EngineConfig, Event, Handler, ManualTimer,
    SendError, StreamEngine, Timer, TrySendError,
};
use stream_engine::core::connection::DropReason;

type Engine = StreamEngine<Msg, ManualTimer>;

/// A test message: an id and a priority.
#[derive(Debug, Clone, PartialEq)]
struct Msg {
    id: u32,
    prio: f64,
    key: Option<&'static str>,
}

fn m(id: u32) -> Msg {
    Msg {
        id,
        prio: 0.5,
        key: None,
    }
}
fn mp(id: u32, prio: f64) -> Msg {
    Msg {
        id,
        prio,
        key: None,
    }
}

fn engine() -> (Engine, ManualTimer) {
    let t = ManualTimer::new();
    (
        StreamEngine::with_timer(EngineConfig::default(), t.clone()).unwrap(),
        t,
    )
}

/// A waker that counts its wakes.
#[derive(Default)]
struct Count(AtomicUsize);
impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}
fn counting() -> (Arc<Count>, Waker) {
    let c = Arc::new(Count::default());
    (c.clone(), Waker::from(c))
}

fn poll_next<S: Stream + Unpin>(s: &mut S, w: &Waker) -> Poll<Option<S::Item>> {
    Pin::new(s).poll_next(&mut Context::from_waker(w))
}
fn poll_ready<T, S: Sink<T> + Unpin>(s: &mut S, w: &Waker) -> Poll<Result<(), S::Error>> {
    Pin::new(s).poll_ready(&mut Context::from_waker(w))
}
fn ids(batch: &[Msg]) -> Vec<u32> {
    batch.iter().map(|m| m.id).collect()
}

/// Every drop, by message id.
type DropLog = Arc<Mutex<Vec<(u32, DropReason)>>>;

/// Records every drop by message id.
fn drop_log() -> (DropLog, impl Fn(Msg, DropReason) + Send + Sync) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    (log, move |m: Msg, r| l.lock().unwrap().push((m.id, r)))
}

#[test]
fn a_full_batch_comes_at_once_and_a_partial_one_after_batch_timeout() {
    let (engine, timer) = engine();
    let conn = engine
        .connect(
            "a",
            ConnectionOptions::new()
                .max_batch_size(3)
                .batch_timeout(16.0),
        )
        .unwrap();
    let (mut tx, mut rx) = conn.split();
    let (wakes, w) = counting();
    for i in 1..=4 {
        tx.try_send(m(i)).unwrap();
    }
    assert_eq!(
        ids(&rx.next().now_or_never().unwrap().unwrap()),
        vec![1, 2, 3]
    );
    // Message 4 was taken at t=0: nothing before t=16.
    assert!(poll_next(&mut rx, &w).is_pending());
    timer.advance(15.0);
    assert!(poll_next(&mut rx, &w).is_pending());
    let before = wakes.0.load(Ordering::SeqCst);
    timer.advance(1.0);
    assert!(
        wakes.0.load(Ordering::SeqCst) > before,
        "the batch timer wakes the reader"
    );
    match poll_next(&mut rx, &w) {
        Poll::Ready(Some(b)) => assert_eq!(ids(&b), vec![4]),
        other => panic!("expected the partial batch, got {other:?}"),
    }
    let metrics = engine.connection_metrics("a").unwrap();
    assert_eq!(metrics.messages_out, 4);
    assert_eq!(metrics.p95_latency.round(), 16.0);
}

#[test]
fn lossless_sink_is_not_ready_while_full_and_drops_nothing() {
    let (engine, _timer) = engine();
    let conn = engine
        .connect(
            "a",
            ConnectionOptions::new().buffer_size(2).batch_timeout(0.0),
        )
        .unwrap();
    let (mut tx, mut rx) = conn.split();
    let (wakes, w) = counting();
    for i in 1..=2 {
        assert!(poll_ready(&mut tx, &w).is_ready());
        Pin::new(&mut tx).start_send(m(i)).unwrap();
    }
    assert!(poll_ready(&mut tx, &w).is_pending(), "full: backpressure");
    assert_eq!(tx.try_send(m(3)), Err(TrySendError::Full(m(3))));
    assert_eq!(wakes.0.load(Ordering::SeqCst), 0);
    assert_eq!(ids(&rx.next().now_or_never().unwrap().unwrap()), vec![1, 2]);
    assert!(
        wakes.0.load(Ordering::SeqCst) >= 1,
        "draining wakes the writer"
    );
    assert!(poll_ready(&mut tx, &w).is_ready());
    let metrics = engine.connection_metrics("a").unwrap();
    assert_eq!(
        (metrics.messages_in, metrics.messages_out, metrics.dropped),
        (2, 2, 0)
    );
}

#[test]
fn a_waiting_send_all_completes_as_the_reader_drains_in_order() {
    let (engine, _timer) = engine();
    let conn = engine
        .connect(
            "a",
            ConnectionOptions::new()
                .buffer_size(3)
                .max_batch_size(2)
                .batch_timeout(0.0),
        )
        .unwrap();
    let (mut tx, rx) = conn.split();
    let producer = async move {
        tx.send_all((1..=10).map(m).collect()).await.unwrap();
        tx.close().await.unwrap();
    };
    let consumer = rx.map(|b| ids(&b)).collect::<Vec<_>>();
    let (_, batches) = futures::executor::block_on(futures::future::join(producer, consumer));
    let all: Vec<u32> = batches.iter().flatten().copied().collect();
    assert_eq!(all, (1..=10).collect::<Vec<_>>());
    assert!(batches.iter().all(|b| !b.is_empty() && b.len() <= 2));
}

#[test]
fn drop_policies_pick_their_victims_and_never_a_critical_message() {
    let cases = [
        (
            DropPolicy::Oldest,
            vec![(1, DropReason::Oldest)],
            vec![2, 3, 4],
        ),
        (
            DropPolicy::Newest,
            vec![(4, DropReason::Newest)],
            vec![1, 2, 3],
        ),
        (
            DropPolicy::Priority,
            vec![(2, DropReason::Priority)],
            vec![1, 3, 4],
        ),
    ];
    for (policy, want_dropped, want_kept) in cases {
        let (engine, _timer) = engine();
        let (log, on_drop) = drop_log();
        let conn = engine
            .connect(
                "a",
                ConnectionOptions::new()
                    .buffer_size(3)
                    .drop_policy(policy)
                    .priority(|m: &Msg| m.prio)
                    .on_drop(on_drop),
            )
            .unwrap();
        let (mut tx, rx) = conn.split();
        for msg in [mp(1, 0.75), mp(2, 0.25), mp(3, 1.0), mp(4, 0.5)] {
            tx.try_send(msg).unwrap();
        }
        tx.close_connection();
        let got: Vec<u32> = futures::executor::block_on(rx.collect::<Vec<_>>())
            .iter()
            .flat_map(|b| ids(b))
            .collect();
        assert_eq!(*log.lock().unwrap(), want_dropped, "{policy:?}");
        assert_eq!(got, want_kept, "{policy:?}");
    }
}

#[test]
fn a_critical_write_into_a_buffer_of_critical_messages_waits() {
    let (engine, _timer) = engine();
    let conn = engine
        .connect(
            "a",
            ConnectionOptions::new()
                .buffer_size(2)
                .drop_policy(DropPolicy::Newest)
                .priority(|m: &Msg| m.prio),
        )
        .unwrap();
    let mut tx = conn.sender();
    tx.try_send(mp(1, 1.0)).unwrap();
    tx.try_send(mp(2, 1.0)).unwrap();
    assert_eq!(tx.try_send(mp(3, 1.0)), Err(TrySendError::Full(mp(3, 1.0))));
    tx.try_send(mp(4, 0.5)).unwrap(); // non-critical: dropped as the newest
    let metrics = conn.metrics().unwrap();
    assert_eq!(
        (metrics.messages_in, metrics.dropped, metrics.buffer_size),
        (3, 1, 2)
    );
}

#[test]
fn the_default_handler_holds_a_write_under_backpressure_until_max_wait() {
    let (engine, timer) = engine();
    engine.set_handler(Handler::Default {
        drop_threshold: 0.9,
        priority_drop: true,
        max_wait: 50.0,
    });
    let conn = engine
        .connect(
            "a",
            ConnectionOptions::new()
                .buffer_size(10)
                .backpressure_threshold(0.5),
        )
        .unwrap();
    let (mut tx, _rx) = conn.split();
    let (_, w) = counting();
    let mut cx = Context::from_waker(&w);
    for i in 1..=4 {
        let mut send = Box::pin(tx.send(m(i)));
        assert!(
            send.as_mut().poll(&mut cx).is_ready(),
            "below the threshold: not held"
        );
    }
    // The 5th write reaches the threshold (5 of 10): taken, but held.
    let mut send = Box::pin(tx.send(m(5)));
    assert!(send.as_mut().poll(&mut cx).is_pending());
    timer.advance(49.0);
    assert!(send.as_mut().poll(&mut cx).is_pending());
    timer.advance(1.0);
    assert!(matches!(send.as_mut().poll(&mut cx), Poll::Ready(Ok(()))));
    drop(send);
    assert_eq!(engine.connection_metrics("a").unwrap().messages_in, 5);
}

#[test]
fn a_held_write_is_released_when_the_reader_drains() {
    let (engine, _timer) = engine();
    let conn = engine
        .connect(
            "a",
            ConnectionOptions::new()
                .buffer_size(4)
                .batch_timeout(0.0)
                .backpressure_threshold(0.5)
                .drop_policy(DropPolicy::Oldest)
                .max_wait(1000.0),
        )
        .unwrap();
    let (mut tx, mut rx) = conn.split();
    let (wakes, w) = counting();
    let mut cx = Context::from_waker(&w);
    tx.try_send(m(1)).unwrap();
    let mut send = Box::pin(tx.send(m(2)));
    assert!(send.as_mut().poll(&mut cx).is_pending());
    assert_eq!(ids(&rx.next().now_or_never().unwrap().unwrap()), vec![1, 2]);
    assert!(wakes.0.load(Ordering::SeqCst) >= 1);
    assert!(matches!(send.as_mut().poll(&mut cx), Poll::Ready(Ok(()))));
}

#[test]
fn conflation_keeps_the_latest_value_per_key_in_place() {
    let (engine, _timer) = engine();
    let (log, on_drop) = drop_log();
    let conn = engine
        .connect(
            "a",
            ConnectionOptions::new()
                .conflate_by(|m: &Msg| m.key.map(String::from))
                .on_drop(on_drop),
        )
        .unwrap();
    let (mut tx, rx) = conn.split();
    let k = |id, key| Msg {
        id,
        prio: 0.5,
        key: Some(key),
    };
    for msg in [k(1, "x"), k(2, "y"), k(3, "x"), m(4), k(5, "x")] {
        tx.try_send(msg).unwrap();
    }
    tx.close_connection();
    let got: Vec<u32> = futures::executor::block_on(rx.collect::<Vec<_>>())
        .iter()
        .flat_map(|b| ids(b))
        .collect();
    assert_eq!(got, vec![5, 2, 4], "x's latest value in x's first place");
    assert_eq!(
        *log.lock().unwrap(),
        vec![(1, DropReason::Conflated), (3, DropReason::Conflated)]
    );
}

#[test]
fn close_hands_messages_back_delivers_the_rest_and_frees_the_id() {
    let (engine, timer) = engine();
    let conn = engine
        .connect("a", ConnectionOptions::new().batch_timeout(1000.0))
        .unwrap();
    let (mut tx, mut rx) = conn.split();
    tx.try_send(m(1)).unwrap();
    assert!(engine.close("a"));
    assert!(!engine.close("a"), "closing twice finds nothing open");
    assert_eq!(
        futures::executor::block_on(tx.send(m(2))),
        Err(SendError(m(2)))
    );
    assert_eq!(
        futures::executor::block_on(tx.send_all(vec![m(3), m(4)])),
        Err(SendError(vec![m(3), m(4)]))
    );
    // The id is free at once, while the old connection still drains.
    let _again = engine.connect("a", ConnectionOptions::new()).unwrap();
    // No wait for the batch timer after a close.
    assert_eq!(timer.now(), 0.0);
    assert_eq!(ids(&rx.next().now_or_never().unwrap().unwrap()), vec![1]);
    assert_eq!(rx.next().now_or_never(), Some(None));
    assert_eq!(engine.ids(), vec!["a".to_string()]);
}

#[test]
fn dropping_the_reader_dead_letters_what_is_buffered_and_closes_writes() {
    let (engine, _timer) = engine();
    let (log, on_drop) = drop_log();
    let conn = engine
        .connect(
            "a",
            ConnectionOptions::new()
                .batch_timeout(1000.0)
                .on_drop(on_drop),
        )
        .unwrap();
    let mut tx = conn.sender();
    tx.try_send(m(1)).unwrap();
    tx.try_send(m(2)).unwrap();
    drop(conn);
    assert_eq!(
        *log.lock().unwrap(),
        vec![(1, DropReason::DeadLetter), (2, DropReason::DeadLetter)]
    );
    assert_eq!(tx.try_send(m(3)), Err(TrySendError::Closed(m(3))));
    assert!(engine.connection_metrics("a").is_none(), "forgotten");
}

#[test]
fn the_event_feed_reports_lifecycle_backpressure_drops_and_metrics() {
    let t = ManualTimer::new();
    let cfg = EngineConfig {
        metrics_interval: 100.0,
        ..EngineConfig::default()
    };
    let engine: Engine = StreamEngine::with_timer(cfg, t.clone()).unwrap();
    let mut feed = engine.events();
    let conn = engine
        .connect(
            "a",
            ConnectionOptions::new()
                .buffer_size(4)
                .drop_policy(DropPolicy::Newest),
        )
        .unwrap();
    let mut tx = conn.sender();
    for i in 1..=5 {
        tx.try_send(m(i)).unwrap();
    }
    let next = |feed: &mut stream_engine::api::EventStream<Msg, ManualTimer>| {
        feed.next().now_or_never().flatten()
    };
    assert_eq!(
        next(&mut feed),
        Some(Event::Connection {
            connection_id: "a".into(),
            kind: ConnectionEventKind::Created
        })
    );
    assert!(matches!(
        next(&mut feed),
        Some(Event::Backpressure { active: true, .. })
    ));
    match next(&mut feed) {
        Some(Event::Drop { summary, .. }) => {
            assert_eq!(summary.count, 1);
            assert_eq!(summary.reasons.newest, 1);
        }
        other => panic!("expected a drop summary, got {other:?}"),
    }
    assert_eq!(next(&mut feed), None, "no metrics before the interval");
    t.advance(100.0);
    match next(&mut feed) {
        Some(Event::Metrics(tick)) => {
            assert_eq!(tick.connections["a"].messages_in, 5);
            assert_eq!(tick.totals.dropped, 1);
        }
        other => panic!("expected metrics, got {other:?}"),
    }
    // Buffer use 1.0 is over the critical backpressure threshold; the messages have waited
    // 100 ms, at the latency warning threshold; 1 drop in 5 arrivals is over the 1% drop rate.
    let mut alerts = Vec::new();
    while let Some(ev) = next(&mut feed) {
        match ev {
            Event::Alert(a) => alerts.push((a.kind, a.alert.alert_type, a.alert.severity)),
            other => panic!("expected only alerts, got {other:?}"),
        }
    }
    alerts.sort();
    assert_eq!(
        alerts,
        vec![
            ("alert", "backpressure", "critical"),
            ("alert", "drops", "warning"),
            ("alert", "high_latency", "warning")
        ]
    );
}

#[test]
fn a_slow_feed_subscriber_loses_its_oldest_events_and_is_told_how_many() {
    let (engine, _timer) = engine();
    let mut feed = engine.events_with_queue(2);
    for i in 0..5 {
        drop(
            engine
                .connect(&format!("c{i}"), ConnectionOptions::new())
                .unwrap(),
        );
    }
    // 5 created + 5 closed = 10 events into a queue of 2.
    assert_eq!(feed.next().now_or_never().flatten(), Some(Event::Missed(8)));
    assert!(matches!(
        feed.next().now_or_never().flatten(),
        Some(Event::Connection { .. })
    ));
}

#[test]
fn bad_options_are_errors_naming_the_field() {
    let (engine, _timer) = engine();
    let err = |o: ConnectionOptions<Msg>| engine.connect("x", o).unwrap_err().message;
    assert_eq!(
        err(ConnectionOptions::new().buffer_size(0)),
        "bufferSize must be a positive integer, got 0"
    );
    assert_eq!(
        err(ConnectionOptions::new().batch_timeout(-1.0)),
        "batchTimeout must be a finite number >= 0 (ms), got -1"
    );
    assert_eq!(
        err(ConnectionOptions::new()
            .drop_policy(DropPolicy::Oldest)
            .max_wait(f64::NAN)),
        "maxWaitTime must be a finite number >= 0 (ms), got NaN"
    );
    let mut a = Handler::adaptive(100.0);
    if let Handler::Adaptive(c) = &mut a {
        c.min_threshold = 0.95;
    }
    assert!(err(ConnectionOptions::new().handler(a))
        .starts_with("minThreshold must be <= maxThreshold"));
    assert!(engine.ids().is_empty(), "nothing half-created");
}

/// Many writes under every policy with random priorities, keys and interleaved reads: every
/// message id is delivered exactly once or dropped exactly once, never both, never lost.
#[test]
fn every_message_is_delivered_or_dropped_exactly_once() {
    let mut seed = 0x2545F4914F6CDD1Du64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let policies = [
        None,
        Some(DropPolicy::Priority),
        Some(DropPolicy::Oldest),
        Some(DropPolicy::Newest),
        None, // with the default handler
        None, // with the adaptive handler
    ];
    for (pi, policy) in policies.into_iter().enumerate() {
        for conflate in [false, true] {
            let (engine, timer) = engine();
            let (log, on_drop) = drop_log();
            let mut o = ConnectionOptions::new()
                .buffer_size(8)
                .max_batch_size(3)
                .batch_timeout(5.0)
                .priority(|m: &Msg| m.prio)
                .on_drop(on_drop);
            if let Some(p) = policy {
                o = o.drop_policy(p).max_wait(3.0);
            }
            match pi {
                4 => o = o.handler(Handler::default_handler()),
                5 => o = o.handler(Handler::adaptive(10.0)),
                _ => {}
            }
            if conflate {
                o = o.conflate_by(|m: &Msg| m.key.map(String::from));
            }
            let conn = engine.connect("a", o).unwrap();
            let (mut tx, mut rx) = conn.split();
            let mut delivered = Vec::new();
            let mut prio_of = Vec::new();
            let n = 2000u32;
            for id in 0..n {
                let prio = [0.25, 0.5, 0.75, 1.0][(rnd() % 4) as usize];
                let key = [Some("k1"), Some("k2"), None, None][(rnd() % 4) as usize];
                prio_of.push(prio);
                let mut msg = Some(Msg { id, prio, key });
                while let Some(mm) = msg.take() {
                    match tx.try_send(mm) {
                        Ok(()) => {}
                        Err(TrySendError::Full(back)) => {
                            // Lossless (or all-critical) and full: read, then retry.
                            msg = Some(back);
                            timer.advance(5.0);
                            if let Some(Some(b)) = rx.next().now_or_never() {
                                delivered.extend(ids(&b));
                            }
                        }
                        Err(e) => panic!("unexpected {e:?}"),
                    }
                }
                if rnd() % 3 == 0 {
                    timer.advance((rnd() % 4) as f64);
                    if let Some(Some(b)) = rx.next().now_or_never() {
                        delivered.extend(ids(&b));
                    }
                }
            }
            tx.close_connection();
            let m = engine.connection_metrics("a").unwrap();
            assert_eq!(
                m.messages_in,
                m.messages_out + m.dropped + m.buffer_size as u64
            );
            while let Some(b) = futures::executor::block_on(rx.next()) {
                delivered.extend(ids(&b));
            }
            for (id, why) in log.lock().unwrap().iter() {
                if *why != DropReason::Conflated {
                    assert!(
                        prio_of[*id as usize] < 1.0,
                        "case {pi}/{conflate}: critical {id} dropped ({why:?})"
                    );
                }
            }
            let mut seen = BTreeMap::new();
            for id in &delivered {
                *seen.entry(*id).or_insert(0) += 1;
            }
            for (id, _) in log.lock().unwrap().iter() {
                *seen.entry(*id).or_insert(0) += 1;
            }
            assert_eq!(
                seen.len(),
                n as usize,
                "case {pi}/{conflate}: every id accounted for"
            );
            assert!(
                seen.values().all(|&c| c == 1),
                "case {pi}/{conflate}: exactly once"
            );
            if pi > 0 {
                // The dropping cases are exercised, not vacuous.
                assert!(
                    !log.lock().unwrap().is_empty(),
                    "case {pi}/{conflate}: some drops"
                );
            }
            if pi == 0 && !conflate {
                assert!(log.lock().unwrap().is_empty(), "lossless drops nothing");
                assert_eq!(delivered, (0..n).collect::<Vec<_>>(), "in write order");
            }
        }
    }
}

#[test]
fn the_engine_and_its_handles_are_send_natively() {
    fn send<X: Send + Sync>() {}
    send::<StreamEngine<Msg>>();
    send::<stream_engine::api::Sender<Msg, stream_engine::api::NativeTimer>>();
    send::<stream_engine::api::Connection<Msg, stream_engine::api::NativeTimer>>();
}

#[test]
fn the_native_timer_delivers_a_partial_batch_on_a_real_clock() {
    // One real-clock test: the default timer wires the batch timer (no timing assertion).
    let engine = StreamEngine::<u32>::new();
    let conn = engine
        .connect("a", ConnectionOptions::new().batch_timeout(5.0))
        .unwrap();
    let (mut tx, mut rx) = conn.split();
    tx.try_send(1).unwrap();
    assert_eq!(futures::executor::block_on(rx.next()), Some(vec![1]));
}

/// The README's `rust` examples are doctests of `src/api` (so `cargo test --doc` runs them):
/// every block appears, line for line, in a doc comment there.
#[test]
fn every_rust_example_in_the_readme_is_a_doctest() {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let mut blocks = Vec::new();
    let mut cur: Option<Vec<&str>> = None;
    for line in readme.lines() {
        match (&mut cur, line.trim_end()) {
            (None, l) if l.starts_with("```rust") => cur = Some(Vec::new()),
            (Some(_), "```") => blocks.push(cur.take().unwrap()),
            (Some(b), l) => b.push(l),
            _ => {}
        }
    }
    assert!(blocks.len() >= 2, "the Rust API section has examples");
    let mut docs = String::new();
    for entry in std::fs::read_dir(format!("{root}/src/api")).unwrap() {
        let src = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in src.lines() {
            let t = line.trim_start();
            if let Some(rest) = t.strip_prefix("//!").or_else(|| t.strip_prefix("///")) {
                docs.push_str(rest.strip_prefix(' ').unwrap_or(rest));
                docs.push('\n');
            }
        }
    }
    for b in blocks {
        let text = b.join("\n") + "\n";
        assert!(
            docs.contains(&text),
            "README example not found in src/api docs:\n{text}"
        );
    }
}

#[test]
fn a_sender_of_a_forgotten_connection_never_writes_into_a_new_one() {
    let (engine, _timer) = engine();
    let old = engine.connect("a", ConnectionOptions::new()).unwrap();
    let mut stale = old.sender();
    drop(old); // the reader went away: forgotten, its handle is free
    let new = engine.connect("b", ConnectionOptions::new()).unwrap();
    assert_eq!(stale.try_send(m(1)), Err(TrySendError::Closed(m(1))));
    assert_eq!(new.metrics().unwrap().messages_in, 0);
}

#[test]
fn batch_writes_on_the_lossless_path_keep_each_message_priority() {
    let (engine, _timer) = engine();
    let mut conn = engine
        .connect(
            "a",
            ConnectionOptions::new()
                .batch_timeout(0.0)
                .priority(|m: &Msg| m.prio),
        )
        .unwrap();
    let mut tx = conn.sender();
    futures::executor::block_on(tx.send_all(vec![mp(1, 1.0), mp(2, 0.25), mp(3, 0.5)])).unwrap();
    assert_eq!(
        ids(&conn.next().now_or_never().unwrap().unwrap()),
        vec![1, 2, 3]
    );
    let d = conn.metrics().unwrap().delivered_by_priority;
    assert_eq!((d.critical, d.high, d.normal, d.low), (1, 0, 1, 1));
}

#[test]
fn a_sink_works_with_stream_forward_and_its_close_ends_the_batches() {
    let (engine, _timer) = engine();
    let conn = engine
        .connect(
            "a",
            ConnectionOptions::new()
                .buffer_size(16)
                .max_batch_size(5)
                .batch_timeout(0.0),
        )
        .unwrap();
    let (tx, rx) = conn.split();
    let source = futures::stream::iter((0..1000).map(|i| Ok(m(i))));
    let reader = rx.map(|b| ids(&b)).collect::<Vec<_>>();
    let (sent, batches) =
        futures::executor::block_on(futures::future::join(source.forward(tx), reader));
    sent.unwrap();
    assert_eq!(batches.concat(), (0..1000).collect::<Vec<_>>());
    assert!(batches.iter().all(|b| b.len() <= 5));
}

#[test]
fn a_waiting_feed_reader_is_woken_by_a_new_event() {
    let (engine, _timer) = engine();
    let mut feed = engine.events();
    let (wakes, w) = counting();
    assert!(poll_next(&mut feed, &w).is_pending());
    let _conn = engine.connect("a", ConnectionOptions::new()).unwrap();
    assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
    assert!(matches!(
        poll_next(&mut feed, &w),
        Poll::Ready(Some(Event::Connection { .. }))
    ));
}
