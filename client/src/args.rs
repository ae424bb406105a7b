//! Command-line arguments of `toystore client`, `toystore eval` and `toystore bench`.
//!
//! The host binary owns `main`; it embeds these with `#[command(flatten)]`-free subcommand
//! variants (`Client(ClientArgs)`, ...) and hands them to [`crate::run_client`] and friends.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, ensure};

/// The ten toys of the seed catalog (`data/catalog.csv`).
pub const SEED_TOYS: [&str; 10] =
    ["Tux", "Fox", "Whale", "Dolphin", "Python", "Elephant", "Monopoly", "Lego", "Marbles", "Barbie"];

/// Parse a probability in `[0, 1]`.
fn probability(s: &str) -> Result<f64, String> {
    let p: f64 = s.trim().parse().map_err(|_| format!("{s:?} is not a number"))?;
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(format!("{p} is not a probability in [0, 1]"))
    }
}

/// `toystore client`: the seed's load client.
///
/// Each session looks up a random toy; if the toy is in stock it orders it with probability
/// exactly `--prob`. Every acknowledged order is read back at the end and compared with what was
/// ordered.
#[derive(clap::Args, Debug, Clone)]
pub struct ClientArgs {
    /// Base URL of the frontend. Without it, the seed's `.env` in the current directory names it
    /// (`host`, `frontend_port`) when there is one.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Concurrent sessions, each with its own keep-alive connection.
    #[arg(long, default_value_t = 5)]
    pub clients: usize,
    /// Iterations per session (one lookup each, plus an order with probability --prob).
    #[arg(long, default_value_t = 100)]
    pub requests: usize,
    /// Probability of ordering a looked-up toy that is in stock.
    #[arg(long, default_value_t = 0.5, value_parser = probability)]
    pub prob: f64,
    /// Seed for the random choices (session i uses seed + i); random when absent.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Largest quantity per order (each order asks for 1..=max-quantity).
    #[arg(long, default_value_t = 3)]
    pub max_quantity: u64,
    /// Toy names to look up (comma-separated); default: the ten of the seed catalog.
    #[arg(long, value_delimiter = ',')]
    pub toys: Vec<String>,
    /// Retries per request after a connection error, timeout or 5xx, with exponential backoff.
    #[arg(long, default_value_t = 8)]
    pub retries: u32,
    /// First backoff delay; it doubles per retry up to 2 s (with jitter).
    #[arg(long, default_value_t = 50)]
    pub backoff_ms: u64,
    /// Per-attempt timeout.
    #[arg(long, default_value_t = 10_000)]
    pub timeout_ms: u64,
    /// Print the report as JSON (and no progress bar).
    #[arg(long)]
    pub json: bool,
    /// Do not draw a progress bar even on a terminal.
    #[arg(long)]
    pub no_progress: bool,
    /// Skip the read-back of the orders at the end.
    #[arg(long)]
    pub no_verify: bool,
    /// Also write the acknowledged orders (JSON) to this file, e.g. to verify them later.
    #[arg(long, value_name = "FILE")]
    pub orders_out: Option<PathBuf>,
    /// Place no load: only read back the orders listed in FILE (written by --orders-out).
    #[arg(long, value_name = "FILE", conflicts_with = "no_verify")]
    pub verify_only: Option<PathBuf>,
}

impl Default for ClientArgs {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8080".into(),
            clients: 5,
            requests: 100,
            prob: 0.5,
            seed: None,
            max_quantity: 3,
            toys: Vec::new(),
            retries: 8,
            backoff_ms: 50,
            timeout_ms: 10_000,
            json: false,
            no_progress: false,
            no_verify: false,
            orders_out: None,
            verify_only: None,
        }
    }
}

impl ClientArgs {
    /// Reject arguments that cannot make a run (clap checks the types, this the meaning).
    pub fn validate(&self) -> anyhow::Result<()> {
        ensure!(self.clients >= 1, "--clients must be at least 1");
        ensure!(self.max_quantity >= 1, "--max-quantity must be at least 1");
        ensure!((0.0..=1.0).contains(&self.prob), "--prob must be in [0, 1]");
        if self.toys.iter().any(|t| t.trim().is_empty()) {
            bail!("--toys has an empty name");
        }
        crate::load::conn::Target::parse(&self.url)?;
        Ok(())
    }

