//! The Rust API on wasm32 (feature `web`): the platform timer, and connections handed to
//! JavaScript as Web Streams through wasm-streams, read and written by JS code
//! (`getReader()`, `getWriter()`). Runs under wasm-bindgen-test-runner in Node and in headless
//! Chromium: `scripts/test-wasm.sh` (the `rust-api` runs).
#![cfg(all(target_arch = "wasm32", feature = "web"))]

use futures::StreamExt;
use js_sys::{Array, Function, Object, Promise, Reflect};
use stream_engine::api::{
    ConnectionOptions, DropPolicy, EngineConfig, ManualTimer, StreamEngine, WebTimer,
};
use stream_engine::core::connection::DropReason;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::wasm_bindgen_test;

/// Runs an async JS function body with the given named arguments and awaits its result.
async fn js(args: &str, body: &str, values: &[&JsValue]) -> JsValue {
    let f = Function::new_with_args(args, &format!("return (async () => {{ {body} }})();"));
    let this = JsValue::NULL;
    let p = match values.len() {
        1 => f.call1(&this, values[0]),
        2 => f.call2(&this, values[0], values[1]),
        _ => f.call0(&this),
    }
    .expect("the snippet runs");
    JsFuture::from(p.dyn_into::<Promise>().expect("a promise"))
        .await
        .expect("the snippet resolves")
}

fn msg(id: u32) -> JsValue {
    let o = Object::new();
    Reflect::set(&o, &"id".into(), &id.into()).unwrap();
    o.into()
}

/// Reads every batch of a ReadableStream in JS: `[[ids of batch 1], [ids of batch 2], ...]`.
const READ_ALL: &str = "
    const reader = rs.getReader();
    const out = [];
    for (;;) {
        const { value, done } = await reader.read();
        if (done) return out;
        if (!Array.isArray(value)) throw new Error('a batch must be an Array');
        out.push(value.map((m) => m.id));
    }";

fn as_ids(v: &JsValue) -> Vec<Vec<u32>> {
    Array::from(v)
        .iter()
        .map(|b| {
            Array::from(&b)
                .iter()
                .map(|x| x.as_f64().unwrap() as u32)
                .collect()
        })
        .collect()
}

#[wasm_bindgen_test]
async fn js_reads_a_rust_connection_through_wasm_streams() {
    let engine = StreamEngine::<JsValue>::new();
    let conn = engine
        .connect(
            "rust->js",
            ConnectionOptions::new()
                .max_batch_size(2)
                .batch_timeout(0.0),
        )
        .unwrap();
    let mut tx = conn.sender();
    let (_, rx) = conn.split();
    let readable = rx.into_readable_stream();
    tx.send_all((1..=5).map(msg).collect()).await.unwrap();
    tx.close_connection();
    let got = js("rs", READ_ALL, &[&readable.into()]).await;
    let batches = as_ids(&got);
    assert_eq!(batches.concat(), vec![1, 2, 3, 4, 5]);
    assert!(batches.iter().all(|b| !b.is_empty() && b.len() <= 2));
    let m = engine.metrics();
    assert_eq!(m.totals.connections, 0, "drained after close: forgotten");
}

#[wasm_bindgen_test]
async fn js_writes_and_reads_the_same_objects_through_both_streams() {
    let engine = StreamEngine::<JsValue>::new();
    let conn = engine
        .connect("js->js", ConnectionOptions::new().batch_timeout(0.0))
        .unwrap();
    let (writable, readable) = conn.into_web_streams();
    let got = js(
        "ws, rs",
        "
        const sent = [{ id: 1 }, { id: 2 }, { id: 3 }];
        const w = ws.getWriter();
        for (const m of sent) await w.write(m);
        await w.close();
        const reader = rs.getReader();
        const seen = [];
        for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            seen.push(...value);
        }
        return seen.length === 3 && seen.every((m, i) => m === sent[i]);
        ",
        &[&writable.into(), &readable.into()],
    )
    .await;
    assert_eq!(got, JsValue::TRUE, "the very objects written, in order");
}

