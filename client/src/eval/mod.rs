//! `toystore eval`: the seed's evaluation in one command.
//!
//! 1. For cache on and cache off, a freshly started host; against it, `--clients` concurrent
//!    clients for each p in `--probs` (default 0, 0.2, ..., 0.8).
//! 2. The failure run: a fresh host, the same clients, and the order leader killed a third of
//!    the way through the load and restarted a few seconds later.
//!
//! Every point ends with the read-back of every acknowledged order. The results go to
//! `<out>/results.md` (tables), `<out>/results.json` and `<out>/latency_*.png`.

pub mod plot;

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use plotters::style::RGBColor;
use serde::{Deserialize, Serialize};

use crate::args::{ClientArgs, EvalArgs};
use crate::hostproc::{components_dir, host_binary, Components, Host, HostConfig};
use plot::{line_chart, Series};
use crate::load::report::Report;
use crate::load::run::{assemble, run, run_load, verify_orders};
use crate::load::stats::{Kind, Summary};

/// How long a host may take to compile its components and elect a leader.
const START_TIMEOUT: Duration = Duration::from_secs(180);
/// Stock of each toy at the start of every point: enough that no point runs out (p = 0.8 orders
/// about 2 300 units), so every point measures real orders rather than "out of stock" answers.
pub const EVAL_STOCK: u64 = 10_000;
/// How long the failure run's leader stays down at most, and at least.
const DOWNTIME: Duration = Duration::from_secs(3);
const MIN_DOWNTIME: Duration = Duration::from_millis(500);

/// One point of the sweep.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalPoint {
    pub cache: bool,
    pub prob: f64,
    pub report: Report,
}

/// The failure run: what was killed when, and what the clients saw.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FailureRun {
    pub prob: f64,
    pub killed: Option<u32>,
    /// Leader the frontend names after the restart.
    pub leader_after: Option<u32>,
    /// Seconds into the load when the leader was killed / restarted.
    pub killed_at_secs: Option<f64>,
    pub restarted_at_secs: Option<f64>,
    /// From `POST /replicas/<id>/restart` to its `/ping` answering 200.
    pub restart_to_serving_ms: Option<f64>,
    pub report: Report,
    /// Anything that did not go to plan (the kill could not happen, ...).
    pub notes: Vec<String>,
    /// `toystore check --strict` on the stopped host's data directories: replicas agree,
    /// numbers contiguous, keys unique, stock conserved (a quiet point).
    #[serde(default)]
    pub check: Option<StoreCheck>,
}

/// What `toystore check` said of a store after a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoreCheck {
    pub ok: bool,
    /// Its human summary (the violations, if any, one per line).
    pub summary: String,
}

impl StoreCheck {
    /// Check the stopped `host`'s catalog and three replicas as a quiet point.
    fn of(host: &Host) -> Self {
        let dirs = crate::check::Dirs {
            catalog: host.data_dir("catalog"),
            replicas: (1..=3).map(|id| host.data_dir(&format!("order-{id}"))).collect(),
        };
        let report = crate::check::check(&dirs, true);
        Self { ok: report.ok, summary: report.summary() }
    }
}

/// Everything `toystore eval` measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalResults {
    pub generated_utc: String,
    pub machine: String,
    pub clients: usize,
    pub requests_per_client: usize,
    pub seed: u64,
    pub points: Vec<EvalPoint>,
    pub failure: Option<FailureRun>,
    /// Seconds each host took from spawn to serving (components compiled, leader chosen).
    pub host_start_secs: Vec<(String, f64)>,
    pub total_secs: f64,
}

impl EvalResults {
    /// Every acknowledged order of every run read back as ordered, and the failure run's store
    /// passed `toystore check --strict`.
    pub fn all_verified(&self) -> bool {
        self.points.iter().all(|p| p.report.verified())
            && self.failure.as_ref().is_none_or(|f| f.report.verified() && f.check.as_ref().is_none_or(|c| c.ok))
    }
}

fn client_args(args: &EvalArgs, url: String, prob: f64) -> ClientArgs {
    ClientArgs { url, clients: args.clients, requests: args.requests, prob, seed: Some(args.seed), ..ClientArgs::default() }
}

