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
    send::<stream_engine::api::ConsumerHandle<Msg>>();
    fn send_only<X: Send>() {}
    // The consume loop can be spawned on a multi-threaded runtime.
    send_only::<stream_engine::api::Done<Msg, stream_engine::api::NativeTimer>>();
    send_only::<stream_engine::api::Consumer<Msg, ManualTimer>>();
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

// ---- consume(): retries, circuit breaker, dead letters (on the manual clock) -----------------

use stream_engine::api::{Batch, Batches, ConsumeOptions, Consumer, DropHandler};
use stream_engine::core::config::RecoveryPatch;

/// What a scripted consume handler saw and did.
#[derive(Default)]
struct Script {
    /// Every call, by the ids of its batch (recorded when the call starts).
    calls: Vec<Vec<u32>>,
    /// Ids of batches whose call succeeded.
    delivered: Vec<u32>,
    /// Calls fail while set (decided when the call completes).
    fail: bool,
    /// Calls do not complete while set.
    gate: bool,
}
type ScriptRef = Arc<Mutex<Script>>;

type HandlerFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// A handler driven by `s`: waits while the gate is closed, then succeeds or fails.
fn scripted(s: &ScriptRef) -> impl FnMut(Batch<Msg>) -> HandlerFuture + 'static {
    let s = s.clone();
    move |b: Batch<Msg>| {
        let s = s.clone();
        s.lock().unwrap().calls.push(ids(&b));
        Box::pin(async move {
            std::future::poll_fn(|_| {
                if s.lock().unwrap().gate {
                    Poll::Pending
                } else {
                    Poll::Ready(())
                }
            })
            .await;
            let mut g = s.lock().unwrap();
            if g.fail {
                Err(format!("failed on {:?}", ids(&b)))
            } else {
                g.delivered.extend(ids(&b));
                Ok(())
            }
        })
    }
}

fn recovery(attempts: f64, delay: f64, threshold: f64, reset: f64) -> RecoveryPatch {
    RecoveryPatch {
        retry_attempts: Some(attempts),
        retry_delay: Some(delay),
        jitter: Some(0.0),
        failure_threshold: Some(threshold),
        reset_timeout: Some(reset),
        ..RecoveryPatch::default()
    }
}

/// Polls the loop once (it runs until it waits).
fn step(c: &mut Consumer<Msg, ManualTimer>) -> Poll<Option<Batches<Msg, ManualTimer>>> {
    let (_, w) = counting();
    Pin::new(&mut c.done).poll(&mut Context::from_waker(&w))
}

fn calls(s: &ScriptRef) -> usize {
    s.lock().unwrap().calls.len()
}

fn feed_now(feed: &mut stream_engine::api::EventStream<Msg, ManualTimer>) -> Vec<Event> {
    let mut out = Vec::new();
    while let Some(Some(e)) = feed.next().now_or_never() {
        out.push(e);
    }
    out
}

fn accounting_holds(engine: &Engine, id: &str) {
    let m = engine.connection_metrics(id).unwrap();
    assert_eq!(
        m.messages_in,
        m.messages_out + m.dropped + m.buffer_size as u64,
        "{m:?}"
    );
}

