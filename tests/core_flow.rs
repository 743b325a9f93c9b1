//! Native integration tests of the flow-control core (`stream_engine::core`), driven with a fake
//! clock (`now` in ms) and `u64` messages (a message is its own sequence number).
//!
//! Groups:
//! 1. `prop_*`: long random operation sequences under every flow policy (generated and shrunk
//!    by proptest; scaled by `ORACLE_SEEDS` / `ORACLE_OPS`, see `scale`), checked after every
//!    step against a reference model of the documented semantics (exact victims, exact batches,
//!    exact counters, every id's fate), plus a buffer-level memory-bound property.
//! 2. Targeted connection tests: batching, backpressure hysteresis, drop rules, conflation, drop
//!    summaries, reset, cancel/close, circuit breaker, error rate.
//! 3. Adaptive flow control under a 10x overload and afterwards under light load.
//! 4. Engine: ids and handles, totals, alerts with hysteresis.
//!
//! Tests marked `` document genuine defects of `src/core`; run them with
//! `cargo test --test core_flow -- --ignored`.

// proptest is a native-only dev-dependency (see Cargo.toml).
#![cfg(not(target_arch = "wasm32"))]

use std::collections::{HashMap, VecDeque};

use stream_engine::core::adaptive::AdaptiveConfig;
use stream_engine::core::buffer::{Buffer, Entry};
use stream_engine::core::config::{ErrorKind, StreamConfig};
use stream_engine::core::connection::{
    status, ConnError, ConnEvent, Connection, DropReason, DropRule, FlowPolicy, Lifecycle, Push,
};
use stream_engine::core::engine::{AlertEventOut, Engine, Tick};
use stream_engine::core::recovery::CircuitState;

use proptest::prelude::*;
use proptest::test_runner::{Config as PtConfig, RngAlgorithm, TestError, TestRng, TestRunner};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn cfg(buffer_size: usize, batch_timeout: f64, max_batch_size: usize, bp: f64) -> StreamConfig {
    StreamConfig {
        buffer_size,
        batch_timeout,
        max_batch_size,
        backpressure_threshold: bp,
        ..StreamConfig::default()
    }
}

/// A dropping rule with the brief's settings: drop level 0.9, writes held up to 100 ms.
fn rule_policy(rule: DropRule, conflate: bool) -> FlowPolicy {
    FlowPolicy {
        rule,
        drop_threshold: 0.9,
        max_wait: Some(100.0),
        adaptive: None,
        conflate,
    }
}

fn block_policy(conflate: bool) -> FlowPolicy {
    FlowPolicy {
        conflate,
        ..FlowPolicy::block()
    }
}

fn adaptive_policy(conflate: bool) -> FlowPolicy {
    FlowPolicy {
        rule: DropRule::Priority,
        drop_threshold: 0.9,
        max_wait: Some(50.0),
        adaptive: Some(AdaptiveConfig::default()),
        conflate,
    }
}

fn conn(c: StreamConfig, p: FlowPolicy) -> Connection<u64> {
    Connection::new("c", c, p, 5000.0, true)
}

/// Pushes and expects the message to be taken; returns the status bits.
#[track_caller]
fn push_done(c: &mut Connection<u64>, id: u64, p: f64, now: f64) -> u32 {
    match c.push(id, p, None, now) {
        Ok(Push::Done(st)) => st,
        other => panic!("push {id} (p {p}) at {now}: expected Done, got {other:?}"),
    }
}

#[track_caller]
fn push_key(c: &mut Connection<u64>, id: u64, p: f64, key: &str, now: f64) -> u32 {
    match c.push(id, p, Some(key), now) {
        Ok(Push::Done(st)) => st,
        other => panic!("push {id} key {key}: expected Done, got {other:?}"),
    }
}

#[track_caller]
fn identity(c: &mut Connection<u64>, now: f64) {
    let m = c.metrics(now);
    assert_eq!(
        m.messages_in,
        m.messages_out + m.dropped + m.buffer_size as u64,
        "in == out + dropped + held: {m:?}"
    );
    assert_eq!(
        c.messages_in(),
        c.messages_out() + c.dropped() + c.held() as u64
    );
}

fn is_crit(p: f64) -> bool {
    p >= 1.0
}

/// The model's own sanitising of priorities (NaN: 0.5, clamp to [0, 1]).
fn san(p: f64) -> f64 {
    if p.is_nan() {
        0.5
    } else {
        p.clamp(0.0, 1.0)
    }
}

fn class_ix(p: f64) -> usize {
    if p >= 1.0 {
        0
    } else if p >= 0.75 {
        1
    } else if p >= 0.5 {
        2
    } else {
        3
    }
}

fn reason_ix(r: DropReason) -> usize {
    match r {
        DropReason::Priority => 0,
        DropReason::Oldest => 1,
        DropReason::Newest => 2,
        DropReason::Conflated => 3,
        DropReason::DeadLetter => 4,
    }
}

fn rule_reason(rule: DropRule) -> DropReason {
    match rule {
        DropRule::Oldest => DropReason::Oldest,
        DropRule::Newest => DropReason::Newest,
        _ => DropReason::Priority,
    }
}