#[wasm_bindgen_test]
async fn a_lossless_connection_holds_js_writes_until_js_reads() {
    // A manual clock: nothing here may depend on real time passing.
    let timer = ManualTimer::new();
    let engine = StreamEngine::<JsValue, _>::with_timer(EngineConfig::default(), timer).unwrap();
    let conn = engine
        .connect(
            "bp",
            ConnectionOptions::new().buffer_size(2).batch_timeout(0.0),
        )
        .unwrap();
    let (writable, readable) = conn.into_web_streams();
    let got = js(
        "ws, rs",
        "
        const turns = async () => { for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 0)); };
        const w = ws.getWriter();
        let third = false;
        await w.write({ id: 1 });
        await w.write({ id: 2 });
        const p = w.write({ id: 3 }).then(() => { third = true; });
        await turns();
        const before = third;
        const reader = rs.getReader();
        const first = await reader.read();
        await p;
        return [before, first.value.map((m) => m.id), third];
        ",
        &[&writable.into(), &readable.into()],
    )
    .await;
    let a = Array::from(&got);
    assert_eq!(
        a.get(0),
        JsValue::FALSE,
        "the third write waits while the buffer is full"
    );
    assert_eq!(
        Array::from(&a.get(1))
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect::<Vec<_>>(),
        vec![1.0, 2.0]
    );
    assert_eq!(a.get(2), JsValue::TRUE, "reading let it in");
    let m = engine.connection_metrics("bp").unwrap();
    assert_eq!((m.messages_in, m.messages_out, m.dropped), (3, 2, 0));
}

#[wasm_bindgen_test]
async fn cancelling_the_js_reader_dead_letters_the_buffer() {
    let engine = StreamEngine::<JsValue>::new();
    let dropped = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let d = dropped.clone();
    let conn = engine
        .connect(
            "cancel",
            ConnectionOptions::new()
                .batch_timeout(60_000.0)
                .on_drop(move |m: JsValue, why| {
                    let id = Reflect::get(&m, &"id".into()).unwrap().as_f64().unwrap() as u32;
                    d.borrow_mut().push((id, why));
                }),
        )
        .unwrap();
    let mut tx = conn.sender();
    let (_, rx) = conn.split();
    tx.send_all(vec![msg(1), msg(2)]).await.unwrap();
    let readable = rx.into_readable_stream();
    js(
        "rs",
        "await rs.cancel('gone'); return null;",
        &[&readable.into()],
    )
    .await;
    assert_eq!(
        *dropped.borrow(),
        vec![(1, DropReason::DeadLetter), (2, DropReason::DeadLetter)]
    );
    assert!(
        tx.try_send(msg(3)).is_err(),
        "writes fail after the reader went away"
    );
}

#[wasm_bindgen_test]
async fn the_web_timer_delivers_a_partial_batch() {
    // The platform timer (setTimeout) wires the batch timer; no timing is asserted.
    let engine = StreamEngine::<u32, WebTimer>::new();
    let conn = engine
        .connect("t", ConnectionOptions::new().batch_timeout(5.0))
        .unwrap();
    let (mut tx, mut rx) = conn.split();
    tx.try_send(7).unwrap();
    assert_eq!(rx.next().await, Some(vec![7]));
}

#[wasm_bindgen_test]
async fn a_dropping_rule_drops_with_a_reason_under_js_writes() {
    let engine = StreamEngine::<JsValue>::new();
    let conn = engine
        .connect(
            "drop",
            ConnectionOptions::new()
                .buffer_size(2)
                .batch_timeout(60_000.0)
                .drop_policy(DropPolicy::Oldest)
                .max_wait(0.0),
        )
        .unwrap();
    let (mut tx, mut rx) = conn.split();
    for i in 1..=4 {
        tx.send(msg(i)).await.unwrap();
    }
    engine.close("drop");
    let batch = rx.next().await.unwrap();
    let ids: Vec<u32> = batch
        .iter()
        .map(|m| Reflect::get(m, &"id".into()).unwrap().as_f64().unwrap() as u32)
        .collect();
    assert_eq!(ids, vec![3, 4]);
    assert_eq!(rx.next().await, None);
}