#[test]
fn consume_retries_with_exponential_backoff_and_jitter_on_the_timer_then_delivers() {
    let (engine, timer) = engine();
    let mut feed = engine.events();
    let opts = ConnectionOptions::new()
        .batch_timeout(0.0)
        .recovery(RecoveryPatch {
            jitter: Some(0.5),
            ..recovery(3.0, 10.0, 10.0, 1000.0)
        });
    let conn = engine.connect("a", opts).unwrap();
    let mut tx = conn.sender();
    let s = ScriptRef::default();
    s.lock().unwrap().fail = true;
    // random 0.5 with jitter 0.5: every delay is 1.25 x retry_delay x 2^attempt.
    let mut c = conn.consume_with(scripted(&s), ConsumeOptions::new().random(|| 0.5));
    tx.try_send(m(1)).unwrap();
    assert!(step(&mut c).is_pending());
    assert_eq!(calls(&s), 1);
    timer.advance(12.4);
    assert!(step(&mut c).is_pending());
    assert_eq!(calls(&s), 1, "no retry before 12.5 ms");
    timer.advance(0.1);
    assert!(step(&mut c).is_pending());
    assert_eq!(calls(&s), 2, "first retry at 10 * 1.25");
    s.lock().unwrap().fail = false;
    timer.advance(24.9);
    assert!(step(&mut c).is_pending());
    assert_eq!(calls(&s), 2, "no second retry before 25 ms more");
    timer.advance(0.1);
    assert!(step(&mut c).is_pending());
    assert_eq!(calls(&s), 3);
    assert_eq!(s.lock().unwrap().delivered, vec![1]);
    let mt = engine.connection_metrics("a").unwrap();
    assert_eq!(
        (mt.messages_out, mt.errors, mt.retries, mt.dropped),
        (1, 2, 2, 0)
    );
    assert!(c.dead_letters().is_empty());
    let errors: Vec<(u32, bool)> = feed_now(&mut feed)
        .into_iter()
        .filter_map(|e| match e {
            Event::ConsumerError {
                connection_id,
                error,
                attempt,
                will_retry,
            } => {
                assert_eq!(
                    (connection_id.as_str(), error.as_str()),
                    ("a", "failed on [1]")
                );
                Some((attempt, will_retry))
            }
            _ => None,
        })
        .collect();
    assert_eq!(errors, vec![(0, true), (1, true)]);
}

#[test]
fn consume_dead_letters_a_batch_when_retries_run_out_counted_reported_and_retrievable() {
    let (engine, timer) = engine();
    let mut feed = engine.events();
    let (log, on_drop) = drop_log();
    let opts = ConnectionOptions::new()
        .batch_timeout(0.0)
        .max_batch_size(2)
        .on_drop(on_drop)
        .recovery(recovery(1.0, 5.0, 10.0, 1000.0));
    let conn = engine.connect("a", opts).unwrap();
    let mut tx = conn.sender();
    let s = ScriptRef::default();
    s.lock().unwrap().fail = true;
    let mut c = conn.consume(scripted(&s));
    tx.try_send(m(1)).unwrap();
    tx.try_send(m(2)).unwrap();
    tx.try_send(m(3)).unwrap();
    assert!(step(&mut c).is_pending());
    assert_eq!(s.lock().unwrap().calls, vec![vec![1, 2]]);
    accounting_holds(&engine, "a");
    timer.advance(5.0);
    assert!(step(&mut c).is_pending());
    // Retried once, then given up; the next batch (3) is being retried now.
    assert_eq!(
        s.lock().unwrap().calls,
        vec![vec![1, 2], vec![1, 2], vec![3]]
    );
    assert_eq!(ids(&c.dead_letters()), vec![1, 2]);
    assert!(c.dead_letters().is_empty(), "dead_letters() clears");
    assert_eq!(
        *log.lock().unwrap(),
        vec![(1, DropReason::DeadLetter), (2, DropReason::DeadLetter)]
    );
    let mt = engine.connection_metrics("a").unwrap();
    assert_eq!(
        (
            mt.drops.dead_letter,
            mt.dropped,
            mt.errors,
            mt.retries,
            mt.messages_out
        ),
        (2, 2, 3, 2, 0),
        "batch 3's first failure is a retry too"
    );
    accounting_holds(&engine, "a");
    let evs = feed_now(&mut feed);
    let errs: Vec<(u32, bool)> = evs
        .iter()
        .filter_map(|e| match e {
            Event::ConsumerError {
                attempt,
                will_retry,
                ..
            } => Some((*attempt, *will_retry)),
            _ => None,
        })
        .collect();
    assert_eq!(errs, vec![(0, true), (1, false), (0, true)]);
    let drops: Vec<u64> = evs
        .iter()
        .filter_map(|e| match e {
            Event::Drop { summary, .. } => Some(summary.reasons.dead_letter),
            _ => None,
        })
        .collect();
    assert_eq!(drops, vec![2], "one drop summary with both dead letters");
}