fn bp_events(evs: &[ConnEvent]) -> Vec<bool> {
    evs.iter()
        .filter_map(|e| match e {
            ConnEvent::Backpressure(on, _) => Some(*on),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// 1. Property tests
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fate {
    Held,
    Inflight,
    Delivered,
    Dropped(DropReason),
    DeadLetter,
}

#[derive(Debug, Clone)]
struct QEntry {
    id: u64,
    p: f64,
    key: Option<u8>,
    at: f64,
}

enum Victim {
    Incoming,
    Buffered(usize),
    None,
}

/// What a run exercised, to make sure the random sequences reach the interesting states.
#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    accepted: u64,
    pending: u64,
    drops: [u64; 5],
    critical_accepted: u64,
    bp_starts: u64,
    circuit_opens: u64,
    full: u64,
    generations: u64,
    ops: u64,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        self.accepted += o.accepted;
        self.pending += o.pending;
        for k in 0..5 {
            self.drops[k] += o.drops[k];
        }
        self.critical_accepted += o.critical_accepted;
        self.bp_starts += o.bp_starts;
        self.circuit_opens += o.circuit_opens;
        self.full += o.full;
        self.generations += o.generations;
        self.ops += o.ops;
    }
}

/// A map from message ids (dense from `base`) to values: cheaper than hashing in debug builds.
struct IdMap<V> {
    base: u64,
    slots: Vec<Option<V>>,
}

impl<V> IdMap<V> {
    fn new(base: u64) -> Self {
        IdMap {
            base,
            slots: Vec::new(),
        }
    }
    fn ix(&self, id: u64) -> usize {
        (id - self.base) as usize
    }
    fn insert(&mut self, id: u64, v: V) {
        let i = self.ix(id);
        if i >= self.slots.len() {
            self.slots.resize_with(i + 1, || None);
        }
        self.slots[i] = Some(v);
    }
    fn get_mut(&mut self, id: &u64) -> Option<&mut V> {
        let i = self.ix(*id);
        self.slots.get_mut(i).and_then(Option::as_mut)
    }
    fn get(&self, id: &u64) -> Option<&V> {
        self.slots.get(self.ix(*id)).and_then(Option::as_ref)
    }
    fn contains(&self, id: &u64) -> bool {
        self.get(id).is_some()
    }
    fn iter(&self) -> impl Iterator<Item = (u64, &V)> {
        let base = self.base;
        self.slots
            .iter()
            .enumerate()
            .filter_map(move |(i, v)| v.as_ref().map(|v| (base + i as u64, v)))
    }
    fn remove(&mut self, id: &u64) -> Option<V> {
        let i = self.ix(*id);
        self.slots.get_mut(i).and_then(Option::take)
    }
    fn values(&self) -> impl Iterator<Item = &V> {
        self.slots.iter().flatten()
    }
    fn len(&self) -> usize {
        self.values().count()
    }
}

/// One connection and the reference model it is checked against.
struct Sim {
    stats: Stats,
    conn: Connection<u64>,
    cfg: StreamConfig,
    policy: FlowPolicy,
    cap: usize,
    q: VecDeque<QEntry>,
    inflight: Vec<(u64, f64)>,
    fate: IdMap<Fate>,
    prio: IdMap<f64>,
    keyed: IdMap<()>,
    closed: bool,
    closed_steps: usize,
    paused: bool,
    // Counters since creation or the last reset_metrics.
    c_in: u64,
    c_out: u64,
    c_drops: [u64; 5],
    c_drop_cls: [u64; 4],
    c_deliv_cls: [u64; 4],
    c_crit_dead: u64,
    c_crit_conflated: u64,
    c_errors: u64,
    c_retries: u64,
    c_bp_events: u64,
    // Drop summary since the last take_drop_summary / reset.
    s_count: u64,
    s_reasons: [u64; 5],
    s_cls: [u64; 4],
    bp_on: bool,
    bp_expected: bool,
    last_unkeyed: Option<u64>,
}

impl Sim {
    fn new(name: String, cfg: StreamConfig, policy: FlowPolicy, base: u64) -> Self {
        let mut conn = Connection::new(name, cfg, policy, 1000.0, true);
        conn.set_circuit(3, 200.0);
        Sim {
            stats: Stats::default(),
            conn,
            cfg,
            policy,
            cap: cfg.buffer_size.max(1),
            q: VecDeque::new(),
            inflight: Vec::new(),
            fate: IdMap::new(base),
            prio: IdMap::new(base),
            keyed: IdMap::new(base),
            closed: false,
            closed_steps: 0,
            paused: false,
            c_in: 0,
            c_out: 0,
            c_drops: [0; 5],
            c_drop_cls: [0; 4],
            c_deliv_cls: [0; 4],
            c_crit_dead: 0,
            c_crit_conflated: 0,
            c_errors: 0,
            c_retries: 0,
            c_bp_events: 0,
            s_count: 0,
            s_reasons: [0; 5],
            s_cls: [0; 4],
            bp_on: false,
            bp_expected: false,
            last_unkeyed: None,
        }
    }

    fn held(&self) -> usize {
        self.q.len() + self.inflight.len()
    }

    fn static_limit(&self) -> usize {
        if self.policy.rule == DropRule::Block {
            return self.cap;
        }
        ((self.policy.drop_threshold * self.cap as f64).floor() as usize).clamp(1, self.cap)
    }

    fn bp_start(&self) -> f64 {
        let bp = self.cfg.backpressure_threshold * self.cap as f64;
        if self.policy.rule == DropRule::Block {
            bp
        } else {
            bp.min(self.static_limit() as f64)
        }
    }

    /// The documented victim choice for an incoming message of priority `p`.
    fn next_victim(&self, p: f64) -> Victim {
        let incoming_ok = !is_crit(p);
        let oldest_nc = self.q.iter().position(|e| !is_crit(e.p));
        match self.policy.rule {
            DropRule::Block => Victim::None,
            DropRule::Newest => {
                if incoming_ok {
                    Victim::Incoming
                } else {
                    oldest_nc.map_or(Victim::None, Victim::Buffered)
                }
            }
            DropRule::Oldest => match oldest_nc {
                Some(i) => Victim::Buffered(i),
                None if incoming_ok => Victim::Incoming,
                None => Victim::None,
            },
            DropRule::Priority => {
                // Lowest priority, oldest (first in line) among equals.
                let mut low: Option<usize> = None;
                for (i, e) in self.q.iter().enumerate() {
                    if is_crit(e.p) {
                        continue;
                    }
                    if low.map_or(true, |l| e.p < self.q[l].p) {
                        low = Some(i);
                    }
                }
                match low {
                    Some(i) if !(incoming_ok && p < self.q[i].p) => Victim::Buffered(i),
                    _ if incoming_ok => Victim::Incoming,
                    _ => Victim::None,
                }
            }
        }
    }

    fn record_drop(&mut self, id: u64, p: f64, r: DropReason) {
        let f = self.fate.get_mut(&id).expect("dropped id was accepted");
        assert!(
            matches!(*f, Fate::Held | Fate::Inflight),
            "id {id} dropped ({r:?}) but its fate was {f:?}"
        );
        *f = if r == DropReason::DeadLetter {
            Fate::DeadLetter
        } else {
            Fate::Dropped(r)
        };
        if is_crit(p) {
            match r {
                DropReason::DeadLetter => self.c_crit_dead += 1,
                DropReason::Conflated => self.c_crit_conflated += 1,
                _ => panic!("critical message {id} dropped with reason {r:?}"),
            }
        }
        self.c_drops[reason_ix(r)] += 1;
        self.stats.drops[reason_ix(r)] += 1;
        self.c_drop_cls[class_ix(p)] += 1;
        self.s_count += 1;
        self.s_reasons[reason_ix(r)] += 1;
        self.s_cls[class_ix(p)] += 1;
    }

    fn hand_out(&mut self, ids: &[u64]) {
        for &id in ids {
            if !self.keyed.contains(&id) {
                if let Some(last) = self.last_unkeyed {
                    assert!(id > last, "FIFO order broken: {id} handed out after {last}");
                }
                self.last_unkeyed = Some(id);
            }
        }
    }

    fn op_push(&mut self, praw: f64, key_n: Option<u8>, id: u64, now: f64) {
        let p = san(praw);
        let key_s = key_n.map(|k| ["k0", "k1", "k2", "k3", "k4"][k as usize]);
        let buffered_before = self.q.len();
        let held_before = self.held();
        let res = self.conn.push(id, praw, key_s, now);
        if self.closed {
            assert_eq!(res, Err(ConnError::Closed));
            return;
        }
        let res = res.expect("open connection accepts pushes");
        let dropped = self.conn.take_dropped();
        let key_eff = if self.policy.conflate { key_n } else { None };
        let conflate_pos = key_eff.and_then(|k| self.q.iter().position(|e| e.key == Some(k)));
        let st = match res {
            Push::Pending(back) => {
                assert_eq!(back, id, "Pending hands the message back");
                self.stats.pending += 1;
                assert!(dropped.is_empty(), "a refused push dropped {dropped:?}");
                assert!(conflate_pos.is_none(), "a conflatable push was refused");
                assert_eq!(self.conn.held(), held_before);
                assert!(
                    held_before >= self.cap,
                    "Pending below capacity ({held_before})"
                );
                if self.policy.rule != DropRule::Block {
                    assert!(
                        is_crit(p),
                        "non-critical push refused under {:?}",
                        self.policy
                    );
                    assert!(self.q.iter().all(|e| is_crit(e.p)));
                }
                return;
            }
            Push::Done(st) => st,
        };
        self.prio.insert(id, p);
        self.fate.insert(id, Fate::Held);
        self.c_in += 1;
        self.stats.accepted += 1;
        if is_crit(p) {
            self.stats.critical_accepted += 1;
        }
        let mut accepted = true;
        if let Some(pos) = conflate_pos {
            let old = self.q[pos].clone();
            assert_eq!(dropped, vec![(old.id, DropReason::Conflated)], "conflation");
            self.record_drop(old.id, old.p, DropReason::Conflated);
            self.q[pos] = QEntry {
                id,
                p,
                key: key_eff,
                at: now,
            };
            self.keyed.insert(id, ());
        } else {
            let reason = rule_reason(self.policy.rule);
            let adaptive = self.policy.adaptive.is_some();
            let limit = self.static_limit();
            for (k, &(did, r)) in dropped.iter().enumerate() {
                assert_eq!(r, reason, "drop reason");
                if !adaptive {
                    assert!(self.held() >= limit, "dropped {did} below the drop level");
                }
                match self.next_victim(p) {
                    Victim::Incoming => {
                        assert_eq!(did, id, "expected the incoming message to be dropped");
                        assert_eq!(k, dropped.len() - 1, "nothing after the incoming drop");
                        accepted = false;
                    }
                    Victim::Buffered(i) => {
                        let e = self.q.remove(i).unwrap();
                        assert_eq!(did, e.id, "wrong victim (policy {:?})", self.policy.rule);
                        self.record_drop(e.id, e.p, r);
                    }
                    Victim::None => panic!("dropped {did} where no victim is allowed"),
                }
            }
            if !accepted {
                self.record_drop(id, p, reason);
            } else {
                if !adaptive && self.policy.rule != DropRule::Block {
                    // The make-room loop stopped for the right reason.
                    let h = self.held();
                    assert!(
                        h < limit || matches!(self.next_victim(p), Victim::None),
                        "accepted with {h} held at drop level {limit}"
                    );
                }
                if self.policy.rule == DropRule::Block {
                    assert!(dropped.is_empty());
                    assert!(held_before < self.cap);
                }
                self.q.push_back(QEntry {
                    id,
                    p,
                    key: key_eff,
                    at: now,
                });
                if key_eff.is_some() {
                    self.keyed.insert(id, ());
                }
            }
        }
        // Status bits.
        let any_drop = !dropped.is_empty();
        assert_eq!(st & status::DROPPED != 0, any_drop, "DROPPED bit {st:#b}");
        assert_eq!(
            st & status::DROP_SUMMARY != 0,
            any_drop,
            "DROP_SUMMARY bit {st:#b}"
        );
        assert_eq!(
            st & status::FIRST != 0,
            accepted && conflate_pos.is_none() && buffered_before == 0,
            "FIRST bit {st:#b}"
        );
        assert_eq!(
            st & status::HOLD != 0,
            self.policy.max_wait.is_some() && self.conn.backpressure(),
            "HOLD bit {st:#b}"
        );
        let n = self.q.len();
        let ready =
            n > 0 && !self.paused && (n >= self.conn.batch_size() || self.cfg.batch_timeout <= 0.0);
        assert_eq!(
            st & status::BATCH_READY != 0,
            ready,
            "BATCH_READY bit {st:#b}"
        );
        assert_eq!(st & status::PENDING, 0);
        let evs = self.conn.take_events();
        assert_eq!(
            st & status::EVENTS != 0,
            !evs.is_empty(),
            "EVENTS bit {st:#b}"
        );
        self.apply_events(&evs, now);
    }

    fn op_take(&mut self, now: f64, force: bool, consume: bool) {
        let bs = self.conn.batch_size();
        let deadline = self.conn.batch_deadline();
        assert_eq!(
            deadline,
            self.q.front().map(|e| e.at + self.cfg.batch_timeout)
        );
        let n = self.q.len();
        let due = !self.paused
            && n > 0
            && (force
                || n >= bs
                || self.cfg.batch_timeout <= 0.0
                || deadline.is_some_and(|d| now >= d));
        let r = if consume {
            self.conn.consume_take(now, force)
        } else {
            self.conn.take_batch(now, force)
        };
        let due = due && (!consume || self.inflight.is_empty());
        assert_eq!(
            r.is_some(),
            due,
            "batch due? n {n} bs {bs} force {force} now {now}"
        );
        let Some(batch) = r else { return };
        assert!(!batch.is_empty(), "empty batch");
        assert_eq!(batch.len(), n.min(bs), "batch size");
        let expect: Vec<u64> = self.q.iter().take(batch.len()).map(|e| e.id).collect();
        assert_eq!(
            batch, expect,
            "batch is the head of the queue in write order"
        );
        self.hand_out(&batch);
        for _ in 0..batch.len() {
            let e = self.q.pop_front().unwrap();
            if consume {
                self.fate.insert(e.id, Fate::Inflight);
                self.inflight.push((e.id, e.p));
            } else {
                self.fate.insert(e.id, Fate::Delivered);
                self.c_out += 1;
                self.c_deliv_cls[class_ix(e.p)] += 1;
            }
        }
    }

    fn op_success(&mut self, now: f64) {
        self.conn.consume_success(now);
        for (id, p) in std::mem::take(&mut self.inflight) {
            self.fate.insert(id, Fate::Delivered);
            self.c_out += 1;
            self.c_deliv_cls[class_ix(p)] += 1;
        }
    }

    fn op_dead_letter(&mut self, now: f64) {
        let n = self.conn.consume_dead_letter(now);
        assert_eq!(n, self.inflight.len());
        for (id, p) in std::mem::take(&mut self.inflight) {
            self.record_drop(id, p, DropReason::DeadLetter);
        }
    }

    fn op_cancel(&mut self, now: f64) {
        let items = self.conn.cancel(now);
        let expect: Vec<u64> = self.q.iter().map(|e| e.id).collect();
        assert_eq!(
            items, expect,
            "cancel returns everything buffered, oldest first"
        );
        for e in std::mem::take(&mut self.q) {
            self.record_drop(e.id, e.p, DropReason::DeadLetter);
        }
        self.closed = true;
    }

    fn op_reset(&mut self) {
        self.conn.reset_metrics();
        self.c_in = self.held() as u64;
        self.c_out = 0;
        self.c_drops = [0; 5];
        self.c_drop_cls = [0; 4];
        self.c_deliv_cls = [0; 4];
        self.c_crit_dead = 0;
        self.c_crit_conflated = 0;
        self.c_errors = 0;
        self.c_retries = 0;
        self.c_bp_events = 0;
        self.s_count = 0;
        self.s_reasons = [0; 5];
        self.s_cls = [0; 4];
    }

    fn op_summary(&mut self) {
        let s = self.conn.take_drop_summary();
        if self.s_count == 0 {
            assert_eq!(s, None);
        } else {
            let s = s.expect("drops since the last summary");
            assert_eq!(s.count, self.s_count);
            let r = s.reasons;
            assert_eq!(
                [r.priority, r.oldest, r.newest, r.conflated, r.dead_letter],
                self.s_reasons
            );
            let c = s.by_priority;
            assert_eq!([c.critical, c.high, c.normal, c.low], self.s_cls);
        }
        self.s_count = 0;
        self.s_reasons = [0; 5];
        self.s_cls = [0; 4];
        assert_eq!(self.conn.take_drop_summary(), None, "summary resets");
    }

    fn apply_events(&mut self, evs: &[ConnEvent], now: f64) {
        for e in evs {
            match *e {
                ConnEvent::Backpressure(on, u) => {
                    assert_ne!(on, self.bp_on, "backpressure events must alternate");
                    assert!((0.0..=1.0).contains(&u), "utilisation {u}");
                    self.bp_on = on;
                    if on {
                        self.c_bp_events += 1;
                        self.stats.bp_starts += 1;
                    }
                }
                ConnEvent::Circuit(open) => {
                    if open {
                        self.stats.circuit_opens += 1;
                        assert_eq!(self.conn.circuit_state(now), CircuitState::Open);
                    } else {
                        assert_eq!(self.conn.circuit_state(now), CircuitState::Closed);
                    }
                }
            }
        }
    }

    fn check(&mut self, now: f64, full: bool) {
        let evs = self.conn.take_events();
        self.apply_events(&evs, now);
        let c = &self.conn;
        assert_eq!(c.held(), self.held(), "held");
        assert_eq!(c.buffered(), self.q.len(), "buffered");
        assert_eq!(c.inflight(), self.inflight.len(), "inflight");
        assert_eq!(c.messages_in(), self.c_in, "messages_in");
        assert_eq!(c.messages_out(), self.c_out, "messages_out");
        assert_eq!(c.dropped(), self.c_drops.iter().sum::<u64>(), "dropped");
        assert_eq!(
            c.messages_in(),
            c.messages_out() + c.dropped() + c.held() as u64,
            "in == out + dropped + held"
        );
        assert!(
            c.held() <= self.cap,
            "held {} > bufferSize {}",
            c.held(),
            self.cap
        );
        assert_eq!(c.is_closed(), self.closed);
        assert_eq!(c.is_paused(), self.paused);
        assert_eq!(c.backpressure(), self.bp_on, "backpressure flag vs events");
        assert_eq!(c.max_wait(), self.policy.max_wait);
        if self.policy.rule == DropRule::Block {
            // Lossless: only dead letters (and conflation, if asked for) remove messages.
            assert_eq!(self.c_drops[0] + self.c_drops[1] + self.c_drops[2], 0);
            assert_eq!(
                c.messages_in(),
                c.messages_out() + c.held() as u64 + self.c_drops[3] + self.c_drops[4]
            );
        }
        if !self.policy.conflate {
            assert_eq!(self.c_drops[3], 0, "conflation without the conflate flag");
        }
        if self.policy.adaptive.is_none() {
            // Exact hysteresis: on at the start level, off below 75% of it. Every operation
            // that changes `held` re-evaluates, and the rule is idempotent, so applying it to
            // the state after each step gives the expected flag.
            let h = self.held() as f64;
            let start = self.bp_start();
            let was = self.bp_expected;
            let expect = if !was {
                h >= start && h > 0.0
            } else {
                h >= 0.75 * start
            };
            assert_eq!(
                self.bp_on, expect,
                "backpressure at {h} (start {start}, was {was})"
            );
            self.bp_expected = expect;
        }
        if full {
            let m = self.conn.metrics(now);
            assert_eq!(
                m.messages_in,
                m.messages_out + m.dropped + m.buffer_size as u64
            );
            assert_eq!(m.messages_in, self.c_in);
            assert_eq!(m.messages_out, self.c_out);
            assert_eq!(m.buffer_size, self.held());
            assert_eq!(m.buffer_capacity, self.cap);
            assert!(m.buffer_utilization <= 1.0);
            let d = m.drops;
            assert_eq!(
                [d.priority, d.oldest, d.newest, d.conflated, d.dead_letter],
                self.c_drops
            );
            assert_eq!(d.total(), m.dropped);
            let b = m.drops_by_priority;
            assert_eq!([b.critical, b.high, b.normal, b.low], self.c_drop_cls);
            // Critical drops only ever come from dead letters (or an explicit conflation).
            assert_eq!(b.critical, self.c_crit_dead + self.c_crit_conflated);
            let v = m.delivered_by_priority;
            assert_eq!([v.critical, v.high, v.normal, v.low], self.c_deliv_cls);
            assert_eq!(v.total(), m.messages_out);
            assert_eq!(m.errors, self.c_errors);
            assert_eq!(m.retries, self.c_retries);
            assert_eq!(m.backpressure_events, self.c_bp_events);
            assert_eq!(m.backpressure, self.bp_on);
            assert_eq!(m.paused, self.paused);
            assert!((0.0..=1.0).contains(&m.error_rate));
            // A windowed ratio: dead letters of messages that arrived before the window can
            // push it above 1, so only sanity is checked.
            assert!(
                m.drop_rate >= 0.0 && m.drop_rate.is_finite(),
                "drop_rate {}",
                m.drop_rate
            );
            assert!(m.p50_latency <= m.p95_latency && m.p95_latency <= m.p99_latency);
            assert!(m.p99_latency <= m.max_latency + 1e-9);
            assert_eq!(m.circuit_state, self.conn.circuit_state(now).as_str());
            match (self.policy.adaptive, m.adaptive) {
                (None, None) => {}
                (Some(a), Some(s)) => {
                    assert!(
                        s.effective_threshold >= a.min_threshold
                            && s.effective_threshold <= a.max_threshold,
                        "threshold {}",
                        s.effective_threshold
                    );
                    assert!(s.batch_size >= 1 && s.batch_size <= self.cfg.max_batch_size);
                    assert_eq!(self.conn.batch_size(), s.batch_size);
                }
                other => panic!("adaptive metrics mismatch {other:?}"),
            }
        }
    }

    /// Delivers everything left and checks that every accepted id has a final fate.
    fn finish(&mut self, now: f64) {
        if self.paused {
            self.conn.resume();
            self.paused = false;
        }
        if !self.inflight.is_empty() {
            self.op_success(now);
        }
        while !self.q.is_empty() {
            self.op_take(now, true, false);
        }
        assert_eq!(self.conn.take_batch(now, true), None);
        self.check(now, true);
        assert_eq!(self.conn.held(), 0);
        for (id, f) in self.fate.iter() {
            assert!(
                !matches!(f, Fate::Held | Fate::Inflight),
                "id {id} still {f:?} after draining"
            );
            if is_crit(*self.prio.get(&id).unwrap()) {
                assert!(
                    matches!(
                        f,
                        Fate::Delivered | Fate::DeadLetter | Fate::Dropped(DropReason::Conflated)
                    ),
                    "critical id {id} ended as {f:?}"
                );
            }
        }
        let dropped = self
            .fate
            .values()
            .filter(|f| matches!(f, Fate::Dropped(_) | Fate::DeadLetter))
            .count();
        let delivered = self
            .fate
            .values()
            .filter(|f| **f == Fate::Delivered)
            .count();
        assert_eq!(dropped + delivered, self.fate.len());
    }
}

// ---- random operation sequences (proptest: generated, and shrunk when a check fails) ---------

/// One random operation on a [`Sim`]; each step first advances the fake clock by `dt`.
#[derive(Debug, Clone)]
enum Op {
    /// A write with a raw priority (NaN, out-of-range and -0 included) and maybe a key.
    Push {
        praw: f64,
        key: Option<u8>,
    },
    Take {
        force: bool,
    },
    ConsumeTake {
        force: bool,
    },
    Success,
    Failure {
        retry: bool,
    },
    DeadLetter,
    TogglePause,
    CircuitAllow,
    Reset,
    Summary,
    /// A user handler dropping a non-critical message on arrival.
    DropIncoming {
        p: f64,
    },
    Close,
    Cancel,
}

fn raw_priority() -> impl Strategy<Value = f64> {
    prop_oneof![
        3 => Just(1.0),
        1 => Just(0.75),
        1 => Just(0.5),
        1 => Just(0.25),
        1 => Just(f64::NAN),
        1 => Just(1.5),
        1 => Just(-0.5),
        1 => prop_oneof![Just(0.0), Just(-0.0)],
        2 => 0.0..1.0f64,
    ]
}

/// Weighted like a busy connection: mostly writes, then reads, consumer outcomes, and rare
/// lifecycle events. `conflate` makes keyed writes more common (they matter only then).
fn op_strategy(conflate: bool) -> impl Strategy<Value = Op> {
    let key_weight = if conflate { 5 } else { 1 };
    let key = prop_oneof![3 => Just(None), key_weight => (0u8..5).prop_map(Some)];
    prop_oneof![
        575 => (raw_priority(), key).prop_map(|(praw, key)| Op::Push { praw, key }),
        150 => prop::bool::weighted(1.0 / 3.0).prop_map(|force| Op::Take { force }),
        40 => any::<bool>().prop_map(|force| Op::ConsumeTake { force }),
        30 => Just(Op::Success),
        25 => any::<bool>().prop_map(|retry| Op::Failure { retry }),
        15 => Just(Op::DeadLetter),
        10 => Just(Op::TogglePause),
        10 => Just(Op::CircuitAllow),
        4 => Just(Op::Reset),
        20 => Just(Op::Summary),
        10 => (0.0..0.99f64).prop_map(|p| Op::DropIncoming { p }),
        2 => Just(Op::Close),
        2 => Just(Op::Cancel),
    ]
}

/// Time between operations (ms): mostly none or a few ms, sometimes long gaps that let batch
/// deadlines, circuit timeouts and metric windows pass.
fn dt_strategy() -> impl Strategy<Value = f64> {
    prop_oneof![
        1 => (50u32..2550).prop_map(f64::from),
        5 => 0.0..10.0f64,
        14 => (0u32..3).prop_map(f64::from),
    ]
}

fn cfg_strategy() -> impl Strategy<Value = StreamConfig> {
    (
        prop::sample::select(vec![4usize, 8, 16, 64]),
        prop::sample::select(vec![0.0, 5.0, 16.0]),
        prop::sample::select(vec![1usize, 4, 7, 20]),
        prop_oneof![Just(0.5), Just(0.8), Just(1.0), (0.3..1.0f64)],
    )
        .prop_map(
            |(buffer_size, batch_timeout, max_batch_size, bp)| StreamConfig {
                buffer_size,
                batch_timeout,
                max_batch_size,
                backpressure_threshold: bp,
                ..StreamConfig::default()
            },
        )
}

/// A case: the configurations of the successive connections (a closed or cancelled connection
/// is replaced by a new one with the next configuration) and the steps.
type Case = (Vec<StreamConfig>, Vec<(f64, Op)>);

fn case_strategy(conflate: bool, steps: usize) -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(cfg_strategy(), 1..8),
        prop::collection::vec((dt_strategy(), op_strategy(conflate)), steps / 2..=steps),
    )
}

