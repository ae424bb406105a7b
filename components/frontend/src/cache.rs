//! The frontend's read-through product cache: least-recently-used, bounded, invalidated by
//! the catalog, and safe against a lookup racing with an invalidation.
//!
//! ## The race, and the generation check
//! A miss calls the catalog, which takes time. If the toy changes meanwhile, the catalog's
//! `POST /invalidate` can arrive *before* the (now old) reply, and inserting that reply
//! afterwards would keep stale data in the cache with nothing left to remove it. So a miss
//! hands out a [`Ticket`] holding the cache's generation counter; every invalidation bumps the
//! counter and records the new value for that name; [`ProductCache::insert`] refuses a ticket
//! older than the name's last invalidation. The reply is still served to the caller (it was
//! true when the catalog read it), it just is not cached.
//!
//! ## Bounded staleness
//! With invalidations delivered, a cached entry is never older than the catalog's last change
//! plus the invalidation's delivery time. The catalog retries invalidations it could not
//! deliver; if one is lost anyway (the catalog restarted with pending ones, or the frontend
//! restarted between), the TTL (`CACHE_TTL_SECS`, default 30) bounds how long the stale value
//! can be served: an entry older than the TTL counts as a miss. `CACHE_TTL_SECS=0` disables the
//! TTL (entries then live until invalidated or evicted).
//!
//! The cache is per instance. Under the toystore host the frontend is one long-lived instance,
//! so every invalidation reaches the one cache. Under the stock `wasmtime serve`, which may run
//! several instances, an invalidation reaches only the instance that serves it; the others are
//! then bounded by the TTL alone.
//!
//! Only successful lookups are cached (an unknown toy always reaches the catalog).

use std::collections::HashMap;
use std::num::NonZeroUsize;

use lru::LruCache;
use serde_json::{json, Value};

/// Names whose last invalidation is remembered; past this the memory is cleared and every
/// ticket issued before the clear is refused (safe: it only skips caching one reply).
const MAX_TRACKED_INVALIDATIONS: usize = 4096;

/// Proof of when a miss started; needed to insert its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket(u64);

/// The result of a lookup.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    Hit(Value),
    /// Not cached (or expired, or the cache is off): ask the catalog, then `insert` with this.
    Miss(Ticket),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    /// Entries pushed out by a newer one because the cache was full.
    pub evictions: u64,
    /// `invalidate` calls (whether or not the name was cached).
    pub invalidations: u64,
    /// Entries dropped because they outlived the TTL.
    pub expirations: u64,
}

#[derive(Debug, Clone)]
struct Entry {
    value: Value,
    inserted_at_ms: u64,
}

#[derive(Debug)]
pub struct ProductCache {
    /// `None` when the cache is disabled or its capacity is 0.
    lru: Option<LruCache<String, Entry>>,
    enabled: bool,
    capacity: usize,
    /// 0 = no TTL.
    ttl_ms: u64,
    generation: u64,
    /// name → generation of its last invalidation.
    invalidated_at: HashMap<String, u64>,
    /// Tickets older than this are refused (set when `invalidated_at` is cleared).
    floor: u64,
    stats: CacheStats,
}

impl ProductCache {
    pub fn new(enabled: bool, capacity: usize, ttl_ms: u64) -> Self {
        let lru = NonZeroUsize::new(capacity).filter(|_| enabled).map(LruCache::new);
        Self {
            lru,
            enabled,
            capacity,
            ttl_ms,
            generation: 0,
            invalidated_at: HashMap::new(),
            floor: 0,
            stats: CacheStats::default(),
        }
    }

    /// Whether entries are kept at all (`CACHE_ENABLED` and a capacity above 0). A disabled
    /// cache needs no time: callers skip reading the clock, a host call, for it.
    pub fn keeps_entries(&self) -> bool {
        self.lru.is_some()
    }

