//! The bounded message queue of a connection.
//!
//! A FIFO that can also give up an entry from the middle: the lowest-priority one (for priority
//! dropping), the oldest non-critical one, or the one holding a conflation key. Removal leaves a
//! tombstone so that sequence numbers keep their order; tombstones are compacted away when they
//! outnumber live entries, so memory stays proportional to what is held.
//!
//! The priority index and the key map exist only when the connection's policy needs them, so the
//! lossless default path is a plain `VecDeque` push and pop.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use super::keymap::KeyMap;
use super::priority::is_critical;

/// The key map's hasher. In WebAssembly the standard `RandomState` has no random source (its
/// SipHash keys are the same constants in every instance), so it buys no flooding resistance
/// there and costs 1.2 kB of `.wasm`: FNV-1a instead. Native builds keep `RandomState`.
#[cfg(target_arch = "wasm32")]
type KeyHasher = std::hash::BuildHasherDefault<Fnv>;
#[cfg(not(target_arch = "wasm32"))]
type KeyHasher = std::collections::hash_map::RandomState;

/// 64-bit FNV-1a (see [`KeyHasher`]).
#[cfg(target_arch = "wasm32")]
#[derive(Default)]
struct Fnv(u64);

#[cfg(target_arch = "wasm32")]
impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// One buffered message and what the engine knows of it.
#[derive(Debug)]
pub struct Entry<T> {
    /// The message itself; opaque to the engine.
    pub item: T,
    /// Priority in [0, 1].
    pub priority: f64,
    /// When the engine accepted it (ms); latency is measured from here.
    pub accepted_at: f64,
    /// Conflation key, when conflation is on and the message had one.
    pub key: Option<Box<str>>,
}

#[derive(Debug)]
struct Slot<T> {
    seq: u64,
    entry: Option<Entry<T>>,
}

/// Handle of a buffered entry, valid until that entry leaves the buffer.
pub type Seq = u64;

/// Bounded-by-the-caller FIFO with optional priority index and conflation keys.
///
/// The buffer itself does not enforce a capacity: the connection decides what to accept, drop or
/// refuse, and the buffer provides the operations that decision needs in `O(log n)`.
#[derive(Debug)]
pub struct Buffer<T> {
    slots: VecDeque<Slot<T>>,
    live: usize,
    next_seq: u64,
    /// Non-critical entries as a min-heap of (priority bits, seq): the top is the lowest
    /// priority, oldest among equals. Priorities are in [0, 1], where `f64::to_bits` preserves
    /// order. A heap, not a `BTreeSet` (issue 12: the B-tree's node code was ~6 kB of `.wasm`):
    /// entries that leave the buffer stay in the heap as stale pairs, recognised by
    /// `is_indexed` and dropped when they reach the top (the top is kept valid after
    /// every change) or when stale pairs outnumber live ones (rebuild, amortised `O(1)`).
    index: Option<BinaryHeap<Reverse<(u64, u64)>>>,
    keys: Option<KeyMap<KeyHasher>>,
}

impl<T> Buffer<T> {
    /// A buffer; `priority_index` enables [`Buffer::lowest`], `keyed` enables conflation lookups.
    pub fn new(priority_index: bool, keyed: bool) -> Self {
        Buffer {
            slots: VecDeque::new(),
            live: 0,
            next_seq: 0,
            index: priority_index.then(BinaryHeap::new),
            keys: keyed.then(KeyMap::default),
        }
    }

    /// Messages held.
    #[inline]
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether nothing is held.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Appends an entry and returns its handle.
    pub fn push(&mut self, entry: Entry<T>) -> Seq {
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some(ix) = &mut self.index {
            if !is_critical(entry.priority) {
                ix.push(Reverse((entry.priority.to_bits(), seq)));
            }
        }
        if let (Some(keys), Some(k)) = (&mut self.keys, &entry.key) {
            keys.insert(k.clone(), seq);
        }
        self.slots.push_back(Slot {
            seq,
            entry: Some(entry),
        });
        self.live += 1;
        seq
    }