#[test]
fn consume_opens_the_circuit_after_consecutive_failures_and_probes_after_reset_timeout() {
    let (engine, timer) = engine();
    let mut feed = engine.events();
    let opts = ConnectionOptions::new()
        .batch_timeout(0.0)
        .max_batch_size(1)
        .recovery(recovery(0.0, 5.0, 2.0, 100.0));
    let conn = engine.connect("a", opts).unwrap();
    let mut tx = conn.sender();
    let s = ScriptRef::default();
    s.lock().unwrap().fail = true;
    let mut c = conn.consume(scripted(&s));
    for i in 1..=3 {
        tx.try_send(m(i)).unwrap();
    }
    assert!(step(&mut c).is_pending());
    assert_eq!(s.lock().unwrap().calls, vec![vec![1], vec![2]]);
    assert_eq!(
        engine.connection_metrics("a").unwrap().circuit_state,
        "open"
    );
    // Messages keep buffering while the circuit is open.
    tx.try_send(m(4)).unwrap();
    timer.advance(99.0);
    assert!(step(&mut c).is_pending());
    assert_eq!(calls(&s), 2, "no call while open");
    s.lock().unwrap().fail = false;
    timer.advance(1.0);
    assert!(step(&mut c).is_pending());
    assert_eq!(s.lock().unwrap().delivered, vec![3, 4]);
    assert_eq!(
        engine.connection_metrics("a").unwrap().circuit_state,
        "closed"
    );
    let kinds: Vec<ConnectionEventKind> = feed_now(&mut feed)
        .into_iter()
        .filter_map(|e| match e {
            Event::Connection { kind, .. } if kind != ConnectionEventKind::Created => Some(kind),
            _ => None,
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            ConnectionEventKind::CircuitOpened,
            ConnectionEventKind::CircuitClosed
        ]
    );
    assert_eq!(ids(&c.dead_letters()), vec![1, 2]);
}

#[test]
fn stopping_during_a_retry_wait_dead_letters_that_batch_and_hands_the_reader_back() {
    let (engine, _timer) = engine();
    let opts = ConnectionOptions::new()
        .batch_timeout(0.0)
        .max_batch_size(1)
        .recovery(recovery(3.0, 1000.0, 10.0, 1000.0));
    let conn = engine.connect("a", opts).unwrap();
    let mut tx = conn.sender();
    let s = ScriptRef::default();
    s.lock().unwrap().fail = true;
    let mut c = conn.consume(scripted(&s));
    tx.try_send(m(1)).unwrap();
    tx.try_send(m(2)).unwrap();
    assert!(step(&mut c).is_pending());
    let handle = c.handle.clone();
    handle.stop();
    assert!(handle.is_stopped());
    let reader = match step(&mut c) {
        Poll::Ready(Some(r)) => r,
        other => panic!(
            "expected the reader back, got {:?}",
            other.map(|r| r.is_some())
        ),
    };
    assert_eq!(calls(&s), 1, "no retry after stop");
    assert_eq!(ids(&handle.dead_letters()), vec![1]);
    accounting_holds(&engine, "a");
    // The connection is still open: it takes writes, and the reader gets the rest.
    tx.try_send(m(3)).unwrap();
    tx.close_connection();
    let rest: Vec<u32> = futures::executor::block_on(reader.collect::<Vec<_>>())
        .concat()
        .iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(rest, vec![2, 3]);
}

#[test]
fn stopping_while_the_handler_runs_lets_it_settle_its_batch_without_retries() {
    for fail in [false, true] {
        let (engine, _timer) = engine();
        let opts = ConnectionOptions::new()
            .batch_timeout(0.0)
            .recovery(recovery(3.0, 1.0, 10.0, 1000.0));
        let conn = engine.connect("a", opts).unwrap();
        let mut tx = conn.sender();
        let s = ScriptRef::default();
        s.lock().unwrap().gate = true;
        let mut c = conn.consume(scripted(&s));
        tx.try_send(m(1)).unwrap();
        assert!(step(&mut c).is_pending());
        c.stop();
        assert!(
            step(&mut c).is_pending(),
            "the call under way finishes first"
        );
        {
            let mut g = s.lock().unwrap();
            g.gate = false;
            g.fail = fail;
        }
        // Keep the reader: dropping it would be the reader going away.
        let Poll::Ready(Some(_reader)) = step(&mut c) else {
            panic!("expected the reader back")
        };
        let mt = engine.connection_metrics("a").unwrap();
        assert_eq!(calls(&s), 1);
        assert_eq!(mt.retries, 0);
        if fail {
            assert_eq!(ids(&c.dead_letters()), vec![1]);
            assert_eq!((mt.messages_out, mt.drops.dead_letter), (0, 1));
        } else {
            assert!(c.dead_letters().is_empty());
            assert_eq!((mt.messages_out, mt.dropped), (1, 0));
        }
    }
}

