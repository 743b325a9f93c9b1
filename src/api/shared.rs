//! The state every handle of one engine shares (behind one mutex), and the follow-up work after
//! a core operation: events to the feed, dropped messages to `on_drop`, wakers to wake.
//!
//! Callbacks and wakers run after the lock is released ([`Effects::run`]), so a callback may
//! use the engine again without deadlocking.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::task::Waker;

use crate::core::config::RecoveryPatch;
use crate::core::connection::{status, ConnEvent, DropReason};
use crate::core::engine::{Engine, Handle};

use super::events::{ConnectionEventKind, Event};
use super::options::{DropFn, DropHandlerRef, Handler, KeyFn, PriorityFn};

/// One connection's state outside the core: wakers, callbacks, lifecycle.
pub(crate) struct Slot<T> {
    pub id: String,
    /// Distinguishes this connection from a later one that reuses its handle.
    pub gen: u64,
    pub reader: Option<Waker>,
    pub writers: Vec<Waker>,
    pub priority: Option<PriorityFn<T>>,
    pub key: Option<KeyFn<T>>,
    pub on_drop: Option<DropFn<T>>,
    /// The user's own handler in force ([`super::DropHandler`]): its priorities and drop
    /// candidates.
    pub custom: Option<DropHandlerRef<T>>,
}

/// One subscriber of the event feed: a bounded queue that loses its oldest events first.
pub(crate) struct Sub {
    pub queue: VecDeque<Event>,
    pub cap: usize,
    pub missed: u64,
    pub waker: Option<Waker>,
}

pub(crate) struct Shared<T> {
    pub engine: Engine<T>,
    pub handler: Handler,
    /// The engine's own handler object, when set instead of `handler`.
    pub custom: Option<DropHandlerRef<T>>,
    /// The engine's error recovery layer.
    pub recovery: RecoveryPatch,
    pub slots: BTreeMap<Handle, Slot<T>>,
    pub next_gen: u64,
    pub subs: BTreeMap<u64, Sub>,
    pub next_sub: u64,
    pub metrics_interval: f64,
    pub next_tick: f64,
}

pub(crate) type SharedRef<T> = Arc<Mutex<Shared<T>>>;

/// Work to do once the lock is released.
pub(crate) struct Effects<T> {
    pub wake: Vec<Waker>,
    pub dropped: Vec<(T, DropReason)>,
    pub on_drop: Option<DropFn<T>>,
}

impl<T> Effects<T> {
    pub fn new() -> Self {
        Effects {
            wake: Vec::new(),
            dropped: Vec::new(),
            on_drop: None,
        }
    }
    /// Wakes and calls back; call with the lock released.
    pub fn run(self) {
        for w in self.wake {
            w.wake();
        }
        if let Some(f) = self.on_drop {
            for (item, why) in self.dropped {
                f(item, why);
            }
        }
    }
}

impl<T> Shared<T> {
    /// The live slot for `(h, gen)`, if the connection still exists.
    pub fn slot(&mut self, h: Handle, gen: u64) -> Option<&mut Slot<T>> {
        self.slots.get_mut(&h).filter(|s| s.gen == gen)
    }

    /// Puts one event on every subscriber's queue (dropping each one's oldest when full).
    pub fn broadcast(&mut self, ev: Event, fx: &mut Effects<T>) {
        for sub in self.subs.values_mut() {
            if sub.queue.len() >= sub.cap {
                sub.queue.pop_front();
                sub.missed += 1;
            }
            sub.queue.push_back(ev.clone());
            if let Some(w) = sub.waker.take() {
                fx.wake.push(w);
            }
        }
    }

    /// Follow-up of a core status: connection events to the feed, dropped messages to
    /// `on_drop`. (Drop summaries are collected when a feed is read: see [`Shared::pump`].)
    pub fn process(&mut self, h: Handle, st: u32, fx: &mut Effects<T>) {
        if st & (status::EVENTS | status::DROPPED) == 0 {
            return;
        }
        let Some(c) = self.engine.get(h) else { return };
        let events = if st & status::EVENTS != 0 {
            c.take_events()
        } else {
            Vec::new()
        };
        if st & status::DROPPED != 0 {
            fx.dropped.extend(c.take_dropped());
        }
        let id = c.id().to_string();
        if fx.on_drop.is_none() {
            fx.on_drop = self.slots.get(&h).and_then(|s| s.on_drop.clone());
        }
        if self.subs.is_empty() {
            return;
        }
        for e in events {
            let ev = match e {
                ConnEvent::Backpressure(active, utilization) => Event::Backpressure {
                    connection_id: id.clone(),
                    active,
                    utilization,
                },
                ConnEvent::Circuit(open) => Event::Connection {
                    connection_id: id.clone(),
                    kind: if open {
                        ConnectionEventKind::CircuitOpened
                    } else {
                        ConnectionEventKind::CircuitClosed
                    },
                },
            };
            self.broadcast(ev, fx);
        }
    }

    /// Collects every connection's drop summary into `Drop` events.
    pub fn pump(&mut self, fx: &mut Effects<T>) {
        let mut evs = Vec::new();
        for (_, c) in self.engine.connections() {
            if let Some(summary) = c.take_drop_summary() {
                evs.push(Event::Drop {
                    connection_id: c.id().to_string(),
                    summary,
                });
            }
        }
        for ev in evs {
            self.broadcast(ev, fx);
        }
    }

    /// Wakes the reader and every waiting writer of a connection.
    pub fn wake_all(&mut self, h: Handle, fx: &mut Effects<T>) {
        if let Some(s) = self.slots.get_mut(&h) {
            fx.wake.extend(s.reader.take());
            fx.wake.append(&mut s.writers);
        }
    }

    /// Wakes every feed subscriber waiting for an event: drops were counted outside a write
    /// (a consumer's dead letters), so their summary should not wait for the next tick.
    pub fn wake_subs(&mut self, fx: &mut Effects<T>) {
        for sub in self.subs.values_mut() {
            if let Some(w) = sub.waker.take() {
                fx.wake.push(w);
            }
        }
    }

    /// Wakes every waiting writer of a connection (room was made or backpressure may be off).
    pub fn wake_writers(&mut self, h: Handle, fx: &mut Effects<T>) {
        if let Some(s) = self.slots.get_mut(&h) {
            fx.wake.append(&mut s.writers);
        }
    }

    /// Forgets a connection whose reader finished or went away.
    pub fn remove(&mut self, h: Handle, now: f64, fx: &mut Effects<T>) {
        self.wake_all(h, fx);
        self.slots.remove(&h);
        // Its last drops still reach the feed.
        let last = self
            .engine
            .get(h)
            .and_then(|c| c.take_drop_summary().map(|s| (c.id().to_string(), s)));
        if let Some((connection_id, summary)) = last {
            self.broadcast(
                Event::Drop {
                    connection_id,
                    summary,
                },
                fx,
            );
        }
        if let Some((_, resolved)) = self.engine.remove(h, now) {
            for r in resolved {
                self.broadcast(Event::Alert(r), fx);
            }
        }
    }
}
