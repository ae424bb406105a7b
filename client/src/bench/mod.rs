//! `toystore bench`: throughput and latency of lookups (cache hit and miss), orders (durable,
//! replicated) and order queries at several concurrency levels; the same figures with the
//! host's outgoing calls on fresh connections instead of the pool; orders at 1, 5, 8 and 32
//! connections with every replica running and then with one follower paused (as a ratio to
//! the running figures); order latency after a short vs a long order log; replica
//! restart-to-serving with missed orders; orders against a three-member etcd's durable puts
//! (alternating rounds, with CPU time per request); and the hosts' peak memory. Every figure is
//! also given as a ratio to a baseline measured in the same run on the
//! same machine: the same host running the trivial `toystore_hello` component everywhere.
//!
//! Each host is started by the bench itself (fresh temporary directories, free loopback ports)
//! and every load is bounded in time.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use http::Method;
use serde::{Deserialize, Serialize};

use crate::args::{BenchArgs, SEED_TOYS};
use crate::eval::{machine, utc_now};
use crate::hostproc::{components_dir, host_binary, truncate_order_log, write_applied_catalog, write_order_log, Components, Host, HostConfig, LocalCalls, OutgoingHttp};
use crate::load::conn::Target;

mod etcd;
mod hostspeed;
mod measure;

use etcd::{etcd_markdown, io_pressure, loadavg, measure_versus, Etcd, EtcdCluster, EtcdComparison};
use hostspeed::{host_speed_markdown, measure_host_speed, HostSpeed, Stock, StockServe, Targets};
pub use measure::{measure, measure_with_cpu, Op, Point};
use measure::WARMUP;

const START_TIMEOUT: Duration = Duration::from_secs(180);
/// Catalog stock for the bench hosts: never runs out, so every order is a real order.
const STOCK: u64 = 1_000_000_000;

/// A series of points for one request type on one host.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    /// `lookup_hit`, `lookup_miss`, `order`, `order_query`, `baseline_get`, `baseline_post`.
    pub name: String,
    /// Which baseline it is compared with (`baseline_get` or `baseline_post`).
    pub baseline: String,
    pub points: Vec<Point>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogPoint {
    pub log_orders: u64,
    pub host_start_secs: f64,
    /// The round with the median p50.
    pub point: Point,
    /// Every round's p50, in the order measured.
    #[serde(default)]
    pub rounds_p50_ms: Vec<f64>,
}

/// The point with the median p50 (the upper one of an even count); `points` must not be empty.
fn median_by_p50(mut points: Vec<Point>) -> Point {
    points.sort_by(|a, b| a.p50_ms.total_cmp(&b.p50_ms));
    let mid = points.len() / 2;
    points.swap_remove(mid)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RestartPoint {
    pub missed: u64,
    pub replica: u32,
    pub restart_to_serving_ms: f64,
    /// Its `/ping` `last` equals the leader's once it serves: the missed orders were caught up.
    pub caught_up: bool,
}

/// Orders at several connection levels on one host, first with every replica running, then
/// with one follower paused (`POST /replicas/<id>/pause`), measured back to back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrderScaling {
    /// The follower that was paused for the second series.
    pub paused_replica: u32,
    pub running: Vec<Point>,
    pub follower_paused: Vec<Point>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Memory {
    pub host: String,
    pub peak_rss_kib: Option<u64>,
}

/// Everything `toystore bench` measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchResults {
    pub generated_utc: String,
    pub machine: String,
    pub seconds_per_point: f64,
    /// Hello under `toystore serve` vs the stock `wasmtime serve`, and the store's reads.
    pub host_speed: Option<HostSpeed>,
    pub baseline: Vec<Row>,
    /// Cache on (hit), cache off (miss), orders and queries, pooled outgoing connections.
    pub pooled: Vec<Row>,
    /// The same with `outgoing_http = "fresh"`.
    pub fresh: Vec<Row>,
    /// Orders by connections, and with a follower paused.
    #[serde(default)]
    pub orders: Option<OrderScaling>,
    /// Orders against a three-member etcd's puts, alternating.
    #[serde(default)]
    pub etcd: Option<EtcdComparison>,
    pub log_latency: Vec<LogPoint>,
    pub restart: Vec<RestartPoint>,
    pub memory: Vec<Memory>,
    pub notes: Vec<String>,
    pub total_secs: f64,
}

impl BenchResults {
    /// The results of a run that measured only one part (`--orders-only`, `--host-speed-only`,
    /// `--etcd-only`):
    /// every table empty; the caller fills in the one it measured.
    fn partial(ctx: &Ctx, memory: Vec<Memory>, notes: Vec<String>, start: Instant) -> Self {
        Self {
            generated_utc: utc_now(),
            machine: machine(),
            seconds_per_point: ctx.duration().as_secs_f64(),
            host_speed: None,
            baseline: vec![],
            pooled: vec![],
            fresh: vec![],
            orders: None,
            etcd: None,
            log_latency: vec![],
            restart: vec![],
            memory,
            notes,
            total_secs: start.elapsed().as_secs_f64(),
        }
    }
}

struct Ctx {
    exe: std::path::PathBuf,
    dir: std::path::PathBuf,
    args: BenchArgs,
}

