//! One measured load: a fixed operation over some keep-alive connections for a fixed time,
//! summarised as a [`Point`] (throughput and latency quantiles). Every figure of `toystore
//! bench` (the store's and the host-speed comparison's) is one of these.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http::Method;
use serde::{Deserialize, Serialize};

use crate::args::SEED_TOYS;
use crate::load::conn::{Conn, Target};
use crate::load::session::new_key;

/// Load that runs before a measurement starts and is not recorded (connections opened, caches
/// warm).
pub(super) const WARMUP: Duration = Duration::from_millis(300);
/// One request's limit; a request over it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What a load sends.
#[derive(Debug, Clone)]
pub enum Op {
    /// `GET` of these paths, each worker cycling through them from its own offset.
    Get(Vec<String>),
    /// `POST /orders` of one of each seed toy in turn, each with a fresh idempotency key.
    Order,
    /// `GET /orders/<n>` for n cycling over `0..count`.
    Query { count: u64 },
}

/// One measured point.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Point {
    pub concurrency: usize,
    pub ok: u64,
    pub errors: u64,
    pub secs: f64,
    pub rps: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Highest order number acknowledged (orders only).
    pub max_order: Option<u64>,
}

/// Run `op` over `concurrency` keep-alive connections for `duration` (after a short warm-up
/// that is not recorded). Only 2xx answers count as ok; nothing is retried.
pub async fn measure(target: &Target, op: &Op, concurrency: usize, duration: Duration) -> Point {
    let concurrency = concurrency.max(1);
    let op = Arc::new(op.clone());
    let start = Instant::now();
    let record_from = start + WARMUP;
    let deadline = record_from + duration;
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let (op, target) = (Arc::clone(&op), target.clone());
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).expect("valid bounds");
            let (mut ok, mut errors, mut max_order) = (0u64, 0u64, None::<u64>);
            let mut conn = Conn::new(target, REQUEST_TIMEOUT);
            let mut i = w as u64 * 7919;
            loop {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                i += 1;
                let key;
                let (method, path, body, headers): (Method, String, Option<Bytes>, Vec<(&str, &str)>) = match &*op {
                    Op::Get(paths) => (Method::GET, paths[(i as usize) % paths.len()].clone(), None, vec![]),
                    Op::Order => {
                        key = new_key();
                        let name = SEED_TOYS[(i as usize) % SEED_TOYS.len()];
                        let body = format!(r#"{{"name":"{name}","quantity":1}}"#);
                        (Method::POST, "/orders".into(), Some(Bytes::from(body)), vec![("Idempotency-Key", key.as_str())])
                    }
                    Op::Query { count } => (Method::GET, format!("/orders/{}", i % (*count).max(1)), None, vec![]),
                };
                let t = Instant::now();
                let result = conn.send(method, &path, body, &headers).await;
                let latency = t.elapsed();
                let recording = t >= record_from;
                match result {
                    Ok(r) if r.status.is_success() => {
                        if matches!(&*op, Op::Order) {
                            if let Some(n) = toystore_api::data_of(&r.json()).and_then(|d| d["order_number"].as_u64()) {
                                max_order = max_order.max(Some(n));
                            }
                        }
                        if recording {
                            ok += 1;
                            hist.saturating_record((latency.as_micros() as u64).max(1));
                        }
                    }
                    _ => {
                        if recording {
                            errors += 1;
                        }
                        // Do not spin on a dead store.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
            (hist, ok, errors, max_order)
        }));
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).expect("valid bounds");
    let (mut ok, mut errors, mut max_order) = (0, 0, None);
    for t in tasks {
        if let Ok((h, o, e, m)) = t.await {
            let _ = hist.add(&h);
            ok += o;
            errors += e;
            max_order = max_order.max(m);
        }
    }
    let secs = Instant::now().saturating_duration_since(record_from).as_secs_f64().max(1e-9);
    let q = |x: f64| if hist.is_empty() { 0.0 } else { hist.value_at_quantile(x) as f64 / 1000.0 };
    Point {
        concurrency,
        ok,
        errors,
        secs,
        rps: ok as f64 / secs,
        mean_ms: if hist.is_empty() { 0.0 } else { hist.mean() / 1000.0 },
        p50_ms: q(0.5),
        p99_ms: q(0.99),
        max_ms: if hist.is_empty() { 0.0 } else { hist.max() as f64 / 1000.0 },
        max_order,
    }
}

