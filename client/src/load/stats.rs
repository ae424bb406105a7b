//! Latency and outcome counts per request type, in HDR histograms (microsecond resolution).
//!
//! Each session keeps its own [`Stats`] (no locking on the hot path) and the run merges them at
//! the end. Latency is what a user of the store sees for one logical request: from the first
//! attempt to the final answer, retries and backoff included.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// The request types the report distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// `GET /products/<name>`
    Lookup,
    /// `POST /orders`
    Order,
    /// `GET /orders/<n>` (the read-back at the end)
    OrderQuery,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Lookup, Kind::Order, Kind::OrderQuery];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Lookup => "lookup",
            Kind::Order => "order",
            Kind::OrderQuery => "order_query",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How one logical request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// 2xx.
    Ok,
    /// A 4xx answer: the store said no (out of stock, unknown toy, unknown order). Not retried.
    Rejected,
    /// No usable answer even after every retry (transport errors, timeouts, 5xx).
    Error,
}

/// Highest latency the histograms track exactly (longer ones are clamped, still counted).
const MAX_MICROS: u64 = 120_000_000;

/// Counts and latencies of one request type.
#[derive(Debug, Clone)]
pub struct KindStats {
    hist: Histogram<u64>,
    pub ok: u64,
    pub rejected: u64,
    pub errors: u64,
    /// Extra attempts (an answer after two retries counts 2).
    pub retries: u64,
}

impl Default for KindStats {
    fn default() -> Self {
        Self {
            hist: Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid histogram bounds"),
            ok: 0,
            rejected: 0,
            errors: 0,
            retries: 0,
        }
    }
}

impl KindStats {
    /// Record one logical request. Answered requests (ok and rejected) go into the latency
    /// histogram; errors do not, as their "latency" is just the retry budget running out.
    pub fn record(&mut self, class: Class, latency: Duration, retries: u32) {
        self.retries += u64::from(retries);
        match class {
            Class::Ok => self.ok += 1,
            Class::Rejected => self.rejected += 1,
            Class::Error => {
                self.errors += 1;
                return;
            }
        }
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).max(1);
        self.hist.saturating_record(micros);
    }

    pub fn merge(&mut self, other: &KindStats) {
        // Same bounds on both sides, so adding cannot fail; saturate rather than panic if it did.
        if self.hist.add(&other.hist).is_err() {
            for v in other.hist.iter_recorded() {
                self.hist.saturating_record_n(v.value_iterated_to(), v.count_at_value());
            }
        }
        self.ok += other.ok;
        self.rejected += other.rejected;
        self.errors += other.errors;
        self.retries += other.retries;
    }

    pub fn count(&self) -> u64 {
        self.ok + self.rejected + self.errors
    }

    pub fn summary(&self, kind: Kind) -> Summary {
        let ms = |us: f64| us / 1000.0;
        let answered = !self.hist.is_empty();
        Summary {
            kind,
            count: self.count(),
            ok: self.ok,
            rejected: self.rejected,
            errors: self.errors,
            retries: self.retries,
            mean_ms: if answered { ms(self.hist.mean()) } else { 0.0 },
            p50_ms: if answered { ms(self.hist.value_at_quantile(0.50) as f64) } else { 0.0 },
            p99_ms: if answered { ms(self.hist.value_at_quantile(0.99) as f64) } else { 0.0 },
            max_ms: if answered { ms(self.hist.max() as f64) } else { 0.0 },
        }
    }
}

/// Stats of every request type.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    kinds: [KindStats; 3],
}

impl Stats {
    pub fn record(&mut self, kind: Kind, class: Class, latency: Duration, retries: u32) {
        self.kinds[kind.index()].record(class, latency, retries);
    }

    pub fn kind(&self, kind: Kind) -> &KindStats {
        &self.kinds[kind.index()]
    }

    pub fn merge(&mut self, other: &Stats) {
        for k in Kind::ALL {
            self.kinds[k.index()].merge(&other.kinds[k.index()]);
        }
    }

    /// One summary per request type that saw any request, in [`Kind::ALL`] order.
    pub fn summaries(&self) -> Vec<Summary> {
        Kind::ALL.iter().filter(|k| self.kind(**k).count() > 0).map(|k| self.kind(*k).summary(*k)).collect()
    }
}

/// What the report prints per request type (milliseconds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub kind: Kind,
    /// Logical requests: ok + rejected + errors.
    pub count: u64,
    pub ok: u64,
    pub rejected: u64,
    pub errors: u64,
    pub retries: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn percentiles_and_counts() {
        let mut s = Stats::default();
        for i in 1..=100 {
            s.record(Kind::Lookup, Class::Ok, ms(i), 0);
        }
        s.record(Kind::Lookup, Class::Error, ms(10_000), 8);
        s.record(Kind::Lookup, Class::Rejected, ms(1), 1);
        let l = s.kind(Kind::Lookup).summary(Kind::Lookup);
        assert_eq!((l.count, l.ok, l.rejected, l.errors, l.retries), (102, 100, 1, 1, 9));
        assert!((l.p50_ms - 50.0).abs() < 0.1, "p50 {}", l.p50_ms);
        assert!((l.p99_ms - 99.0).abs() < 0.1, "p99 {}", l.p99_ms);
        assert!((l.max_ms - 100.0).abs() < 0.1, "max {}", l.max_ms);
        // The error's 10 s is not a latency.
        assert!(l.mean_ms < 60.0, "mean {}", l.mean_ms);
        // Only lookups were recorded.
        assert_eq!(s.summaries().len(), 1);
    }

    #[test]
    fn merge_adds_everything() {
        let mut a = Stats::default();
        let mut b = Stats::default();
        a.record(Kind::Order, Class::Ok, ms(2), 1);
        b.record(Kind::Order, Class::Ok, ms(4), 0);
        b.record(Kind::OrderQuery, Class::Error, ms(1), 3);
        a.merge(&b);
        let o = a.kind(Kind::Order).summary(Kind::Order);
        assert_eq!((o.count, o.retries), (2, 1));
        assert!((o.mean_ms - 3.0).abs() < 0.01);
        let q = a.kind(Kind::OrderQuery).summary(Kind::OrderQuery);
        assert_eq!((q.errors, q.retries, q.mean_ms), (1, 3, 0.0));
        assert_eq!(a.summaries().iter().map(|s| s.kind).collect::<Vec<_>>(), vec![Kind::Order, Kind::OrderQuery]);
    }

    #[test]
    fn huge_latency_is_clamped_not_lost() {
        let mut k = KindStats::default();
        k.record(Class::Ok, Duration::from_secs(3600), 0);
        assert_eq!(k.summary(Kind::Lookup).count, 1);
        assert!(k.summary(Kind::Lookup).max_ms >= 100_000.0);
    }
}