/// Runs one case against the model; panics (with the model's message) on the first mismatch.
fn run_case(policy: FlowPolicy, (cfgs, steps): &Case) -> Stats {
    let mut now = 0.0f64;
    let mut next_id = 0u64;
    let mut gen = 0usize;
    let mut sim = Sim::new("g0".into(), cfgs[0], policy, 0);
    let mut total = Stats::default();
    for (step, (dt, op)) in steps.iter().enumerate() {
        now += dt;
        let mut full = step % 64 == 0;
        match *op {
            Op::Push { praw, key } => {
                let id = next_id;
                next_id += 1;
                sim.op_push(praw, key, id, now);
            }
            Op::Take { force } => sim.op_take(now, force, false),
            Op::ConsumeTake { force } => sim.op_take(now, force, true),
            Op::Success => {
                if !sim.inflight.is_empty() {
                    sim.op_success(now);
                }
            }
            Op::Failure { retry } => {
                if !sim.inflight.is_empty() {
                    sim.conn.consume_failure(now, retry);
                    sim.c_errors += 1;
                    sim.c_retries += retry as u64;
                }
            }
            Op::DeadLetter => {
                if !sim.inflight.is_empty() {
                    sim.op_dead_letter(now);
                }
            }
            Op::TogglePause => {
                if sim.paused {
                    sim.conn.resume();
                } else {
                    sim.conn.pause();
                }
                sim.paused = !sim.paused;
            }
            Op::CircuitAllow => {
                sim.conn.circuit_allow(now);
            }
            Op::Reset => {
                sim.op_reset();
                full = true;
            }
            Op::Summary => sim.op_summary(),
            Op::DropIncoming { p } => {
                if sim.policy.rule != DropRule::Block {
                    let id = next_id;
                    next_id += 1;
                    let r = sim.conn.drop_incoming(id, p, DropReason::Priority, now);
                    if sim.closed {
                        assert_eq!(r, Err(ConnError::Closed));
                    } else {
                        let st = r.unwrap();
                        assert_ne!(st & status::DROP_SUMMARY, 0);
                        assert_eq!(sim.conn.take_dropped(), vec![(id, DropReason::Priority)]);
                        sim.prio.insert(id, p);
                        sim.fate.insert(id, Fate::Held);
                        sim.c_in += 1;
                        sim.record_drop(id, p, DropReason::Priority);
                    }
                }
            }
            Op::Close => {
                sim.conn.close();
                sim.closed = true;
                full = true;
            }
            Op::Cancel => {
                sim.op_cancel(now);
                full = true;
            }
        }
        if sim.held() >= sim.cap {
            sim.stats.full += 1;
        }
        sim.check(now, full);
        if sim.closed {
            sim.closed_steps += 1;
            if sim.closed_steps > 200 || sim.held() == 0 {
                sim.finish(now);
                sim.stats.generations = 1;
                total.add(&sim.stats);
                gen += 1;
                sim = Sim::new(format!("g{gen}"), cfgs[gen % cfgs.len()], policy, next_id);
            }
        }
    }
    sim.finish(now);
    sim.stats.generations = 1;
    total.add(&sim.stats);
    total.ops = steps.len() as u64;
    total
}

/// How much random work each property test does. The CI share is the default; the long form
/// (`npm run oracle`) raises it: `ORACLE_SEEDS` seeds, each running `ORACLE_OPS` operations in
/// cases of at most `ORACLE_CASE_OPS` steps (`PROPTEST_CASES`, if set, fixes the case count per
/// seed instead).
struct Scale {
    seeds: u64,
    cases: u32,
    steps: usize,
}

fn env_num(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

fn scale(default_ops_per_seed: u64) -> Scale {
    let seeds = env_num("ORACLE_SEEDS").unwrap_or(20).max(1);
    let steps = env_num("ORACLE_CASE_OPS").unwrap_or(1000).max(2) as usize;
    let ops = env_num("ORACLE_OPS").unwrap_or(default_ops_per_seed);
    // Cases average about 3/4 of `steps` operations.
    let cases = env_num("PROPTEST_CASES")
        .unwrap_or_else(|| (4 * ops).div_ceil(3 * steps as u64))
        .max(1) as u32;
    Scale {
        seeds,
        cases,
        steps,
    }
}

/// A deterministic proptest runner per seed (reproducible in CI; failures are shrunk and the
/// minimal case is printed).
fn runner(seed: u64, cases: u32) -> TestRunner {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes[8..16].copy_from_slice(&0x9E37_79B9_7F4A_7C15u64.to_le_bytes());
    let config = PtConfig {
        cases,
        failure_persistence: None,
        max_shrink_iters: 20_000,
        ..PtConfig::default()
    };
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes))
}

/// Runs `check` on generated values for every seed; panics with the shrunk counterexample.
fn for_all_seeds<S: Strategy>(
    salt: u64,
    sc: &Scale,
    strategy: impl Fn() -> S,
    check: impl Fn(&S::Value),
) where
    S::Value: std::fmt::Debug,
{
    for seed in 0..sc.seeds {
        let mut r = runner(seed * 7919 + salt, sc.cases);
        let result = r.run(&strategy(), |v| {
            check(&v);
            Ok(())
        });
        match result {
            Ok(()) => {}
            Err(TestError::Fail(why, minimal)) => {
                panic!("seed {seed}: {why}\nminimal failing case: {minimal:#?}")
            }
            Err(e) => panic!("seed {seed}: {e}"),
        }
    }
}

fn run_all(policy: FlowPolicy, salt: u64) {
    let sc = scale(1200);
    let t = std::cell::RefCell::new(Stats::default());
    for_all_seeds(
        salt,
        &sc,
        || case_strategy(policy.conflate, sc.steps),
        |case| {
            let s = run_case(policy, case);
            t.borrow_mut().add(&s);
        },
    );
    let t = t.into_inner();
    // The random sequences reach every state the checks are about (summed over all seeds).
    // Thresholds are shares of the operations run (about 100k in the default scale).
    let [prio, oldest, newest, conflated, dead] = t.drops;
    let k = t.ops / 1000;
    assert!(t.full > 0, "the buffer was never full: {t:?}");
    assert!(
        t.accepted > 100 * k && t.critical_accepted > 10 * k,
        "{t:?}"
    );
    assert!(dead > 0 && t.bp_starts > k && t.circuit_opens > 0, "{t:?}");
    assert!(
        t.generations > sc.seeds,
        "close/cancel start new connections: {t:?}"
    );
    assert_eq!(conflated > 0, policy.conflate, "{t:?}");
    match policy.rule {
        DropRule::Block => assert!(t.pending > k && prio + oldest + newest == 0, "{t:?}"),
        DropRule::Priority => assert!(prio > 10 * k && oldest + newest == 0, "{t:?}"),
        DropRule::Oldest => assert!(oldest > 10 * k && t.pending > 0, "{t:?}"),
        DropRule::Newest => assert!(newest > 10 * k && t.pending > 0, "{t:?}"),
    }
    if std::env::var_os("CORE_FLOW_STATS").is_some() {
        let name = if policy.adaptive.is_some() {
            "Adaptive".to_string()
        } else {
            format!("{:?}", policy.rule)
        };
        eprintln!("{name} conflate {}: {t:?}", policy.conflate);
    }
}

#[test]
fn prop_block() {
    run_all(block_policy(false), 1);
}

#[test]
fn prop_block_conflate() {
    run_all(block_policy(true), 2);
}

#[test]
fn prop_priority() {
    run_all(rule_policy(DropRule::Priority, false), 3);
}

#[test]
fn prop_priority_conflate() {
    run_all(rule_policy(DropRule::Priority, true), 4);
}

#[test]
fn prop_oldest() {
    run_all(rule_policy(DropRule::Oldest, false), 5);
}

#[test]
fn prop_oldest_conflate() {
    run_all(rule_policy(DropRule::Oldest, true), 6);
}

#[test]
fn prop_newest() {
    run_all(rule_policy(DropRule::Newest, false), 7);
}

#[test]
fn prop_newest_conflate() {
    run_all(rule_policy(DropRule::Newest, true), 8);
}

#[test]
fn prop_adaptive() {
    run_all(adaptive_policy(false), 9);
}

#[test]
fn prop_adaptive_conflate() {
    run_all(adaptive_policy(true), 10);
}

/// One operation of the buffer-level property.
#[derive(Debug, Clone)]
enum BufOp {
    /// Push (or replace by key) with a priority and maybe a key.
    Push(f64, Option<u8>),
    PopFront,
    RemoveLowest,
    /// Remove the entry at this fraction of the queue.
    RemoveAt(f64),
    OldestNonCritical,
    /// The reader stalls (pops become lowest-removals) or resumes.
    Stall(bool),
}

fn buf_op_strategy() -> impl Strategy<Value = BufOp> {
    let p = prop_oneof![Just(1.0), Just(0.75), Just(0.5), Just(0.25), 0.0..1.0f64];
    let key = prop_oneof![2 => Just(None), 1 => (0u8..8).prop_map(Some)];
    prop_oneof![
        200 => (p, key).prop_map(|(p, k)| BufOp::Push(p, k)),
        100 => Just(BufOp::PopFront),
        100 => Just(BufOp::RemoveLowest),
        100 => (0.0..1.0f64).prop_map(BufOp::RemoveAt),
        100 => Just(BufOp::OldestNonCritical),
        1 => any::<bool>().prop_map(BufOp::Stall),
    ]
}

/// Memory of the buffer itself: slots (live + tombstones) stay bounded by the capacity the
/// connection enforces, whatever mix of pushes, pops, removals and replacements happens.
#[test]
fn prop_buffer_slots_bounded() {
    let sc = scale(2000);
    for_all_seeds(
        1000,
        &sc,
        || prop::collection::vec(buf_op_strategy(), sc.steps / 2..=sc.steps),
        |ops| check_buffer_ops(ops),
    );
}

