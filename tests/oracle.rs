//! The per-message oracle of the core `Engine` (issue 8, "What to build" 3), with proptest.
//!
//! Random operation sequences over several connections of one [`Engine`] at once, each
//! connection under a random flow policy (block, priority, oldest, newest, with or without
//! conflation, adaptive), on a fake clock: pushes (single, keyed, `push_many`), user drops,
//! `take_batch`, `consume_take` / success / failure / dead letter, pause and resume, close,
//! cancel, `remove` and re-creating the id (which may reuse the handle). Messages are `u64` ids;
//! each id is tracked to exactly one outcome: delivered by the connection instance it was pushed
//! to, dropped with a reason the policy allows (`take_dropped`), dead-lettered, or refused
//! (`Pending` hands it back, `Closed` refuses it). Per connection, the counters must match the
//! ids seen. `tests/core_flow.rs` checks the exact victims and batches of one connection; this
//! file checks identity and routing across connections and lifecycles.
//!
//! Scale: `ORACLE_SEEDS` seeds (default 20) × `ORACLE_OPS` operations per seed (default 5,000)
//! in cases of at most `ORACLE_CASE_OPS` steps (default 500). `npm run oracle` runs the long form.

// proptest is a native-only dev-dependency (see Cargo.toml).
#![cfg(not(target_arch = "wasm32"))]

use std::collections::HashMap;

use proptest::prelude::*;
use proptest::test_runner::{Config as PtConfig, RngAlgorithm, TestError, TestRng, TestRunner};
use stream_engine::core::adaptive::AdaptiveConfig;
use stream_engine::core::config::StreamConfig;
use stream_engine::core::connection::{ConnError, DropReason, DropRule, FlowPolicy, Push};
use stream_engine::core::engine::Engine;

/// The engine slot of a handle: its low bits (the generation sits above them).
fn slot_of(h: u32) -> u32 {
    h & ((1 << stream_engine::core::engine::INDEX_BITS) - 1)
}

const SLOTS: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Policy {
    Block,
    Priority,
    Oldest,
    Newest,
    Adaptive,
}

#[derive(Debug, Clone, Copy)]
struct ConnSpec {
    policy: Policy,
    conflate: bool,
    buffer_size: usize,
    max_batch_size: usize,
    batch_timeout: f64,
}