    /// Removes and returns the oldest entry.
    pub fn pop_front(&mut self) -> Option<Entry<T>> {
        while let Some(slot) = self.slots.pop_front() {
            if let Some(e) = slot.entry {
                self.live -= 1;
                self.unindex(slot.seq, &e);
                // Keep the front live, so tombstones never outlast the entries before them.
                while matches!(self.slots.front(), Some(s) if s.entry.is_none()) {
                    self.slots.pop_front();
                }
                if self.slots.len() > 2 * self.live + 32 {
                    self.slots.retain(|s| s.entry.is_some());
                }
                self.tidy_index();
                return Some(e);
            }
        }
        None
    }

    /// Acceptance times of up to `max` entries spread evenly over the queue, oldest first, in
    /// time independent of the queue's length.
    pub fn sample_accepted_times(&self, max: usize) -> Vec<f64> {
        let step = self.slots.len().div_ceil(max.max(1)).max(1);
        let mut out = Vec::with_capacity(max.min(self.live));
        let mut i = 0;
        while i < self.slots.len() && out.len() < max {
            if let Some(e) = &self.slots[i].entry {
                out.push(e.accepted_at);
            }
            i += step;
        }
        if out.is_empty() {
            if let Some(t) = self.front_accepted_at() {
                out.push(t);
            }
        }
        out
    }

    /// Acceptance time of the oldest entry: batches are timed from it.
    pub fn front_accepted_at(&self) -> Option<f64> {
        self.slots
            .iter()
            .find_map(|s| s.entry.as_ref().map(|e| e.accepted_at))
    }

    /// The lowest-priority non-critical entry (oldest among equals), as (priority, handle).
    /// `None` without a priority index or when only critical entries are held.
    pub fn lowest(&self) -> Option<(f64, Seq)> {
        self.index
            .as_ref()?
            .peek()
            .map(|&Reverse((bits, seq))| (f64::from_bits(bits), seq))
    }

    /// Whether the index pair (`bits`, `seq`) stands for a held entry: its seq is live,
    /// non-critical, with that priority. A held entry has exactly one such pair (see `replace`).
    fn is_indexed(&self, bits: u64, seq: Seq) -> bool {
        matches!(
            self.position(seq).and_then(|p| self.slots[p].entry.as_ref()),
            Some(e) if !is_critical(e.priority) && e.priority.to_bits() == bits
        )
    }

    /// Restores the index's invariants after an entry left or changed: drops stale pairs from
    /// the top, and rebuilds the heap from the held entries when stale pairs outnumber live ones,
    /// so memory stays proportional to what is held.
    fn tidy_index(&mut self) {
        let Some(ix) = &mut self.index else { return };
        if ix.len() > 2 * self.live + 32 {
            // Refilled by pushes (no `BinaryHeap::from`: its heapify is more `.wasm`), in the
            // same allocation.
            ix.clear();
            for s in &self.slots {
                if let Some(e) = &s.entry {
                    if !is_critical(e.priority) {
                        ix.push(Reverse((e.priority.to_bits(), s.seq)));
                    }
                }
            }
            return;
        }
        while let Some(&Reverse((bits, seq))) = self.index.as_ref().and_then(|ix| ix.peek()) {
            if self.is_indexed(bits, seq) {
                break;
            }
            if let Some(ix) = &mut self.index {
                ix.pop();
            }
        }
    }

    /// The oldest non-critical entry.
    pub fn oldest_non_critical(&self) -> Option<(f64, Seq)> {
        self.slots.iter().find_map(|s| match &s.entry {
            Some(e) if !is_critical(e.priority) => Some((e.priority, s.seq)),
            _ => None,
        })
    }