impl Ctx {
    async fn host(&self, label: &str, components: Components, configure: impl FnOnce(&mut HostConfig)) -> anyhow::Result<Host> {
        let mut config = HostConfig::new(label, components);
        config.initial_stock = STOCK;
        configure(&mut config);
        let mut host = Host::create(&self.exe, config, self.args.host.keep)?;
        eprintln!("bench: starting {label} ({})", host.root().display());
        host.start(START_TIMEOUT).await?;
        Ok(host)
    }

    fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.args.seconds.clamp(0.1, 60.0))
    }

    async fn row(&self, host: &Host, name: &str, baseline: &str, op: &Op) -> anyhow::Result<Row> {
        let target = Target::parse(&host.frontend_url())?;
        let mut points = Vec::new();
        for &c in &self.args.concurrency {
            let p = measure(&target, op, c, self.duration()).await;
            eprintln!(
                "  {name:<13} c={c:<3} {:>8.0} req/s  p50 {:>7.3} ms  p99 {:>7.3} ms  errors {}",
                p.rps, p.p50_ms, p.p99_ms, p.errors
            );
            points.push(p);
        }
        Ok(Row { name: name.into(), baseline: baseline.into(), points })
    }
}

fn lookup_paths(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| format!("/products/{n}")).collect()
}