impl ConnSpec {
    fn flow(&self) -> FlowPolicy {
        let rule = match self.policy {
            Policy::Block => {
                return FlowPolicy {
                    conflate: self.conflate,
                    ..FlowPolicy::block()
                }
            }
            Policy::Priority | Policy::Adaptive => DropRule::Priority,
            Policy::Oldest => DropRule::Oldest,
            Policy::Newest => DropRule::Newest,
        };
        FlowPolicy {
            rule,
            drop_threshold: 0.9,
            max_wait: Some(10.0),
            adaptive: (self.policy == Policy::Adaptive).then(AdaptiveConfig::default),
            conflate: self.conflate,
        }
    }
    fn cfg(&self) -> StreamConfig {
        StreamConfig {
            buffer_size: self.buffer_size,
            max_batch_size: self.max_batch_size,
            batch_timeout: self.batch_timeout,
            backpressure_threshold: 0.8,
            ..StreamConfig::default()
        }
    }
    /// Drop reasons this policy may give (dead letters are tracked separately).
    fn allows(&self, r: DropReason) -> bool {
        match r {
            DropReason::Conflated => self.conflate,
            DropReason::DeadLetter => false,
            DropReason::Priority => matches!(self.policy, Policy::Priority | Policy::Adaptive),
            DropReason::Oldest => self.policy == Policy::Oldest,
            DropReason::Newest => self.policy == Policy::Newest,
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Push {
        slot: usize,
        p: f64,
        key: Option<u8>,
    },
    PushMany {
        slot: usize,
        n: usize,
        p: f64,
    },
    /// A user handler (`shouldDropMessage`) dropping an incoming non-critical message.
    DropIncoming {
        slot: usize,
        p: f64,
    },
    Take {
        slot: usize,
        force: bool,
    },
    ConsumeTake {
        slot: usize,
        force: bool,
    },
    Success {
        slot: usize,
    },
    Failure {
        slot: usize,
        retry: bool,
    },
    DeadLetter {
        slot: usize,
    },
    Pause {
        slot: usize,
    },
    Resume {
        slot: usize,
    },
    Close {
        slot: usize,
    },
    Cancel {
        slot: usize,
    },
    /// Forget the connection (what the bindings do once it has finished) and maybe re-create
    /// the id right away.
    Remove {
        slot: usize,
        recreate: bool,
    },
    Recreate {
        slot: usize,
    },
    /// Use the handle of the slot's previous, removed instance.
    StalePush {
        slot: usize,
    },
    Advance {
        ms: f64,
    },
    Tick,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let slot = 0..SLOTS;
    let p = prop_oneof![
        Just(1.0),
        Just(0.75),
        Just(0.5),
        Just(0.25),
        Just(f64::NAN),
        0.0..1.0f64
    ];
    prop_oneof![
        40 => (slot.clone(), p.clone(), prop::option::weighted(0.4, 0u8..4)).prop_map(|(slot, p, key)| Op::Push { slot, p, key }),
        10 => (slot.clone(), 1usize..12, p.clone()).prop_map(|(slot, n, p)| Op::PushMany { slot, n, p }),
        3 => (slot.clone(), 0.0..0.99f64).prop_map(|(slot, p)| Op::DropIncoming { slot, p }),
        20 => (slot.clone(), any::<bool>()).prop_map(|(slot, force)| Op::Take { slot, force }),
        8 => (slot.clone(), any::<bool>()).prop_map(|(slot, force)| Op::ConsumeTake { slot, force }),
        5 => slot.clone().prop_map(|slot| Op::Success { slot }),
        4 => (slot.clone(), any::<bool>()).prop_map(|(slot, retry)| Op::Failure { slot, retry }),
        2 => slot.clone().prop_map(|slot| Op::DeadLetter { slot }),
        2 => slot.clone().prop_map(|slot| Op::Pause { slot }),
        3 => slot.clone().prop_map(|slot| Op::Resume { slot }),
        1 => slot.clone().prop_map(|slot| Op::Close { slot }),
        1 => slot.clone().prop_map(|slot| Op::Cancel { slot }),
        2 => (slot.clone(), any::<bool>()).prop_map(|(slot, recreate)| Op::Remove { slot, recreate }),
        2 => slot.clone().prop_map(|slot| Op::Recreate { slot }),
        2 => slot.clone().prop_map(|slot| Op::StalePush { slot }),
        8 => prop_oneof![Just(0.0), Just(1.0), 0.0..20.0f64, 50.0..3000.0f64].prop_map(|ms| Op::Advance { ms }),
        1 => Just(Op::Tick),
    ]
}

fn spec_strategy() -> impl Strategy<Value = ConnSpec> {
    (
        prop::sample::select(vec![
            Policy::Block,
            Policy::Priority,
            Policy::Oldest,
            Policy::Newest,
            Policy::Adaptive,
        ]),
        any::<bool>(),
        prop::sample::select(vec![1usize, 2, 4, 16]),
        prop::sample::select(vec![1usize, 3, 10]),
        prop::sample::select(vec![0.0, 5.0, 16.0]),
    )
        .prop_map(
            |(policy, conflate, buffer_size, max_batch_size, batch_timeout)| ConnSpec {
                policy,
                conflate,
                buffer_size,
                max_batch_size,
                batch_timeout,
            },
        )
}

/// A case: for each slot the specs of its successive instances (cycled), and the operations.
type Case = (Vec<Vec<ConnSpec>>, Vec<Op>);

fn case_strategy(steps: usize) -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(prop::collection::vec(spec_strategy(), 1..4), SLOTS..=SLOTS),
        prop::collection::vec(op_strategy(), 1..=steps),
    )
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fate {
    Held,
    Inflight,
    Delivered,
    Dropped(DropReason),
    Dead,
}

/// One connection instance in the model.
struct Inst {
    name: String,
    spec: ConnSpec,
    handle: u32,
    removed: bool,
    closed: bool,
    inflight: Vec<u64>,
    // What the oracle saw, to compare with the connection's counters.
    accepted: u64,
    delivered: u64,
    dropped: u64,
}

#[derive(Default, Debug, Clone, Copy)]
struct Seen {
    ops: u64,
    delivered: u64,
    dropped: u64,
    dead: u64,
    refused: u64,
    instances: u64,
    handle_reuse: u64,
}

struct Model {
    engine: Engine<u64>,
    specs: Vec<Vec<ConnSpec>>,
    insts: Vec<Inst>,
    /// slot -> index into `insts` of its current instance, and of the previous one.
    current: [usize; SLOTS],
    previous: [Option<usize>; SLOTS],
    gens: [usize; SLOTS],
    /// id -> (instance index, fate).
    fate: HashMap<u64, (usize, Fate)>,
    next_id: u64,
    now: f64,
    seen: Seen,
}

impl Model {
    fn new(specs: Vec<Vec<ConnSpec>>) -> Self {
        let mut m = Model {
            engine: Engine::new(StreamConfig::default(), 1000.0),
            specs,
            insts: Vec::new(),
            current: [0; SLOTS],
            previous: [None; SLOTS],
            gens: [0; SLOTS],
            fate: HashMap::new(),
            next_id: 0,
            now: 0.0,
            seen: Seen::default(),
        };
        for s in 0..SLOTS {
            m.create(s);
        }
        m
    }