    /// The handle of the entry holding conflation key `key`.
    pub fn find_key(&self, key: &str) -> Option<Seq> {
        self.keys.as_ref()?.get(key)
    }

    fn position(&self, seq: Seq) -> Option<usize> {
        self.slots.binary_search_by_key(&seq, |s| s.seq).ok()
    }

    /// Forgets `e`'s conflation key; its priority pair goes stale and `tidy_index` drops it.
    fn unindex(&mut self, seq: Seq, e: &Entry<T>) {
        if let (Some(keys), Some(k)) = (&mut self.keys, &e.key) {
            keys.remove_value(k, seq);
        }
    }

    /// Removes the entry with handle `seq` from wherever it is.
    pub fn remove(&mut self, seq: Seq) -> Option<Entry<T>> {
        let pos = self.position(seq)?;
        let e = self.slots[pos].entry.take()?;
        self.live -= 1;
        self.unindex(seq, &e);
        // Tombstones at the ends can go at once; inner ones wait for compaction.
        while matches!(self.slots.back(), Some(s) if s.entry.is_none()) {
            self.slots.pop_back();
        }
        while matches!(self.slots.front(), Some(s) if s.entry.is_none()) {
            self.slots.pop_front();
        }
        if self.slots.len() > 2 * self.live + 32 {
            self.slots.retain(|s| s.entry.is_some());
        }
        self.tidy_index();
        Some(e)
    }

    /// Puts a new message in place of the entry `seq` (conflation: latest value wins, keeping the
    /// older entry's place in line). Returns the replaced entry, or gives `new` back if `seq`
    /// is not held.
    pub fn replace(&mut self, seq: Seq, new: Entry<T>) -> Result<Entry<T>, Entry<T>> {
        let Some(pos) = self.position(seq) else {
            return Err(new);
        };
        let Some(old) = self.slots[pos].entry.take() else {
            return Err(new);
        };
        self.unindex(seq, &old);
        if let Some(ix) = &mut self.index {
            // An unchanged priority keeps its (still valid) pair: one pair per held entry.
            let same =
                !is_critical(old.priority) && old.priority.to_bits() == new.priority.to_bits();
            if !is_critical(new.priority) && !same {
                ix.push(Reverse((new.priority.to_bits(), seq)));
            }
        }
        if let (Some(keys), Some(k)) = (&mut self.keys, &new.key) {
            keys.insert(k.clone(), seq);
        }
        self.slots[pos].entry = Some(new);
        self.tidy_index();
        Ok(old)
    }

    /// Removes everything, oldest first.
    pub fn drain_all(&mut self) -> Vec<Entry<T>> {
        let mut out = Vec::with_capacity(self.live);
        while let Some(e) = self.pop_front() {
            out.push(e);
        }
        out
    }

    /// Slots allocated, live or tombstone: what memory the buffer really holds.
    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(item: u32, p: f64) -> Entry<u32> {
        Entry {
            item,
            priority: p,
            accepted_at: item as f64,
            key: None,
        }
    }

    #[test]
    fn fifo_order() {
        let mut b = Buffer::new(false, false);
        for i in 0..5 {
            b.push(e(i, 0.5));
        }
        assert_eq!(b.front_accepted_at(), Some(0.0));
        let got: Vec<u32> = std::iter::from_fn(|| b.pop_front().map(|x| x.item)).collect();
        assert_eq!(got, vec![0, 1, 2, 3, 4]);
        assert!(b.is_empty());
    }

    #[test]
    fn lowest_is_lowest_priority_then_oldest_and_skips_critical() {
        let mut b = Buffer::new(true, false);
        b.push(e(0, 1.0));
        let s1 = b.push(e(1, 0.25));
        b.push(e(2, 0.25));
        b.push(e(3, 0.75));
        assert_eq!(b.lowest(), Some((0.25, s1)));
        b.remove(s1);
        assert_eq!(b.lowest().map(|x| x.0), Some(0.25));
        let all: Vec<u32> = b.drain_all().into_iter().map(|x| x.item).collect();
        assert_eq!(all, vec![0, 2, 3]);
        let mut c = Buffer::new(true, false);
        c.push(e(9, 1.0));
        assert_eq!(c.lowest(), None);
        assert_eq!(c.oldest_non_critical(), None);
    }