#[test]
fn a_batch_in_flight_counts_against_capacity_until_settled() {
    let (engine, _timer) = engine();
    let opts = ConnectionOptions::new()
        .batch_timeout(0.0)
        .max_batch_size(1)
        .buffer_size(2);
    let conn = engine.connect("a", opts).unwrap();
    let mut tx = conn.sender();
    let s = ScriptRef::default();
    s.lock().unwrap().gate = true;
    let mut c = conn.consume(scripted(&s));
    tx.try_send(m(1)).unwrap();
    tx.try_send(m(2)).unwrap();
    assert!(step(&mut c).is_pending());
    assert_eq!(tx.try_send(m(3)), Err(TrySendError::Full(m(3))));
    s.lock().unwrap().gate = false;
    assert!(step(&mut c).is_pending());
    assert_eq!(s.lock().unwrap().delivered, vec![1, 2]);
    assert!(tx.try_send(m(3)).is_ok());
}

#[test]
fn dropping_the_loop_mid_call_dead_letters_its_batch_then_the_buffer() {
    let (engine, _timer) = engine();
    let (log, on_drop) = drop_log();
    let opts = ConnectionOptions::new()
        .batch_timeout(0.0)
        .max_batch_size(1)
        .on_drop(on_drop);
    let conn = engine.connect("a", opts).unwrap();
    let mut tx = conn.sender();
    let s = ScriptRef::default();
    s.lock().unwrap().gate = true;
    let mut c = conn.consume(scripted(&s));
    tx.try_send(m(1)).unwrap();
    tx.try_send(m(2)).unwrap();
    assert!(step(&mut c).is_pending());
    let handle = c.handle.clone();
    drop(c);
    assert_eq!(
        *log.lock().unwrap(),
        vec![(1, DropReason::DeadLetter), (2, DropReason::DeadLetter)]
    );
    assert_eq!(ids(&handle.dead_letters()), vec![1], "the batch in flight");
    assert_eq!(tx.try_send(m(3)), Err(TrySendError::Closed(m(3))));
}

#[test]
fn a_consumer_ends_with_the_connection_after_everything_is_settled() {
    let (engine, timer) = engine();
    let conn = engine
        .connect("a", ConnectionOptions::new().batch_timeout(10.0))
        .unwrap();
    let mut tx = conn.sender();
    let s = ScriptRef::default();
    let mut c = conn.consume(scripted(&s));
    tx.try_send(m(1)).unwrap();
    assert!(step(&mut c).is_pending());
    timer.advance(10.0);
    assert!(
        step(&mut c).is_pending(),
        "the batch timer delivers a partial batch"
    );
    assert_eq!(s.lock().unwrap().delivered, vec![1]);
    tx.try_send(m(2)).unwrap();
    tx.close_connection();
    assert!(
        matches!(step(&mut c), Poll::Ready(None)),
        "closed: drained without waiting"
    );
    assert_eq!(s.lock().unwrap().delivered, vec![1, 2]);
    assert!(engine.ids().is_empty());
}