/// One line per finished point, so a log shows progress even without a terminal.
fn point_line(label: &str, r: &Report) -> String {
    let f = |k: Kind| r.summary(k).map_or("-".into(), |s| format!("{} x {:.2}/{:.2} ms", s.count, s.mean_ms, s.p99_ms));
    format!(
        "{label}: lookup {} | order {} | query {} | errors {} | verified {}",
        f(Kind::Lookup),
        f(Kind::Order),
        f(Kind::OrderQuery),
        if r.saw_errors() { "YES" } else { "no" },
        if r.verified() { "yes" } else { "NO" }
    )
}

/// `toystore eval`: run it all, write the results, exit non-zero if any order did not verify.
pub async fn run_eval(args: EvalArgs) -> anyhow::Result<ExitCode> {
    let start = Instant::now();
    let exe = host_binary(&args.host)?;
    let dir = components_dir(&args.host)?;
    Components::real(&dir).check()?;
    for &p in &args.probs {
        anyhow::ensure!((0.0..=1.0).contains(&p), "--probs: {p} is not a probability");
    }
    fs::create_dir_all(&args.out).with_context(|| format!("create {}", args.out.display()))?;

    let mut points = Vec::new();
    let mut host_start_secs = Vec::new();
    for cache in [true, false] {
        for &prob in &args.probs {
            // A fresh host per point: every point starts from the same catalog and empty logs.
            let label = format!("eval-cache-{}-p{:.0}", on_off(cache), prob * 100.0);
            let mut config = HostConfig::new(&label, Components::real(&dir));
            config.settings.cache_enabled = cache;
            config.initial_stock = EVAL_STOCK;
            let mut host = Host::create(&exe, config, args.host.keep)?;
            let took = host.start(START_TIMEOUT).await?;
            host_start_secs.push((label, took.as_secs_f64()));
            let report = run(&client_args(&args, host.frontend_url(), prob), true)
                .await
                .with_context(|| format!("client run, cache {}, p = {prob}", on_off(cache)))?;
            eprintln!("  {}", point_line(&format!("cache {:<3} p={prob:.1}", on_off(cache)), &report));
            if report.exit_status() == 2 {
                bail!("no request of this point got an answer; host log:\n{}", host.log_tail(30));
            }
            host.stop();
            points.push(EvalPoint { cache, prob, report });
        }
    }

    let failure = if args.no_failure_run {
        None
    } else {
        let mut config = HostConfig::new("eval-failure", Components::real(&dir));
        config.initial_stock = EVAL_STOCK;
        let mut host = Host::create(&exe, config, args.host.keep)?;
        eprintln!("eval: failure run on a fresh host ({})", host.root().display());
        let took = host.start(START_TIMEOUT).await?;
        host_start_secs.push(("eval-failure".into(), took.as_secs_f64()));
        let mut f = failure_run(&args, &host).await?;
        eprintln!("  {}", point_line(&format!("failure    p={:.1}", f.prob), &f.report));
        host.stop();
        // Stopped: a quiet point, so every committed order must be applied at the catalog.
        let check = StoreCheck::of(&host);
        eprint!("  {}", check.summary);
        f.check = Some(check);
        Some(f)
    };

    let results = EvalResults {
        generated_utc: utc_now(),
        machine: machine(),
        clients: args.clients,
        requests_per_client: args.requests,
        seed: args.seed,
        points,
        failure,
        host_start_secs,
        total_secs: start.elapsed().as_secs_f64(),
    };
    write_results(&args.out, &results)?;
    eprintln!("eval: wrote {} in {:.0} s", args.out.join("results.md").display(), results.total_secs);
    Ok(if results.all_verified() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// The clients run while the leader is killed a quarter of the way through and restarted up to
/// [`DOWNTIME`] later; then every acknowledged order is read back.
async fn failure_run(args: &EvalArgs, host: &Host) -> anyhow::Result<FailureRun> {
    let ca = client_args(args, host.frontend_url(), args.failure_prob);
    let total = (args.clients * args.requests) as u64;
    let done = Arc::new(AtomicU64::new(0));
    let load_start = Instant::now();
    let load = {
        let (ca, done) = (ca.clone(), Arc::clone(&done));
        tokio::spawn(async move { run_load(&ca, true, done).await })
    };
    let mut notes = Vec::new();
    let (mut killed, mut killed_at, mut restarted_at, mut restart_ms) = (None, None, None, None);

    while done.load(Ordering::Relaxed) < total / 4 && !load.is_finished() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    match host.leader().await {
        Ok(Some(id)) => match host.admin(id, "kill").await {
            Ok(_) => {
                killed = Some(id);
                killed_at = Some(load_start.elapsed().as_secs_f64());
            }
            Err(e) => notes.push(format!("kill failed: {e:#}")),
        },
        Ok(None) => notes.push("no leader to kill".into()),
        Err(e) => notes.push(format!("GET /leader failed: {e:#}")),
    }
    if let Some(id) = killed {
        // Down for DOWNTIME, or less if the load is already 5/8 done (at least MIN_DOWNTIME), so
        // that the restart and the catch-up happen while orders are still coming in.
        let down = Instant::now();
        while down.elapsed() < DOWNTIME
            && !load.is_finished()
            && !(down.elapsed() >= MIN_DOWNTIME && done.load(Ordering::Relaxed) >= total * 5 / 8)
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let t = Instant::now();
        match host.admin(id, "restart").await {
            Ok(_) => {
                restarted_at = Some(load_start.elapsed().as_secs_f64());
                let deadline = t + Duration::from_secs(60);
                while !host.replica_serving(id).await && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                if host.replica_serving(id).await {
                    restart_ms = Some(t.elapsed().as_secs_f64() * 1000.0);
                } else {
                    notes.push(format!("replica {id} not serving 60 s after its restart"));
                }
            }
            Err(e) => notes.push(format!("restart failed: {e:#}")),
        }
        if load.is_finished() {
            notes.push("the load finished before the restart (the leader was down until the end)".into());
        }
    }
    let load = load.await.context("failure-run load panicked")??;
    let leader_after = host.leader().await.ok().flatten();
    let verify_start = Instant::now();
    let (verification, vstats) = verify_orders(&ca, &load.placed, true).await?;
    let report = assemble(&ca, &load, load.placed.len(), verification, &vstats, verify_start.elapsed().as_secs_f64());
    Ok(FailureRun {
        prob: args.failure_prob,
        killed,
        leader_after,
        killed_at_secs: killed_at,
        restarted_at_secs: restarted_at,
        restart_to_serving_ms: restart_ms,
        report,
        notes,
        check: None,
    })
}

fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

/// Write results.md, results.json and the plots. The plots are best effort: without a font the
/// tables are still written and the reason is noted in results.md.
pub fn write_results(out: &Path, r: &EvalResults) -> anyhow::Result<()> {
    let mut plot_note = None;
    let mut plots = Vec::new();
    for kind in Kind::ALL {
        let file = format!("latency_{}.png", kind.name());
        match plot_kind(&out.join(&file), r, kind) {
            Ok(true) => plots.push((kind, file)),
            Ok(false) => {}
            Err(e) => plot_note = Some(format!("{e:#}")),
        }
    }
    let md = results_markdown(r, &plots, plot_note.as_deref());
    fs::write(out.join("results.md"), md).with_context(|| format!("write {}", out.join("results.md").display()))?;
    let json = serde_json::to_string_pretty(r).context("serialise results")?;
    fs::write(out.join("results.json"), json).with_context(|| format!("write {}", out.join("results.json").display()))?;
    Ok(())
}

const BLUE: RGBColor = RGBColor(31, 119, 180);
const RED: RGBColor = RGBColor(214, 39, 40);

/// Mean (solid) and p99 (dashed) latency of one request type against p, cache on vs off.
/// `Ok(false)` when no point has that request type (e.g. only p = 0).
fn plot_kind(path: &Path, r: &EvalResults, kind: Kind) -> anyhow::Result<bool> {
    let mut series = Vec::new();
    for (cache, color) in [(true, BLUE), (false, RED)] {
        let rows: Vec<(f64, &Summary)> = r
            .points
            .iter()
            .filter(|p| p.cache == cache)
            .filter_map(|p| p.report.summary(kind).filter(|s| s.ok + s.rejected > 0).map(|s| (p.prob, s)))
            .collect();
        if rows.is_empty() {
            continue;
        }
        let label = format!("cache {}", on_off(cache));
        series.push(Series { label: format!("{label}, mean"), color, dashed: false, points: rows.iter().map(|(p, s)| (*p, s.mean_ms)).collect() });
        series.push(Series { label: format!("{label}, p99 (dashed)"), color, dashed: true, points: rows.iter().map(|(p, s)| (*p, s.p99_ms)).collect() });
    }
    if series.is_empty() {
        return Ok(false);
    }
    let title = format!("{} latency vs order probability ({} clients)", kind.name(), r.clients);
    line_chart(path, &title, "p (probability of ordering a toy in stock)", "latency (ms)", &series)?;
    Ok(true)
}

fn ms(s: Option<&Summary>, f: impl Fn(&Summary) -> f64) -> String {
    s.filter(|s| s.ok + s.rejected > 0).map_or("–".into(), |s| format!("{:.2}", f(s)))
}

fn count(s: Option<&Summary>) -> String {
    s.map_or("0".into(), |s| s.count.to_string())
}

fn errors_cell(r: &Report) -> String {
    let errors: u64 = r.summaries.iter().map(|s| s.errors).sum();
    let retries = r.retries();
    match (errors, retries) {
        (0, 0) => "no".into(),
        (0, n) => format!("no ({n} retried)"),
        (e, n) => format!("**yes: {e}** ({n} retried)"),
    }
}

fn verified_cell(r: &Report) -> String {
    let v = &r.verification;
    if v.ok() && v.checked == 0 {
        "yes (no orders)".into()
    } else if v.ok() {
        format!("yes ({}/{})", v.verified, v.checked)
    } else {
        format!("**NO: {} problem(s)** ({}/{})", v.problems.len(), v.verified, v.checked)
    }
}

/// The markdown report.
pub fn results_markdown(r: &EvalResults, plots: &[(Kind, String)], plot_note: Option<&str>) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# toystore evaluation\n");
    let _ = writeln!(
        s,
        "Generated by `just eval` (`toystore eval`) on {} — {}; total {:.0} s.\n",
        r.generated_utc, r.machine, r.total_secs
    );
    let _ = writeln!(
        s,
        "{} concurrent clients, each with its own keep-alive connection, {} iterations per client per point \
         (seed {}): look up a random toy; if it is in stock, order 1–3 of it with probability p. At the end \
         every acknowledged order is read back with `GET /orders/<n>` (the *query* columns) and compared with \
         what was ordered. Latencies are in milliseconds, measured at the client per logical request \
         (retries and backoff included). *errors*: requests that failed even after retries; *verified*: \
         acknowledged orders that read back exactly as ordered.\n",
        r.clients, r.requests_per_client, r.seed
    );
    let _ = writeln!(s, "## Latency per request type against p, cache on and off\n");
    let _ = writeln!(
        s,
        "Every point runs against its own freshly started host whose catalog holds {EVAL_STOCK} of each toy \
         (so that no point runs out of stock; restock settings as in `toystore.toml`).\n"
    );
    let _ = writeln!(
        s,
        "| cache | p | lookups | lookup mean | lookup p50 | lookup p99 | orders | order mean | order p50 | order p99 | queries | query mean | query p99 | errors | verified |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|");
    for p in &r.points {
        let (l, o, q) = (p.report.summary(Kind::Lookup), p.report.summary(Kind::Order), p.report.summary(Kind::OrderQuery));
        let _ = writeln!(
            s,
            "| {} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            on_off(p.cache),
            p.prob,
            count(l),
            ms(l, |s| s.mean_ms),
            ms(l, |s| s.p50_ms),
            ms(l, |s| s.p99_ms),
            count(o),
            ms(o, |s| s.mean_ms),
            ms(o, |s| s.p50_ms),
            ms(o, |s| s.p99_ms),
            count(q),
            ms(q, |s| s.mean_ms),
            ms(q, |s| s.p99_ms),
            errors_cell(&p.report),
            verified_cell(&p.report),
        );
    }
    s.push('\n');
    if let Some(f) = &r.failure {
        let _ = writeln!(s, "## Failure run: the order leader killed and restarted during the load\n");
        let _ = writeln!(
            s,
            "A fresh host (cache on), the same {} clients at p = {:.1}. A quarter of the way through the load the \
             frontend's current leader is killed (`POST /replicas/<id>/kill` on the admin endpoint) and \
             restarted (`POST /replicas/<id>/restart`) once 5/8 of the load is done or {} s later, whichever \
             comes first; *restart → serving* is the time from the restart until its `/ping` answers 200 \
             (its log caught up).\n",
            r.clients,
            f.prob,
            DOWNTIME.as_secs()
        );
        let _ = writeln!(
            s,
            "| killed | at | restarted at | restart → serving | leader after | lookups | lookup p99 | orders | order mean | order p99 | order max | queries | errors | verified |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---|");
        let (l, o, q) = (f.report.summary(Kind::Lookup), f.report.summary(Kind::Order), f.report.summary(Kind::OrderQuery));
        let opt = |v: Option<f64>, unit: &str, digits: usize| v.map_or("–".into(), |x| format!("{x:.digits$} {unit}"));
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            f.killed.map_or("none".into(), |id| format!("order-{id} (leader)")),
            opt(f.killed_at_secs, "s", 1),
            opt(f.restarted_at_secs, "s", 1),
            opt(f.restart_to_serving_ms, "ms", 0),
            f.leader_after.map_or("–".into(), |id| format!("order-{id}")),
            count(l),
            ms(l, |s| s.p99_ms),
            count(o),
            ms(o, |s| s.mean_ms),
            ms(o, |s| s.p99_ms),
            ms(o, |s| s.max_ms),
            count(q),
            errors_cell(&f.report),
            verified_cell(&f.report),
        );
        for n in &f.notes {
            let _ = writeln!(s, "\nNote: {n}");
        }
        if let Some(check) = &f.check {
            let _ = writeln!(
                s,
                "\nThe stopped store, checked with `toystore check --strict` (replicas agree, numbers contiguous, \
                 keys unique, `seeded + restocked - quantity` = ordered per toy):\n\n```\n{}```",
                check.summary
            );
        }
        if !f.report.verification.ok() {
            let _ = writeln!(s, "\nProblems:\n");
            for p in f.report.verification.problems.iter().take(20) {
                let _ = writeln!(s, "- {p}");
            }
        }
        s.push('\n');
    }
    let bad: Vec<&EvalPoint> = r.points.iter().filter(|p| !p.report.verified()).collect();
    for p in bad {
        let _ = writeln!(s, "Problems (cache {}, p = {:.1}):\n", on_off(p.cache), p.prob);
        for x in p.report.verification.problems.iter().take(20) {
            let _ = writeln!(s, "- {x}");
        }
        s.push('\n');
    }
    let _ = writeln!(
        s,
        "**Verdict:** {}.\n",
        if r.all_verified() {
            "every acknowledged order in every run read back exactly as ordered"
        } else {
            "SOME ACKNOWLEDGED ORDERS DID NOT VERIFY (see the problems above)"
        }
    );
    if !plots.is_empty() {
        let _ = writeln!(s, "## Plots\n");
        let _ = writeln!(s, "Solid: mean; dashed: p99. Blue: cache on; red: cache off.\n");
        for (kind, file) in plots {
            let _ = writeln!(s, "![{} latency against p]({file})\n", kind.name());
        }
    }
    if let Some(n) = plot_note {
        let _ = writeln!(s, "Plots not drawn: {n}\n");
    }
    let _ = writeln!(s, "## Hosts\n");
    let secs: Vec<f64> = r.host_start_secs.iter().map(|(_, t)| *t).collect();
    if !secs.is_empty() {
        let (lo, hi) = secs.iter().fold((f64::INFINITY, 0.0f64), |(a, b), &t| (a.min(t), b.max(t)));
        let _ = writeln!(
            s,
            "{} freshly started hosts (one per point, one for the failure run); spawn to serving (components \
             compiled, leader chosen): {lo:.1}–{hi:.1} s.",
            secs.len()
        );
    }
    s
}

