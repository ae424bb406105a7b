//! The host-speed part of `toystore bench`: the `hello` component under
//! `toystore serve` against the same file under the stock `wasmtime serve` (the pinned CLI),
//! and the store's main read paths (cache hit, cache miss, order query), every figure as a
//! ratio to the stock hello at the same concurrency.
//!
//! The machine is small and shared, so the things compared are measured alternately: every
//! host runs at once (idle ones cost nothing), and each round measures all of them one after
//! the other at one concurrency level; a figure is the median over the rounds.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use http::Method;
use serde::{Deserialize, Serialize};

use super::measure::{measure, median, Op, Point};
use crate::load::conn::Target;
use crate::hostproc::{free_ports, Host};

/// The wasmtime CLI the comparison is made against (the justfile's `wasmtime_version`).
pub const PINNED_WASMTIME: &str = "wasmtime 48.0.8";
const STOCK_START_TIMEOUT: Duration = Duration::from_secs(120);

/// The stock `wasmtime serve -S cli -S p3` running `toystore_hello.wasm`; killed on drop.
pub struct StockServe {
    child: Child,
    pub url: String,
    pub version: String,
}

impl Drop for StockServe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Why there is no stock baseline, or the running one.
pub enum Stock {
    Running(StockServe),
    Missing(String),
}

impl StockServe {
    /// Start the pinned CLI (`$WASMTIME`, else `wasmtime` on PATH) on a free port and wait until
    /// it answers. A missing or different CLI is not an error: the report says so instead.
    pub async fn start(hello: &Path) -> anyhow::Result<Stock> {
        let exe = std::env::var("WASMTIME").unwrap_or_else(|_| "wasmtime".into());
        let version = match Command::new(&exe).arg("--version").output() {
            Ok(out) => String::from_utf8_lossy(&out.stdout).trim().to_string(),
            Err(e) => return Ok(Stock::Missing(format!("`{exe}` not found ({e}); `just bench` installs it"))),
        };
        if !version.starts_with(PINNED_WASMTIME) {
            return Ok(Stock::Missing(format!("`{exe} --version` is {version:?}, not the pinned {PINNED_WASMTIME}")));
        }
        let port = free_ports(1)?[0];
        let child = Command::new(&exe)
            .args(["serve", "-S", "cli", "-S", "p3", "--addr", &format!("127.0.0.1:{port}")])
            .arg(hello)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("start {exe} serve"))?;
        let serve = StockServe { child, url: format!("http://127.0.0.1:{port}"), version };
        let deadline = Instant::now() + STOCK_START_TIMEOUT;
        loop {
            let answered = crate::load::conn::once(&serve.url, Method::GET, "/products/Tux", None, Duration::from_secs(2)).await;
            if answered.is_ok_and(|r| r.status.is_success()) {
                return Ok(Stock::Running(serve));
            }
            if Instant::now() >= deadline {
                bail!("stock wasmtime serve did not answer within {} s", STOCK_START_TIMEOUT.as_secs());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The targets of the host-speed comparison, in the order a round measures them.
pub struct Targets<'a> {
    pub stock: Option<&'a StockServe>,
    pub hello: &'a Host,
    /// The store with its cache on (hits, order queries).
    pub store: &'a Host,
    /// The store with its cache off (every lookup calls the catalog).
    pub store_no_cache: &'a Host,
    /// Order numbers `0..orders` exist on `store`.
    pub orders: u64,
    /// The same two stores with `local_calls = "direct"` (calls between components in process).
    pub store_direct: &'a Host,
    pub store_no_cache_direct: &'a Host,
    /// Order numbers `0..orders_direct` exist on `store_direct`.
    pub orders_direct: u64,
}

/// One request type at one concurrency: a figure per round.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SpeedPoint {
    pub name: String,
    pub concurrency: usize,
    pub rounds: Vec<Point>,
}

impl SpeedPoint {
    fn median(&self, f: impl Fn(&Point) -> f64) -> f64 {
        median(self.rounds.iter().map(f)).unwrap_or(0.0)
    }
    pub fn rps(&self) -> f64 {
        self.median(|p| p.rps)
    }
    pub fn p50_ms(&self) -> f64 {
        self.median(|p| p.p50_ms)
    }
    pub fn errors(&self) -> u64 {
        self.rounds.iter().map(|p| p.errors).sum()
    }
}

/// What the host-speed part measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostSpeed {
    /// The stock CLI's version, or why it was not measured.
    pub stock: Result<String, String>,
    pub rounds: usize,
    pub points: Vec<SpeedPoint>,
}

/// Names of the rows, in order; `stock_hello` is the baseline.
pub const STOCK: &str = "stock_hello";
const ROWS: [&str; 7] = [STOCK, "hello", "lookup_hit", "lookup_miss", "lookup_miss_direct", "order_query", "order_query_direct"];

