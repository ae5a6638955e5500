//! Node-local caches of immutable facts: a blob's pointer (its size and segments, fixed
//! once the blob is published under its digest) and a manifest's bytes by digest (the
//! digest is their hash). Never tags, never a repository's view of a blob, never session
//! state: those change, and another node may change them.
//!
//! A fact can still go away (garbage collection removes a blob, on any node), so a cached
//! pointer never answers without the uncached check that the repository sees the blob (a
//! read sends that check together with its first GET of the bytes); a read opens its first
//! segment before answering and, finding it gone, drops the entry and
//! asks the store again (404 when the blob is gone, its new segments when it was pushed
//! again); and a manifest PUT's touch of each blob it references goes to the store, never
//! to the cache.
//!
//! Bounded by a weight (entries, or bytes): two generations, the older dropped whole when
//! the newer fills up; a hit in the older one moves the entry to the newer.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

/// A bounded map of immutable facts.
#[derive(Debug)]
pub(crate) struct Cache<K, V> {
    inner: Mutex<Generations<K, V>>,
    /// The weight one generation may hold.
    half: usize,
    weigh: fn(&V) -> usize,
}

#[derive(Debug)]
struct Generations<K, V> {
    young: HashMap<K, V>,
    young_weight: usize,
    old: HashMap<K, V>,
}

impl<K: Eq + Hash + Clone, V: Clone> Cache<K, V> {
    /// A cache holding at most about `capacity` weight (`weigh` of each value).
    pub(crate) fn new(capacity: usize, weigh: fn(&V) -> usize) -> Cache<K, V> {
        Cache {
            inner: Mutex::new(Generations {
                young: HashMap::new(),
                young_weight: 0,
                old: HashMap::new(),
            }),
            half: (capacity / 2).max(1),
            weigh,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations<K, V>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The value of `k`, if cached.
    pub(crate) fn get(&self, k: &K) -> Option<V> {
        let mut g = self.lock();
        if let Some(v) = g.young.get(k) {
            return Some(v.clone());
        }
        let v = g.old.remove(k)?;
        self.insert_locked(&mut g, k.clone(), v.clone());
        Some(v)
    }

    /// Remember `v` for `k`.
    pub(crate) fn insert(&self, k: K, v: V) {
        let mut g = self.lock();
        self.insert_locked(&mut g, k, v);
    }

    fn insert_locked(&self, g: &mut Generations<K, V>, k: K, v: V) {
        let w = (self.weigh)(&v);
        if w > self.half {
            return;
        }
        if g.young_weight + w > self.half {
            g.old = std::mem::take(&mut g.young);
            g.young_weight = 0;
        }
        g.young_weight += w;
        if let Some(prev) = g.young.insert(k, v) {
            g.young_weight -= (self.weigh)(&prev);
        }
    }

    /// Forget `k` (the fact went away).
    pub(crate) fn remove(&self, k: &K) {
        let mut g = self.lock();
        if let Some(prev) = g.young.remove(k) {
            g.young_weight -= (self.weigh)(&prev);
        }
        g.old.remove(k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_keeps_what_is_used() {
        let c: Cache<u32, u32> = Cache::new(4, |_| 1);
        for i in 0..100 {
            c.insert(i, i * 10);
            // Entry 0 is used all along: it survives every generation change.
            assert_eq!(c.get(&0), Some(0));
        }
        let g = c.lock();
        assert!(g.young.len() + g.old.len() <= 4, "bounded");
        drop(g);
        assert_eq!(c.get(&99), Some(990));
        assert_eq!(c.get(&5), None, "old entries are dropped");
        c.remove(&99);
        assert_eq!(c.get(&99), None);
    }

    #[test]
    fn weighs_values() {
        let c: Cache<u32, Vec<u8>> = Cache::new(100, |v| v.len());
        c.insert(1, vec![0; 80]);
        assert_eq!(c.get(&1), None, "heavier than a generation: not kept");
        c.insert(2, vec![0; 30]);
        c.insert(3, vec![0; 30]);
        assert!(c.get(&2).is_some() && c.get(&3).is_some());
    }
}