    /// The toy names to choose from.
    pub fn toy_names(&self) -> Vec<String> {
        if self.toys.is_empty() {
            SEED_TOYS.iter().map(|s| s.to_string()).collect()
        } else {
            self.toys.iter().map(|s| s.trim().to_string()).collect()
        }
    }

    pub fn retry_policy(&self) -> crate::load::call::RetryPolicy {
        crate::load::call::RetryPolicy {
            max_retries: self.retries,
            base: Duration::from_millis(self.backoff_ms.max(1)),
            cap: Duration::from_secs(2),
        }
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.max(1))
    }
}

/// Options shared by `eval` and `bench`: which host binary and components to run.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct HostArgs {
    /// The `toystore` binary to start (`serve --manifest ...`); default: this executable.
    #[arg(long, value_name = "FILE")]
    pub host_bin: Option<PathBuf>,
    /// Directory with toystore_{frontend,catalog,order,hello}.wasm; default:
    /// target/wasm32-wasip2/release next to this executable's target dir, else under the
    /// current directory.
    #[arg(long, value_name = "DIR")]
    pub components: Option<PathBuf>,
    /// Keep the temporary data directories and host logs (their paths are printed).
    #[arg(long)]
    pub keep: bool,
}

/// `toystore eval`: the seed's evaluation, start to finish, against hosts it starts itself.
#[derive(clap::Args, Debug, Clone)]
pub struct EvalArgs {
    #[command(flatten)]
    pub host: HostArgs,
    /// Where results.md, results.json and the plots go.
    #[arg(long, default_value = "eval")]
    pub out: PathBuf,
    /// Concurrent clients per point.
    #[arg(long, default_value_t = 5)]
    pub clients: usize,
    /// Iterations per client per point.
    #[arg(long, default_value_t = 500)]
    pub requests: usize,
    /// The order probabilities to sweep.
    #[arg(long, value_delimiter = ',', default_values_t = vec![0.0, 0.2, 0.4, 0.6, 0.8], value_parser = probability)]
    pub probs: Vec<f64>,
    /// Order probability of the failure run.
    #[arg(long, default_value_t = 0.8, value_parser = probability)]
    pub failure_prob: f64,
    /// Skip the failure run (leader killed and restarted during the load).
    #[arg(long)]
    pub no_failure_run: bool,
    /// Seed of the clients' random choices.
    #[arg(long, default_value_t = 677)]
    pub seed: u64,
}

impl Default for EvalArgs {
    fn default() -> Self {
        Self {
            host: HostArgs::default(),
            out: PathBuf::from("eval"),
            clients: 5,
            requests: 500,
            probs: vec![0.0, 0.2, 0.4, 0.6, 0.8],
            failure_prob: 0.8,
            no_failure_run: false,
            seed: 677,
        }
    }
}

/// `toystore bench`: throughput, latency and memory, each also as a ratio to a baseline (the
/// same host running the trivial `toystore_hello` component) measured in the same run.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    #[command(flatten)]
    pub host: HostArgs,
    /// Concurrency levels (keep-alive connections, each sending back to back).
    #[arg(long, value_delimiter = ',', default_values_t = vec![1, 8, 32])]
    pub concurrency: Vec<usize>,
    /// Seconds of load per measured point.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Order-log sizes for the flat-latency check: latency after the small vs the large one
    /// (the large one also gives the restart and peak-memory figures: issue 10 asks for 1 M).
    #[arg(long, default_value_t = 1_000)]
    pub small_log: u64,
    #[arg(long, default_value_t = 1_000_000)]
    pub large_log: u64,
    /// Orders a restarted replica has missed in the restart-to-serving measurement (one
    /// restart per value, after one with nothing missed).
    #[arg(long, value_delimiter = ',', default_values_t = vec![10_000, 100_000])]
    pub missed: Vec<u64>,
    /// Rounds of the host-speed comparison (each round measures every target once per level)
    /// and of the order-latency-against-log-length point (each round: the short log, then the long).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Run only the host-speed comparison (stock `wasmtime serve` hello, host hello, cache
    /// hit, cache miss, order query) and the hosts' memory; about a third of the full run.
    #[arg(long)]
    pub host_speed_only: bool,
    /// Connection levels of the order-scaling section (orders with all replicas running, then
    /// with one follower paused).
    #[arg(long, value_delimiter = ',', default_values_t = vec![1, 5, 8, 32])]
    pub order_concurrency: Vec<usize>,
    /// Run only the order-scaling section (a minute or so).
    #[arg(long, conflicts_with = "host_speed_only")]
    pub orders_only: bool,
    /// Run only the baselines, the fresh store (cache on) and the order-log sections: latency
    /// against the log's length, restart with missed orders, peak memory (issue 10's figures).
    #[arg(long, conflicts_with_all = ["host_speed_only", "orders_only"])]
    pub log_only: bool,
    /// Run only orders against a three-member etcd's durable puts (`etcd` on PATH, or `$ETCD`),
    /// alternating `--rounds` rounds at each `--order-concurrency` level.
    #[arg(long, conflicts_with_all = ["host_speed_only", "orders_only", "log_only"])]
    pub etcd_only: bool,
    /// Also write the markdown report to this file.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Also print the results as JSON (to stdout, after the tables).
    #[arg(long)]
    pub json: bool,
}