/// Measure every target at every level, `rounds` times, alternating.
pub async fn measure_host_speed(t: &Targets<'_>, levels: &[usize], rounds: usize, duration: Duration) -> anyhow::Result<Vec<SpeedPoint>> {
    let hit = Op::Get(vec!["/products/Tux".into()]);
    let miss = Op::Get(crate::SEED_TOYS.iter().map(|n| format!("/products/{n}")).collect());
    let query = Op::Query { count: t.orders.max(1) };
    let query_direct = Op::Query { count: t.orders_direct.max(1) };
    let mut plan: Vec<(&str, Target, &Op)> = Vec::new();
    if let Some(s) = t.stock {
        plan.push((STOCK, Target::parse(&s.url)?, &hit));
    }
    plan.push(("hello", Target::parse(&t.hello.frontend_url())?, &hit));
    plan.push(("lookup_hit", Target::parse(&t.store.frontend_url())?, &hit));
    plan.push(("lookup_miss", Target::parse(&t.store_no_cache.frontend_url())?, &miss));
    plan.push(("lookup_miss_direct", Target::parse(&t.store_no_cache_direct.frontend_url())?, &miss));
    plan.push(("order_query", Target::parse(&t.store.frontend_url())?, &query));
    plan.push(("order_query_direct", Target::parse(&t.store_direct.frontend_url())?, &query_direct));
    let mut points = Vec::new();
    for &c in levels {
        let mut row: Vec<SpeedPoint> =
            plan.iter().map(|(name, ..)| SpeedPoint { name: name.to_string(), concurrency: c, rounds: vec![] }).collect();
        for round in 0..rounds {
            for (i, (name, target, op)) in plan.iter().enumerate() {
                let p = measure(target, op, c, duration).await;
                eprintln!("  {name:<18} c={c:<3} round {round}: {:>8.0} req/s  p50 {:>7.3} ms  errors {}", p.rps, p.p50_ms, p.errors);
                row[i].rounds.push(p);
            }
        }
        points.extend(row);
    }
    Ok(points)
}

/// The host-speed table, as markdown.
pub fn host_speed_markdown(h: &HostSpeed) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "## Host speed against the stock `wasmtime serve`\n");
    let base_name = match &h.stock {
        Ok(version) => {
            let _ = writeln!(
                s,
                "Baseline: `toystore_hello.wasm` under the stock `wasmtime serve -S cli -S p3` ({version}), measured in \
                 this run. The targets are measured alternately, {} round(s) per concurrency level; each figure is the \
                 median over the rounds. Targets: hello ≥ ×1.2, cache hit ≥ ×1.0, cache miss and order query ≥ ×0.5. \
                 Cache miss and order query are measured on both paths of a call between components: real HTTP \
                 (the default) and `local_calls = \"direct\"` (handed over in process).\n",
                h.rounds
            );
            STOCK
        }
        Err(why) => {
            let _ = writeln!(
                s,
                "**The stock `wasmtime serve` was not measured**: {why}. Ratios below are to the hello under \
                 `toystore serve` instead, so they say nothing about the issue's targets.\n"
            );
            "hello"
        }
    };
    let _ = writeln!(s, "| request | C | req/s (each round) | req/s | × stock hello | p50 ms | p50 × stock | errors |");
    let _ = writeln!(s, "|---|---:|---|---:|---:|---:|---:|---:|");
    for name in ROWS {
        for p in h.points.iter().filter(|p| p.name == name) {
            let base = h.points.iter().find(|b| b.name == base_name && b.concurrency == p.concurrency);
            let each: Vec<String> = p.rounds.iter().map(|r| format!("{:.0}", r.rps)).collect();
            let ratio = |x: f64, b: Option<f64>| match b {
                Some(b) if b > 0.0 => format!("×{:.2}", x / b),
                _ => "–".into(),
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.0} | {} | {:.3} | {} | {} |",
                label(name),
                p.concurrency,
                each.join(", "),
                p.rps(),
                ratio(p.rps(), base.map(SpeedPoint::rps)),
                p.p50_ms(),
                ratio(p.p50_ms(), base.map(SpeedPoint::p50_ms)),
                p.errors()
            );
        }
    }
    s
}

fn label(name: &str) -> &str {
    match name {
        STOCK => "hello, stock `wasmtime serve`",
        "hello" => "hello, `toystore serve`",
        "lookup_hit" => "lookup, cache hit",
        "lookup_miss" => "lookup, cache miss (HTTP to the catalog)",
        "lookup_miss_direct" => "lookup, cache miss (`local_calls = \"direct\"`)",
        "order_query" => "order query (HTTP to the leader)",
        "order_query_direct" => "order query (`local_calls = \"direct\"`)",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(c: usize, rps: f64) -> Point {
        Point { concurrency: c, ok: 1, errors: 0, secs: 1.0, rps, mean_ms: 1.0, p50_ms: 1000.0 / rps, p99_ms: 1.0, max_ms: 1.0, max_order: None, cpu_secs: None }
    }

    #[test]
    fn ratios_are_to_the_stock_hello_at_the_same_level() {
        let sp = |name: &str, c, r: &[f64]| SpeedPoint { name: name.into(), concurrency: c, rounds: r.iter().map(|&x| point(c, x)).collect() };
        let h = HostSpeed {
            stock: Ok("wasmtime 48.0.8".into()),
            rounds: 3,
            points: vec![sp(STOCK, 8, &[10_000.0, 12_000.0, 11_000.0]), sp("hello", 8, &[16_500.0, 1.0, 20_000.0]), sp("lookup_miss", 8, &[5_500.0; 3])],
        };
        let md = host_speed_markdown(&h);
        assert!(md.contains("| hello, `toystore serve` | 8 | 16500, 1, 20000 | 16500 | ×1.50 |"), "{md}");
        assert!(md.contains("| lookup, cache miss (HTTP to the catalog) | 8 | 5500, 5500, 5500 | 5500 | ×0.50 |"), "{md}");
        let missing = HostSpeed { stock: Err("not installed".into()), ..h };
        assert!(host_speed_markdown(&missing).contains("was not measured**: not installed"));
    }
}