/// `YYYY-MM-DD HH:MM UTC` without a date library.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    format_utc(secs)
}

fn format_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02} UTC", rem / 3600, rem % 3600 / 60)
}

/// "2 cores, <cpu model>".
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| t.lines().find_map(|l| l.strip_prefix("model name").map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())))
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cores} cores, {model}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::verify::{PlacedOrder, Problem, Verification};

    fn summary(kind: Kind, count: u64, mean: f64) -> Summary {
        Summary { kind, count, ok: count, rejected: 0, errors: 0, retries: 0, mean_ms: mean, p50_ms: mean, p99_ms: mean * 3.0, max_ms: mean * 5.0 }
    }

    fn report(prob: f64, orders: u64, verification: Verification) -> Report {
        let mut summaries = vec![summary(Kind::Lookup, 1500, 0.5)];
        if orders > 0 {
            summaries.push(summary(Kind::Order, orders, 4.0 + prob));
            summaries.push(summary(Kind::OrderQuery, orders, 0.8));
        }
        Report {
            url: "http://x".into(),
            clients: 5,
            requests_per_client: 300,
            prob,
            seed: Some(677),
            load_secs: 1.0,
            verify_secs: 0.1,
            summaries,
            orders_placed: orders as usize,
            connects: 5,
            verification,
        }
    }

    fn ok(n: usize) -> Verification {
        Verification { ran: true, checked: n, verified: n, problems: vec![] }
    }

    fn results(failure_ok: bool) -> EvalResults {
        let mut points = Vec::new();
        for cache in [true, false] {
            for (i, p) in [0.0, 0.4, 0.8].into_iter().enumerate() {
                let n = 100 * i as u64;
                points.push(EvalPoint { cache, prob: p, report: report(p, n, ok(n as usize)) });
            }
        }
        let v = if failure_ok {
            ok(50)
        } else {
            Verification {
                ran: true,
                checked: 50,
                verified: 49,
                problems: vec![Problem::Missing {
                    expected: PlacedOrder { number: 9, name: "Fox".into(), quantity: 2, key: "k".into() },
                    detail: "404: no such order".into(),
                }],
            }
        };
        let mut fr = report(0.8, 50, v);
        fr.summaries[1].errors = 2;
        fr.summaries[1].retries = 7;
        EvalResults {
            generated_utc: "2026-01-01 00:00 UTC".into(),
            machine: "2 cores".into(),
            clients: 5,
            requests_per_client: 300,
            seed: 677,
            points,
            failure: Some(FailureRun {
                prob: 0.8,
                killed: Some(3),
                leader_after: Some(3),
                killed_at_secs: Some(2.0),
                restarted_at_secs: Some(5.0),
                restart_to_serving_ms: Some(120.0),
                report: fr,
                notes: vec![],
                check: None,
            }),
            host_start_secs: vec![("eval-cache-on".into(), 3.0)],
            total_secs: 100.0,
        }
    }

    #[test]
    fn markdown_tables_state_errors_and_verification() {
        let r = results(true);
        let md = results_markdown(&r, &[(Kind::Lookup, "latency_lookup.png".into())], None);
        assert!(md.contains("| on | 0.0 | 1500 | 0.50 | 0.50 | 1.50 | 0 | – |"), "{md}");
        assert!(md.contains("| off | 0.8 | 1500 |"), "{md}");
        assert!(md.contains("| no | yes (200/200) |"), "{md}");
        assert!(md.contains("| order-3 (leader) | 2.0 s | 5.0 s | 120 ms | order-3 |"), "{md}");
        assert!(md.contains("**yes: 2** (7 retried) | yes (50/50) |"), "{md}");
        assert!(md.contains("![lookup latency against p](latency_lookup.png)"));
        assert!(md.contains("every acknowledged order in every run read back exactly"));
        assert!(r.all_verified());

        let r = results(false);
        assert!(!r.all_verified());
        let md = results_markdown(&r, &[], Some("no font"));
        assert!(md.contains("**NO: 1 problem(s)** (49/50)"), "{md}");
        assert!(md.contains("- MISSING  #9 Fox x2"), "{md}");
        assert!(md.contains("Plots not drawn: no font"));
    }

    #[test]
    fn writes_files() {
        let d = tempfile::tempdir().unwrap();
        write_results(d.path(), &results(true)).unwrap();
        assert!(d.path().join("results.md").is_file());
        let back: EvalResults = serde_json::from_str(&fs::read_to_string(d.path().join("results.json")).unwrap()).unwrap();
        assert_eq!(back.points.len(), 6);
        if crate::eval::plot::font_path().is_some() {
            for k in ["lookup", "order", "order_query"] {
                assert!(d.path().join(format!("latency_{k}.png")).is_file(), "{k}");
            }
        }
    }

    #[test]
    fn utc_dates() {
        assert_eq!(format_utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(format_utc(951_782_400 + 3_600 * 13 + 60 * 7), "2000-02-29 13:07 UTC");
        assert_eq!(format_utc(1_767_225_600), "2026-01-01 00:00 UTC");
    }
}