    /// Look `name` up at time `now_ms` (a hit also makes it the most recently used).
    pub fn lookup(&mut self, name: &str, now_ms: u64) -> Lookup {
        let ticket = Ticket(self.generation);
        let Some(lru) = self.lru.as_mut() else {
            self.stats.misses += 1;
            return Lookup::Miss(ticket);
        };
        let expired = match lru.get(name) {
            Some(e) if self.ttl_ms == 0 || now_ms.saturating_sub(e.inserted_at_ms) < self.ttl_ms => {
                self.stats.hits += 1;
                return Lookup::Hit(e.value.clone());
            }
            Some(_) => true,
            None => false,
        };
        if expired {
            lru.pop(name);
            self.stats.expirations += 1;
        }
        self.stats.misses += 1;
        Lookup::Miss(ticket)
    }

    /// Cache the catalog's answer to a miss, unless `name` was invalidated since the miss
    /// began. Returns whether it was cached.
    pub fn insert(&mut self, name: &str, value: Value, ticket: Ticket, now_ms: u64) -> bool {
        let Some(lru) = self.lru.as_mut() else { return false };
        let invalidated_since = ticket.0 < self.floor
            || self.invalidated_at.get(name).is_some_and(|&g| g > ticket.0);
        if invalidated_since {
            return false;
        }
        let entry = Entry { value, inserted_at_ms: now_ms };
        if let Some((old, _)) = lru.push(name.to_string(), entry) {
            if old != name {
                self.stats.evictions += 1;
            }
        }
        true
    }

    /// Drop `name` and make every lookup of it already in flight unable to cache its answer.
    pub fn invalidate(&mut self, name: &str) {
        self.stats.invalidations += 1;
        self.generation += 1;
        if let Some(lru) = self.lru.as_mut() {
            lru.pop(name);
        }
        if self.invalidated_at.len() >= MAX_TRACKED_INVALIDATIONS && !self.invalidated_at.contains_key(name) {
            self.invalidated_at.clear();
            self.floor = self.generation;
        }
        self.invalidated_at.insert(name.to_string(), self.generation);
    }