    fn create(&mut self, slot: usize) -> bool {
        let spec = self.specs[slot][self.gens[slot] % self.specs[slot].len()];
        let id = format!("slot{slot}");
        let Ok(h) = self.engine.create(&id, spec.cfg(), spec.flow(), true) else {
            return false; // the id is still open
        };
        // A removed connection's slot taken again (the handle itself differs: its generation).
        if self
            .insts
            .iter()
            .any(|i| i.removed && slot_of(i.handle) == slot_of(h))
        {
            self.seen.handle_reuse += 1;
        }
        self.engine.get(h).unwrap().set_circuit(2, 50.0);
        let name = format!("{id}#{}", self.gens[slot]);
        self.gens[slot] += 1;
        self.insts.push(Inst {
            name,
            spec,
            handle: h,
            removed: false,
            closed: false,
            inflight: Vec::new(),
            accepted: 0,
            delivered: 0,
            dropped: 0,
        });
        self.previous[slot] = Some(self.current[slot]).filter(|_| self.insts.len() > SLOTS);
        self.current[slot] = self.insts.len() - 1;
        self.seen.instances += 1;
        true
    }

    fn new_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// An accepted id enters the instance.
    fn accept(&mut self, ix: usize, id: u64) {
        assert!(
            self.fate.insert(id, (ix, Fate::Held)).is_none(),
            "id {id} accepted twice"
        );
        self.insts[ix].accepted += 1;
    }

    /// Applies `take_dropped` of instance `ix`.
    fn collect_drops(&mut self, ix: usize) {
        let h = self.insts[ix].handle;
        let dropped = self.engine.get(h).unwrap().take_dropped();
        for (id, r) in dropped {
            let inst = &self.insts[ix];
            assert!(
                inst.spec.allows(r),
                "{}: {id} dropped with {r:?} under {:?}",
                inst.name,
                inst.spec
            );
            let f = self
                .fate
                .get_mut(&id)
                .unwrap_or_else(|| panic!("{}: dropped unknown id {id}", inst.name));
            assert_eq!(
                f.0,
                ix,
                "id {id} of {} dropped by {}",
                self_name(&self.insts, f.0),
                inst.name
            );
            assert_eq!(f.1, Fate::Held, "id {id} dropped ({r:?}) but was {:?}", f.1);
            f.1 = Fate::Dropped(r);
            self.insts[ix].dropped += 1;
            self.seen.dropped += 1;
        }
    }

    fn delivered(&mut self, ix: usize, ids: &[u64], from: Fate) {
        assert!(!ids.is_empty(), "{}: empty batch", self.insts[ix].name);
        for &id in ids {
            let f = self
                .fate
                .get_mut(&id)
                .unwrap_or_else(|| panic!("delivered unknown id {id}"));
            assert_eq!(
                f.0,
                ix,
                "id {id} of {} delivered by {}",
                self_name(&self.insts, f.0),
                self.insts[ix].name
            );
            assert_eq!(f.1, from, "id {id} delivered but was {:?}", f.1);
            f.1 = if from == Fate::Held
                && !self.insts[ix].inflight.is_empty()
                && self.insts[ix].inflight.contains(&id)
            {
                Fate::Inflight
            } else {
                Fate::Delivered
            };
        }
    }

