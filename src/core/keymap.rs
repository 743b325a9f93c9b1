//! The conflation key map of a buffer: key -> handle of the entry holding it.
//!
//! Open addressing with linear probing and backward-shift deletion (no tombstones), in a
//! power-of-two table at most half full (short probe runs: linear probing slows
//! down sharply past that). Each slot keeps its key's hash, so a probe compares
//! strings only on a full hash match, and growing or shifting never rehashes a key. A `HashMap` does the same job; its `hashbrown` code
//! (group probing, rehash in place) was ~3 kB of the engine's `.wasm` (issue 12), this is a
//! fraction of that. Like `HashMap`, the table grows and never shrinks.

use std::hash::BuildHasher;

#[derive(Debug)]
struct Slot {
    hash: u64,
    key: Box<str>,
    value: u64,
}

/// A map from `Box<str>` keys to `u64` values (see the module docs).
#[derive(Debug)]
pub struct KeyMap<S> {
    slots: Vec<Option<Slot>>,
    len: usize,
    hasher: S,
}

impl<S: BuildHasher + Default> Default for KeyMap<S> {
    fn default() -> Self {
        KeyMap {
            slots: Vec::new(),
            len: 0,
            hasher: S::default(),
        }
    }
}

impl<S: BuildHasher> KeyMap<S> {
    /// Keys held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The slot holding `key`, whose hash is `hash` (`Ok`), or the empty slot where it would go
    /// (`Err`). The table must not be empty; it always has an empty slot (load <= 1/2), so the
    /// probe ends.
    fn probe(&self, hash: u64, key: &str) -> Result<usize, usize> {
        let mask = self.slots.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            match &self.slots[i] {
                None => return Err(i),
                Some(s) if s.hash == hash && *s.key == *key => return Ok(i),
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<u64> {
        if self.len == 0 {
            return None;
        }
        let i = self.probe(self.hasher.hash_one(key), key).ok()?;
        self.slots[i].as_ref().map(|s| s.value)
    }

    /// Sets `key` to `value` (an existing key keeps its stored `Box`, like `HashMap::insert`).
    pub fn insert(&mut self, key: Box<str>, value: u64) {
        if 2 * (self.len + 1) > self.slots.len() {
            self.grow();
        }
        let hash = self.hasher.hash_one(&*key);
        match self.probe(hash, &key) {
            Ok(i) => {
                if let Some(s) = &mut self.slots[i] {
                    s.value = value;
                }
            }
            Err(i) => {
                self.slots[i] = Some(Slot { hash, key, value });
                self.len += 1;
            }
        }
    }

    /// Removes `key`; later entries of its probe run shift back so that lookups stay correct
    /// without tombstones.
    pub fn remove(&mut self, key: &str) {
        self.remove_if(key, |_| true);
    }

    /// Removes `key` if its value is `value` (one probe for what `get` then `remove` would do).
    pub fn remove_value(&mut self, key: &str, value: u64) {
        self.remove_if(key, |v| v == value);
    }

    fn remove_if(&mut self, key: &str, pred: impl Fn(u64) -> bool) {
        if self.len == 0 {
            return;
        }
        let Ok(mut hole) = self.probe(self.hasher.hash_one(key), key) else {
            return;
        };
        if !self.slots[hole].as_ref().is_some_and(|s| pred(s.value)) {
            return;
        }
        self.slots[hole] = None;
        self.len -= 1;
        let mask = self.slots.len() - 1;
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let home = match &self.slots[j] {
                None => return,
                Some(s) => s.hash as usize & mask,
            };
            // The entry at j may fill the hole if the hole lies on its probe path (from its
            // home slot to j, cyclically).
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.slots[hole] = self.slots[j].take();
                hole = j;
            }
        }
    }

    fn grow(&mut self) {
        let cap = (2 * self.slots.len()).max(8);
        let old = std::mem::replace(&mut self.slots, (0..cap).map(|_| None).collect());
        let mask = cap - 1;
        for s in old.into_iter().flatten() {
            // Keys are distinct: the first empty slot from the home slot.
            let mut i = s.hash as usize & mask;
            while self.slots[i].is_some() {
                i = (i + 1) & mask;
            }
            self.slots[i] = Some(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::hash::{BuildHasherDefault, Hasher};

    /// A hasher with 3 distinct values, so probe runs are long, wrap around the table's end and
    /// interleave: the backward shift is exercised in every case.
    #[derive(Default)]
    struct Clumpy(u64);
    impl Hasher for Clumpy {
        fn finish(&self) -> u64 {
            (self.0 % 3) * 5 + 6
        }
        fn write(&mut self, bytes: &[u8]) {
            for &b in bytes {
                self.0 = self.0.wrapping_mul(31).wrapping_add(u64::from(b));
            }
        }
    }

    fn against_model<S: BuildHasher + Default>() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut rnd = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let mut m: KeyMap<S> = KeyMap::default();
        let mut model: HashMap<String, u64> = HashMap::new();
        for step in 0..10_000u64 {
            // Few distinct keys at a time, drifting, so the map grows, fills and empties.
            let key = format!("k{}", rnd(40) + step / 200);
            let r = rnd(6);
            if r == 0 {
                m.remove(&key);
                model.remove(&key);
            } else if r == 1 {
                // Only when the value matches (half the time it will not).
                let v = model.get(&key).copied().unwrap_or(0) + rnd(2);
                m.remove_value(&key, v);
                if model.get(&key) == Some(&v) {
                    model.remove(&key);
                }
            } else if r == 2 {
                let v = model.get(&key).copied().unwrap_or(0);
                m.remove_value(&key, v);
                model.remove(&key);
            } else {
                m.insert(key.clone().into(), step);
                model.insert(key.clone(), step);
            }
            assert_eq!(m.len(), model.len(), "step {step}");
            for probe in 0..45 {
                let k = format!("k{}", probe + step / 200);
                assert_eq!(m.get(&k), model.get(&k).copied(), "step {step} key {k}");
            }
        }
    }

    #[test]
    fn matches_a_hash_map_with_a_good_hasher() {
        against_model::<std::collections::hash_map::RandomState>();
    }

    #[test]
    fn matches_a_hash_map_when_hashes_collide_and_wrap() {
        against_model::<BuildHasherDefault<Clumpy>>();
    }
}