fn check_buffer_ops(ops: &[BufOp]) {
    let mut b: Buffer<u64> = Buffer::new(true, true);
    let mut model: VecDeque<(u64, f64, Option<u8>)> = VecDeque::new();
    let mut seqs: HashMap<u64, u64> = HashMap::new();
    let cap = 64;
    // Phases where the reader stalls: the head stays, and tombstones from removals in the
    // middle pile up unless compacted.
    let mut stalled = false;
    for (i, op) in ops.iter().enumerate() {
        let i = i as u64;
        let mut op = op.clone();
        if stalled && matches!(op, BufOp::PopFront) {
            op = BufOp::RemoveLowest;
        }
        let mut removed = false;
        match op {
            BufOp::Stall(s) => stalled = s,
            BufOp::Push(p, key) if model.len() < cap => {
                let ks = key.map(|k| Box::<str>::from(format!("k{k}")));
                let existing = key.and_then(|k| b.find_key(&format!("k{k}")));
                let e = Entry {
                    item: i,
                    priority: p,
                    accepted_at: i as f64,
                    key: ks,
                };
                if let Some(seq) = existing {
                    let old = b.replace(seq, e).unwrap_or_else(|_| panic!("key is held"));
                    let pos = model.iter().position(|x| x.0 == old.item).unwrap();
                    seqs.remove(&old.item);
                    model[pos] = (i, p, key);
                    seqs.insert(i, seq);
                } else {
                    let seq = b.push(e);
                    model.push_back((i, p, key));
                    seqs.insert(i, seq);
                }
            }
            BufOp::Push(..) => {}
            BufOp::PopFront => {
                let got = b.pop_front().map(|e| e.item);
                assert_eq!(got, model.pop_front().map(|x| x.0));
                if let Some(id) = got {
                    seqs.remove(&id);
                }
            }
            BufOp::RemoveLowest => {
                // Lowest non-critical, oldest among equals.
                let mut low: Option<usize> = None;
                for (j, x) in model.iter().enumerate() {
                    if x.1 < 1.0 && low.map_or(true, |l| x.1 < model[l].1) {
                        low = Some(j);
                    }
                }
                let got = b.lowest();
                match low {
                    None => assert_eq!(got, None),
                    Some(j) => {
                        let (p, seq) = got.expect("a non-critical entry is held");
                        assert_eq!(p, model[j].1);
                        assert_eq!(seqs[&model[j].0], seq);
                        let e = b.remove(seq).unwrap();
                        removed = true;
                        assert_eq!(e.item, model[j].0);
                        seqs.remove(&e.item);
                        model.remove(j);
                    }
                }
            }
            BufOp::RemoveAt(f) if !model.is_empty() => {
                let j = ((f * model.len() as f64) as usize).min(model.len() - 1);
                let seq = seqs[&model[j].0];
                assert_eq!(b.remove(seq).map(|e| e.item), Some(model[j].0));
                removed = true;
                seqs.remove(&model[j].0);
                model.remove(j);
            }
            BufOp::RemoveAt(_) => {}
            BufOp::OldestNonCritical => {
                let want = model.iter().position(|x| x.1 < 1.0);
                let got = b.oldest_non_critical().map(|(_, s)| s);
                assert_eq!(got, want.map(|j| seqs[&model[j].0]));
            }
        }
        assert_eq!(b.len(), model.len());
        assert_eq!(b.front_accepted_at(), model.front().map(|x| x.0 as f64));
        if removed {
            // `remove` compacts once tombstones outnumber live entries (plus 32).
            assert!(
                b.slot_count() <= 2 * b.len() + 32,
                "{} slots",
                b.slot_count()
            );
        }
        // Bounded by the largest possible live count, never by history.
        assert!(
            b.slot_count() <= 2 * cap + 33,
            "slots {} with {} live",
            b.slot_count(),
            b.len()
        );
    }
}

/// The buffer's documented claim: tombstones are compacted once they outnumber live entries
/// (plus a constant), "so memory stays proportional to what is held" — also when a reader
/// drains the live head past interior tombstones (`pop_front`), not only on `remove`.
#[test]