    pub fn len(&self) -> usize {
        self.lru.as_ref().map_or(0, LruCache::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Cached names, most recently used first.
    pub fn names(&self) -> Vec<String> {
        self.lru.as_ref().map(|l| l.iter().map(|(k, _)| k.clone()).collect()).unwrap_or_default()
    }

    pub fn stats(&self) -> CacheStats {
        self.stats
    }

    /// The `GET /cache/stats` document.
    pub fn stats_json(&self) -> Value {
        let s = self.stats;
        json!({
            "enabled": self.enabled,
            "capacity": self.capacity,
            "size": self.len(),
            "ttl_secs": self.ttl_ms / 1000,
            "hits": s.hits,
            "misses": s.misses,
            "evictions": s.evictions,
            "invalidations": s.invalidations,
            "expirations": s.expirations,
            "entries": self.names(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy(name: &str, q: u64) -> Value {
        json!({"name": name, "price": 1.5, "quantity": q})
    }

    /// Look up and, on a miss, insert (what the service does when the catalog answers).
    fn fill(c: &mut ProductCache, name: &str, now: u64) -> bool {
        match c.lookup(name, now) {
            Lookup::Hit(_) => true,
            Lookup::Miss(t) => {
                c.insert(name, toy(name, 1), t, now);
                false
            }
        }
    }

    #[test]
    fn read_through_hit_and_miss() {
        let mut c = ProductCache::new(true, 5, 0);
        let Lookup::Miss(t) = c.lookup("Tux", 0) else { panic!("empty cache hit") };
        assert!(c.insert("Tux", toy("Tux", 100), t, 0));
        assert_eq!(c.lookup("Tux", 1), Lookup::Hit(toy("Tux", 100)));
        assert_eq!(c.stats(), CacheStats { hits: 1, misses: 1, ..CacheStats::default() });
    }

    #[test]
    fn lru_order_capacity_and_eviction_count() {
        let mut c = ProductCache::new(true, 3, 0);
        for n in ["A", "B", "C"] {
            assert!(!fill(&mut c, n, 0));
        }
        assert!(fill(&mut c, "A", 0), "A is cached and now most recent");
        assert!(!fill(&mut c, "D", 0), "D evicts the least recently used: B");
        assert_eq!(c.names(), ["D", "A", "C"]);
        assert_eq!(c.len(), 3);
        assert_eq!(c.stats().evictions, 1);
        assert!(!fill(&mut c, "B", 0));
        assert_eq!(c.names(), ["B", "D", "A"]);
        assert_eq!(c.stats().evictions, 2);
        assert_eq!(c.stats_json()["size"], 3);
        assert_eq!(c.stats_json()["capacity"], 3);
    }

    #[test]
    fn re_inserting_a_cached_name_is_not_an_eviction() {
        let mut c = ProductCache::new(true, 2, 0);
        fill(&mut c, "A", 0);
        fill(&mut c, "B", 0);
        // Two concurrent misses of A: both insert.
        let t = Ticket(c.generation);
        assert!(c.insert("A", toy("A", 2), t, 0));
        assert_eq!(c.stats().evictions, 0);
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn invalidation_drops_the_entry_and_counts() {
        let mut c = ProductCache::new(true, 5, 0);
        fill(&mut c, "Tux", 0);
        c.invalidate("Tux");
        c.invalidate("NeverCached");
        assert!(!fill(&mut c, "Tux", 0), "next lookup reaches the catalog");
        assert_eq!(c.stats().invalidations, 2);
        assert!(fill(&mut c, "Tux", 0), "and the fresh answer is cached again");
    }

    #[test]
    fn a_lookup_that_raced_with_an_invalidation_is_not_cached() {
        let mut c = ProductCache::new(true, 5, 0);
        let Lookup::Miss(t) = c.lookup("Tux", 0) else { panic!() };
        // ... the catalog read 100, then a buy changed it and invalidated before the reply ...
        c.invalidate("Tux");
        assert!(!c.insert("Tux", toy("Tux", 100), t, 0), "old value must not be cached");
        assert!(matches!(c.lookup("Tux", 0), Lookup::Miss(_)));
        // An invalidation of another name does not block it.
        let Lookup::Miss(t) = c.lookup("Tux", 0) else { panic!() };
        c.invalidate("Fox");
        assert!(c.insert("Tux", toy("Tux", 99), t, 0));
    }

    #[test]
    fn forgetting_old_invalidations_stays_safe() {
        let mut c = ProductCache::new(true, 5, 0);
        let Lookup::Miss(t) = c.lookup("Tux", 0) else { panic!() };
        c.invalidate("Tux");
        for i in 0..MAX_TRACKED_INVALIDATIONS + 1 {
            c.invalidate(&format!("x{i}"));
        }
        assert!(c.invalidated_at.len() <= MAX_TRACKED_INVALIDATIONS);
        assert!(!c.insert("Tux", toy("Tux", 100), t, 0), "an old ticket is still refused");
        let Lookup::Miss(t) = c.lookup("Tux", 0) else { panic!() };
        assert!(c.insert("Tux", toy("Tux", 100), t, 0));
    }

    #[test]
    fn ttl_expires_entries() {
        let mut c = ProductCache::new(true, 5, 30_000);
        fill(&mut c, "Tux", 1_000);
        assert!(fill(&mut c, "Tux", 30_999));
        assert!(!fill(&mut c, "Tux", 31_000), "older than the TTL: a miss");
        assert_eq!(c.stats().expirations, 1);
        assert!(fill(&mut c, "Tux", 31_001));
    }

    #[test]
    fn disabled_or_zero_capacity_always_misses() {
        for mut c in [ProductCache::new(false, 5, 0), ProductCache::new(true, 0, 0)] {
            assert!(!fill(&mut c, "Tux", 0));
            assert!(!fill(&mut c, "Tux", 0));
            assert_eq!(c.stats().misses, 2);
            assert_eq!(c.len(), 0);
        }
        assert_eq!(ProductCache::new(false, 5, 0).stats_json()["enabled"], false);
    }
}