#[test]
fn recovery_options_are_validated_with_the_field_named() {
    let bad = RecoveryPatch {
        jitter: Some(1.5),
        ..RecoveryPatch::default()
    };
    let err = StreamEngine::<Msg, _>::with_timer(
        EngineConfig {
            recovery: bad,
            ..EngineConfig::default()
        },
        ManualTimer::new(),
    )
    .unwrap_err();
    assert_eq!(err.message, "jitter must be in [0, 1], got 1.5");
    let (engine, _t) = engine();
    let err = engine
        .connect(
            "a",
            ConnectionOptions::new().recovery(RecoveryPatch {
                retry_attempts: Some(0.5),
                ..RecoveryPatch::default()
            }),
        )
        .unwrap_err();
    assert!(err.message.starts_with("retryAttempts"), "{}", err.message);
    assert!(engine.set_recovery(bad).is_err());
    // The engine's layer applies to connections created afterwards, under the connection's own.
    engine.set_recovery(recovery(0.0, 1.0, 1.0, 50.0)).unwrap();
    let conn = engine
        .connect("b", ConnectionOptions::new().batch_timeout(0.0))
        .unwrap();
    let mut tx = conn.sender();
    let s = ScriptRef::default();
    s.lock().unwrap().fail = true;
    let mut c = conn.consume(scripted(&s));
    tx.try_send(m(1)).unwrap();
    assert!(step(&mut c).is_pending());
    let mt = engine.connection_metrics("b").unwrap();
    // retry_attempts 0 and failure_threshold 1 from the engine's layer.
    assert_eq!(
        (mt.retries, mt.drops.dead_letter, mt.circuit_state),
        (0, 1, "open")
    );
}

// ---- custom drop handlers ---------------------------------------------------------------------

/// Priority from the message; ids divisible by 3 are drop candidates.
struct ByPrio {
    threshold: Option<f64>,
}
impl DropHandler<Msg> for ByPrio {
    fn priority(&self, m: &Msg) -> f64 {
        m.prio
    }
    fn should_drop(&self, m: &Msg) -> bool {
        m.id % 3 == 0
    }
    fn drop_threshold(&self) -> Option<f64> {
        self.threshold
    }
}

#[test]
fn a_custom_handler_drops_candidates_only_under_backpressure_and_victims_by_its_priority() {
    let (engine, _timer) = engine();
    let (log, on_drop) = drop_log();
    let conn = engine
        .connect(
            "a",
            ConnectionOptions::new()
                .buffer_size(4)
                .backpressure_threshold(0.5)
                .drop_handler(ByPrio { threshold: None })
                // Replaced by the handler's priorities.
                .priority(|_: &Msg| 1.0)
                .on_drop(on_drop),
        )
        .unwrap();
    let mut tx = conn.sender();
    // 3 is a candidate but there is no backpressure yet: taken.
    tx.try_send(mp(3, 0.5)).unwrap();
    tx.try_send(mp(1, 0.75)).unwrap(); // 2 of 4: backpressure on
    tx.try_send(mp(6, 0.9)).unwrap(); // candidate under backpressure: dropped on arrival
    tx.try_send(mp(4, 0.25)).unwrap(); // 3 of 4
    tx.try_send(mp(5, 0.5)).unwrap(); // at 0.9 * 4: the lowest priority (4) goes
    assert_eq!(
        *log.lock().unwrap(),
        vec![(6, DropReason::Priority), (4, DropReason::Priority)]
    );
    conn.close();
    let got: Vec<u32> = futures::executor::block_on(conn.collect::<Vec<_>>())
        .concat()
        .iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(got, vec![3, 1, 5]);
}

#[test]
fn the_engine_custom_handler_applies_unless_a_connection_names_its_own() {
    let (engine, _timer) = engine();
    engine.set_drop_handler(ByPrio {
        threshold: Some(0.5),
    });
    let a = engine
        .connect("a", ConnectionOptions::new().buffer_size(2))
        .unwrap();
    let b = engine
        .connect(
            "b",
            ConnectionOptions::new()
                .buffer_size(2)
                .handler(Handler::None),
        )
        .unwrap();
    let (mut ta, mut tb) = (a.sender(), b.sender());
    ta.try_send(mp(1, 0.25)).unwrap();
    ta.try_send(mp(2, 0.5)).unwrap(); // at 0.5 of 2: the lowest (1) goes
    assert_eq!(a.metrics().unwrap().drops.priority, 1);
    tb.try_send(m(1)).unwrap();
    tb.try_send(m(2)).unwrap();
    assert_eq!(tb.try_send(m(4)), Err(TrySendError::Full(m(4))), "lossless");
    // set_handler replaces the engine's custom handler.
    engine.set_handler(Handler::None);
    let c = engine
        .connect("c", ConnectionOptions::new().buffer_size(1))
        .unwrap();
    let mut tc = c.sender();
    tc.try_send(m(1)).unwrap();
    assert_eq!(tc.try_send(m(2)), Err(TrySendError::Full(m(2))));
    let err = engine
        .connect(
            "d",
            ConnectionOptions::new().drop_handler(ByPrio {
                threshold: Some(0.0),
            }),
        )
        .unwrap_err();
    assert_eq!(err.message, "dropThreshold must be in (0, 1], got 0");
}