    fn step(&mut self, op: &Op) {
        self.seen.ops += 1;
        match *op {
            Op::Advance { ms } => self.now += ms,
            Op::Tick => {
                let t = self.engine.tick(self.now, f64::NAN);
                // One connection per id (the newest), like the `connections` list (issue 8
                // item 11): a closed one still draining under a re-created id is not counted.
                let mut ids: Vec<&str> = self
                    .insts
                    .iter()
                    .filter(|i| !i.removed)
                    .map(|i| i.name.split('#').next().unwrap_or(""))
                    .collect();
                ids.sort_unstable();
                ids.dedup();
                assert_eq!(t.totals.connections, ids.len(), "totals.connections");
                assert_eq!(t.connections.len(), ids.len(), "connections listed");
            }
            Op::StalePush { slot } => {
                let Some(prev) = self.previous[slot] else {
                    return;
                };
                if !self.insts[prev].removed {
                    return;
                }
                let h = self.insts[prev].handle;
                let id = self.new_id();
                // A removed connection's handle must not reach any connection.
                if let Some(c) = self.engine.get(h) {
                    let r = c.push(id, 0.5, None, self.now);
                    panic!(
                        "the handle of removed {} reached connection {} (push -> {r:?})",
                        self.insts[prev].name,
                        c.id()
                    );
                }
                self.seen.refused += 1;
            }
            Op::Recreate { slot } => {
                let cur = self.current[slot];
                // A closed connection still draining does not hold its id.
                if self.insts[cur].removed || self.insts[cur].closed {
                    self.create(slot);
                }
            }
            Op::Remove { slot, recreate } => {
                let ix = self.current[slot];
                let inst = &self.insts[ix];
                if inst.removed {
                    return;
                }
                let h = inst.handle;
                // The bindings forget a connection once it is finished: closed and drained, or
                // cancelled with nothing in flight.
                let held = self.engine.get(h).unwrap().held();
                if !(inst.closed && held == 0) {
                    return;
                }
                self.check_counters(ix);
                let (c, _) = self.engine.remove(h, self.now).expect("live handle");
                assert_eq!(c.held(), 0);
                self.insts[ix].removed = true;
                if recreate {
                    self.create(slot);
                }
            }
            _ => self.conn_op(op),
        }
    }