/// `toystore bench`.
pub async fn run_bench(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let start = Instant::now();
    if args.concurrency.is_empty() || args.concurrency.contains(&0) {
        bail!("--concurrency needs levels of at least 1");
    }
    if let Some(m) = args.missed.iter().find(|&&m| m > args.large_log) {
        bail!("--missed ({m}) cannot exceed --large-log ({})", args.large_log);
    }
    let dir = components_dir(&args.host)?;
    Components::real(&dir).check()?;
    Components::hello(&dir).check()?;
    let ctx = Ctx { exe: host_binary(&args.host)?, dir, args: args.clone() };
    let mut memory = Vec::new();
    let mut notes = Vec::new();

    if args.orders_only {
        let orders = order_scaling(&ctx, &mut memory).await?;
        let results = BenchResults { orders: Some(orders), ..BenchResults::partial(&ctx, memory, notes, start) };
        return write_results(&results, &args);
    }
    if args.etcd_only {
        let etcd = versus_etcd(&ctx, &mut memory, &mut notes).await?;
        let results = BenchResults { etcd: Some(etcd), ..BenchResults::partial(&ctx, memory, notes, start) };
        return write_results(&results, &args);
    }
    let host_speed = if args.log_only { None } else { Some(host_speed(&ctx, &mut memory).await?) };
    if args.host_speed_only {
        let results = BenchResults { host_speed, ..BenchResults::partial(&ctx, memory, notes, start) };
        return write_results(&results, &args);
    }

    // Baseline: the host with the trivial component everywhere.
    let mut base = ctx.host("bench-baseline", Components::hello(&ctx.dir), |_| {}).await?;
    let baseline = vec![
        ctx.row(&base, "baseline_get", "baseline_get", &Op::Get(lookup_paths(&["Tux"]))).await?,
        ctx.row(&base, "baseline_post", "baseline_post", &Op::Order).await?,
    ];
    base.stop();
    memory.push(Memory { host: "baseline (hello everywhere)".into(), peak_rss_kib: base.peak_rss_kib() });
    drop(base);

    // Cache on, pooled: hits, orders, queries.
    let mut on = ctx.host("bench-cache-on", Components::real(&ctx.dir), |_| {}).await?;
    let mut pooled = vec![ctx.row(&on, "lookup_hit", "baseline_get", &Op::Get(lookup_paths(&["Tux"]))).await?];
    let orders = ctx.row(&on, "order", "baseline_post", &Op::Order).await?;
    let count = orders.points.iter().filter_map(|p| p.max_order).max().map_or(1, |n| n + 1);
    pooled.push(orders);
    pooled.push(ctx.row(&on, "order_query", "baseline_get", &Op::Query { count }).await?);
    on.stop();
    memory.push(Memory { host: format!("{FRESH_STORE} (after the loads above)"), peak_rss_kib: on.peak_rss_kib() });
    drop(on);

    let orders = if args.log_only { None } else { Some(order_scaling(&ctx, &mut memory).await?) };
    let etcd = if args.log_only { None } else { Some(versus_etcd(&ctx, &mut memory, &mut notes).await?) };

    // Cache off: every lookup is a miss (frontend -> catalog); pooled vs fresh connections.
    let mut fresh = Vec::new();
    let modes = if args.log_only { vec![] } else { vec![OutgoingHttp::Pooled, OutgoingHttp::Fresh] };
    for mode in modes {
        let mut h = ctx
            .host(&format!("bench-cache-off-{mode}"), Components::real(&ctx.dir), |c| {
                c.settings.cache_enabled = false;
                c.outgoing_http = mode;
            })
            .await?;
        let rows = if mode == OutgoingHttp::Pooled { &mut pooled } else { &mut fresh };
        rows.push(ctx.row(&h, "lookup_miss", "baseline_get", &Op::Get(lookup_paths(&SEED_TOYS))).await?);
        if mode == OutgoingHttp::Fresh {
            let orders = ctx.row(&h, "order", "baseline_post", &Op::Order).await?;
            let count = orders.points.iter().filter_map(|p| p.max_order).max().map_or(1, |n| n + 1);
            rows.push(orders);
            rows.push(ctx.row(&h, "order_query", "baseline_get", &Op::Query { count }).await?);
        }
        h.stop();
        memory.push(Memory { host: format!("store, cache off, {mode} outgoing"), peak_rss_kib: h.peak_rss_kib() });
    }

    // Order latency after a short and after a long log, then restart with missed orders on the
    // long one. Both hosts run at once and their loads alternate round by round (as in the
    // host-speed section): a single window each, one after the other, put whatever the machine
    // did meanwhile (another process, writeback) on one side only; runs of the same build gave
    // ×1.04 one time and ×1.14 the next.
    let mut log_latency = Vec::new();
    let mut restart = Vec::new();
    let mut hosts = Vec::new();
    for &n in &[args.small_log, args.large_log] {
        let label = format!("bench-log-{n}");
        let mut config = HostConfig::new(&label, Components::real(&ctx.dir));
        config.initial_stock = STOCK;
        let mut h = Host::create(&ctx.exe, config, args.host.keep)?;
        for id in 1..=3 {
            write_order_log(&h.data_dir(&format!("order-{id}")), n, 1)?;
        }
        write_applied_catalog(&h.data_dir("catalog"), n, STOCK)?;
        eprintln!("bench: starting {label} with {n} orders in every replica's log ({})", h.root().display());
        let took = h.start(START_TIMEOUT).await?;
        hosts.push((n, h, took));
    }
    // The logs were written behind the store's back, so its first open derived every key
    // segment (1 M orders: ~16 MiB a replica, not fsync'd). Flush them before timing, or the
    // first fsyncs of the orders pay for that one-time writeback, not for the log's length.
    if let Err(e) = std::process::Command::new("sync").status() {
        notes.push(format!("could not run sync before the log-length point: {e}"));
    }
    let mut rounds: Vec<Vec<Point>> = vec![Vec::new(); hosts.len()];
    for round in 0..args.rounds.max(1) {
        for ((n, h, _), points) in hosts.iter().zip(&mut rounds) {
            let p = measure(&Target::parse(&h.frontend_url())?, &Op::Order, 1, ctx.duration()).await;
            eprintln!("  order after {n:>7} c=1, round {round}: p50 {:.3} ms p99 {:.3} ms ({} orders)", p.p50_ms, p.p99_ms, p.ok);
            points.push(p);
        }
    }
    for ((n, mut h, took), points) in hosts.into_iter().zip(rounds) {
        if points.iter().any(|p| p.max_order.is_some_and(|m| m < n)) {
            notes.push(format!("the host with a {n}-order log numbered new orders below {n}: the pre-written log was not used"));
        }
        let rounds_p50_ms = points.iter().map(|p| p.p50_ms).collect();
        let point = median_by_p50(points);
        log_latency.push(LogPoint { log_orders: n, host_start_secs: took.as_secs_f64(), point, rounds_p50_ms });
        if n == args.large_log {
            match restart_runs(&h, &args.missed).await {
                Ok(r) => {
                    if r.iter().any(|x| !x.caught_up) {
                        notes.push("a restarted replica served before it had caught up with the leader".into());
                    }
                    restart.extend(r)
                }
                Err(e) => notes.push(format!("restart measurement failed: {e:#}")),
            }
            h.stop();
            memory.push(Memory { host: format!("store, {n}-order log, after a replica restart"), peak_rss_kib: h.peak_rss_kib() });
        } else {
            h.stop();
        }
    }

    let rank = |r: &Row| ["lookup_hit", "lookup_miss", "order", "order_query"].iter().position(|n| *n == r.name).unwrap_or(9);
    pooled.sort_by_key(rank);
    fresh.sort_by_key(rank);
    let results = BenchResults {
        generated_utc: utc_now(),
        machine: machine(),
        seconds_per_point: ctx.duration().as_secs_f64(),
        host_speed,
        baseline,
        pooled,
        fresh,
        orders,
        etcd,
        log_latency,
        restart,
        memory,
        notes,
        total_secs: start.elapsed().as_secs_f64(),
    };
    write_results(&results, &args)
}