// ---- per-message accounting of consume() under random operations (proptest) ------------------

mod consume_accounting {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    pub enum Op {
        /// Write this many messages, priorities from the seed.
        Send(u8, u8),
        Advance(u8),
        Fail(bool),
        Gate(bool),
        Stop,
        Close,
        /// Drop the consume loop (the reader goes away).
        DropLoop,
        Pause,
        Resume,
        /// After a stop: read one batch from the reader handed back.
        Read,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (1u8..6, any::<u8>()).prop_map(|(n, s)| Op::Send(n, s)),
            4 => (0u8..40).prop_map(Op::Advance),
            2 => any::<bool>().prop_map(Op::Fail),
            2 => any::<bool>().prop_map(Op::Gate),
            1 => Just(Op::Stop),
            1 => Just(Op::Close),
            1 => Just(Op::DropLoop),
            1 => Just(Op::Pause),
            1 => Just(Op::Resume),
            2 => Just(Op::Read),
        ]
    }

    pub fn run(policy: u8, rec: (u8, u8, u8, u8), ops: Vec<Op>) -> Result<(), TestCaseError> {
        let (engine, timer) = engine();
        let (log, on_drop) = drop_log();
        let mut o = ConnectionOptions::new()
            .buffer_size(6)
            .max_batch_size(3)
            .batch_timeout(4.0)
            .priority(|m: &Msg| m.prio)
            .on_drop(on_drop)
            .recovery(RecoveryPatch {
                jitter: Some(0.5),
                ..recovery(rec.0 as f64, rec.1 as f64, rec.2 as f64 + 1.0, rec.3 as f64)
            });
        o = match policy {
            0 => o,
            1 => o.drop_policy(DropPolicy::Priority).max_wait(3.0),
            2 => o.drop_policy(DropPolicy::Oldest).max_wait(3.0),
            3 => o.drop_policy(DropPolicy::Newest).max_wait(3.0),
            4 => o.handler(Handler::default_handler()),
            _ => o.drop_handler(ByPrio { threshold: None }),
        };
        let conn = engine.connect("a", o).unwrap();
        let mut tx = conn.sender();
        let s = ScriptRef::default();
        let mut seed = 0x9E3779B97F4A7C15u64;
        let mut consumer = Some(conn.consume_with(
            scripted(&s),
            ConsumeOptions::new().random(move || {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 11) as f64 / (1u64 << 53) as f64
            }),
        ));
        let handle = consumer.as_ref().unwrap().handle.clone();
        let mut reader: Option<Batches<Msg, ManualTimer>> = None;
        let mut read = Vec::new();
        let mut accepted = Vec::new();
        let mut prio_of = BTreeMap::new();
        let mut next_id = 0u32;

        let drive = |consumer: &mut Option<Consumer<Msg, ManualTimer>>,
                     reader: &mut Option<Batches<Msg, ManualTimer>>| {
            if let Some(c) = consumer.as_mut() {
                match step(c) {
                    Poll::Ready(Some(r)) => {
                        *reader = Some(r);
                        *consumer = None;
                    }
                    Poll::Ready(None) => *consumer = None,
                    Poll::Pending => {}
                }
            }
        };

        for op in ops {
            match op {
                Op::Send(n, sd) => {
                    for k in 0..n {
                        let prio = [0.25, 0.5, 0.75, 1.0][((sd >> (k % 4 * 2)) & 3) as usize];
                        let msg = mp(next_id, prio);
                        prio_of.insert(next_id, prio);
                        if tx.try_send(msg).is_ok() {
                            accepted.push(next_id);
                        }
                        next_id += 1;
                    }
                }
                Op::Advance(ms) => timer.advance(ms as f64),
                Op::Fail(f) => s.lock().unwrap().fail = f,
                Op::Gate(g) => s.lock().unwrap().gate = g,
                Op::Stop => handle.stop(),
                Op::Close => tx.close_connection(),
                Op::DropLoop => consumer = None,
                Op::Pause => {
                    engine.pause("a");
                }
                Op::Resume => {
                    engine.resume("a");
                }
                Op::Read => {
                    if let Some(r) = reader.as_mut() {
                        if let Some(Some(b)) = r.next().now_or_never() {
                            read.extend(ids(&b));
                        }
                    }
                }
            }
            drive(&mut consumer, &mut reader);
            if let Some(mt) = engine.connection_metrics("a") {
                prop_assert_eq!(
                    mt.messages_in,
                    mt.messages_out + mt.dropped + mt.buffer_size as u64
                );
                prop_assert_eq!(mt.messages_in as usize, accepted.len());
            }
        }
        // Settle: the handler recovers, the connection closes, time passes.
        {
            let mut g = s.lock().unwrap();
            g.gate = false;
            g.fail = false;
        }
        tx.close_connection();
        engine.resume("a");
        for _ in 0..200 {
            if consumer.is_none() {
                break;
            }
            timer.advance(1000.0);
            drive(&mut consumer, &mut reader);
        }
        prop_assert!(
            consumer.is_none(),
            "the loop ends once the connection is drained"
        );
        if let Some(r) = reader.take() {
            for b in futures::executor::block_on(r.collect::<Vec<_>>()) {
                read.extend(ids(&b));
            }
        }
        prop_assert!(engine.ids().is_empty());

        // Every accepted id exactly once: delivered to the handler, read, or dropped with a reason.
        let mut seen: BTreeMap<u32, Vec<&str>> = BTreeMap::new();
        for id in s.lock().unwrap().delivered.iter() {
            seen.entry(*id).or_default().push("consumed");
        }
        for id in &read {
            seen.entry(*id).or_default().push("read");
        }
        let log = log.lock().unwrap().clone();
        for (id, why) in &log {
            seen.entry(*id).or_default().push(why.as_str());
            // A custom handler's should_drop is obeyed even for a critical message (as in JS).
            let told = policy == 5 && id % 3 == 0 && *why == DropReason::Priority;
            if *why != DropReason::DeadLetter && !told {
                prop_assert!(prio_of[id] < 1.0, "critical {} dropped ({:?})", id, why);
            }
        }
        prop_assert_eq!(seen.keys().copied().collect::<Vec<_>>(), accepted.clone());
        for (id, fates) in &seen {
            prop_assert_eq!(fates.len(), 1, "id {} had fates {:?}", id, fates);
        }
        // The loop's dead letters are dead-letter drops, each once.
        let dead: Vec<u32> = ids(&handle.dead_letters());
        for id in &dead {
            prop_assert!(
                log.contains(&(*id, DropReason::DeadLetter)),
                "dead letter {} not counted",
                id
            );
        }
        let mut d = dead.clone();
        d.sort();
        d.dedup();
        prop_assert_eq!(d.len(), dead.len());
        if policy == 0 {
            prop_assert!(
                log.iter().all(|(_, w)| *w == DropReason::DeadLetter),
                "lossless"
            );
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
        #[test]
        fn every_message_of_a_consumed_connection_is_accounted_for_once(
            policy in 0u8..6,
            rec in (0u8..3, 0u8..20, 0u8..3, 0u8..100),
            ops in proptest::collection::vec(op(), 1..60),
        ) {
            run(policy, rec, ops)?;
        }
    }
}

#[test]
fn a_far_deadline_on_the_native_timer_waits_instead_of_panicking() {
    // A retry delay or batch timeout may be any finite number of ms.
    let timer = stream_engine::api::NativeTimer::new();
    let mut sleep = timer.sleep_until(1e300);
    let (_, w) = counting();
    assert!(Pin::new(&mut sleep)
        .poll(&mut Context::from_waker(&w))
        .is_pending());
}
