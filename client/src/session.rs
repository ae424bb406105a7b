//! One client session: its own keep-alive connection, its own random stream, N iterations of
//! "look up a random toy; if in stock, order it with probability p".

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use indicatif::ProgressBar;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{json, Value};

use crate::conn::{encode_segment, Conn, Target};
use crate::stats::{Class, Kind, Stats};
use crate::verify::PlacedOrder;

/// Exponential backoff between attempts of one request.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 = never retry).
    pub max_retries: u32,
    /// Delay before the first retry; doubles per retry.
    pub base: Duration,
    /// Largest delay.
    pub cap: Duration,
}

impl RetryPolicy {
    /// Delay before retry number `retry` (0-based), scaled by `jitter` in `[0.5, 1]` so that
    /// sessions that failed together do not all come back in the same millisecond.
    pub fn delay(&self, retry: u32, jitter: f64) -> Duration {
        let factor = 2u32.saturating_pow(retry.min(20));
        let d = self.base.saturating_mul(factor).min(self.cap);
        d.mul_f64(jitter.clamp(0.5, 1.0))
    }
}

/// Is an answer with this status worth another attempt? Server-side failures (5xx: no leader
/// yet, a replica crashed mid-order), 408 and 429 are; the store's "no" (other 4xx) is final.
pub fn retryable(status: u16) -> bool {
    status >= 500 || status == 408 || status == 429
}

/// The end of one logical request (all attempts).
#[derive(Debug, Clone)]
pub struct Call {
    pub class: Class,
    /// Status of the last answer, if there was one.
    pub status: Option<u16>,
    /// The `data` member of a 2xx answer (`Null` otherwise).
    pub data: Value,
    /// The error message of the last failed attempt.
    pub message: String,
    pub retries: u32,
    pub latency: Duration,
}

/// Send one request, retrying transport errors and retryable statuses with backoff.
pub async fn call(
    conn: &mut Conn,
    policy: &RetryPolicy,
    method: Method,
    path: &str,
    body: Option<Bytes>,
    headers: &[(&str, &str)],
) -> Call {
    let start = Instant::now();
    let mut retries = 0;
    loop {
        let (class, status, data, message) = match conn.send(method.clone(), path, body.clone(), headers).await {
            Ok(r) if r.status.is_success() => (Class::Ok, Some(r.status.as_u16()), r.json()["data"].take(), String::new()),
            Ok(r) => {
                let v = r.json();
                let msg = v["error"]["message"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| String::from_utf8_lossy(&r.body).chars().take(200).collect());
                let class = if retryable(r.status.as_u16()) { Class::Error } else { Class::Rejected };
                (class, Some(r.status.as_u16()), Value::Null, format!("{}: {msg}", r.status.as_u16()))
            }
            Err(e) => (Class::Error, None, Value::Null, format!("{e:#}")),
        };
        if class != Class::Error || retries >= policy.max_retries {
            return Call { class, status, data, message, retries, latency: start.elapsed() };
        }
        let jitter = rand::rng().random_range(0.5..=1.0);
        tokio::time::sleep(policy.delay(retries, jitter)).await;
        retries += 1;
    }
}

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
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy { max_retries: 8, base: Duration::from_millis(50), cap: Duration::from_secs(2) };
        assert_eq!(p.delay(0, 1.0), Duration::from_millis(50));
        assert_eq!(p.delay(1, 1.0), Duration::from_millis(100));
        assert_eq!(p.delay(3, 1.0), Duration::from_millis(400));
        assert_eq!(p.delay(10, 1.0), Duration::from_secs(2));
        assert_eq!(p.delay(1000, 1.0), Duration::from_secs(2));
        assert_eq!(p.delay(1, 0.5), Duration::from_millis(50));
        assert_eq!(p.delay(1, 0.0), Duration::from_millis(50), "jitter is clamped");
    }

    #[test]
    fn what_is_retried() {
        assert!(retryable(503) && retryable(500) && retryable(429) && retryable(408));
        assert!(!retryable(400) && !retryable(404) && !retryable(409));
    }

    #[test]
    fn keys_are_unique_hex() {
        let a = new_key();
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, new_key());
    }
}
