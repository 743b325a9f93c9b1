//! Real outputs of the core in every shape the bindings hand to JavaScript: connection metrics
//! with the adaptive state, engine totals, an alert firing and resolving, a drop summary. Shared by
//! the declaration drift test (`tests/types_drift.rs`, native) and the check of the hand-built JS
//! objects (`tests/wasm/shapes.rs`, wasm32), so that both look at the same values.

use stream_engine::core::adaptive::AdaptiveConfig;
use stream_engine::core::config::StreamConfig;
use stream_engine::core::connection::{ConnectionMetrics, DropRule, DropSummary, FlowPolicy, Push};
use stream_engine::core::engine::{AlertEventOut, Engine, Totals};

/// One of each output.
pub struct Samples {
    pub metrics: ConnectionMetrics,
    pub totals: Totals,
    pub fired: AlertEventOut,
    pub resolved: AlertEventOut,
    pub summary: DropSummary,
}

/// Drives a real engine into every output shape.
pub fn samples() -> Samples {
    let cfg = StreamConfig {
        buffer_size: 10,
        ..StreamConfig::default()
    };
    let mut engine: Engine<u32> = Engine::new(StreamConfig::default(), 5000.0);
    let adaptive = FlowPolicy {
        rule: DropRule::Priority,
        drop_threshold: 0.9,
        max_wait: Some(10.0),
        adaptive: Some(AdaptiveConfig::default()),
        conflate: false,
    };
    let h = engine.create("a:out->b:in", cfg, adaptive, true).unwrap();
    let c = engine.get(h).unwrap();
    let mut now = 0.0;
    // Fill past the backpressure alert level and past the drop level, so that the metrics, the
    // drop summary and a `backpressure` alert all carry real values.
    for slot in 0..12u32 {
        now += 1.0;
        let priority = if slot % 3 == 0 { 1.0 } else { 0.25 };
        assert!(matches!(
            c.push(slot, priority, None, now),
            Ok(Push::Done(_))
        ));
    }
    let batch = c.take_batch(now, true).expect("a batch is due when forced");
    assert!(!batch.is_empty());
    let summary = c
        .take_drop_summary()
        .expect("the full buffer dropped something");
    let metrics = c.metrics(now);
    assert!(
        metrics.adaptive.is_some(),
        "the adaptive state is part of the sample"
    );
    // Refill so that the alert fires on the tick.
    for slot in 100..110u32 {
        now += 1.0;
        let _ = c.push(slot, 1.0, None, now);
    }
    let tick = engine.tick(now, f64::NAN);
    let fired = tick
        .alerts
        .first()
        .expect("a backpressure alert fires")
        .clone();
    let (_, resolved) = engine.remove(h, now).expect("the connection exists");
    let resolved = resolved
        .first()
        .expect("removal resolves the alert")
        .clone();

    Samples {
        metrics,
        totals: tick.totals,
        fired,
        resolved,
        summary,
    }
}