fn buffer_pop_front_leaves_no_tombstones_behind() {
    let mut b: Buffer<u64> = Buffer::new(true, false);
    let mut seqs = Vec::new();
    for i in 0..100u64 {
        seqs.push(b.push(Entry {
            item: i,
            priority: 0.5,
            accepted_at: 0.0,
            key: None,
        }));
    }
    // Priority drops remove the interior entries 50..=98.
    for s in &seqs[50..99] {
        b.remove(*s).unwrap();
    }
    assert!(b.slot_count() <= 2 * b.len() + 33);
    // The reader drains the head.
    for _ in 0..50 {
        b.pop_front().unwrap();
    }
    assert_eq!(b.len(), 1);
    assert!(
        b.slot_count() <= 2 * b.len() + 33,
        "{} slots for {} live entry",
        b.slot_count(),
        b.len()
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Targeted connection tests
// ---------------------------------------------------------------------------------------------

#[test]
fn batching_size_timeout_and_order() {
    let mut c = conn(cfg(100, 16.0, 5, 0.8), FlowPolicy::block());
    let mut delivered = Vec::new();
    // Three messages: not full, not timed out.
    let st = push_done(&mut c, 0, 0.5, 0.0);
    assert_ne!(st & status::FIRST, 0, "first message into an empty buffer");
    assert_eq!(st & status::BATCH_READY, 0);
    assert_eq!(push_done(&mut c, 1, 0.5, 1.0) & status::FIRST, 0);
    push_done(&mut c, 2, 0.5, 2.0);
    assert_eq!(
        c.batch_deadline(),
        Some(16.0),
        "timed from the first message"
    );
    assert_eq!(c.take_batch(10.0, false), None);
    assert_eq!(c.take_batch(15.999, false), None);
    let b = c.take_batch(16.0, false).expect("due at the timeout");
    assert_eq!(b, vec![0, 1, 2]);
    delivered.extend(b);
    assert_eq!(c.batch_deadline(), None);
    assert_eq!(
        c.take_batch(100.0, true),
        None,
        "no empty batches, even forced"
    );
    // Twelve at once: full batches go before any timeout.
    let mut st = 0;
    for id in 3..15 {
        st = push_done(&mut c, id, 0.5, 20.0);
    }
    assert_ne!(st & status::BATCH_READY, 0);
    for _ in 0..2 {
        let b = c.take_batch(20.0, false).expect("full batch");
        assert_eq!(b.len(), 5);
        delivered.extend(b);
    }
    assert_eq!(
        c.take_batch(20.0, false),
        None,
        "2 left, not full, not timed out"
    );
    assert_eq!(c.status() & status::BATCH_READY, 0);
    let b = c.take_batch(36.0, false).expect("timed out");
    assert_eq!(b.len(), 2);
    delivered.extend(b);
    // Forced delivers a partial batch at once; paused delivers nothing even forced.
    push_done(&mut c, 15, 0.5, 40.0);
    c.pause();
    assert!(c.is_paused());
    assert_eq!(c.take_batch(1000.0, true), None);
    assert_eq!(c.status() & status::BATCH_READY, 0);
    c.resume();
    delivered.extend(c.take_batch(40.5, true).expect("forced"));
    assert_eq!(delivered, (0..16).collect::<Vec<u64>>(), "write order");
    let m = c.metrics(41.0);
    assert_eq!((m.messages_in, m.messages_out, m.dropped), (16, 16, 0));
    // Latency is measured from acceptance: 16, 15, 14 ms for the first batch, and so on.
    assert!(m.max_latency >= 16.0 && m.max_latency <= 17.0, "{m:?}");
}

#[test]
fn batching_zero_timeout_delivers_at_once() {
    let mut c = conn(cfg(100, 0.0, 4, 0.8), FlowPolicy::block());
    let st = push_done(&mut c, 7, 0.5, 3.0);
    assert_ne!(
        st & status::BATCH_READY,
        0,
        "with batchTimeout 0 any message is ready"
    );
    assert_eq!(c.take_batch(3.0, false), Some(vec![7]));
    for id in 0..6 {
        push_done(&mut c, id, 0.5, 4.0);
    }
    assert_eq!(
        c.take_batch(4.0, false),
        Some(vec![0, 1, 2, 3]),
        "at most maxBatchSize"
    );
    assert_eq!(c.take_batch(4.0, false), Some(vec![4, 5]));
    assert_eq!(c.take_batch(4.0, false), None);
}

#[test]
fn backpressure_hysteresis_block() {
    // Start at 8 of 10 (0.8), end below 6 (75% of 8).
    let mut c = conn(cfg(10, 0.0, 1, 0.8), FlowPolicy::block());
    for id in 0..7 {
        let st = push_done(&mut c, id, 0.5, 0.0);
        assert_eq!(st & (status::EVENTS | status::HOLD), 0);
    }
    assert!(!c.backpressure());
    let st = push_done(&mut c, 7, 0.5, 0.0);
    assert!(c.backpressure());
    assert_ne!(st & status::EVENTS, 0);
    assert_eq!(st & status::HOLD, 0, "no HOLD without max_wait");
    assert_eq!(c.take_events(), vec![ConnEvent::Backpressure(true, 0.8)]);
    push_done(&mut c, 8, 0.5, 0.0);
    push_done(&mut c, 9, 0.5, 0.0);
    assert_eq!(
        c.push(10, 1.0, None, 0.0),
        Ok(Push::Pending(10)),
        "Block: full refuses"
    );
    assert_eq!(c.take_events(), vec![]);
    // Drain to 6: still on; to 5: off.
    for _ in 0..4 {
        c.take_batch(1.0, false).unwrap();
    }
    assert_eq!(c.held(), 6);
    assert!(c.backpressure());
    c.take_batch(1.0, false).unwrap();
    assert!(!c.backpressure());
    assert_eq!(c.take_events(), vec![ConnEvent::Backpressure(false, 0.5)]);
    // Hover between 6 and 7: nothing.
    for round in 0..50 {
        push_done(&mut c, 100 + round * 2, 0.5, 2.0);
        push_done(&mut c, 101 + round * 2, 0.5, 2.0);
        c.take_batch(2.0, false).unwrap();
        c.take_batch(2.0, false).unwrap();
    }
    assert_eq!(c.take_events(), vec![]);
    // Up to 8 again: a second start, then hover between 6 and 8 without flapping.
    push_done(&mut c, 300, 0.5, 3.0);
    push_done(&mut c, 301, 0.5, 3.0);
    push_done(&mut c, 302, 0.5, 3.0);
    assert_eq!(c.held(), 8);
    for round in 0..50 {
        c.take_batch(3.0, false).unwrap();
        c.take_batch(3.0, false).unwrap();
        push_done(&mut c, 400 + round * 2, 0.5, 3.0);
        push_done(&mut c, 401 + round * 2, 0.5, 3.0);
    }
    assert_eq!(bp_events(&c.take_events()), vec![true]);
    let m = c.metrics(4.0);
    assert_eq!(m.backpressure_events, 2, "one per start");
    assert!(m.backpressure);
    assert_eq!(m.dropped, 0);
    identity(&mut c, 4.0);
}

#[test]
fn backpressure_hold_only_with_max_wait() {
    // Priority rule, drop level floor(0.9 * 10) = 9, backpressure at 8, ends below 6.
    let mut c = conn(
        cfg(10, 16.0, 50, 0.8),
        rule_policy(DropRule::Priority, false),
    );
    for id in 0..7 {
        assert_eq!(push_done(&mut c, id, 0.5, 0.0) & status::HOLD, 0);
    }
    let st = push_done(&mut c, 7, 0.5, 0.0);
    assert_ne!(
        st & status::HOLD,
        0,
        "HOLD once backpressure is on with max_wait"
    );
    assert_ne!(c.status() & status::HOLD, 0);
    assert_eq!(c.max_wait(), Some(100.0));
    c.take_batch(16.0, false).unwrap();
    assert!(!c.backpressure());
    assert_eq!(c.status() & status::HOLD, 0);
    assert_eq!(bp_events(&c.take_events()), vec![true, false]);
    // A drop level below the backpressure threshold starts backpressure at the drop level.
    let p = FlowPolicy {
        drop_threshold: 0.5,
        ..rule_policy(DropRule::Priority, false)
    };
    let mut c = conn(cfg(10, 16.0, 50, 0.8), p);
    for id in 0..4 {
        push_done(&mut c, id, 0.5, 0.0);
    }
    assert!(!c.backpressure());
    push_done(&mut c, 4, 0.5, 0.0);
    assert!(c.backpressure(), "starts at min(threshold, drop level) = 5");
}

#[test]
fn priority_rule_drops_lowest_then_oldest() {
    // Drop level floor(0.9 * 10) = 9.
    let mut c = conn(
        cfg(10, 16.0, 50, 1.0),
        rule_policy(DropRule::Priority, false),
    );
    let prios = [0.5, 0.25, 0.75, 0.25, 0.5, 1.0, 0.25, 0.9, 0.6];
    for (id, p) in prios.iter().enumerate() {
        push_done(&mut c, id as u64, *p, 0.0);
    }
    assert_eq!(c.take_dropped(), vec![]);
    // Lowest is 0.25; the oldest of those (id 1) goes.
    let st = push_done(&mut c, 9, 0.5, 1.0);
    assert_ne!(st & status::DROPPED, 0);
    assert_eq!(c.take_dropped(), vec![(1, DropReason::Priority)]);
    // An incoming message lower than everything buffered is itself the victim.
    push_done(&mut c, 10, 0.1, 1.0);
    assert_eq!(c.take_dropped(), vec![(10, DropReason::Priority)]);
    // Equal to the lowest buffered: the buffered (older) one goes.
    push_done(&mut c, 11, 0.25, 1.0);
    assert_eq!(c.take_dropped(), vec![(3, DropReason::Priority)]);
    push_done(&mut c, 12, 0.25, 1.0);
    assert_eq!(c.take_dropped(), vec![(6, DropReason::Priority)]);
    // NaN means 0.5 (normal): now the lowest buffered are 11, 12 (0.25).
    push_done(&mut c, 13, f64::NAN, 1.0);
    assert_eq!(c.take_dropped(), vec![(11, DropReason::Priority)]);
    // Critical incoming displaces the lowest too.
    push_done(&mut c, 14, 1.0, 1.0);
    assert_eq!(c.take_dropped(), vec![(12, DropReason::Priority)]);
    let m = c.metrics(2.0);
    assert_eq!(m.drops.priority, 6);
    assert_eq!(m.drops_by_priority.low, 6);
    assert_eq!(m.drops_by_priority.critical, 0);
    let rest = c.take_batch(20.0, true).unwrap();
    assert_eq!(
        rest,
        vec![0, 2, 4, 5, 7, 8, 9, 13, 14],
        "survivors in write order"
    );
    identity(&mut c, 20.0);
}

#[test]
fn oldest_rule_drops_oldest_non_critical() {
    let mut c = conn(cfg(10, 16.0, 50, 1.0), rule_policy(DropRule::Oldest, false));
    push_done(&mut c, 0, 1.0, 0.0);
    for id in 1..9 {
        push_done(&mut c, id, if id == 1 { 0.9 } else { 0.1 }, 0.0);
    }
    push_done(&mut c, 9, 0.1, 0.0);
    assert_eq!(
        c.take_dropped(),
        vec![(1, DropReason::Oldest)],
        "oldest non-critical, whatever its priority"
    );
    push_done(&mut c, 10, 1.0, 0.0);
    assert_eq!(c.take_dropped(), vec![(2, DropReason::Oldest)]);
    // All critical: a non-critical incoming is the victim; a critical one overflows up to
    // the capacity and is refused beyond it.
    let mut c = conn(cfg(4, 16.0, 50, 1.0), rule_policy(DropRule::Oldest, false));
    for id in 0..3 {
        push_done(&mut c, id, 1.0, 0.0);
    }
    push_done(&mut c, 3, 0.5, 0.0);
    assert_eq!(c.take_dropped(), vec![(3, DropReason::Oldest)]);
    push_done(&mut c, 4, 1.0, 0.0);
    assert_eq!(c.held(), 4);
    assert_eq!(c.push(5, 1.0, None, 0.0), Ok(Push::Pending(5)));
    assert_eq!(c.metrics(0.0).drops.oldest, 1);
    identity(&mut c, 0.0);
}

#[test]
fn newest_rule_drops_incoming() {
    let mut c = conn(cfg(10, 16.0, 50, 1.0), rule_policy(DropRule::Newest, false));
    for id in 0..9 {
        push_done(&mut c, id, 0.1 * id as f64, 0.0);
    }
    // The incoming goes even when it outranks everything buffered.
    let st = push_done(&mut c, 9, 0.99, 0.0);
    assert_ne!(st & status::DROP_SUMMARY, 0);
    assert_eq!(c.take_dropped(), vec![(9, DropReason::Newest)]);
    // A critical incoming is never the victim: the oldest non-critical goes instead.
    push_done(&mut c, 10, 1.0, 0.0);
    assert_eq!(c.take_dropped(), vec![(0, DropReason::Newest)]);
    let m = c.metrics(0.0);
    assert_eq!((m.drops.newest, m.drops_by_priority.critical), (2, 0));
    assert_eq!(
        c.take_batch(16.0, false).unwrap(),
        vec![1, 2, 3, 4, 5, 6, 7, 8, 10]
    );
}

#[test]
fn critical_into_all_critical_full_buffer_is_pending() {
    for rule in [
        DropRule::Priority,
        DropRule::Oldest,
        DropRule::Newest,
        DropRule::Block,
    ] {
        let p = if rule == DropRule::Block {
            FlowPolicy::block()
        } else {
            rule_policy(rule, false)
        };
        let mut c = conn(cfg(5, 16.0, 50, 1.0), p);
        for id in 0..5 {
            push_done(&mut c, id, 1.0, 0.0);
        }
        assert_eq!(c.held(), 5, "{rule:?}: criticals fill up to bufferSize");
        assert_eq!(c.push(5, 1.0, None, 1.0), Ok(Push::Pending(5)), "{rule:?}");
        let st = c.status();
        assert_eq!(st & status::PENDING, 0);
        assert_eq!(c.dropped(), 0, "{rule:?}");
        if rule != DropRule::Block {
            // A non-critical write is not refused: it is dropped itself.
            push_done(&mut c, 6, 0.75, 1.0);
            assert_eq!(c.take_dropped(), vec![(6, rule_reason(rule))]);
        } else {
            assert_eq!(c.push(6, 0.75, None, 1.0), Ok(Push::Pending(6)));
        }
        let m = c.metrics(1.0);
        assert_eq!(m.drops_by_priority.critical, 0);
        identity(&mut c, 1.0);
        // After the reader drains one, the retried critical write is accepted.
        c.take_batch(16.0, false).unwrap();
        push_done(&mut c, 5, 1.0, 17.0);
    }
}

#[test]
fn conflation_replaces_in_place_and_counts() {
    // Conflation works even in a full lossless buffer: replacing needs no room.
    let mut c = conn(cfg(3, 16.0, 50, 1.0), block_policy(true));
    push_key(&mut c, 0, 0.5, "a", 0.0);
    push_key(&mut c, 1, 0.5, "b", 1.0);
    push_done(&mut c, 2, 0.5, 2.0);
    assert_eq!(c.push(3, 0.5, None, 3.0), Ok(Push::Pending(3)));
    let st = push_key(&mut c, 4, 0.5, "a", 4.0);
    assert_ne!(st & status::DROP_SUMMARY, 0);
    assert_ne!(st & status::DROPPED, 0);
    assert_eq!(c.take_dropped(), vec![(0, DropReason::Conflated)]);
    push_key(&mut c, 5, 0.5, "a", 5.0);
    push_key(&mut c, 6, 0.9, "b", 6.0);
    assert_eq!(
        c.take_dropped(),
        vec![(4, DropReason::Conflated), (1, DropReason::Conflated)]
    );
    assert_eq!(c.held(), 3);
    let m = c.metrics(7.0);
    assert_eq!(m.drops.conflated, 3);
    assert_eq!((m.messages_in, m.dropped), (6, 3));
    identity(&mut c, 7.0);
    // Latest value in the older message's place.
    assert_eq!(c.take_batch(100.0, true).unwrap(), vec![5, 6, 2]);
    // The key left with its entry: a new "a" is a plain push.
    push_key(&mut c, 7, 0.5, "a", 101.0);
    assert_eq!(c.take_dropped(), vec![]);
    assert_eq!(c.held(), 1);

    // Keys are ignored without the conflate flag.
    let mut c = conn(cfg(10, 16.0, 50, 1.0), FlowPolicy::block());
    push_key(&mut c, 0, 0.5, "a", 0.0);
    push_key(&mut c, 1, 0.5, "a", 0.0);
    assert_eq!(c.held(), 2);
    assert_eq!(c.dropped(), 0);

    // With priority dropping, a conflated entry takes the new priority in the index.
    let mut c = conn(cfg(4, 16.0, 50, 1.0), rule_policy(DropRule::Priority, true));
    push_key(&mut c, 0, 0.1, "x", 0.0);
    push_done(&mut c, 1, 0.5, 0.0);
    push_done(&mut c, 2, 0.5, 0.0);
    push_key(&mut c, 3, 0.9, "x", 0.0); // replaces 0, now 0.9
    assert_eq!(c.take_dropped(), vec![(0, DropReason::Conflated)]);
    push_done(&mut c, 4, 0.6, 0.0); // held 3 >= limit 3: lowest is 1 (0.5)
    assert_eq!(c.take_dropped(), vec![(1, DropReason::Priority)]);
    assert_eq!(c.take_batch(20.0, true).unwrap(), vec![3, 2, 4]);
}

#[test]
fn drop_summary_aggregates_then_resets() {
    let mut c = conn(cfg(4, 16.0, 2, 1.0), rule_policy(DropRule::Priority, true));
    assert_eq!(c.take_drop_summary(), None);
    push_done(&mut c, 0, 0.25, 0.0);
    push_done(&mut c, 1, 0.5, 0.0);
    push_done(&mut c, 2, 1.0, 0.0);
    push_done(&mut c, 3, 0.8, 0.0); // drops 0 (low)
    push_done(&mut c, 4, 0.1, 0.0); // drops itself (low)
    push_key(&mut c, 5, 0.5, "k", 0.0); // drops 1 (normal), then held
    push_key(&mut c, 6, 0.5, "k", 0.0); // conflates 5 (normal)
    let s = c.take_drop_summary().expect("drops happened");
    assert_eq!(s.count, 4);
    assert_eq!(
        (
            s.reasons.priority,
            s.reasons.conflated,
            s.reasons.dead_letter
        ),
        (3, 1, 0)
    );
    assert_eq!(
        (
            s.by_priority.low,
            s.by_priority.normal,
            s.by_priority.critical
        ),
        (2, 2, 0)
    );
    assert_eq!(c.take_drop_summary(), None, "reset after taking");
    // Only the new drops appear in the next summary: dead-letter the first batch.
    let batch = c.consume_take(0.0, true).unwrap();
    assert_eq!(batch, vec![2, 3]);
    assert_eq!(c.consume_dead_letter(1.0), 2);
    let s = c.take_drop_summary().unwrap();
    assert_eq!(s.count, 2);
    assert_eq!(s.reasons.dead_letter, 2);
    assert_eq!((s.by_priority.critical, s.by_priority.high), (1, 1));
    // The lifetime counters keep everything.
    let m = c.metrics(1.0);
    assert_eq!(m.dropped, 6);
    assert_eq!(
        m.drops_by_priority.critical, 1,
        "only through the dead letter"
    );
    identity(&mut c, 1.0);
}

#[test]
fn reset_metrics_keeps_identity() {
    let mut c = conn(
        cfg(10, 16.0, 3, 0.5),
        rule_policy(DropRule::Priority, false),
    );
    for id in 0..12 {
        push_done(&mut c, id, 0.5, id as f64);
    }
    assert!(c.dropped() > 0);
    assert_eq!(c.consume_take(20.0, true).unwrap().len(), 3);
    c.consume_failure(21.0, true);
    assert!(c.backpressure());
    c.take_drop_summary();
    push_done(&mut c, 12, 0.9, 21.0);
    c.reset_metrics();
    let m = c.metrics(22.0);
    assert_eq!(m.messages_in, c.held() as u64, "restarts from what is held");
    assert_eq!(
        (m.messages_out, m.dropped, m.errors, m.retries),
        (0, 0, 0, 0)
    );
    assert_eq!(m.backpressure_events, 0);
    assert!(
        m.backpressure,
        "the backpressure state itself is not a counter"
    );
    assert_eq!(m.error_rate, 0.0);
    assert_eq!(
        m.drops_by_priority.total() + m.delivered_by_priority.total(),
        0
    );
    assert_eq!(c.take_drop_summary(), None);
    identity(&mut c, 22.0);
    // The in-flight batch was held at reset and still resolves consistently.
    assert_eq!(c.consume_dead_letter(23.0), 3);
    identity(&mut c, 23.0);
    assert_eq!(c.metrics(23.0).dropped, 3);
    while let Some(b) = c.take_batch(100.0, true) {
        assert!(!b.is_empty());
    }
    identity(&mut c, 100.0);
    assert_eq!(c.held(), 0);
    let m = c.metrics(100.0);
    assert_eq!(m.messages_in, m.messages_out + m.dropped);
}

#[test]
fn cancel_dead_letters_buffered_messages() {
    let mut c = conn(cfg(10, 16.0, 2, 1.0), FlowPolicy::block());
    for id in 0..5 {
        push_done(&mut c, id, if id == 3 { 1.0 } else { 0.5 }, 0.0);
    }
    assert_eq!(c.consume_take(0.0, true), Some(vec![0, 1]));
    let gone = c.cancel(1.0);
    assert_eq!(gone, vec![2, 3, 4], "everything buffered, oldest first");
    assert!(c.is_closed());
    assert_eq!(
        c.take_dropped(),
        vec![],
        "cancelled messages are returned, not kept"
    );
    assert_eq!(c.push(9, 0.5, None, 1.0), Err(ConnError::Closed));
    let m = c.metrics(1.0);
    assert_eq!(m.drops.dead_letter, 3);
    assert_eq!(
        m.drops_by_priority.critical, 1,
        "critical may leave as a dead letter"
    );
    assert_eq!(m.buffer_size, 2, "the in-flight batch is still held");
    identity(&mut c, 1.0);
    let s = c.take_drop_summary().unwrap();
    assert_eq!((s.count, s.reasons.dead_letter), (3, 3));
    c.consume_success(2.0);
    identity(&mut c, 2.0);
    assert_eq!((c.messages_out(), c.held()), (2, 0));
}

#[test]
fn closed_connection_refuses_writes_but_delivers() {
    let mut c = conn(
        cfg(10, 16.0, 50, 1.0),
        rule_policy(DropRule::Priority, false),
    );
    push_done(&mut c, 0, 0.5, 0.0);
    c.close();
    assert!(c.is_closed());
    assert_eq!(c.push(1, 1.0, None, 1.0), Err(ConnError::Closed));
    assert_eq!(c.push(2, 0.5, Some("k"), 1.0), Err(ConnError::Closed));
    assert_eq!(
        c.drop_incoming(3, 0.5, DropReason::Priority, 1.0),
        Err(ConnError::Closed)
    );
    assert_eq!(c.messages_in(), 1);
    assert_eq!(c.take_batch(16.0, false), Some(vec![0]));
    identity(&mut c, 16.0);
}

#[test]
fn drop_incoming_counts_a_user_drop() {
    let mut c = conn(
        cfg(10, 16.0, 50, 1.0),
        rule_policy(DropRule::Priority, false),
    );
    let st = c.drop_incoming(5, 0.3, DropReason::Newest, 0.0).unwrap();
    assert_ne!(st & status::DROP_SUMMARY, 0);
    assert_ne!(st & status::DROPPED, 0);
    assert_eq!(c.take_dropped(), vec![(5, DropReason::Newest)]);
    let m = c.metrics(0.0);
    assert_eq!(
        (
            m.messages_in,
            m.dropped,
            m.drops.newest,
            m.drops_by_priority.low
        ),
        (1, 1, 1, 1)
    );
    assert_eq!(m.drop_rate, 1.0);
    identity(&mut c, 0.0);
}

#[test]
fn circuit_breaker_opens_and_recovers() {
    let mut c = conn(cfg(10, 16.0, 2, 1.0), FlowPolicy::block());
    c.set_circuit(3, 1000.0);
    for id in 0..4 {
        push_done(&mut c, id, 0.5, 0.0);
    }
    assert!(c.circuit_allow(0.0));
    assert_eq!(c.consume_take(0.0, true), Some(vec![0, 1]));
    assert_eq!(
        c.consume_take(0.0, true),
        None,
        "one batch in flight at a time"
    );
    c.consume_failure(1.0, true);
    c.consume_failure(2.0, true);
    assert_eq!(c.take_events(), vec![]);
    assert_eq!(c.circuit_state(2.0), CircuitState::Closed);
    let st = c.consume_failure(3.0, false);
    assert_ne!(st & status::EVENTS, 0);
    assert_eq!(c.take_events(), vec![ConnEvent::Circuit(true)]);
    assert_eq!(c.circuit_state(3.0), CircuitState::Open);
    assert_eq!(c.metrics(3.0).circuit_state, "open");
    assert!(!c.circuit_allow(3.0));
    assert!(!c.circuit_allow(1002.9));
    assert_eq!(c.circuit_next_attempt(), Some(1003.0));
    assert_eq!(c.circuit_state(1003.0), CircuitState::HalfOpen);
    assert!(c.circuit_allow(1003.0), "one trial after the reset timeout");
    assert!(!c.circuit_allow(1003.0), "only one");
    assert!(!c.circuit_allow(1500.0));
    assert_eq!(c.metrics(1004.0).circuit_state, "half-open");
    c.consume_success(1004.0);
    assert_eq!(c.take_events(), vec![ConnEvent::Circuit(false)]);
    assert_eq!(c.circuit_state(1004.0), CircuitState::Closed);
    assert!(c.circuit_allow(1004.0));
    let m = c.metrics(1004.0);
    assert_eq!((m.errors, m.retries, m.messages_out), (3, 2, 2));
    // A failed trial opens it again.
    c.consume_take(1005.0, true).unwrap();
    for t in 0..3 {
        c.consume_failure(1005.0 + t as f64, true);
    }
    assert_eq!(c.take_events(), vec![ConnEvent::Circuit(true)]);
    assert!(c.circuit_allow(2007.0));
    c.consume_failure(2008.0, true);
    assert_eq!(c.take_events(), vec![ConnEvent::Circuit(true)]);
    assert!(!c.circuit_allow(2500.0));
    assert_eq!(c.circuit_next_attempt(), Some(3008.0));
    identity(&mut c, 2500.0);
}

#[test]
fn error_rate_is_windowed() {
    // Window 5000 ms in 5 slots of 1000 ms.
    let mut c = conn(cfg(100, 16.0, 1, 1.0), FlowPolicy::block());
    for id in 0..4 {
        push_done(&mut c, id, 0.5, 0.0);
    }
    c.consume_take(10.0, true).unwrap();
    c.consume_failure(10.0, true);
    c.consume_success(11.0);
    for t in [12.0, 13.0] {
        c.consume_take(t, true).unwrap();
        c.consume_success(t);
    }
    let m = c.metrics(20.0);
    assert_eq!(m.error_rate, 0.25, "1 failure in 4 attempts");
    assert_eq!(m.errors, 1);
    assert_eq!(c.metrics(3999.0).error_rate, 0.25, "still in the window");
    let m = c.metrics(6000.0);
    assert_eq!(m.error_rate, 0.0, "expired after the window");
    assert_eq!(m.errors, 1, "the lifetime count stays");
    // New traffic only counts itself.
    c.consume_take(6001.0, true).unwrap();
    c.consume_failure(6001.0, false);
    assert_eq!(c.metrics(6002.0).error_rate, 1.0);
}

/// Regression: the buffer's priority index orders by `f64::to_bits`, where `-0.0` (sign bit
/// set) would sort above every positive priority; `sanitize` must turn JS `-0` into `0`.
#[test]
fn negative_zero_priority_is_dropped_first() {
    let mut c = conn(
        cfg(4, 16.0, 50, 1.0),
        rule_policy(DropRule::Priority, false),
    );
    push_done(&mut c, 0, -0.0, 0.0);
    push_done(&mut c, 1, 0.25, 0.0);
    push_done(&mut c, 2, 0.5, 0.0);
    // Drop level floor(0.9 * 4) = 3: the lowest (priority 0, oldest) must go.
    push_done(&mut c, 3, 0.5, 0.0);
    assert_eq!(c.take_dropped(), vec![(0, DropReason::Priority)]);
}

// ---------------------------------------------------------------------------------------------
// 3. Adaptive flow control
// ---------------------------------------------------------------------------------------------

struct LoadResult {
    /// (push time, delivery time, priority) of delivered messages.
    delivered: Vec<(f64, f64, f64)>,
    dropped_by_class: [u64; 4],
    pushed_by_class: [u64; 4],
    pending: u64,
    last_drop_at: Option<f64>,
}

/// A writer pushing `per_ms` messages every ms (every `every_ms` ms if `per_ms` is 0, one
/// message) with the 10% critical / 30% high / 60% low mix, and a reader taking one batch of
/// `batch_size()` every `read_every` ms (forced), from `start` to `end`.
#[allow(clippy::too_many_arguments)]
fn run_load(
    c: &mut Connection<u64>,
    sent_at: &mut IdMap<(f64, f64)>,
    next_id: &mut u64,
    start: f64,
    end: f64,
    writes_per_ms: f64,
    read_every: f64,
    check_every_step: bool,
) -> LoadResult {
    let mut r = LoadResult {
        delivered: Vec::new(),
        dropped_by_class: [0; 4],
        pushed_by_class: [0; 4],
        pending: 0,
        last_drop_at: None,
    };
    let mut now = start;
    let mut credit = 0.0;
    let mut next_read = start;
    while now < end {
        credit += writes_per_ms;
        while credit >= 1.0 {
            credit -= 1.0;
            let id = *next_id;
            *next_id += 1;
            let p = match id % 10 {
                0 => 1.0,
                1..=3 => 0.75,
                _ => 0.25,
            };
            match c.push(id, p, None, now).unwrap() {
                Push::Done(_) => {
                    sent_at.insert(id, (now, p));
                    r.pushed_by_class[class_ix(p)] += 1;
                }
                Push::Pending(_) => r.pending += 1,
            }
            for (d, reason) in c.take_dropped() {
                let (_, dp) = sent_at.remove(&d).unwrap();
                assert_ne!(dp, 1.0, "critical message {d} dropped ({reason:?})");
                r.dropped_by_class[class_ix(dp)] += 1;
                r.last_drop_at = Some(now);
            }
        }
        if now >= next_read {
            next_read += read_every;
            if let Some(b) = c.take_batch(now, true) {
                for id in b {
                    let (at, p) = sent_at.remove(&id).unwrap();
                    r.delivered.push((at, now, p));
                }
            }
        }
        if check_every_step {
            assert_eq!(
                c.messages_in(),
                c.messages_out() + c.dropped() + c.held() as u64
            );
            assert!(c.held() <= c.config().buffer_size);
        }
        now += 1.0;
    }
    r
}

fn p95(mut v: Vec<f64>) -> f64 {
    assert!(!v.is_empty());
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let rank = ((0.95 * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// Reader: one batch of `batch_size()` every 5 ms. With maxBatchSize 10 the adaptive
/// controller settles on batches of 5 (1 msg/ms), a tenth of the writer's 10 msg/ms.
fn overload_cfg(max_batch: usize) -> StreamConfig {
    cfg(1000, 16.0, max_batch, 0.8)
}

/// Delivery latencies of messages delivered at or after `since`.
fn latencies_since(r: &LoadResult, since: f64) -> Vec<f64> {
    r.delivered
        .iter()
        .filter(|(_, d, _)| *d >= since)
        .map(|(a, d, _)| d - a)
        .collect()
}

fn drop_share(r: &LoadResult, class: usize) -> f64 {
    r.dropped_by_class[class] as f64 / r.pushed_by_class[class] as f64
}

#[test]
fn adaptive_overload_keeps_latency_and_critical() {
    for max_batch in [10, 20] {
        let mut c = conn(overload_cfg(max_batch), adaptive_policy(false));
        let mut sent = IdMap::new(0);
        let mut id = 0;
        let r = run_load(&mut c, &mut sent, &mut id, 0.0, 20_000.0, 10.0, 5.0, true);
        let m = c.metrics(20_000.0);
        assert_eq!(m.drops_by_priority.critical, 0, "no critical drops");
        assert_eq!(r.dropped_by_class[0], 0);
        assert_eq!(
            r.pending, 0,
            "the adaptive policy sheds, it does not refuse"
        );
        identity(&mut c, 20_000.0);
        // p95 latency over the last 10 s, computed from push and delivery times.
        let lat = latencies_since(&r, 10_000.0);
        let n = lat.len();
        let p = p95(lat);
        assert!(
            p < 100.0,
            "maxBatch {max_batch}: p95 {p} ms over {n} deliveries"
        );
        // Every critical message sent is delivered or still held.
        let crit_delivered = r.delivered.iter().filter(|x| x.2 == 1.0).count() as u64;
        let crit_held = sent.values().filter(|x| x.1 == 1.0).count() as u64;
        assert_eq!(crit_delivered + crit_held, r.pushed_by_class[0]);
        // Low loses more than high, in share of what was sent and in count.
        assert!(
            drop_share(&r, 3) > drop_share(&r, 1),
            "maxBatch {max_batch}: drops {:?} of {:?}",
            r.dropped_by_class,
            r.pushed_by_class
        );
        assert!(r.dropped_by_class[3] > r.dropped_by_class[1]);
        let a = m.adaptive.unwrap();
        assert!(
            a.effective_threshold < 0.9,
            "tightened under overload: {a:?}"
        );
        assert!(
            m.buffer_size < 200,
            "the queue is kept short: {}",
            m.buffer_size
        );
    }
}

/// Runs the overload phase, then light load (0.5 msg/ms), and returns the connection and the
/// light phase's result.
fn adaptive_overload_then_light(max_batch: usize) -> (Connection<u64>, LoadResult, u64) {
    let mut c = conn(overload_cfg(max_batch), adaptive_policy(false));
    let mut sent = IdMap::new(0);
    let mut id = 0;
    run_load(&mut c, &mut sent, &mut id, 0.0, 20_000.0, 10.0, 5.0, false);
    let dropped_before = c.dropped();
    let r = run_load(
        &mut c, &mut sent, &mut id, 20_000.0, 30_000.0, 0.5, 5.0, true,
    );
    (c, r, dropped_before)
}

#[test]
fn adaptive_light_load_after_overload_drops_nothing() {
    // Reader: batches of 5 (relaxed) every 5 ms = 1 msg/ms, writer 0.5 msg/ms.
    let (mut c, r, dropped_before) = adaptive_overload_then_light(10);
    assert_eq!(r.dropped_by_class, [0; 4], "drops under light load");
    assert_eq!(c.dropped(), dropped_before);
    assert!(p95(latencies_since(&r, 25_000.0)) < 100.0);
    identity(&mut c, 30_000.0);
    assert!(c.held() < 10);
    // With maxBatchSize 5 the overload leaves a backlog of criticals above the drop level;
    // while it drains (a few tens of ms) incoming low messages still go, but nothing after.
    let (mut c, r, _) = adaptive_overload_then_light(5);
    assert_eq!(r.dropped_by_class[0], 0);
    if let Some(t) = r.last_drop_at {
        assert!(t < 20_100.0, "drop at {t} under light load");
    }
    assert!(p95(latencies_since(&r, 25_000.0)) < 100.0);
    identity(&mut c, 30_000.0);
}

/// After the overload, a light load (the reader keeps up easily, p95 far under target) relaxes
/// the controller back to its maximum threshold. (Under light load the measured drain rate is
/// the arrival rate, so the drain-rate model must not apply then, or it would pin the threshold
/// at its minimum.)
#[test]

fn adaptive_threshold_returns_to_max_under_light_load() {
    let (mut c, _, _) = adaptive_overload_then_light(10);
    let a = c.metrics(30_000.0).adaptive.unwrap();
    assert_eq!(
        a.effective_threshold,
        AdaptiveConfig::default().max_threshold,
        "{a:?}"
    );
}

/// After recovery, a burst that fits easily in the buffer, and that the reader drains well
/// within the latency target, loses no messages.
#[test]

fn adaptive_burst_after_recovery_is_not_shed() {
    let (mut c, _, _) = adaptive_overload_then_light(10);
    let before = c.dropped();
    // 100 normal messages at once into a 1000-slot buffer: 20 batches of 5, under 100 ms.
    for i in 0..100 {
        push_done(&mut c, 1_000_000 + i, 0.5, 30_000.0);
    }
    assert_eq!(c.dropped(), before, "a 100-message burst was shed");
}

#[test]
fn fixed_priority_overload_accounting() {
    let mut c = conn(overload_cfg(10), rule_policy(DropRule::Priority, false));
    let mut sent = IdMap::new(0);
    let mut id = 0;
    let r = run_load(&mut c, &mut sent, &mut id, 0.0, 20_000.0, 10.0, 5.0, true);
    let m = c.metrics(20_000.0);
    identity(&mut c, 20_000.0);
    assert_eq!(m.drops_by_priority.critical, 0);
    assert_eq!(r.dropped_by_class[0], 0);
    assert_eq!(m.drops.priority, m.dropped);
    assert_eq!(
        r.pending, 0,
        "criticals alone never fill the buffer at this mix"
    );
    // The queue sits at the drop level, floor(0.9 * 1000).
    assert!(
        m.buffer_size <= 900 && m.buffer_size >= 890,
        "held {}",
        m.buffer_size
    );
    // Latency is bounded by the drop level over the drain rate (900 messages at 2 msg/ms),
    // plus one read period.
    let max_lat = r
        .delivered
        .iter()
        .map(|(a, d, _)| d - a)
        .fold(0.0, f64::max);
    assert!(max_lat <= 450.0 + 5.0, "max latency {max_lat}");
    assert!(drop_share(&r, 3) > drop_share(&r, 1));
    assert!(r.dropped_by_class[3] > r.dropped_by_class[1]);
    // Dropped plus delivered plus held is everything accepted.
    let total_pushed: u64 = r.pushed_by_class.iter().sum();
    let total_dropped: u64 = r.dropped_by_class.iter().sum();
    assert_eq!(
        total_pushed,
        r.delivered.len() as u64 + total_dropped + c.held() as u64
    );
    assert_eq!(r.delivered.len() as u64, m.messages_out);
}

// ---------------------------------------------------------------------------------------------
// 4. Engine
// ---------------------------------------------------------------------------------------------

fn engine() -> Engine<u64> {
    Engine::new(StreamConfig::default(), 5000.0)
}

fn alerts_of<'a>(t: &'a Tick, ty: &str) -> Vec<&'a AlertEventOut> {
    t.alerts
        .iter()
        .filter(|a| a.alert.alert_type == ty)
        .collect()
}

#[test]
fn engine_create_duplicate_remove_reuse() {
    let mut e = engine();
    let a = e
        .create("a", cfg(10, 16.0, 5, 0.8), FlowPolicy::block(), false)
        .unwrap();
    let b = e
        .create("b", cfg(10, 16.0, 5, 0.8), FlowPolicy::block(), false)
        .unwrap();
    assert_ne!(a, b);
    let err = e
        .create("a", StreamConfig::default(), FlowPolicy::block(), false)
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::State);
    assert!(err.message.contains('a'), "{}", err.message);
    assert_eq!(e.get(a).unwrap().id(), "a");
    assert_eq!(e.get(a).unwrap().config().buffer_size, 10);
    let (gone, resolved) = e.remove(a, 0.0).unwrap();
    assert_eq!(gone.id(), "a");
    assert!(resolved.is_empty());
    assert!(e.get(a).is_none());
    assert!(e.remove(a, 0.0).is_none(), "removing twice is a no-op");
    assert!(e.get(999).is_none());
    // The slot is reused under a new generation (the old handle stays dead), and the id is
    // free again.
    let c = e
        .create("c", StreamConfig::default(), FlowPolicy::block(), false)
        .unwrap();
    assert_ne!(c, a);
    assert_eq!(c & 0xFFFF, a & 0xFFFF, "same slot");
    assert!(e.get(a).is_none());
    assert_eq!(e.get(c).unwrap().id(), "c");
    let a2 = e
        .create("a", StreamConfig::default(), FlowPolicy::block(), false)
        .unwrap();
    assert!(a2 != b && a2 != c);
    let ids: Vec<String> = e.connections().map(|(_, c)| c.id().to_string()).collect();
    assert_eq!(ids.len(), 3);
    assert_eq!(e.tick(0.0, f64::NAN).totals.connections, 3);
}

#[test]
fn engine_tick_aggregates_totals() {
    let mut e = engine();
    let a = e
        .create(
            "a",
            cfg(10, 0.0, 2, 0.5),
            rule_policy(DropRule::Priority, false),
            false,
        )
        .unwrap();
    let b = e
        .create("b", cfg(10, 0.0, 3, 0.8), FlowPolicy::block(), false)
        .unwrap();
    {
        let c = e.get(a).unwrap();
        for id in 0..15 {
            push_done(c, id, 0.5, 0.0);
        }
        c.take_batch(1.0, false).unwrap();
        c.consume_take(1.0, false).unwrap();
        c.consume_failure(1.0, true);
    }
    {
        let c = e.get(b).unwrap();
        for id in 0..12 {
            let _ = c.push(id, 0.5, None, 0.0).unwrap();
        }
        c.take_batch(1.0, false).unwrap();
    }
    let t = e.tick(2.0, 0.1);
    assert_eq!(t.connections.len(), 2);
    let ma = &t.connections["a"];
    let mb = &t.connections["b"];
    assert_eq!(ma.connection_id, "a");
    assert_eq!(t.totals.connections, 2);
    assert_eq!(t.totals.messages_in, ma.messages_in + mb.messages_in);
    assert_eq!(t.totals.messages_out, ma.messages_out + mb.messages_out);
    assert_eq!(t.totals.dropped, ma.dropped + mb.dropped);
    assert_eq!(t.totals.buffer_size, ma.buffer_size + mb.buffer_size);
    assert_eq!(
        t.totals.backpressure_events,
        ma.backpressure_events + mb.backpressure_events
    );
    assert_eq!((t.totals.errors, t.totals.retries), (1, 1));
    assert_eq!(
        t.totals.messages_per_second,
        ma.messages_per_second + mb.messages_per_second
    );
    assert_eq!(mb.messages_in, 10, "Block took 10, refused 2");
    assert_eq!(mb.dropped, 0);
    assert_eq!(
        t.totals.messages_in,
        t.totals.messages_out + t.totals.dropped + t.totals.buffer_size as u64
    );
}

/// Drives one connection's utilisation and collects the backpressure alerts of each tick.
struct BpDriver {
    e: Engine<u64>,
    h: u32,
    now: f64,
    next: u64,
    fired: Vec<AlertEventOut>,
    resolved: Vec<AlertEventOut>,
    other: Vec<AlertEventOut>,
}

impl BpDriver {
    /// Sets the utilisation to `held`%, then ticks. Time moves 0.1 ms per tick, so nothing
    /// waits long enough to raise a latency alert.
    fn go(&mut self, held: usize) {
        let c = self.e.get(self.h).unwrap();
        while c.held() < held {
            push_done(c, self.next, 0.5, self.now);
            self.next += 1;
        }
        while c.held() > held {
            c.take_batch(self.now, true).unwrap();
        }
        self.now += 0.1;
        let t = self.e.tick(self.now, f64::NAN);
        for a in t.alerts {
            match (a.kind, a.alert.alert_type) {
                ("alert", "backpressure") => self.fired.push(a),
                ("alert-resolved", "backpressure") => self.resolved.push(a),
                _ => self.other.push(a),
            }
        }
    }
}

#[test]
fn engine_backpressure_alert_fires_and_resolves_once() {
    let mut e = engine();
    let h = e
        .create("bp", cfg(100, 16.0, 1, 1.0), FlowPolicy::block(), false)
        .unwrap();
    let mut d = BpDriver {
        e,
        h,
        now: 0.0,
        next: 0,
        fired: Vec::new(),
        resolved: Vec::new(),
        other: Vec::new(),
    };
    for u in [10, 30, 50, 69] {
        d.go(u);
    }
    assert!(d.fired.is_empty());
    d.go(70);
    // Hover between the resolve level (0.63) and the critical level (0.9), ticking often.
    for i in 0..200 {
        d.go([71, 65, 89, 64, 70, 69, 75][i % 7]);
    }
    // Exactly at the resolve level: not below it, so still active.
    d.go(63);
    assert_eq!(d.fired.len(), 1, "one alert while hovering: {:?}", d.fired);
    assert!(
        d.resolved.is_empty(),
        "no resolution while hovering: {:?}",
        d.resolved
    );
    let a = &d.fired[0].alert;
    assert_eq!((a.severity, a.connection_id.as_str()), ("warning", "bp"));
    assert_eq!(a.value, 0.7);
    assert_eq!(a.threshold, 0.7);
    d.go(62);
    for u in (0..62).rev().step_by(3) {
        d.go(u);
    }
    assert_eq!(d.resolved.len(), 1, "{:?}", d.resolved);
    assert_eq!(d.resolved[0].alert.value, 0.62);
    assert_eq!(d.fired.len(), 1);
    // A second episode fires again, once.
    for _ in 0..20 {
        d.go(75);
    }
    assert_eq!(d.fired.len(), 2);
    assert!(d.other.is_empty(), "unexpected alerts {:?}", d.other);
    // Crossing 0.9 escalates to critical once; falling back to warning levels is silent.
    for u in [90, 95, 80, 91] {
        d.go(u);
    }
    assert_eq!(d.fired.len(), 3);
    assert_eq!(d.fired[2].alert.severity, "critical");
}

#[test]
fn engine_latency_alert_when_reader_stalls() {
    let mut e = engine();
    let h = e
        .create("slow", cfg(1000, 16.0, 50, 1.0), FlowPolicy::block(), false)
        .unwrap();
    for id in 0..10 {
        push_done(e.get(h).unwrap(), id, 0.5, 0.0);
    }
    // Nothing delivered yet: the age of the oldest waiting message is the latency.
    let t = e.tick(50.0, f64::NAN);
    assert!(alerts_of(&t, "high_latency").is_empty());
    assert_eq!(t.connections["slow"].p95_latency, 50.0);
    let t = e.tick(150.0, f64::NAN);
    let a = alerts_of(&t, "high_latency");
    assert_eq!(a.len(), 1, "{:?}", t.alerts);
    assert_eq!((a[0].kind, a[0].alert.severity), ("alert", "warning"));
    assert!(a[0].alert.value >= 148.0 && a[0].alert.value <= 152.0);
    assert!(
        alerts_of(&e.tick(200.0, f64::NAN), "high_latency").is_empty(),
        "once"
    );
    let t = e.tick(600.0, f64::NAN);
    let a = alerts_of(&t, "high_latency");
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].alert.severity, "critical");
    // The reader comes back; after the window the slow samples expire and it resolves.
    let c = e.get(h).unwrap();
    c.take_batch(600.0, true).unwrap();
    let mut now = 600.0;
    let mut resolved = 0;
    let mut id = 100;
    while now < 12_000.0 {
        now += 10.0;
        let c = e.get(h).unwrap();
        push_done(c, id, 0.5, now);
        id += 1;
        c.take_batch(now + 1.0, true).unwrap();
        let t = e.tick(now + 1.0, f64::NAN);
        for a in alerts_of(&t, "high_latency") {
            assert_eq!(a.kind, "alert-resolved");
            resolved += 1;
        }
    }
    assert_eq!(resolved, 1);
}