#[wasm_bindgen_test]
async fn a_js_write_after_close_rejects_with_an_error_and_the_engine_keeps_working() {
    let engine = StreamEngine::<JsValue>::new();
    let conn = engine.connect("closed", ConnectionOptions::new()).unwrap();
    let (writable, _readable) = conn.into_web_streams();
    engine.close("closed");
    let got = js(
        "ws",
        "
        const w = ws.getWriter();
        try { await w.write({ id: 1 }); return 'written'; }
        catch (e) { return e instanceof Error ? e.message : 'not an Error'; }
        ",
        &[&writable.into()],
    )
    .await;
    assert_eq!(got.as_string().as_deref(), Some("connection closed"));
    // The engine is fine: a new connection with the same id works.
    let conn = engine
        .connect("closed", ConnectionOptions::new().batch_timeout(0.0))
        .unwrap();
    let (mut tx, mut rx) = conn.split();
    tx.send(msg(2)).await.unwrap();
    assert_eq!(rx.next().await.map(|b| b.len()), Some(1));
}

/// A JS widget that fails its first call and every batch holding id 13, returning
/// `{ seen, handler }` (`seen`: ids of the batches it took).
fn flaky_widget() -> (JsValue, Function) {
    let make = Function::new_with_args(
        "",
        "let calls = 0;
         const seen = [];
         const handler = async (batch) => {
             calls++;
             await new Promise((r) => setTimeout(r, 1));
             if (calls === 1) throw new Error('flaky widget');
             if (batch.some((m) => m.id === 13)) throw new Error('bad message');
             for (const m of batch) seen.push(m.id);
         };
         return { seen, handler };",
    );
    let o = make.call0(&JsValue::NULL).unwrap();
    let handler = Reflect::get(&o, &"handler".into()).unwrap();
    (
        Reflect::get(&o, &"seen".into()).unwrap(),
        handler.dyn_into().unwrap(),
    )
}

#[wasm_bindgen_test]
async fn consume_calls_an_async_js_handler_with_retries_on_the_platform_timer_and_dead_letters() {
    use stream_engine::api::{Batch, Event};
    use stream_engine::core::config::RecoveryPatch;

    let engine = StreamEngine::<JsValue>::new();
    let mut feed = engine.events();
    let recovery = RecoveryPatch {
        retry_attempts: Some(1.0),
        retry_delay: Some(2.0),
        ..RecoveryPatch::default() // jitter 0.1 with Math.random()
    };
    let conn = engine
        .connect(
            "rust->widget",
            ConnectionOptions::new()
                .max_batch_size(1)
                .batch_timeout(0.0)
                .recovery(recovery),
        )
        .unwrap();
    let mut tx = conn.sender();
    let (seen, widget) = flaky_widget();
    let consumer = conn.consume(move |batch: Batch<JsValue>| {
        let widget = widget.clone();
        async move {
            let arr: Array = batch.iter().cloned().collect();
            let p: Promise = widget
                .call1(&JsValue::NULL, &arr)
                .map_err(|e| format!("{e:?}"))?
                .dyn_into()
                .map_err(|_| "not a promise".to_string())?;
            JsFuture::from(p).await.map(|_| ()).map_err(|e| {
                Reflect::get(&e, &"message".into())
                    .ok()
                    .and_then(|m| m.as_string())
                    .unwrap_or_default()
            })
        }
    });
    let thirteen = msg(13);
    tx.send_all(vec![msg(1), thirteen.clone(), msg(2)])
        .await
        .unwrap();
    tx.close_connection();
    // The loop ends once the connection is closed and every batch is settled.
    assert!(consumer.done.await.is_none());
    let seen: Vec<u32> = Array::from(&seen)
        .iter()
        .map(|x| x.as_f64().unwrap() as u32)
        .collect();
    assert_eq!(seen, vec![1, 2], "1 after one retry; 13 dead-lettered");
    let dead = consumer.handle.dead_letters();
    assert_eq!(dead.len(), 1);
    assert!(
        js_sys::Object::is(&dead[0], &thirteen),
        "the very JS object written"
    );
    let mut errors = Vec::new();
    let mut dead_letter_drops = 0;
    while let Some(Some(ev)) = futures::FutureExt::now_or_never(feed.next()) {
        match ev {
            Event::ConsumerError {
                error,
                attempt,
                will_retry,
                ..
            } => errors.push((error, attempt, will_retry)),
            Event::Drop { summary, .. } => dead_letter_drops += summary.reasons.dead_letter,
            _ => {}
        }
    }
    assert_eq!(
        errors,
        vec![
            ("flaky widget".to_string(), 0, true),
            ("bad message".to_string(), 0, true),
            ("bad message".to_string(), 1, false),
        ]
    );
    assert_eq!(dead_letter_drops, 1);
}
