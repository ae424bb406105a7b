//! `toystore client`: run the sessions, read the orders back, build the [`Report`].

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::args::ClientArgs;
use crate::load::conn::Target;
use crate::load::report::Report;
use crate::load::session::{run_session, SessionConfig};
use crate::load::stats::Stats;
use crate::load::verify::{read_back, PlacedOrder, Verification};

/// A progress bar on stderr when `enabled` and stderr is a terminal; hidden otherwise (a bar
/// redrawn into a log file or a pipe is only noise).
pub fn progress_bar(len: u64, enabled: bool, message: &str) -> ProgressBar {
    if !enabled || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr_with_hz(10));
    let style = ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(message.to_string());
    bar
}

/// What the load phase did, before any read-back.
#[derive(Debug, Clone, Default)]
pub struct Load {
    pub stats: Stats,
    /// Acknowledged orders, sorted by number.
    pub placed: Vec<PlacedOrder>,
    pub connects: u64,
    pub elapsed: Duration,
}

/// Run `--clients` sessions concurrently. `done` counts finished iterations (for callers that
/// act part-way through, like the eval's failure run).
pub async fn run_load(args: &ClientArgs, progress: bool, done: Arc<AtomicU64>) -> anyhow::Result<Load> {
    args.validate()?;
    let cfg = Arc::new(SessionConfig {
        target: Target::parse(&args.url)?,
        toys: Arc::new(args.toy_names()),
        requests: args.requests,
        prob: args.prob,
        max_quantity: args.max_quantity,
        seed: args.seed,
        policy: args.retry_policy(),
        timeout: args.timeout(),
    });
    let bar = progress_bar((args.clients * args.requests) as u64, progress, "load");
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(args.clients);
    for i in 0..args.clients {
        let cfg = Arc::clone(&cfg);
        let bar = bar.clone();
        let done = Arc::clone(&done);
        tasks.push(tokio::spawn(async move { run_session(&cfg, i, bar, done).await }));
    }
    let mut load = Load::default();
    for t in tasks {
        let r = t.await.context("a client session panicked")?;
        load.stats.merge(&r.stats);
        load.placed.extend(r.placed);
        load.connects += r.connects;
    }
    load.elapsed = start.elapsed();
    bar.finish_and_clear();
    load.placed.sort_by_key(|o| o.number);
    Ok(load)
}

/// Read back `orders` through the frontend at `args.url`, over `args.clients` connections.
pub async fn verify_orders(args: &ClientArgs, orders: &[PlacedOrder], progress: bool) -> anyhow::Result<(Verification, Stats)> {
    let target = Target::parse(&args.url)?;
    let bar = progress_bar(orders.len() as u64, progress, "read-back");
    let out = read_back(&target, orders, args.clients, args.retry_policy(), args.timeout(), bar.clone()).await;
    bar.finish_and_clear();
    Ok(out)
}

/// The whole client run as a library call: load (unless `--verify-only`), then the read-back
/// (unless `--no-verify`). Prints nothing; a progress bar only when `progress` is set and stderr
/// is a terminal.
pub async fn run(args: &ClientArgs, progress: bool) -> anyhow::Result<Report> {
    args.validate()?;
    let (load, orders) = match &args.verify_only {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
            let orders: Vec<PlacedOrder> =
                serde_json::from_str(&text).with_context(|| format!("{} is not a JSON list of orders", path.display()))?;
            (Load::default(), orders)
        }
        None => {
            let load = run_load(args, progress, Arc::new(AtomicU64::new(0))).await?;
            let orders = load.placed.clone();
            (load, orders)
        }
    };
    if let Some(path) = &args.orders_out {
        let json = serde_json::to_string_pretty(&orders).context("serialise orders")?;
        std::fs::write(path, json).with_context(|| format!("write {}", path.display()))?;
    }
    let verify_start = Instant::now();
    let (verification, vstats) = if args.no_verify {
        (Verification::default(), Stats::default())
    } else {
        verify_orders(args, &orders, progress).await?
    };
    let verify_secs = if args.no_verify { 0.0 } else { verify_start.elapsed().as_secs_f64() };
    Ok(assemble(args, &load, orders.len(), verification, &vstats, verify_secs))
}

/// Build the [`Report`] of a run from its parts (for callers that run the load and the
/// read-back separately, like the eval's failure run).
pub fn assemble(
    args: &ClientArgs,
    load: &Load,
    orders_placed: usize,
    verification: Verification,
    verify_stats: &Stats,
    verify_secs: f64,
) -> Report {
    let mut stats = load.stats.clone();
    stats.merge(verify_stats);
    Report {
        url: args.url.clone(),
        clients: args.clients,
        requests_per_client: if args.verify_only.is_some() { 0 } else { args.requests },
        prob: args.prob,
        seed: args.seed,
        load_secs: load.elapsed.as_secs_f64(),
        verify_secs,
        summaries: stats.summaries(),
        orders_placed,
        connects: load.connects,
        verification,
    }
}

/// `toystore client`: run, print the report (text or `--json`), and return the exit status
/// (non-zero when an acknowledged order is missing or wrong).
pub async fn run_client(args: ClientArgs) -> anyhow::Result<ExitCode> {
    let report = run(&args, !args.json && !args.no_progress).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).context("serialise report")?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(report.exit_code())
}