/// A reader that stalls after a period of normal traffic: 2000 messages have waited up to
/// 3 s, and the ages of the waiting messages count as latency samples, so the 5000 fast
/// deliveries earlier in the window do not hide the stall.
#[test]

fn latency_alert_for_stall_after_traffic() {
    let mut e = engine();
    let h = e
        .create("s", cfg(10_000, 0.0, 50, 1.0), FlowPolicy::block(), false)
        .unwrap();
    let mut id = 0;
    let mut now = 0.0;
    // 1 s of healthy traffic: 5 msg/ms delivered within 1 ms.
    while now < 1000.0 {
        let c = e.get(h).unwrap();
        for _ in 0..5 {
            push_done(c, id, 0.5, now);
            id += 1;
        }
        c.take_batch(now + 1.0, true).unwrap();
        now += 1.0;
    }
    assert!(alerts_of(&e.tick(now, f64::NAN), "high_latency").is_empty());
    // The reader stalls for 3 s while the writer adds 2 messages every 3 ms (2000 in all).
    while now < 4000.0 {
        let c = e.get(h).unwrap();
        if (now as u64) % 3 == 0 {
            for _ in 0..2 {
                push_done(c, id, 0.5, now);
                id += 1;
            }
        }
        now += 1.0;
    }
    let t = e.tick(now, f64::NAN);
    let held = t.connections["s"].buffer_size;
    assert!(held >= 1900, "held {held}");
    assert_eq!(
        alerts_of(&t, "high_latency").len(),
        1,
        "{held} messages waiting up to 3 s, p95 reported {}",
        t.connections["s"].p95_latency
    );
}