    fn conn_op(&mut self, op: &Op) {
        let slot = match *op {
            Op::Push { slot, .. }
            | Op::PushMany { slot, .. }
            | Op::DropIncoming { slot, .. }
            | Op::Take { slot, .. }
            | Op::ConsumeTake { slot, .. }
            | Op::Success { slot }
            | Op::Failure { slot, .. }
            | Op::DeadLetter { slot }
            | Op::Pause { slot }
            | Op::Resume { slot }
            | Op::Close { slot }
            | Op::Cancel { slot } => slot,
            _ => unreachable!(),
        };
        let ix = self.current[slot];
        if self.insts[ix].removed {
            return;
        }
        let h = self.insts[ix].handle;
        let now = self.now;
        let closed = self.insts[ix].closed;
        match *op {
            Op::Push { p, key, .. } => {
                let id = self.new_id();
                let k = key.map(|k| format!("k{k}"));
                let c = self.engine.get(h).unwrap();
                match c.push(id, p, k.as_deref(), now) {
                    Err(ConnError::Closed) => {
                        assert!(
                            closed,
                            "{}: push refused as closed while open",
                            self.insts[ix].name
                        );
                        self.seen.refused += 1;
                    }
                    Ok(Push::Pending(back)) => {
                        assert!(!closed);
                        assert_eq!(back, id, "Pending hands back the pushed message");
                        self.seen.refused += 1;
                    }
                    Ok(Push::Done(_)) => {
                        assert!(!closed, "{}: push taken after close", self.insts[ix].name);
                        self.accept(ix, id);
                        self.collect_drops(ix);
                    }
                }
            }
            Op::PushMany { n, p, .. } => {
                let ids: Vec<u64> = (0..n).map(|_| self.new_id()).collect();
                let c = self.engine.get(h).unwrap();
                match c.push_many(ids.iter().map(|&id| (id, p)), now) {
                    Err(ConnError::Closed) => {
                        assert!(closed);
                        self.seen.refused += n as u64;
                    }
                    Ok((k, _)) => {
                        assert!(!closed && k <= n);
                        // The first k were taken, in order; the rest stay with the caller.
                        for &id in &ids[..k] {
                            self.accept(ix, id);
                        }
                        self.seen.refused += (n - k) as u64;
                        self.collect_drops(ix);
                    }
                }
            }
            Op::DropIncoming { p, .. } => {
                // Only a user handler calls this, and a handler never comes with the block rule.
                if self.insts[ix].spec.policy == Policy::Block {
                    return;
                }
                let id = self.new_id();
                let c = self.engine.get(h).unwrap();
                match c.drop_incoming(id, p, DropReason::Priority, now) {
                    Err(ConnError::Closed) => assert!(closed),
                    Ok(_) => {
                        assert!(!closed);
                        self.accept(ix, id);
                        let d = self.engine.get(h).unwrap().take_dropped();
                        assert_eq!(
                            d,
                            vec![(id, DropReason::Priority)],
                            "a user drop drops exactly the incoming message"
                        );
                        self.fate.get_mut(&id).unwrap().1 = Fate::Dropped(DropReason::Priority);
                        self.insts[ix].dropped += 1;
                        self.seen.dropped += 1;
                    }
                }
            }
            Op::Take { force, .. } => {
                let c = self.engine.get(h).unwrap();
                if let Some(batch) = c.take_batch(now, force) {
                    self.delivered(ix, &batch, Fate::Held);
                    self.insts[ix].delivered += batch.len() as u64;
                    self.seen.delivered += batch.len() as u64;
                }
                self.collect_drops(ix);
            }
            Op::ConsumeTake { force, .. } => {
                let c = self.engine.get(h).unwrap();
                if let Some(batch) = c.consume_take(now, force) {
                    assert!(
                        self.insts[ix].inflight.is_empty(),
                        "a second batch in flight"
                    );
                    self.insts[ix].inflight = batch.clone();
                    self.delivered(ix, &batch, Fate::Held);
                }
            }
            Op::Success { .. } => {
                if self.insts[ix].inflight.is_empty() {
                    return;
                }
                self.engine.get(h).unwrap().consume_success(now);
                for id in std::mem::take(&mut self.insts[ix].inflight) {
                    let f = self.fate.get_mut(&id).unwrap();
                    assert_eq!(f.1, Fate::Inflight);
                    f.1 = Fate::Delivered;
                    self.insts[ix].delivered += 1;
                    self.seen.delivered += 1;
                }
                self.collect_drops(ix);
            }
            Op::Failure { retry, .. } => {
                if !self.insts[ix].inflight.is_empty() {
                    self.engine.get(h).unwrap().consume_failure(now, retry);
                }
            }
            Op::DeadLetter { .. } => {
                if self.insts[ix].inflight.is_empty() {
                    return;
                }
                let n = self.engine.get(h).unwrap().consume_dead_letter(now);
                assert_eq!(n, self.insts[ix].inflight.len());
                let ids = std::mem::take(&mut self.insts[ix].inflight);
                self.dead(ix, ids, Fate::Inflight);
            }
            Op::Pause { .. } => self.engine.get(h).unwrap().pause(),
            Op::Resume { .. } => self.engine.get(h).unwrap().resume(),
            Op::Close { .. } => {
                self.engine.get(h).unwrap().close();
                self.insts[ix].closed = true;
            }
            Op::Cancel { .. } => {
                let items = self.engine.get(h).unwrap().cancel(now);
                self.insts[ix].closed = true;
                self.dead(ix, items, Fate::Held);
            }
            _ => unreachable!(),
        }
    }

    fn dead(&mut self, ix: usize, ids: Vec<u64>, from: Fate) {
        for id in ids {
            let f = self
                .fate
                .get_mut(&id)
                .unwrap_or_else(|| panic!("dead-lettered unknown id {id}"));
            assert_eq!(
                f.0,
                ix,
                "id {id} of {} dead-lettered by {}",
                self_name(&self.insts, f.0),
                self.insts[ix].name
            );
            assert_eq!(f.1, from, "id {id} dead-lettered but was {:?}", f.1);
            f.1 = Fate::Dead;
            self.insts[ix].dropped += 1;
            self.seen.dead += 1;
        }
    }