/// The host-speed comparison: every host it needs runs at once, the loads alternate.
async fn host_speed(ctx: &Ctx, memory: &mut Vec<Memory>) -> anyhow::Result<HostSpeed> {
    let stock = StockServe::start(&ctx.dir.join("toystore_hello.wasm")).await?;
    let (stock, stock_version) = match stock {
        Stock::Running(s) => {
            let v = s.version.clone();
            (Some(s), Ok(v))
        }
        Stock::Missing(why) => {
            eprintln!("bench: stock wasmtime serve not measured: {why}");
            (None, Err(why))
        }
    };
    let mut hello = ctx.host("speed-hello", Components::hello(&ctx.dir), |_| {}).await?;
    let mut store = ctx.host("speed-store", Components::real(&ctx.dir), |_| {}).await?;
    let mut no_cache = ctx
        .host("speed-store-no-cache", Components::real(&ctx.dir), |c| c.settings.cache_enabled = false)
        .await?;
    let direct = |c: &mut HostConfig| c.local_calls = LocalCalls::Direct;
    let mut store_direct = ctx.host("speed-store-direct", Components::real(&ctx.dir), direct).await?;
    let mut no_cache_direct = ctx
        .host("speed-store-no-cache-direct", Components::real(&ctx.dir), |c| {
            direct(c);
            c.settings.cache_enabled = false;
        })
        .await?;
    // Orders for the queries to find.
    let place = async |host: &Host| -> anyhow::Result<u64> {
        let placed = measure(&Target::parse(&host.frontend_url())?, &Op::Order, 8, Duration::from_secs(1)).await;
        Ok(placed.max_order.map_or(1, |n| n + 1))
    };
    let orders = place(&store).await?;
    let orders_direct = place(&store_direct).await?;
    let targets = Targets {
        stock: stock.as_ref(),
        hello: &hello,
        store: &store,
        store_no_cache: &no_cache,
        orders,
        store_direct: &store_direct,
        store_no_cache_direct: &no_cache_direct,
        orders_direct,
    };
    let rounds = ctx.args.rounds.max(1);
    let points = measure_host_speed(&targets, &ctx.args.concurrency, rounds, ctx.duration()).await?;
    for (h, what) in [
        (&mut hello, "hello everywhere"),
        (&mut store, "store, cache on"),
        (&mut no_cache, "store, cache off"),
        (&mut store_direct, "store, cache on, direct local calls"),
        (&mut no_cache_direct, "store, cache off, direct local calls"),
    ] {
        h.stop();
        memory.push(Memory { host: format!("{what} (after the host-speed loads)"), peak_rss_kib: h.peak_rss_kib() });
    }
    Ok(HostSpeed { stock: stock_version, rounds, points })
}

/// Orders at each `--order-concurrency` level with every replica running, then the same levels
/// with one follower paused (it answers nothing, like a stopped process), on one host.
async fn order_scaling(ctx: &Ctx, memory: &mut Vec<Memory>) -> anyhow::Result<OrderScaling> {
    let mut h = ctx.host("bench-orders", Components::real(&ctx.dir), |_| {}).await?;
    let target = Target::parse(&h.frontend_url())?;
    // Settle the leader first, so the first point does not pay for the election.
    let _ = measure(&target, &Op::Order, 1, Duration::from_millis(200)).await;
    let leader = h.wait_leader(Duration::from_secs(30)).await?;
    let follower = (1..=3).find(|&i| i != leader).unwrap_or(1);
    let series = |paused: bool| {
        let levels = ctx.args.order_concurrency.clone();
        let (target, duration) = (target.clone(), ctx.duration());
        async move {
            let mut points = Vec::new();
            for c in levels {
                let p = measure(&target, &Op::Order, c, duration).await;
                let what = if paused { "order, follower paused" } else { "order" };
                eprintln!("  {what:<22} c={c:<3} {:>7.0} req/s  p50 {:>8.3} ms  p99 {:>8.3} ms  errors {}", p.rps, p.p50_ms, p.p99_ms, p.errors);
                points.push(p);
            }
            points
        }
    };
    let running = series(false).await;
    h.admin(follower, "pause").await?;
    eprintln!("bench: paused order-{follower} (the leader is order-{leader})");
    let follower_paused = series(true).await;
    if let Err(e) = h.admin(follower, "resume").await {
        eprintln!("bench: resuming order-{follower}: {e:#}");
    }
    h.stop();
    memory.push(Memory { host: "store, after the order-scaling loads".into(), peak_rss_kib: h.peak_rss_kib() });
    Ok(OrderScaling { paused_replica: follower, running, follower_paused })
}

/// Orders on a store (ample stock, restock off) against puts on a three-member etcd, both
/// running at once, alternating round by round at each `--order-concurrency` level.
async fn versus_etcd(ctx: &Ctx, memory: &mut Vec<Memory>, notes: &mut Vec<String>) -> anyhow::Result<EtcdComparison> {
    let rounds = ctx.args.rounds.max(1);
    let (load_before, io_before) = (loadavg(), io_pressure());
    let missing = |why: String| EtcdComparison {
        etcd: Err(why),
        put_member: String::new(),
        rounds,
        load_before: load_before.clone(),
        load_after: loadavg(),
        io_before: io_before.clone(),
        io_after: io_pressure(),
        points: vec![],
    };
    let cluster = match EtcdCluster::start(ctx.args.host.keep).await? {
        Etcd::Running(c) => c,
        Etcd::Missing(why) => {
            notes.push(format!("etcd was not measured: {why}"));
            return Ok(missing(why));
        }
    };
    eprintln!("bench: etcd cluster running ({})", cluster.root().display());
    let mut store = ctx.host("bench-etcd-orders", Components::real(&ctx.dir), |c| c.settings.restock_interval_secs = 0).await?;
    // Settle the leader first, so the first point does not pay for the election.
    let _ = measure(&Target::parse(&store.frontend_url())?, &Op::Order, 1, Duration::from_millis(200)).await;
    store.wait_leader(Duration::from_secs(30)).await?;
    let (put_member, put_url) = cluster.leader_url().await?;
    let points = measure_versus(&store, &cluster, &put_url, &ctx.args.order_concurrency, rounds, ctx.duration()).await?;
    store.stop();
    memory.push(Memory { host: "store, after the orders against etcd".into(), peak_rss_kib: store.peak_rss_kib() });
    let (load_after, io_after) = (loadavg(), io_pressure());
    Ok(EtcdComparison { etcd: Ok(cluster.version.clone()), put_member, rounds, load_before, load_after, io_before, io_after, points })
}