#[test]
fn engine_memory_alert() {
    let mut e = engine();
    let t = e.tick(0.0, 0.5);
    assert!(t.alerts.is_empty());
    let t = e.tick(1.0, 0.85);
    let a = alerts_of(&t, "memory");
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].kind, "alert");
    assert_eq!(a[0].alert.severity, "warning");
    assert_eq!(a[0].alert.connection_id, "", "engine-wide");
    assert!(e.tick(2.0, 0.9).alerts.is_empty());
    assert!(
        e.tick(3.0, f64::NAN).alerts.is_empty(),
        "unknown memory changes nothing"
    );
    let t = e.tick(4.0, 0.96);
    assert_eq!(alerts_of(&t, "memory")[0].alert.severity, "critical");
    assert!(e.tick(5.0, 0.75).alerts.is_empty(), "band: no change");
    let t = e.tick(6.0, 0.7);
    let a = alerts_of(&t, "memory");
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].kind, "alert-resolved");
    assert!(e.tick(7.0, 0.1).alerts.is_empty());
}

#[test]
fn engine_circuit_open_alert() {
    let mut e = engine();
    let h = e
        .create("cb", cfg(10, 16.0, 5, 1.0), FlowPolicy::block(), false)
        .unwrap();
    {
        let c = e.get(h).unwrap();
        c.set_circuit(3, 1000.0);
        push_done(c, 0, 0.5, 0.0);
        c.consume_take(0.0, true).unwrap();
        for t in 0..3 {
            c.consume_failure(t as f64, true);
        }
    }
    let t = e.tick(10.0, f64::NAN);
    let a = alerts_of(&t, "circuit_open");
    assert_eq!(a.len(), 1, "{:?}", t.alerts);
    assert_eq!((a[0].kind, a[0].alert.severity), ("alert", "critical"));
    assert_eq!(t.connections["cb"].circuit_state, "open");
    // 3 failures in 3 attempts: the error-rate alert fires as well.
    assert_eq!(alerts_of(&t, "high_error_rate").len(), 1);
    assert!(
        alerts_of(&e.tick(20.0, f64::NAN), "circuit_open").is_empty(),
        "once"
    );
    // Trial succeeds after the reset timeout.
    {
        let c = e.get(h).unwrap();
        assert!(c.circuit_allow(1002.0));
        c.consume_success(1003.0);
    }
    let t = e.tick(1004.0, f64::NAN);
    let a = alerts_of(&t, "circuit_open");
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].kind, "alert-resolved");
    // Removing a connection resolves whatever is still active on it.
    let (_, resolved) = e.remove(h, 1005.0).unwrap();
    assert!(resolved.iter().all(|r| r.kind == "alert-resolved"));
    assert!(resolved
        .iter()
        .any(|r| r.alert.alert_type == "high_error_rate"));
}

#[test]
fn engine_critical_drop_alert() {
    let mut e = engine();
    let h = e
        .create("d", cfg(10, 16.0, 5, 1.0), FlowPolicy::block(), false)
        .unwrap();
    {
        let c = e.get(h).unwrap();
        push_done(c, 0, 1.0, 0.0);
        c.consume_take(0.0, true).unwrap();
        c.consume_dead_letter(1.0);
    }
    let t = e.tick(2.0, f64::NAN);
    let a = alerts_of(&t, "drops");
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].alert.severity, "critical");
    assert_eq!(a[0].alert.value, 1.0);
    assert!(alerts_of(&e.tick(3.0, f64::NAN), "drops").is_empty());
}

/// Conflation replaces a critical message with a newer value of the same key: it is counted as a
/// (conflated) drop, but it is not a lost critical message and raises no critical alert.
#[test]
fn engine_conflated_critical_is_counted_but_not_alerted() {
    let mut e = engine();
    let policy = FlowPolicy {
        conflate: true,
        ..FlowPolicy::block()
    };
    let h = e.create("k", cfg(10, 16.0, 5, 1.0), policy, true).unwrap();
    {
        let c = e.get(h).unwrap();
        c.push(0, 1.0, Some("cpu"), 0.0).unwrap();
        c.push(1, 1.0, Some("cpu"), 0.5).unwrap();
        let m = c.metrics(1.0);
        assert_eq!(
            (
                m.drops.conflated,
                m.drops_by_priority.critical,
                m.critical_lost
            ),
            (1, 1, 0)
        );
    }
    let t = e.tick(2.0, f64::NAN);
    assert!(alerts_of(&t, "drops")
        .iter()
        .all(|a| a.alert.severity != "critical"));
}

/// `Engine::tick` detects critical drops by comparing the connection's count of lost critical
/// messages with the value it saw at the previous tick; `reset_metrics` zeroes that counter, and
/// critical drops between a reset and the next tick must still be reported.
#[test]
fn critical_drop_after_reset_metrics_is_alerted() {
    let mut e = engine();
    let h = e
        .create("d", cfg(10_000, 16.0, 50, 1.0), FlowPolicy::block(), false)
        .unwrap();
    {
        let c = e.get(h).unwrap();
        for id in 0..3 {
            push_done(c, id, 1.0, 0.0);
        }
        c.consume_take(0.0, true).unwrap();
        c.consume_dead_letter(1.0); // 3 critical dead letters
    }
    assert_eq!(alerts_of(&e.tick(2.0, f64::NAN), "drops").len(), 1);
    // Let the alert resolve (the drop rate leaves the window).
    let t = e.tick(10_000.0, f64::NAN);
    assert_eq!(alerts_of(&t, "drops")[0].kind, "alert-resolved");
    {
        let c = e.get(h).unwrap();
        c.reset_metrics();
        // Normal traffic, then one more critical message is lost.
        for id in 100..1100 {
            push_done(c, id, 0.5, 10_001.0);
        }
        while c.take_batch(10_002.0, true).is_some() {}
        push_done(c, 2000, 1.0, 10_003.0);
        c.consume_take(10_003.0, true).unwrap();
        c.consume_dead_letter(10_004.0);
        assert_eq!(c.metrics(10_004.0).drops_by_priority.critical, 1);
    }
    let t = e.tick(10_005.0, f64::NAN);
    assert_eq!(
        alerts_of(&t, "drops").len(),
        1,
        "a critical message was dead-lettered, alerts: {:?}",
        t.alerts
    );
}

