//! Native micro-benchmark of the core's per-message path (push + take), no wasm, no JS.
//! `cargo run --release --example core_bench`
use std::time::Instant;
use stream_engine::core::config::StreamConfig;
use stream_engine::core::connection::{Connection, FlowPolicy, Push};

fn main() {
    let n = 2_000_000u32;
    for policy in [
        FlowPolicy::block(),
        FlowPolicy {
            rule: stream_engine::core::connection::DropRule::Priority,
            drop_threshold: 0.9,
            max_wait: Some(100.0),
            adaptive: None,
            conflate: false,
        },
    ] {
        let cfg = StreamConfig {
            buffer_size: 10_000,
            ..StreamConfig::default()
        };
        let mut c: Connection<u32> = Connection::new("bench", cfg, policy, 5000.0, false);
        let t = Instant::now();
        let mut now = 0.0;
        let mut got = 0usize;
        for i in 0..n {
            if i % 50 == 0 {
                now += 0.01;
            }
            match c.push(i, 0.5, None, now) {
                Ok(Push::Done(_)) => {}
                other => panic!("{other:?}"),
            }
            if i % 50 == 49 {
                got += c.take_batch(now, true).map_or(0, |b| b.len());
            }
        }
        let el = t.elapsed().as_secs_f64();
        println!(
            "{:?}: {:.1} ns/msg ({} delivered)",
            policy.rule,
            el * 1e9 / n as f64,
            got
        );
    }
}
