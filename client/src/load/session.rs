//! One client session: its own keep-alive connection, its own random stream, N iterations of
//! "look up a random toy; if in stock, order it with probability p".

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use indicatif::ProgressBar;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::json;

use crate::load::call::{call, RetryPolicy};
use crate::load::conn::{encode_segment, Conn, Target};
use crate::load::stats::{Class, Kind, Stats};
use crate::load::verify::PlacedOrder;

/// A fresh random idempotency key (OS randomness, never the seeded stream: two runs with the
/// same `--seed` against the same store must not share keys, or the second run's orders would
/// be answered with the first run's numbers).
pub fn new_key() -> String {
    let mut rng = rand::rng();
    format!("{:016x}{:016x}", rng.random::<u64>(), rng.random::<u64>())
}

/// What every session of a run shares.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub target: Target,
    pub toys: Arc<Vec<String>>,
    pub requests: usize,
    pub prob: f64,
    pub max_quantity: u64,
    pub seed: Option<u64>,
    pub policy: RetryPolicy,
    pub timeout: Duration,
}

/// What one session did.
#[derive(Debug, Clone, Default)]
pub struct SessionResult {
    pub stats: Stats,
    /// Orders the store acknowledged with a number.
    pub placed: Vec<PlacedOrder>,
    /// TCP connections opened (1 unless the connection broke).
    pub connects: u64,
}

/// Run session number `index`. `done` counts finished iterations across sessions (the eval's
/// failure run uses it to time the leader kill); `progress` is advanced per iteration.
pub async fn run_session(cfg: &SessionConfig, index: usize, progress: ProgressBar, done: Arc<AtomicU64>) -> SessionResult {
    let mut rng = match cfg.seed {
        Some(seed) => StdRng::seed_from_u64(seed.wrapping_add(index as u64)),
        None => rand::make_rng::<StdRng>(),
    };
    let mut conn = Conn::new(cfg.target.clone(), cfg.timeout);
    let mut out = SessionResult::default();
    for _ in 0..cfg.requests {
        let name = &cfg.toys[rng.random_range(0..cfg.toys.len())];
        let path = format!("/products/{}", encode_segment(name));
        let lookup = call(&mut conn, &cfg.policy, Method::GET, &path, None, &[]).await;
        out.stats.record(Kind::Lookup, lookup.class, lookup.latency, lookup.retries);
        let in_stock = lookup.class == Class::Ok && lookup.data["quantity"].as_i64().unwrap_or(0) > 0;
        // Draw only for toys in stock: "if it is in stock, order it with probability p".
        if in_stock && rng.random_bool(cfg.prob) {
            let quantity = rng.random_range(1..=cfg.max_quantity);
            let key = new_key();
            let body = Bytes::from(json!({ "name": name, "quantity": quantity }).to_string());
            let order =
                call(&mut conn, &cfg.policy, Method::POST, "/orders", Some(body), &[("Idempotency-Key", key.as_str())]).await;
            let mut class = order.class;
            if class == Class::Ok {
                match order.data["order_number"].as_u64() {
                    Some(number) => out.placed.push(PlacedOrder { number, name: name.clone(), quantity, key }),
                    // An acknowledgement without a number cannot be verified: count it as an error.
                    None => class = Class::Error,
                }
            }
            out.stats.record(Kind::Order, class, order.latency, order.retries);
        }
        progress.inc(1);
        done.fetch_add(1, Ordering::Relaxed);
    }
    out.connects = conn.connects;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_hex() {
        let a = new_key();
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, new_key());
    }
}