    #[test]
    fn conflation_replaces_in_place() {
        let mut b = Buffer::new(false, true);
        let k = |s: &str| Some(Box::<str>::from(s));
        b.push(Entry {
            item: 1,
            priority: 0.5,
            accepted_at: 0.0,
            key: k("a"),
        });
        b.push(Entry {
            item: 2,
            priority: 0.5,
            accepted_at: 0.0,
            key: k("b"),
        });
        let seq = b.find_key("a").unwrap();
        let old = b
            .replace(
                seq,
                Entry {
                    item: 3,
                    priority: 0.5,
                    accepted_at: 1.0,
                    key: k("a"),
                },
            )
            .ok()
            .unwrap();
        assert_eq!(old.item, 1);
        assert_eq!(b.len(), 2);
        assert_eq!(b.pop_front().unwrap().item, 3);
        assert_eq!(b.find_key("a"), None);
        assert!(b.find_key("b").is_some());
    }

    #[test]
    fn tombstones_are_compacted() {
        let mut b = Buffer::new(true, false);
        b.push(e(0, 1.0)); // a critical head that never leaves
        for i in 1..10_000 {
            let s = b.push(e(i, 0.1));
            b.push(e(i, 0.2));
            b.remove(s);
            if b.len() > 50 {
                let (_, low) = b.lowest().unwrap();
                b.remove(low);
            }
            assert!(
                b.slot_count() <= 2 * b.len() + 33,
                "slots {} live {}",
                b.slot_count(),
                b.len()
            );
        }
    }

    /// The heap index against a brute-force model: after any mix of pushes, pops, removals of
    /// the lowest or of arbitrary entries, and replacements (same or other priority, critical or
    /// not), `lowest()` is the minimum (priority, seq) over held non-critical entries, and the
    /// heap stays proportional to what is held.
    #[test]
    fn lowest_matches_a_brute_force_model() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let prios = [0.0, 0.1, 0.25, 0.5, 0.9, 1.0];
        let mut b = Buffer::new(true, false);
        let mut held: Vec<(Seq, f64)> = Vec::new();
        for step in 0..20_000u32 {
            match rnd(10) {
                0..=3 => {
                    let p = prios[rnd(6) as usize];
                    held.push((b.push(e(step, p)), p));
                }
                4 => {
                    if b.pop_front().is_some() {
                        held.remove(0);
                    }
                }
                5 => {
                    if let Some((_, s)) = b.lowest() {
                        b.remove(s).unwrap();
                        held.retain(|h| h.0 != s);
                    }
                }
                6 | 7 if !held.is_empty() => {
                    let i = rnd(held.len() as u64) as usize;
                    b.remove(held[i].0).unwrap();
                    held.remove(i);
                }
                _ if !held.is_empty() => {
                    let i = rnd(held.len() as u64) as usize;
                    let p = if rnd(2) == 0 {
                        held[i].1
                    } else {
                        prios[rnd(6) as usize]
                    };
                    assert!(b.replace(held[i].0, e(step, p)).is_ok());
                    held[i].1 = p;
                }
                _ => {}
            }
            let want = held
                .iter()
                .filter(|h| !is_critical(h.1))
                .min_by(|a, c| a.1.total_cmp(&c.1).then(a.0.cmp(&c.0)))
                .map(|h| (h.1, h.0));
            assert_eq!(b.lowest(), want, "step {step}");
            assert_eq!(b.len(), held.len());
            let ix = b.index.as_ref().unwrap().len();
            assert!(ix <= 2 * b.len() + 33, "index {ix} live {}", b.len());
        }
    }
}