/// Print the report, write it (and its JSON) to `--out`, and say whether anything failed.
fn write_results(results: &BenchResults, args: &BenchArgs) -> anyhow::Result<ExitCode> {
    let md = bench_markdown(results);
    println!("{md}");
    if let Some(out) = &args.out {
        if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
        }
        std::fs::write(out, &md).with_context(|| format!("write {}", out.display()))?;
        let json_path = out.with_extension("json");
        std::fs::write(&json_path, serde_json::to_string_pretty(results)?).with_context(|| format!("write {}", json_path.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    }
    let speed_errors: u64 = results.host_speed.iter().flat_map(|h| &h.points).map(|p| p.errors()).sum();
    // With a follower paused some orders may time out: that is measured, not a failure.
    let order_errors: u64 = results.orders.iter().flat_map(|o| &o.running).map(|p| p.errors).sum();
    let etcd_errors: u64 = results.etcd.iter().flat_map(|e| &e.points).map(|v| v.errors().0 + v.errors().1).sum();
    let errors: u64 = results.pooled.iter().chain(&results.fresh).flat_map(|r| &r.points).map(|p| p.errors).sum::<u64>()
        + speed_errors
        + order_errors
        + etcd_errors;
    Ok(if errors == 0 && results.notes.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Kill a follower and restart it with nothing missed, then for each of `missed`: kill it, cut
/// that many of the last orders from its log (so its peers have orders it has not) and restart
/// it; each time, how long from the restart until its `/ping` answers 200.
async fn restart_runs(h: &Host, missed: &[u64]) -> anyhow::Result<Vec<RestartPoint>> {
    let leader = h.wait_leader(Duration::from_secs(30)).await?;
    let id = (1..=3).find(|&i| i != leader).unwrap_or(1);
    let mut out = Vec::new();
    for m in std::iter::once(0).chain(missed.iter().copied()) {
        h.admin(id, "kill").await?;
        if m > 0 {
            let dir = h.data_dir(&format!("order-{id}"));
            let text = std::fs::read_to_string(dir.join("orders.csv")).context("read the replica's log")?;
            let orders = text.lines().count().saturating_sub(1) as u64;
            truncate_order_log(&dir, orders.saturating_sub(m))?;
        }
        let t = Instant::now();
        h.admin(id, "restart").await?;
        let deadline = t + Duration::from_secs(120);
        while !h.replica_serving(id).await {
            if Instant::now() >= deadline {
                bail!("replica {id} not serving 120 s after its restart");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        let (mine, theirs) = (last_order(h, id).await, last_order(h, leader).await);
        let caught_up = mine.is_some() && mine == theirs;
        eprintln!("  restart of order-{id} with {m} missed orders: serving after {ms:.0} ms (last {mine:?}, leader's {theirs:?})");
        out.push(RestartPoint { missed: m, replica: id, restart_to_serving_ms: ms, caught_up });
    }
    Ok(out)
}

/// The index of the last record replica `id` reports on `/ping` (`last`): equal on two replicas
/// once one has caught up with the other.
async fn last_order(h: &Host, id: u32) -> Option<i64> {
    let r = crate::load::conn::once(&h.replica_url(id), Method::GET, "/ping", None, Duration::from_secs(5)).await.ok()?;
    toystore_api::data_of(&r.json())?["last"].as_i64()
}

/// `x / base` as `×1.23`, or `–` without a base.
fn ratio(x: f64, base: f64) -> String {
    if base > 0.0 && x.is_finite() {
        format!("×{:.2}", x / base)
    } else {
        "–".into()
    }
}

fn label(name: &str) -> &str {
    match name {
        "baseline_get" => "baseline GET (hello)",
        "baseline_post" => "baseline POST (hello)",
        "lookup_hit" => "lookup, cache hit",
        "lookup_miss" => "lookup, cache miss",
        "order" => "order (durable, replicated)",
        "order_query" => "order query",
        other => other,
    }
}

fn point_at<'a>(rows: &'a [Row], name: &str, c: usize) -> Option<&'a Point> {
    rows.iter().find(|r| r.name == name)?.points.iter().find(|p| p.concurrency == c)
}

/// The markdown report.
pub fn bench_markdown(r: &BenchResults) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# toystore bench\n");
    let _ = writeln!(s, "Generated by `just bench` (`toystore bench`) on {} — {}; total {:.0} s.\n", r.generated_utc, r.machine, r.total_secs);
    let _ = writeln!(
        s,
        "Each point: C keep-alive connections on loopback, each sending its next request as soon as the last \
         is answered, for {:.1} s after a {} ms warm-up; latency in ms at the client. **Baseline**: the same \
         host running the trivial `toystore_hello` component for every service, measured in this run; \
         *× base* is the figure divided by the baseline's at the same concurrency (GET for lookups and \
         queries, POST for orders). Orders are real: stock checked by the leader, appended and fsynced on \
         the leader and a follower, then applied at the catalog, before the answer.\n",
        r.seconds_per_point,
        WARMUP.as_millis()
    );
    if let Some(h) = &r.host_speed {
        let _ = writeln!(s, "{}", host_speed_markdown(h));
    }
    if r.baseline.is_empty() && r.pooled.is_empty() {
        // `--host-speed-only`, `--orders-only` or `--etcd-only`: only their section, the memory
        // table and the notes.
        write_orders(&mut s, r);
        write_etcd(&mut s, r);
        write_memory(&mut s, r);
        write_notes(&mut s, r);
        return s;
    }
    let _ = writeln!(s, "## Throughput and latency (pooled connections between components)\n");
    let _ = writeln!(s, "| request | C | req/s | req/s × base | mean | p50 | p99 | max | p50 × base | errors |");
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in r.baseline.iter().chain(&r.pooled) {
        for p in &row.points {
            let b = point_at(&r.baseline, &row.baseline, p.concurrency);
            let _ = writeln!(
                s,
                "| {} | {} | {:.0} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {} | {} |",
                label(&row.name),
                p.concurrency,
                p.rps,
                b.map_or("–".into(), |b| ratio(p.rps, b.rps)),
                p.mean_ms,
                p.p50_ms,
                p.p99_ms,
                p.max_ms,
                b.map_or("–".into(), |b| ratio(p.p50_ms, b.p50_ms)),
                p.errors
            );
        }
    }
    write_orders(&mut s, r);
    write_etcd(&mut s, r);
    if !r.fresh.is_empty() {
        let _ = writeln!(s, "\n## Calls between components: pooled vs fresh connections\n");
        let _ = writeln!(
            s,
            "`outgoing_http = \"pooled\"` (the host keeps connections to the components alive) against `\"fresh\"` \
             (a new connection per call); lookups with the cache off so that each one calls the catalog.\n"
        );
        let _ = writeln!(s, "| request | C | pooled req/s | fresh req/s | fresh/pooled | pooled p50 | fresh p50 | fresh p50 × base | pooled p99 | fresh p99 | errors (p/f) |");
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for row in &r.fresh {
            for f in &row.points {
                let Some(p) = point_at(&r.pooled, &row.name, f.concurrency) else { continue };
                let b = point_at(&r.baseline, &row.baseline, f.concurrency);
                let _ = writeln!(
                    s,
                    "| {} | {} | {:.0} | {:.0} | {} | {:.3} | {:.3} | {} | {:.3} | {:.3} | {}/{} |",
                    label(&row.name),
                    f.concurrency,
                    p.rps,
                    f.rps,
                    ratio(f.rps, p.rps),
                    p.p50_ms,
                    f.p50_ms,
                    b.map_or("–".into(), |b| ratio(f.p50_ms, b.p50_ms)),
                    p.p99_ms,
                    f.p99_ms,
                    p.errors,
                    f.errors
                );
            }
        }
    }
    if !r.log_latency.is_empty() {
        let _ = writeln!(s, "\n## Order latency against the length of the order log\n");
        let _ = writeln!(
            s,
            "Every replica starts with the given number of orders already in its log; then one connection places orders. \
             Both hosts run at once and their loads alternate, round by round; the row is the round with the median p50.\n"
        );
        let _ = writeln!(s, "| orders in the log | host start → serving | orders placed | mean | p50 | p99 | max | p50 × shortest | p50 × base | p50 per round |");
        let _ = writeln!(s, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
        let first = r.log_latency.first().map(|l| l.point.p50_ms).unwrap_or(0.0);
        let base = point_at(&r.baseline, "baseline_post", 1);
        for l in &r.log_latency {
            let p = &l.point;
            let _ = writeln!(
                s,
                "| {} | {:.1} s | {} | {:.3} | {:.3} | {:.3} | {:.3} | {} | {} | {} |",
                l.log_orders,
                l.host_start_secs,
                p.ok,
                p.mean_ms,
                p.p50_ms,
                p.p99_ms,
                p.max_ms,
                ratio(p.p50_ms, first),
                base.map_or("–".into(), |b| ratio(p.p50_ms, b.p50_ms)),
                l.rounds_p50_ms.iter().map(|x| format!("{x:.3}")).collect::<Vec<_>>().join(", ")
            );
        }
    }
    if !r.restart.is_empty() {
        let _ = writeln!(s, "\n## Replica restart to serving\n");
        let _ = writeln!(
            s,
            "A follower is killed (admin endpoint) and restarted; the time is from `POST /replicas/<id>/restart` \
             until its `/ping` answers 200, i.e. its log is loaded and caught up from its peers. With missed \
             orders, the last ones were cut from its log while it was down.\n"
        );
        let _ = writeln!(s, "| missed orders | replica | restart → serving | × nothing missed | caught up |");
        let _ = writeln!(s, "|---:|---|---:|---:|---|");
        let zero = r.restart.iter().find(|x| x.missed == 0).map(|x| x.restart_to_serving_ms).unwrap_or(0.0);
        for x in &r.restart {
            let _ = writeln!(
                s,
                "| {} | order-{} | {:.0} ms | {} | {} |",
                x.missed,
                x.replica,
                x.restart_to_serving_ms,
                ratio(x.restart_to_serving_ms, zero),
                if x.caught_up { "yes" } else { "**no**" }
            );
        }
    }
    write_memory(&mut s, r);
    write_notes(&mut s, r);
    s
}

fn write_notes(s: &mut String, r: &BenchResults) {
    for n in &r.notes {
        let _ = writeln!(s, "\nNote: {n}");
    }
}

fn write_etcd(s: &mut String, r: &BenchResults) {
    if let Some(e) = &r.etcd {
        let _ = write!(s, "\n{}", etcd_markdown(e));
    }
}

fn write_orders(s: &mut String, r: &BenchResults) {
    let Some(o) = &r.orders else { return };
    let _ = writeln!(s, "\n## Orders by connections, and with a follower paused\n");
    let _ = writeln!(
        s,
        "One host; orders with every replica running, then the same levels with follower order-{} paused \
         (`POST /replicas/{}/pause`: it answers nothing, like a stopped process). *paused × running* is the \
         paused throughput divided by the running one at the same C, measured back to back in this run.\n",
        o.paused_replica, o.paused_replica
    );
    let _ = writeln!(s, "| C | req/s | p50 | p99 | errors | paused: req/s | paused × running | paused p50 | paused p99 | paused errors |");
    let _ = writeln!(s, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for p in &o.running {
        let q = o.follower_paused.iter().find(|q| q.concurrency == p.concurrency);
        let cell = |f: &dyn Fn(&Point) -> String| q.map_or("–".to_string(), f);
        let _ = writeln!(
            s,
            "| {} | {:.0} | {:.3} | {:.3} | {} | {} | {} | {} | {} | {} |",
            p.concurrency,
            p.rps,
            p.p50_ms,
            p.p99_ms,
            p.errors,
            cell(&|q| format!("{:.0}", q.rps)),
            cell(&|q| ratio(q.rps, p.rps)),
            cell(&|q| format!("{:.3}", q.p50_ms)),
            cell(&|q| format!("{:.3}", q.p99_ms)),
            cell(&|q| q.errors.to_string()),
        );
    }
}

/// The memory row the others are compared with in the "× store" column.
const FRESH_STORE: &str = "store, cache on";

fn write_memory(s: &mut String, r: &BenchResults) {
    if !r.memory.is_empty() {
        let _ = writeln!(s, "\n## Peak memory of the host process (VmHWM)\n");
        let _ = writeln!(
            s,
            "× store: against the store with the cache on after its loads (a short log): issue 10 asks for \
             ≤ ×1.20 with a 1 M-order log.\n"
        );
        let _ = writeln!(s, "| host | peak RSS | × base | × store |");
        let _ = writeln!(s, "|---|---:|---:|---:|");
        let base = r.memory.first().and_then(|m| m.peak_rss_kib).unwrap_or(0) as f64;
        let store = r.memory.iter().find(|m| m.host.starts_with(FRESH_STORE)).and_then(|m| m.peak_rss_kib).unwrap_or(0) as f64;
        for m in &r.memory {
            match m.peak_rss_kib {
                Some(k) => {
                    let (mib, k) = (k as f64 / 1024.0, k as f64);
                    let _ = writeln!(s, "| {} | {mib:.1} MiB | {} | {} |", m.host, ratio(k, base), ratio(k, store));
                }
                None => {
                    let _ = writeln!(s, "| {} | – | – | – |", m.host);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(c: usize, rps: f64, p50: f64) -> Point {
        Point { concurrency: c, ok: 100, errors: 0, secs: 1.0, rps, mean_ms: p50, p50_ms: p50, p99_ms: p50 * 2.0, max_ms: p50 * 3.0, max_order: None, cpu_secs: None }
    }

    fn row(name: &str, base: &str, pts: Vec<Point>) -> Row {
        Row { name: name.into(), baseline: base.into(), points: pts }
    }

    #[test]
    fn ratios_against_the_baseline() {
        let r = BenchResults {
            generated_utc: "now".into(),
            machine: "2 cores".into(),
            seconds_per_point: 1.0,
            host_speed: None,
            baseline: vec![row("baseline_get", "baseline_get", vec![point(1, 10_000.0, 0.1)]), row("baseline_post", "baseline_post", vec![point(1, 8_000.0, 0.125)])],
            pooled: vec![row("lookup_hit", "baseline_get", vec![point(1, 5_000.0, 0.2)]), row("order", "baseline_post", vec![point(1, 400.0, 2.5)])],
            fresh: vec![row("order", "baseline_post", vec![point(1, 200.0, 5.0)])],
            orders: Some(OrderScaling {
                paused_replica: 2,
                running: vec![point(1, 400.0, 2.5), point(5, 900.0, 5.0)],
                follower_paused: vec![point(1, 100.0, 10.0)],
            }),
            etcd: None,
            log_latency: vec![
                LogPoint { log_orders: 1000, host_start_secs: 2.0, point: point(1, 400.0, 2.5), rounds_p50_ms: vec![2.4, 2.5, 2.7] },
                LogPoint { log_orders: 100_000, host_start_secs: 3.0, point: point(1, 380.0, 2.6), rounds_p50_ms: vec![] },
            ],
            restart: vec![RestartPoint { missed: 0, replica: 1, restart_to_serving_ms: 100.0, caught_up: true }, RestartPoint { missed: 10_000, replica: 1, restart_to_serving_ms: 250.0, caught_up: true }],
            memory: vec![
                Memory { host: "baseline".into(), peak_rss_kib: Some(51_200) },
                Memory { host: "store, cache on".into(), peak_rss_kib: Some(76_800) },
                Memory { host: "store, 1000000-order log".into(), peak_rss_kib: Some(102_400) },
            ],
            notes: vec![],
            total_secs: 1.0,
        };
        let md = bench_markdown(&r);
        assert!(md.contains("| lookup, cache hit | 1 | 5000 | ×0.50 | 0.200 | 0.200 | 0.400 | 0.600 | ×2.00 | 0 |"), "{md}");
        assert!(md.contains("| order (durable, replicated) | 1 | 400 | ×0.05 |"), "{md}");
        assert!(md.contains("| order (durable, replicated) | 1 | 400 | 200 | ×0.50 | 2.500 | 5.000 | ×40.00 |"), "{md}");
        assert!(md.contains("| 100000 | 3.0 s | 100 | 2.600 | 2.600 | 5.200 | 7.800 | ×1.04 | ×20.80 |  |"), "{md}");
        assert!(md.contains("| ×1.00 | ×20.00 | 2.400, 2.500, 2.700 |"), "{md}");
        assert!(md.contains("| 10000 | order-1 | 250 ms | ×2.50 | yes |"), "{md}");
        assert!(md.contains("| store, 1000000-order log | 100.0 MiB | ×2.00 | ×1.33 |"), "{md}");
        assert!(md.contains("follower order-2 paused"), "{md}");
        assert!(md.contains("| 1 | 400 | 2.500 | 5.000 | 0 | 100 | ×0.25 | 10.000 | 20.000 | 0 |"), "{md}");
        assert!(md.contains("| 5 | 900 | 5.000 | 10.000 | 0 | – | – | – | – | – |"), "{md}");
        assert_eq!(ratio(1.0, 0.0), "–");
    }

    #[test]
    fn a_partial_run_shows_its_section_the_memory_and_the_notes() {
        let start = Instant::now();
        let ctx = Ctx { exe: "/x".into(), dir: "/y".into(), args: BenchArgs::default() };
        let versus = etcd::Versus { concurrency: 5, orders: vec![point(5, 1000.0, 4.5)], puts: vec![point(5, 1750.0, 2.5)] };
        let e = EtcdComparison {
            etcd: Ok("etcd Version: 3.4.23".into()),
            put_member: "m1".into(),
            rounds: 1,
            load_before: "1 1 1".into(),
            load_after: "2 2 2".into(),
            io_before: "unknown".into(),
            io_after: "unknown".into(),
            points: vec![versus],
        };
        let memory = vec![Memory { host: "store".into(), peak_rss_kib: Some(1024) }];
        let r = BenchResults { etcd: Some(e), ..BenchResults::partial(&ctx, memory, vec!["something odd".into()], start) };
        let md = bench_markdown(&r);
        assert!(md.contains("\n## Orders vs etcd\n"), "{md}");
        assert!(md.contains("| 5 | 1000 (4.50 ms) | 1750 (2.50 ms) | ×0.57 | ×1.80 | – | – | 0 / 0 | 1000; 1750 |"), "{md}");
        assert!(md.contains("| store | 1.0 MiB |"), "{md}");
        assert!(md.contains("\nNote: something odd"), "{md}");
        assert!(!md.contains("## Orders by connections"), "{md}");
    }

    #[test]
    fn the_log_length_point_is_the_round_with_the_median_p50() {
        let p50 = |v: &[f64]| median_by_p50(v.iter().map(|&x| point(1, 100.0, x)).collect()).p50_ms;
        assert_eq!(p50(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(p50(&[1.0, 2.0]), 2.0);
        assert_eq!(p50(&[5.0]), 5.0);
    }

    #[tokio::test]
    async fn measure_counts_and_times_against_a_fake() {
        let fake = crate::fake::Fake::start(1_000_000).await;
        let t = Target::parse(&fake.url).unwrap();
        let p = measure(&t, &Op::Order, 4, Duration::from_millis(300)).await;
        assert!(p.ok > 10 && p.errors == 0, "{p:?}");
        assert!(p.max_order.is_some());
        let q = measure(&t, &Op::Query { count: p.max_order.unwrap() + 1 }, 2, Duration::from_millis(200)).await;
        assert!(q.ok > 10 && q.errors == 0, "{q:?}");
        let g = measure(&t, &Op::Get(vec!["/products/Nope".into()]), 1, Duration::from_millis(200)).await;
        assert!(g.ok == 0 && g.errors > 0, "404s are errors in the bench: {g:?}");
    }
}
