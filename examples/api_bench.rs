//! Native throughput of the Rust API (feature `futures`): a producer task and a reader task on
//! one `futures::executor::LocalPool`, through a lossless connection, per message (`send`) and in
//! batches of 50 (`send_all`), read as a `Stream` of batches or by `consume()` (an async handler
//! per batch, with the retry/circuit bookkeeping). Prints msg/s medians of 5 rounds and checks
//! nothing was lost.
//! `cargo run --release --features futures --example api_bench`
use std::time::Instant;

use futures::executor::block_on;
use futures::future::join;
use futures::StreamExt;
use stream_engine::api::{ConnectionOptions, StreamEngine};

fn round_with(n: u32, batch: usize, consume: bool) -> f64 {
    let engine = StreamEngine::<u32>::new();
    let conn = engine
        .connect(
            "bench",
            ConnectionOptions::new()
                .buffer_size(10_000)
                .batch_timeout(0.0),
        )
        .unwrap();
    let (mut tx, rx) = conn.split();
    let t = Instant::now();
    let producer = async move {
        if batch == 1 {
            for i in 0..n {
                tx.send(i).await.unwrap();
            }
        } else {
            let mut i = 0;
            while i < n {
                let end = (i + batch as u32).min(n);
                tx.send_all((i..end).collect()).await.unwrap();
                i = end;
            }
        }
        tx.close_connection();
    };
    let got = if consume {
        let count = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let c = count.clone();
        let consumer = rx.consume(move |b: stream_engine::api::Batch<u32>| {
            c.fetch_add(b.len() as u64, std::sync::atomic::Ordering::Relaxed);
            async { Ok::<(), &str>(()) }
        });
        let ((), end) = block_on(join(producer, consumer.done));
        assert!(end.is_none(), "the loop ends with the connection");
        count.load(std::sync::atomic::Ordering::Relaxed)
    } else {
        let reader = rx.fold(0u64, |k, b| async move { k + b.len() as u64 });
        block_on(join(producer, reader)).1
    };
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(got, n as u64, "every message delivered");
    n as f64 / secs
}

fn main() {
    let n = 1_000_000;
    for consume in [false, true] {
        for batch in [1, 50] {
            let mut r: Vec<f64> = (0..5).map(|_| round_with(n, batch, consume)).collect();
            r.sort_by(f64::total_cmp);
            println!(
                "{} batch {batch:>2}: median {:>12.0} msg/s (min {:.0}, max {:.0})",
                if consume { "consume" } else { "stream " },
                r[2],
                r[0],
                r[4]
            );
        }
    }
}
