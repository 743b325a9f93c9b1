//! A small sorted map from string keys to values, for the per-connection tables of the metrics
//! tick and the alert tracker.
//!
//! These tables hold one entry per connection (tens, rarely hundreds) and are read in key order.
//! `BTreeMap` does that too, but each of its instantiations brings its node-balancing code into
//! the `.wasm` (issue 12: `BTreeMap` was 8.6% of the file); a sorted `Vec` with binary search is
//! as fast at this size and much smaller.

use std::ops::Index;

use serde::{Serialize, Serializer};

/// A map with `String` keys kept in ascending key order (the order `BTreeMap` iterates in).
///
/// ```
/// use stream_engine::core::smallmap::SmallMap;
/// let mut m = SmallMap::new();
/// m.insert("b".to_string(), 2);
/// m.insert("a".to_string(), 1);
/// assert_eq!(m["a"], 1);
/// assert_eq!(m.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["a", "b"]);
/// assert_eq!(m.remove("a"), Some(1));
/// assert_eq!(m.len(), 1);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SmallMap<V> {
    entries: Vec<(String, V)>,
}

impl<V> Default for SmallMap<V> {
    fn default() -> Self {
        SmallMap {
            entries: Vec::new(),
        }
    }
}

impl<V> SmallMap<V> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    fn find(&self, key: &str) -> Result<usize, usize> {
        self.entries.binary_search_by(|(k, _)| k.as_str().cmp(key))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&V> {
        self.find(key).ok().map(|i| &self.entries[i].1)
    }

    /// The value of `key` for changing, if present.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        match self.find(key) {
            Ok(i) => Some(&mut self.entries[i].1),
            Err(_) => None,
        }
    }

    /// Sets `key` to `value`; returns the previous value.
    pub fn insert(&mut self, key: String, value: V) -> Option<V> {
        match self.find(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.entries[i].1, value)),
            Err(i) => {
                self.entries.insert(i, (key, value));
                None
            }
        }
    }

    /// Removes `key`; returns its value.
    pub fn remove(&mut self, key: &str) -> Option<V> {
        match self.find(key) {
            Ok(i) => Some(self.entries.remove(i).1),
            Err(_) => None,
        }
    }

    /// Entries in ascending key order.
    pub fn iter(&self) -> Iter<'_, V> {
        self.entries.iter().map(|(k, v)| (k, v))
    }
}

/// The iterator of [`SmallMap::iter`].
pub type Iter<'a, V> =
    std::iter::Map<std::slice::Iter<'a, (String, V)>, fn(&'a (String, V)) -> (&'a String, &'a V)>;

impl<'a, V> IntoIterator for &'a SmallMap<V> {
    type Item = (&'a String, &'a V);
    type IntoIter = Iter<'a, V>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<V> Index<&str> for SmallMap<V> {
    type Output = V;
    /// Panics if `key` is absent, like `BTreeMap`'s index (tests only; the engine uses `get`).
    fn index(&self, key: &str) -> &V {
        match self.get(key) {
            Some(v) => v,
            None => panic!("no entry for key"),
        }
    }
}

impl<V: Serialize> Serialize for SmallMap<V> {
    /// Serialises as a map, like `BTreeMap`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_like_a_btreemap_under_random_operations() {
        use std::collections::BTreeMap;
        let mut a = SmallMap::new();
        let mut b = BTreeMap::new();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for step in 0..5000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = format!("k{}", x % 37);
            match x % 5 {
                0 | 1 => assert_eq!(a.insert(key.clone(), step), b.insert(key, step)),
                2 => assert_eq!(a.remove(&key), b.remove(&key)),
                3 => {
                    if let (Some(p), Some(q)) = (a.get_mut(&key), b.get_mut(&key)) {
                        *p += 1;
                        *q += 1;
                    }
                }
                _ => assert_eq!(a.get(&key), b.get(&key)),
            }
            assert_eq!(a.len(), b.len());
        }
        let got: Vec<_> = a.iter().map(|(k, v)| (k.clone(), *v)).collect();
        let want: Vec<_> = b.into_iter().collect();
        assert_eq!(got, want);
    }
}