impl Default for BenchArgs {
    fn default() -> Self {
        Self {
            host: HostArgs::default(),
            concurrency: vec![1, 8, 32],
            seconds: 3.0,
            small_log: 1_000,
            large_log: 1_000_000,
            missed: vec![10_000, 100_000],
            rounds: 3,
            host_speed_only: false,
            order_concurrency: vec![1, 5, 8, 32],
            orders_only: false,
            log_only: false,
            etcd_only: false,
            out: None,
            json: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: Cmd,
    }
    #[derive(clap::Subcommand)]
    enum Cmd {
        Client(ClientArgs),
        Eval(EvalArgs),
        Bench(BenchArgs),
    }

    #[test]
    fn client_defaults_and_flags() {
        let cli = Cli::try_parse_from(["t", "client", "--prob", "0.25", "--clients", "3", "--toys", "Tux,Fox"]).unwrap();
        let Cmd::Client(a) = cli.cmd else { panic!() };
        assert_eq!(a.prob, 0.25);
        assert_eq!(a.clients, 3);
        assert_eq!(a.toy_names(), vec!["Tux", "Fox"]);
        a.validate().unwrap();
        let d = ClientArgs::default();
        assert_eq!(d.toy_names().len(), 10);
    }

    #[test]
    fn rejects_bad_probability() {
        assert!(Cli::try_parse_from(["t", "client", "--prob", "1.5"]).is_err());
        assert!(Cli::try_parse_from(["t", "client", "--prob", "x"]).is_err());
        assert!(Cli::try_parse_from(["t", "eval", "--probs", "0,2"]).is_err());
    }

    #[test]
    fn eval_and_bench_defaults() {
        let Cmd::Eval(e) = Cli::try_parse_from(["t", "eval"]).unwrap().cmd else { panic!() };
        assert_eq!(e.probs, vec![0.0, 0.2, 0.4, 0.6, 0.8]);
        assert_eq!(e.clients, 5);
        let Cmd::Bench(b) = Cli::try_parse_from(["t", "bench", "--concurrency", "1,4"]).unwrap().cmd else { panic!() };
        assert_eq!(b.concurrency, vec![1, 4]);
        assert_eq!(b.order_concurrency, vec![1, 5, 8, 32]);
        let Cmd::Bench(b) = Cli::try_parse_from(["t", "bench", "--orders-only", "--order-concurrency", "2,3"]).unwrap().cmd else { panic!() };
        assert!(b.orders_only);
        assert_eq!(b.order_concurrency, vec![2, 3]);
        let Cmd::Bench(b) = Cli::try_parse_from(["t", "bench", "--etcd-only", "--rounds", "2", "--seconds", "5"]).unwrap().cmd else { panic!() };
        assert!(b.etcd_only && !b.orders_only);
        assert_eq!((b.rounds, b.seconds, b.order_concurrency), (2, 5.0, vec![1, 5, 8, 32]));
        assert!(Cli::try_parse_from(["t", "bench", "--etcd-only", "--orders-only"]).is_err());
    }

    #[test]
    fn validate_catches_nonsense() {
        let a = ClientArgs { clients: 0, ..ClientArgs::default() };
        assert!(a.validate().is_err());
        let a = ClientArgs { url: "ftp://x".into(), ..ClientArgs::default() };
        assert!(a.validate().is_err());
    }
}