    /// The connection's counters match the ids the oracle saw.
    fn check_counters(&mut self, ix: usize) {
        let inst = &self.insts[ix];
        let c = self.engine.get(inst.handle).unwrap();
        assert_eq!(c.messages_in(), inst.accepted, "{}: messages_in", inst.name);
        assert_eq!(
            c.messages_out(),
            inst.delivered,
            "{}: messages_out",
            inst.name
        );
        assert_eq!(c.dropped(), inst.dropped, "{}: dropped", inst.name);
        assert_eq!(
            c.messages_in(),
            c.messages_out() + c.dropped() + c.held() as u64,
            "{}: identity",
            inst.name
        );
    }

    /// Drains every live connection and checks that each accepted id has exactly one final fate.
    fn finish(&mut self) {
        for ix in 0..self.insts.len() {
            if self.insts[ix].removed {
                continue;
            }
            self.check_counters(ix);
            let h = self.insts[ix].handle;
            self.engine.get(h).unwrap().resume();
            if !self.insts[ix].inflight.is_empty() {
                self.conn_op_at(ix, &Op::Success { slot: 0 });
            }
            while let Some(batch) = self.engine.get(h).unwrap().take_batch(self.now, true) {
                self.delivered(ix, &batch, Fate::Held);
                self.insts[ix].delivered += batch.len() as u64;
                self.seen.delivered += batch.len() as u64;
            }
            assert_eq!(self.engine.get(h).unwrap().held(), 0);
            self.check_counters(ix);
        }
        for (id, (ix, f)) in &self.fate {
            assert!(
                matches!(f, Fate::Delivered | Fate::Dropped(_) | Fate::Dead),
                "id {id} of {} ended {f:?}",
                self.insts[*ix].name
            );
        }
    }

    /// Runs a connection op on instance `ix` whatever the slot's current instance is.
    fn conn_op_at(&mut self, ix: usize, op: &Op) {
        let saved = self.current[0];
        self.current[0] = ix;
        self.conn_op(op);
        self.current[0] = saved;
    }
}

fn self_name(insts: &[Inst], ix: usize) -> &str {
    &insts[ix].name
}

fn env_num(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

fn run_case((specs, ops): &Case) -> Seen {
    let mut m = Model::new(specs.clone());
    for op in ops {
        m.step(op);
    }
    m.finish();
    m.seen
}

#[test]
fn engine_oracle_every_id_has_one_fate_on_its_own_connection() {
    let seeds = env_num("ORACLE_SEEDS").unwrap_or(20).max(1);
    let steps = env_num("ORACLE_CASE_OPS").unwrap_or(500).max(2) as usize;
    let ops = env_num("ORACLE_OPS").unwrap_or(5000);
    // Cases average about steps / 2 operations.
    let cases = env_num("PROPTEST_CASES")
        .unwrap_or_else(|| (2 * ops).div_ceil(steps as u64))
        .max(1) as u32;
    let total = std::cell::RefCell::new(Seen::default());
    for seed in 0..seeds {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&(seed + 0x0AC1E).to_le_bytes());
        let config = PtConfig {
            cases,
            failure_persistence: None,
            max_shrink_iters: 20_000,
            ..PtConfig::default()
        };
        let mut runner =
            TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes));
        let result = runner.run(&case_strategy(steps), |case| {
            let s = run_case(&case);
            let mut t = total.borrow_mut();
            t.ops += s.ops;
            t.delivered += s.delivered;
            t.dropped += s.dropped;
            t.dead += s.dead;
            t.refused += s.refused;
            t.instances += s.instances;
            t.handle_reuse += s.handle_reuse;
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
    let t = total.into_inner();
    if std::env::var_os("ORACLE_STATS").is_some() {
        eprintln!("engine oracle: {t:?}");
    }
    // The sequences reach what the oracle is about.
    assert!(
        t.delivered > 0 && t.dropped > 0 && t.dead > 0 && t.refused > 0,
        "{t:?}"
    );
    assert!(
        t.instances > seeds * cases as u64 * SLOTS as u64,
        "re-created ids: {t:?}"
    );
    assert!(t.handle_reuse > 0, "removed handles are reused: {t:?}");
}
