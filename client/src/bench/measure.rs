//! One measured load: a fixed operation over some keep-alive connections for a fixed time,
//! summarised as a [`Point`] (throughput and latency quantiles, and optionally the CPU time the
//! target's processes spent meanwhile). Every figure of `toystore bench` (the store's, the
//! host-speed comparison's and etcd's) is one of these.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
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
    /// etcd's JSON gateway: `POST /v3/kv/put` of a fresh key, with the body an order would
    /// carry as the value, so a put and an order move the same payload.
    EtcdPut,
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
    /// CPU time (user + system) the target's processes spent while the point was recorded,
    /// when [`measure_with_cpu`] was given their pids and could read all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_secs: Option<f64>,
}

impl Point {
    /// The target's CPU time per request answered with a 2xx, in µs.
    pub fn cpu_us_per_request(&self) -> Option<f64> {
        self.cpu_secs.filter(|_| self.ok > 0).map(|c| c * 1e6 / self.ok as f64)
    }
}

/// The median of `values` (the mean of the middle two of an even count), `None` if empty.
pub fn median(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let mut v: Vec<f64> = values.into_iter().collect();
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => None,
        n if n % 2 == 1 => Some(v[n / 2]),
        n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// Run `op` over `concurrency` keep-alive connections for `duration` (after a short warm-up
/// that is not recorded). Only 2xx answers count as ok; nothing is retried.
pub async fn measure(target: &Target, op: &Op, concurrency: usize, duration: Duration) -> Point {
    measure_with_cpu(target, op, concurrency, duration, &[]).await
}

/// [`measure`], also reading the CPU time of the processes `pids` (the target's) when the
/// recording starts and after the last request, into [`Point::cpu_secs`].
pub async fn measure_with_cpu(target: &Target, op: &Op, concurrency: usize, duration: Duration, pids: &[u32]) -> Point {
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
                    Op::EtcdPut => {
                        let name = SEED_TOYS[(i as usize) % SEED_TOYS.len()];
                        let body = etcd_put_body(&format!("toystore-bench/{}", new_key()), &format!(r#"{{"name":"{name}","quantity":1}}"#));
                        (Method::POST, "/v3/kv/put".into(), Some(Bytes::from(body)), vec![])
                    }
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
    let cpu_start = if pids.is_empty() {
        None
    } else {
        tokio::time::sleep_until(record_from.into()).await;
        cpu_secs(pids)
    };
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
    let cpu_secs = cpu_start.zip(cpu_secs(pids)).map(|(a, b)| (b - a).max(0.0));
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
        cpu_secs,
    }
}

/// The JSON body of etcd's `POST /v3/kv/put`: key and value as base64 strings.
fn etcd_put_body(key: &str, value: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    serde_json::json!({ "key": b64.encode(key), "value": b64.encode(value) }).to_string()
}

/// User + system CPU time of all of `pids`, in seconds; `None` if any cannot be read.
pub fn cpu_secs(pids: &[u32]) -> Option<f64> {
    let ticks: u64 = pids.iter().map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().and_then(|t| stat_cpu_ticks(&t))).sum::<Option<u64>>()?;
    Some(ticks as f64 / clock_ticks_per_sec())
}

/// `utime + stime` (fields 14 and 15) of a `/proc/<pid>/stat` line, in clock ticks: every
/// thread of the process, finished ones included. The command name (field 2) is in parentheses
/// and may itself hold spaces and parentheses, so the fields are counted from its last `)`.
pub fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // fields[0] is field 3 (the state), so field n is fields[n - 3].
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The kernel's USER_HZ, the unit of `/proc/<pid>/stat`'s times, from `getconf CLK_TCK` (once);
/// 100, what Linux uses on every common architecture, if that cannot be run.
fn clock_ticks_per_sec() -> f64 {
    static HZ: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *HZ.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<f64>().ok())
            .filter(|&hz| hz > 0.0)
            .unwrap_or(100.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_read_past_a_command_name_with_spaces_and_parentheses() {
        let stat = "28983 (etcd) S 28976 28976 26202 0 -1 4194560 5110 0 0 0 2 1 0 0 20 0 9 0 327059 12095131648 6854";
        assert_eq!(stat_cpu_ticks(stat), Some(3));
        let odd = "7 (a) b (c)) R 1 7 7 0 -1 4194560 10 0 0 0 250 31 4 5 20 0 1 0 100 1000 10";
        assert_eq!(stat_cpu_ticks(odd), Some(281), "utime 250 + stime 31, not the children's 4 + 5");
        assert_eq!(stat_cpu_ticks("7 (a) R 1 7"), None, "too short");
        assert_eq!(stat_cpu_ticks("no parenthesis 1 2 3"), None);
    }

    #[test]
    fn cpu_secs_of_this_process_grows_with_work_and_fails_for_a_missing_pid() {
        let me = std::process::id();
        let before = cpu_secs(&[me]).expect("own /proc stat");
        let t = Instant::now();
        let mut x = 0u64;
        while t.elapsed() < Duration::from_millis(300) {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        let after = cpu_secs(&[me]).expect("own /proc stat");
        assert!(after > before, "{before} -> {after} after 300 ms of a busy loop");
        let twice = cpu_secs(&[me, me]).expect("own /proc stat");
        assert!(twice >= 2.0 * after, "every pid is summed: {after} once, {twice} twice");
        assert_eq!(cpu_secs(&[me, u32::MAX]), None);
    }

    #[test]
    fn etcd_put_body_is_base64_json() {
        let v: serde_json::Value = serde_json::from_str(&etcd_put_body("foo", "bar")).unwrap();
        assert_eq!(v, serde_json::json!({ "key": "Zm9v", "value": "YmFy" }));
    }

    #[test]
    fn median_and_cpu_per_request() {
        assert_eq!(median([3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median([4.0, 1.0]), Some(2.5));
        assert_eq!(median([]), None);
        let p = Point { concurrency: 1, ok: 500, errors: 0, secs: 1.0, rps: 500.0, mean_ms: 1.0, p50_ms: 1.0, p99_ms: 1.0, max_ms: 1.0, max_order: None, cpu_secs: Some(0.25) };
        assert_eq!(p.cpu_us_per_request(), Some(500.0));
        assert_eq!(Point { ok: 0, ..p.clone() }.cpu_us_per_request(), None);
        assert_eq!(Point { cpu_secs: None, ..p }.cpu_us_per_request(), None);
    }
}