/// `push_many` (the batch-write path, with its fast path for the lossless rule) must leave the
/// connection exactly as pushing the same messages one by one does.
#[test]
fn push_many_matches_pushing_one_by_one() {
    let policies = [
        FlowPolicy::block(),
        FlowPolicy {
            rule: DropRule::Priority,
            drop_threshold: 0.9,
            max_wait: Some(100.0),
            adaptive: None,
            conflate: false,
        },
        FlowPolicy {
            rule: DropRule::Oldest,
            drop_threshold: 0.9,
            max_wait: Some(100.0),
            adaptive: None,
            conflate: false,
        },
    ];
    for policy in policies {
        for (size, n) in [(10usize, 4usize), (10, 10), (10, 25), (50, 7)] {
            let c = cfg(size, 16.0, 4, 0.5);
            let mut a = conn(c, policy);
            let mut b = conn(c, policy);
            let items: Vec<(u64, f64)> = (0..n as u64)
                .map(|i| (i, [0.25, 0.5, 1.0, 0.75][i as usize % 4]))
                .collect();
            let (accepted, st) = a.push_many(items.clone(), 1.0).unwrap();
            let mut one_accepted = 0;
            let mut one_pending = false;
            for (m, p) in items {
                match b.push(m, p, None, 1.0).unwrap() {
                    Push::Done(_) => one_accepted += 1,
                    Push::Pending(_) => {
                        one_pending = true;
                        break;
                    }
                }
            }
            assert_eq!(accepted, one_accepted, "{policy:?} size {size} n {n}");
            assert_eq!(st & status::PENDING != 0, one_pending);
            assert_eq!(st & status::FIRST != 0, accepted > 0);
            assert_eq!(
                st & status::BATCH_READY != 0,
                b.status() & status::BATCH_READY != 0
            );
            let (ma, mb) = (a.metrics(2.0), b.metrics(2.0));
            assert_eq!(
                (
                    ma.messages_in,
                    ma.buffer_size,
                    ma.dropped,
                    ma.backpressure_events
                ),
                (
                    mb.messages_in,
                    mb.buffer_size,
                    mb.dropped,
                    mb.backpressure_events
                )
            );
            let da: Vec<u64> = a.take_batch(100.0, true).unwrap_or_default();
            let db: Vec<u64> = b.take_batch(100.0, true).unwrap_or_default();
            assert_eq!(da, db);
        }
    }
}

// ---- lifecycle and handle safety (issue 8) -------------------------------------------------

#[test]
fn stale_handles_never_address_the_connection_that_reuses_their_slot() {
    let mut e = engine();
    let a = e
        .create("a", cfg(4, 0.0, 10, 0.8), FlowPolicy::block(), false)
        .unwrap();
    assert!(matches!(
        e.get(a).unwrap().push(1, 0.5, None, 0.0),
        Ok(Push::Done(_))
    ));
    e.remove(a, 0.0).unwrap();
    let b = e
        .create("b", cfg(4, 0.0, 10, 0.8), FlowPolicy::block(), false)
        .unwrap();
    assert_eq!(b & 0xFFFF, a & 0xFFFF, "the slot is reused");
    // Every way in through the old handle finds nothing: no write lands in b, no removal or
    // finish touches it.
    assert!(e.get(a).is_none());
    assert!(e.remove(a, 0.0).is_none());
    assert!(e.finish(a, 0.0).is_empty());
    assert_eq!(e.get(b).unwrap().lifecycle(), Lifecycle::Open);
    assert_eq!(e.get(b).unwrap().messages_in(), 0);
    // A consumer of `a` acknowledging late finds nothing either, while b's batch stays in flight.
    assert!(matches!(
        e.get(b).unwrap().push(7, 0.5, None, 0.0),
        Ok(Push::Done(_))
    ));
    assert_eq!(e.get(b).unwrap().consume_take(0.0, true), Some(vec![7]));
    assert!(e.get(a).map(|c| c.consume_success(1.0)).is_none());
    assert_eq!(e.get(b).unwrap().inflight(), 1);
    assert_eq!(e.get(b).unwrap().messages_out(), 0);
}

#[test]
fn a_slot_is_retired_before_its_generation_wraps() {
    let mut e = engine();
    let first = e
        .create("x", StreamConfig::default(), FlowPolicy::block(), false)
        .unwrap();
    let mut h = first;
    let mut seen = std::collections::HashSet::new();
    // Recreate in the same slot until it is retired; no handle value is ever issued twice.
    loop {
        assert!(seen.insert(h), "handle {h:#x} issued twice");
        e.remove(h, 0.0).unwrap();
        h = e
            .create("x", StreamConfig::default(), FlowPolicy::block(), false)
            .unwrap();
        if h & 0xFFFF != first & 0xFFFF {
            break;
        }
    }
    assert_eq!(
        seen.len(),
        0xFFFF,
        "every generation of the slot was used once"
    );
    assert!(e.get(first).is_none());
    assert_eq!(e.get(h).unwrap().id(), "x");
}

#[test]
fn finished_connections_keep_final_figures_until_removed() {
    let mut e = engine();
    let a = e
        .create("a", cfg(10, 0.0, 10, 0.8), FlowPolicy::block(), false)
        .unwrap();
    let c = e.get(a).unwrap();
    c.push(1, 0.5, None, 0.0).unwrap();
    c.push(2, 0.5, None, 0.0).unwrap();
    assert_eq!(c.metrics(0.0).state, "open");
    c.close();
    assert_eq!(c.metrics(0.0).state, "closing");
    assert_eq!(c.take_batch(1.0, true), Some(vec![1, 2]));
    e.finish(a, 2.0);
    let t = e.snapshot(3.0);
    let m = &t.connections["a"];
    assert_eq!(m.state, "finished");
    assert_eq!((m.messages_in, m.messages_out, m.buffer_size), (2, 2, 0));
    assert_eq!(e.find("a").unwrap().lifecycle(), Lifecycle::Finished);
    // Finished refuses writes and pauses.
    let c = e.get(a).unwrap();
    assert_eq!(c.push(3, 0.5, None, 4.0), Err(ConnError::Closed));
    c.pause();
    assert!(!c.is_paused());
    e.remove(a, 5.0).unwrap();
    assert!(e.find("a").is_none());
    assert!(e.snapshot(6.0).connections.is_empty());
}

#[test]
fn finishing_resolves_alerts_and_a_finished_connection_raises_none() {
    let mut e = engine();
    let a = e
        .create("a", cfg(10, 60_000.0, 10, 0.5), FlowPolicy::block(), false)
        .unwrap();
    for i in 0..8 {
        e.get(a).unwrap().push(i, 0.5, None, 0.0).unwrap();
    }
    let t = e.tick(1.0, f64::NAN);
    assert_eq!(alerts_of(&t, "backpressure").len(), 1);
    let c = e.get(a).unwrap();
    c.close();
    while c.take_batch(2.0, true).is_some() {}
    let resolved = e.finish(a, 3.0);
    assert!(resolved
        .iter()
        .any(|r| r.kind == "alert-resolved" && r.alert.alert_type == "backpressure"));
    assert!(
        e.finish(a, 3.0).is_empty(),
        "finishing twice resolves nothing more"
    );
    assert!(e.tick(4.0, f64::NAN).alerts.is_empty());
    let (_, resolved) = e.remove(a, 5.0).unwrap();
    assert!(resolved.is_empty(), "resolved once, at finish");
}

#[test]
fn totals_sum_exactly_the_connections_listed_one_per_id() {
    let mut e = engine();
    let old = e
        .create("a", cfg(10, 60_000.0, 10, 0.8), FlowPolicy::block(), false)
        .unwrap();
    e.get(old).unwrap().push(1, 0.5, None, 0.0).unwrap();
    e.get(old).unwrap().push(2, 0.5, None, 0.0).unwrap();
    e.get(old).unwrap().shut(); // closeConnection: still draining
    let new = e
        .create("a", cfg(10, 60_000.0, 10, 0.8), FlowPolicy::block(), false)
        .unwrap();
    e.get(new).unwrap().push(3, 0.5, None, 0.0).unwrap();
    let b = e
        .create("b", cfg(10, 60_000.0, 10, 0.8), FlowPolicy::block(), false)
        .unwrap();
    e.get(b).unwrap().push(4, 0.5, None, 0.0).unwrap();
    for t in [e.snapshot(1.0), e.tick(1.0, f64::NAN)] {
        assert_eq!(t.connections.len(), 2);
        assert_eq!(t.totals.connections, 2);
        assert_eq!(t.connections["a"].messages_in, 1, "the newest holds the id");
        assert_eq!(t.totals.messages_in, 2);
        assert_eq!(t.totals.buffer_size, 2);
    }
    assert_eq!(e.find("a").unwrap().messages_in(), 1);
    // Once the newer one is removed, the id shows the one still draining.
    e.remove(new, 2.0).unwrap();
    assert_eq!(e.snapshot(3.0).connections["a"].messages_in, 2);
}

#[test]
fn shutting_releases_a_pause_and_ignores_later_ones() {
    let mut c: Connection<u64> = Connection::new(
        "a",
        cfg(10, 0.0, 10, 0.8),
        FlowPolicy::block(),
        5000.0,
        false,
    );
    c.push(1, 0.5, None, 0.0).unwrap();
    c.pause();
    assert_eq!(c.take_batch(1.0, true), None, "paused");
    c.close();
    assert_eq!(
        c.take_batch(1.0, true),
        None,
        "writer.close() keeps the pause"
    );
    c.shut();
    assert!(!c.is_paused());
    c.pause();
    assert!(!c.is_paused(), "a shut connection only drains");
    assert_eq!(c.take_batch(2.0, true), Some(vec![1]));
    assert_eq!(c.lifecycle(), Lifecycle::Closing);
}

// ---------------------------------------------------------------------------------------------
// 5. The core's decisions (src/core/admission.rs, src/core/consume.rs), driven with the fake clock
// ---------------------------------------------------------------------------------------------

/// A consumer's life as the bindings drive it: every message's fate is decided by the core
/// (retry at a time, dead-letter, wait for the circuit) and tracked here by id.
#[test]
fn consumer_decisions_settle_every_message_by_id() {
    use stream_engine::core::connection::consume::{Failure, Next};
    use stream_engine::core::recovery::RetryPolicy;

    let mut c: Connection<u64> = Connection::new(
        "a",
        cfg(100, 0.0, 2, 0.8),
        FlowPolicy::block(),
        5000.0,
        false,
    );
    c.set_retry_policy(RetryPolicy {
        retry_attempts: 1,
        retry_delay: 10.0,
        max_retry_delay: 100.0,
        jitter: 0.0,
    });
    c.set_circuit(2, 50.0);
    for id in 0..6u64 {
        assert!(matches!(c.push(id, 0.5, None, 0.0), Ok(Push::Done(_))));
    }
    let (mut delivered, mut dead) = (Vec::new(), Vec::new());
    let mut now = 0.0;
    // Batch [0, 1]: fails, retried at +10, fails again: no attempts left -> dead letters.
    let b = c.consume_take(now, true).unwrap();
    assert_eq!(c.circuit_wait(now), None);
    assert_eq!(
        c.consume_failed(now, Failure::Retryable { random01: 0.3 }),
        Next::Retry { at: 10.0 }
    );
    now = 10.0;
    assert_eq!(c.circuit_wait(now), None);
    assert_eq!(
        c.consume_failed(now, Failure::Retryable { random01: 0.3 }),
        Next::DeadLetter
    );
    assert_eq!(c.consume_dead_letter(now), b.len());
    dead.extend(b);
    // Two failures in a row opened the circuit: the next batch waits until it half-opens.
    assert!(c.take_events().contains(&ConnEvent::Circuit(true)));
    let b = c.consume_take(now, true).unwrap();
    assert_eq!(c.circuit_wait(now), Some(60.0));
    now = 60.0;
    assert_eq!(c.circuit_wait(now), None); // the trial
    c.consume_success(now);
    assert!(c.take_events().contains(&ConnEvent::Circuit(false)));
    delivered.extend(b);
    // A failure the caller judged not retryable is given up at once.
    let b = c.consume_take(now, true).unwrap();
    assert_eq!(c.consume_failed(now, Failure::Fatal), Next::DeadLetter);
    c.consume_dead_letter(now);
    dead.extend(b);
    let m = c.metrics(now);
    assert_eq!(dead, vec![0, 1, 4, 5]);
    assert_eq!(delivered, vec![2, 3]);
    assert_eq!(
        (m.errors, m.retries, m.drops.dead_letter, m.messages_out),
        (3, 1, 4, 2)
    );
    assert_eq!(
        m.messages_in,
        m.messages_out + m.dropped + m.buffer_size as u64
    );
}

/// Holds: the deadline counts from the write's call time, ends with backpressure, and a write
/// past its budget is not held; a full lossless buffer makes writes wait, a closed one refuses.
#[test]
fn admission_decisions_over_a_write_sequence() {
    use stream_engine::core::connection::admission::Admission;

    let policy = FlowPolicy {
        max_wait: Some(30.0),
        ..FlowPolicy::block()
    };
    let mut c: Connection<u64> =
        Connection::new("a", cfg(4, 1000.0, 4, 0.5), policy, 5000.0, false);
    let st = |r: Result<Push<u64>, ConnError>| match r {
        Ok(Push::Done(s)) => s,
        Ok(Push::Pending(_)) => status::PENDING,
        Err(_) => status::CLOSED,
    };
    let s = st(c.push(0, 0.5, None, 0.0));
    assert_eq!(c.admit(s, 0.0, 0.0), Admission::Accept);
    let s = st(c.push(1, 0.5, None, 5.0));
    assert_eq!(c.admit(s, 4.0, 5.0), Admission::Hold { until: 34.0 });
    let s = st(c.push(2, 0.5, None, 40.0));
    assert_eq!(c.admit(s, 1.0, 40.0), Admission::Accept, "past its budget");
    st(c.push(3, 0.5, None, 41.0));
    let s = st(c.push(4, 0.5, None, 42.0));
    assert_eq!(c.admit(s, 42.0, 42.0), Admission::WaitForRoom);
    assert_eq!(c.take_batch(43.0, true), Some(vec![0, 1, 2, 3]));
    assert_eq!(
        c.hold_until(42.0, 43.0),
        None,
        "backpressure ended with the delivery"
    );
    c.close();
    let s = st(c.push(4, 0.5, None, 44.0));
    assert_eq!(c.admit(s, 44.0, 44.0), Admission::Refuse);
}
