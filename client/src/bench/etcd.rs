//! The etcd part of `toystore bench`: the store's orders against the durable puts of a
//! three-member etcd cluster (Raft, a write-ahead log fsynced on a majority before a put is
//! acknowledged: the durability the order log promises), on the same machine, with the same
//! load generator, connection counts and duration, in the same run.
//!
//! As in the host-speed part, both run at once and are measured alternately: each round
//! measures orders, then puts, at one connection level; a figure is the median over the rounds.
//! Each point also reads the CPU time of the processes serving it (the host; the three etcd
//! members summed), so the table can say what an order and a put cost, not only how fast they
//! went on a shared machine.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use http::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::measure::{measure_with_cpu, median, Op, Point};
use crate::hostproc::{free_ports, Host};
use crate::load::conn::{self, Target};

const START_TIMEOUT: Duration = Duration::from_secs(60);
const MEMBERS: usize = 3;

/// Three `etcd` processes on loopback, each with its own data directory; killed on drop.
pub struct EtcdCluster {
    members: Vec<Member>,
    root: PathBuf,
    _dir: Option<tempfile::TempDir>,
    /// `etcd --version`'s first line.
    pub version: String,
}

struct Member {
    name: String,
    client_url: String,
    child: Child,
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            let _ = m.child.kill();
            let _ = m.child.wait();
        }
    }
}

/// The running cluster, or why there is none.
pub enum Etcd {
    Running(EtcdCluster),
    Missing(String),
}

impl EtcdCluster {
    /// Start `$ETCD` (else `etcd` on PATH) three times as one new cluster on free loopback
    /// ports, under a temporary directory (kept with `keep`), and wait until every member is
    /// healthy and a put through the leader succeeds. A missing binary is not an error: the
    /// report says so instead.
    pub async fn start(keep: bool) -> anyhow::Result<Etcd> {
        let exe = std::env::var("ETCD").unwrap_or_else(|_| "etcd".into());
        let version = match Command::new(&exe).arg("--version").output() {
            Ok(out) => String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or("").trim().to_string(),
            Err(e) => return Ok(Etcd::Missing(format!("`{exe}` not found ({e}); `just setup-etcd` installs it"))),
        };
        let dir = tempfile::Builder::new().prefix("toystore-bench-etcd-").tempdir().context("create a temporary directory")?;
        let (root, dir) = if keep { (dir.keep(), None) } else { (dir.path().to_path_buf(), Some(dir)) };
        let ports = free_ports(2 * MEMBERS)?;
        let url = |port: u16| format!("http://127.0.0.1:{port}");
        let names: Vec<String> = (1..=MEMBERS).map(|i| format!("m{i}")).collect();
        let initial_cluster = initial_cluster(&names, &ports[MEMBERS..]);
        let mut cluster = EtcdCluster { members: Vec::new(), root, _dir: dir, version };
        for (i, name) in names.iter().enumerate() {
            let (client, peer) = (url(ports[i]), url(ports[MEMBERS + i]));
            let log_path = cluster.log_path(name);
            let log = fs::File::create(&log_path).with_context(|| format!("create {}", log_path.display()))?;
            let child = Command::new(&exe)
                .args(["--name", name])
                .arg("--data-dir")
                .arg(cluster.root.join(name))
                .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
                .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
                .args(["--initial-cluster", &initial_cluster, "--initial-cluster-state", "new"])
                .args(["--initial-cluster-token", "toystore-bench"])
                // Warnings only, as the store's hosts log (TOYSTORE_LOG=warn): neither pays for
                // an info line per event.
                .args(["--logger", "zap", "--log-outputs", "stderr", "--log-level", "warn"])
                .stdin(Stdio::null())
                .stdout(log.try_clone().context("log fd")?)
                .stderr(log)
                .spawn()
                .with_context(|| format!("start {exe}"))?;
            cluster.members.push(Member { name: name.clone(), client_url: client, child });
        }
        cluster.wait_healthy(Instant::now() + START_TIMEOUT).await?;
        Ok(Etcd::Running(cluster))
    }

    fn log_path(&self, name: &str) -> PathBuf {
        self.root.join(format!("{name}.log"))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The members' process ids.
    pub fn pids(&self) -> Vec<u32> {
        self.members.iter().map(|m| m.child.id()).collect()
    }

    async fn wait_healthy(&mut self, deadline: Instant) -> anyhow::Result<()> {
        let t = Duration::from_secs(2);
        loop {
            for m in &mut self.members {
                if let Ok(Some(status)) = m.child.try_wait() {
                    let log = fs::read_to_string(self.root.join(format!("{}.log", m.name))).unwrap_or_default();
                    bail!("etcd member {} exited early with {status}; log:\n{}", m.name, tail(&log, 20));
                }
            }
            let mut healthy = true;
            for m in &self.members {
                let r = conn::once(&m.client_url, Method::GET, "/health", None, t).await;
                healthy &= r.is_ok_and(|r| r.status.is_success() && r.json()["health"] == "true");
            }
            if healthy {
                if let Ok(leader) = self.leader().await {
                    let put = conn::once(&leader.client_url, Method::POST, "/v3/kv/put", Some(Bytes::from_static(br#"{"key":"cHJvYmU=","value":"MQ=="}"#)), t).await;
                    if put.is_ok_and(|r| r.status.is_success()) {
                        return Ok(());
                    }
                }
            }
            if Instant::now() >= deadline {
                let log = fs::read_to_string(self.log_path(&self.members[0].name)).unwrap_or_default();
                bail!("etcd not healthy within {} s; {} log:\n{}", START_TIMEOUT.as_secs(), self.members[0].name, tail(&log, 20));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The member that leads, from each member's `POST /v3/maintenance/status`.
    async fn leader(&self) -> anyhow::Result<&Member> {
        for m in &self.members {
            let r = conn::once(&m.client_url, Method::POST, "/v3/maintenance/status", Some(Bytes::from_static(b"{}")), Duration::from_secs(2)).await?;
            if r.status.is_success() && status_is_leader(&r.json()) {
                return Ok(m);
            }
        }
        bail!("no etcd member says it leads")
    }

    /// The leader's name and client URL: puts go there, as orders go (via the frontend) to the
    /// order leader; a put sent to a follower would also cost a forward to the leader.
    pub async fn leader_url(&self) -> anyhow::Result<(String, String)> {
        let m = self.leader().await?;
        Ok((m.name.clone(), m.client_url.clone()))
    }
}

/// `--initial-cluster`: `name=peer-url` for every member.
fn initial_cluster(names: &[String], peer_ports: &[u16]) -> String {
    names.iter().zip(peer_ports).map(|(n, p)| format!("{n}=http://127.0.0.1:{p}")).collect::<Vec<_>>().join(",")
}

/// Whether a `/v3/maintenance/status` answer comes from the leader: its `leader` is its own
/// `header.member_id` (both uint64s, which the gateway writes as JSON strings).
fn status_is_leader(status: &Value) -> bool {
    let id = |v: &Value| v.as_str().map(str::to_string).or_else(|| v.as_u64().map(|n| n.to_string()));
    match (id(&status["leader"]), id(&status["header"]["member_id"])) {
        (Some(leader), Some(me)) => leader == me && leader != "0",
        _ => false,
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Orders and puts at one connection level: one point each per round.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Versus {
    pub concurrency: usize,
    pub orders: Vec<Point>,
    pub puts: Vec<Point>,
}

/// The median over the rounds of `f`, where it is defined.
fn med(points: &[Point], f: impl Fn(&Point) -> Option<f64>) -> Option<f64> {
    median(points.iter().filter_map(f))
}

impl Versus {
    pub fn orders_rps(&self) -> Option<f64> {
        med(&self.orders, |p| Some(p.rps))
    }
    pub fn puts_rps(&self) -> Option<f64> {
        med(&self.puts, |p| Some(p.rps))
    }
    pub fn errors(&self) -> (u64, u64) {
        (self.orders.iter().map(|p| p.errors).sum(), self.puts.iter().map(|p| p.errors).sum())
    }
}

/// What the etcd part measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EtcdComparison {
    /// etcd's version, or why it was not measured.
    pub etcd: Result<String, String>,
    /// The member the puts went to (the leader when measured).
    pub put_member: String,
    pub rounds: usize,
    /// `/proc/loadavg` before and after the section: the machine is shared.
    pub load_before: String,
    pub load_after: String,
    /// `/proc/pressure/io`'s share of the last 10 and 60 s in which some task waited for I/O,
    /// before and after: an order waits for more syncs in a row than a put, so another
    /// process writing to the disk slows orders far more than puts, and the load average does
    /// not show it.
    #[serde(default)]
    pub io_before: String,
    #[serde(default)]
    pub io_after: String,
    pub points: Vec<Versus>,
}

/// `/proc/loadavg`'s three load averages.
pub fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg").map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" ")).unwrap_or_else(|_| "unknown".into())
}

/// `/proc/pressure/io`'s `some` line as `avg10=… avg60=…` (percent of the time some task was
/// stalled on I/O), or `unknown` where the kernel has no pressure information.
pub fn io_pressure() -> String {
    fs::read_to_string("/proc/pressure/io").ok().and_then(|t| parse_io_pressure(&t)).unwrap_or_else(|| "unknown".into())
}

fn parse_io_pressure(text: &str) -> Option<String> {
    let some = text.lines().find_map(|l| l.strip_prefix("some "))?;
    let field = |name: &str| some.split_whitespace().find_map(|f| f.strip_prefix(name)?.strip_prefix('='));
    Some(format!("avg10={}% avg60={}%", field("avg10")?, field("avg60")?))
}

/// Measure orders on `store` against puts on `etcd`'s leader at every level, `rounds` times,
/// alternating.
pub async fn measure_versus(store: &Host, etcd: &EtcdCluster, put_url: &str, levels: &[usize], rounds: usize, duration: Duration) -> anyhow::Result<Vec<Versus>> {
    let order_target = Target::parse(&store.frontend_url())?;
    let put_target = Target::parse(put_url)?;
    let host_pid: Vec<u32> = store.pid().into_iter().collect();
    let etcd_pids = etcd.pids();
    let mut out = Vec::new();
    for &c in levels {
        let mut v = Versus { concurrency: c, orders: vec![], puts: vec![] };
        for round in 0..rounds {
            let o = measure_with_cpu(&order_target, &Op::Order, c, duration, &host_pid).await;
            let p = measure_with_cpu(&put_target, &Op::EtcdPut, c, duration, &etcd_pids).await;
            for (what, x) in [("order", &o), ("etcd put", &p)] {
                let cpu = x.cpu_us_per_request().map_or("–".into(), |us| format!("{us:.0}"));
                eprintln!("  {what:<8} c={c:<3} round {round}: {:>7.0} req/s  p50 {:>7.3} ms  CPU {cpu:>5} µs/req  errors {}", x.rps, x.p50_ms, x.errors);
            }
            v.orders.push(o);
            v.puts.push(p);
        }
        out.push(v);
    }
    Ok(out)
}

/// The "Orders vs etcd" table, as markdown.
pub fn etcd_markdown(e: &EtcdComparison) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "## Orders vs etcd\n");
    let version = match &e.etcd {
        Ok(v) => v,
        Err(why) => {
            let _ = writeln!(s, "**etcd was not measured**: {why}.");
            return s;
        }
    };
    let _ = writeln!(
        s,
        "{version}: three members on loopback, each with its own data directory (a put is acknowledged once \
         a majority has fsynced it), puts through the JSON gateway (`POST /v3/kv/put`, a fresh key each, the \
         order's body as the value) to the leader ({}). Orders: `POST /orders` of a seed toy on a store with \
         ample stock and restock off. Both run at once; each round measures orders, then puts, at one level, \
         {} round(s) per level; figures are medians over the rounds (each round's req/s in the last column). \
         CPU: user + system time of the host process, and of the three etcd processes summed, over the \
         measured window, ÷ requests answered. Load average (1, 5, 15 min) before: {}; after: {}. Time some \
         task waited for I/O (`/proc/pressure/io`; orders wait for more syncs in a row than puts, so a busy disk \
         slows them far more) before: {}; after (the section's own syncs count too): {}. The goal (issue 27): orders/s ≥ puts/s and order p50 ≤ \
         put p50 at every level, with no errors.\n",
        e.put_member, e.rounds, e.load_before, e.load_after, e.io_before, e.io_after
    );
    let _ = writeln!(s, "| connections | orders/s (p50) | puts/s (p50) | orders ÷ puts | p50 orders ÷ puts | CPU µs / order | CPU µs / put | errors (orders / puts) | req/s per round (orders; puts) |");
    let _ = writeln!(s, "|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    let num = |x: Option<f64>, f: &dyn Fn(f64) -> String| x.map_or("–".into(), f);
    for v in &e.points {
        let (o_p50, p_p50) = (med(&v.orders, |p| Some(p.p50_ms)), med(&v.puts, |p| Some(p.p50_ms)));
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => format!("×{:.2}", a / b),
            _ => "–".into(),
        };
        let each = |pts: &[Point]| match pts {
            [] => "–".to_string(),
            _ => pts.iter().map(|p| format!("{:.0}", p.rps)).collect::<Vec<_>>().join(", "),
        };
        let (oe, pe) = v.errors();
        let _ = writeln!(
            s,
            "| {} | {} ({}) | {} ({}) | {} | {} | {} | {} | {oe} / {pe} | {}; {} |",
            v.concurrency,
            num(v.orders_rps(), &|x| format!("{x:.0}")),
            num(o_p50, &|x| format!("{x:.2} ms")),
            num(v.puts_rps(), &|x| format!("{x:.0}")),
            num(p_p50, &|x| format!("{x:.2} ms")),
            ratio(v.orders_rps(), v.puts_rps()),
            ratio(o_p50, p_p50),
            num(med(&v.orders, Point::cpu_us_per_request), &|x| format!("{x:.0}")),
            num(med(&v.puts, Point::cpu_us_per_request), &|x| format!("{x:.0}")),
            each(&v.orders),
            each(&v.puts),
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(rps: f64, p50: f64, cpu_secs: Option<f64>, errors: u64) -> Point {
        let ok = rps as u64;
        Point { concurrency: 1, ok, errors, secs: 1.0, rps, mean_ms: p50, p50_ms: p50, p99_ms: p50, max_ms: p50, max_order: None, cpu_secs }
    }

    #[test]
    fn the_table_has_medians_ratios_cpu_per_request_and_errors() {
        let e = EtcdComparison {
            etcd: Ok("etcd Version: 3.4.23".into()),
            put_member: "m2".into(),
            rounds: 3,
            load_before: "1.00 2.00 3.00".into(),
            load_after: "1.50 2.00 3.00".into(),
            io_before: "avg10=0.00% avg60=0.10%".into(),
            io_after: "avg10=9.00% avg60=8.93%".into(),
            points: vec![
                Versus {
                    concurrency: 8,
                    // Medians: 1000 orders/s at 5 ms, 2000 µs of CPU each (2 s over 1000 orders).
                    orders: vec![point(1000.0, 5.0, Some(2.0), 0), point(900.0, 6.0, Some(1.5), 1), point(1100.0, 4.0, None, 0)],
                    // 2000 puts/s at 2.5 ms, 500 µs each.
                    puts: vec![point(2000.0, 2.5, Some(1.0), 0), point(1800.0, 3.0, Some(0.9), 0), point(2200.0, 2.0, Some(1.21), 2)],
                },
                Versus { concurrency: 32, orders: vec![point(4000.0, 8.0, None, 0)], puts: vec![] },
            ],
        };
        let md = etcd_markdown(&e);
        assert!(md.starts_with("## Orders vs etcd\n"), "{md}");
        assert!(md.contains("etcd Version: 3.4.23: three members") && md.contains("to the leader (m2)"), "{md}");
        assert!(md.contains("before: 1.00 2.00 3.00; after: 1.50 2.00 3.00"), "{md}");
        assert!(md.contains("before: avg10=0.00% avg60=0.10%; after (the section's own syncs count too): avg10=9.00% avg60=8.93%"), "{md}");
        // 1833 µs/order: the median of the rounds that could read the CPU (2 s / 1000, 1.5 s / 900).
        assert!(
            md.contains("| 8 | 1000 (5.00 ms) | 2000 (2.50 ms) | ×0.50 | ×2.00 | 1833 | 500 | 1 / 2 | 1000, 900, 1100; 2000, 1800, 2200 |"),
            "{md}"
        );
        assert!(md.contains("| 32 | 4000 (8.00 ms) | – (–) | – | – | – | – | 0 / 0 | 4000; – |"), "{md}");
        let missing = EtcdComparison { etcd: Err("`etcd` not found".into()), points: vec![], ..e };
        assert_eq!(etcd_markdown(&missing), "## Orders vs etcd\n\n**etcd was not measured**: `etcd` not found.\n");
    }

    /// Needs etcd (`just test` installs it): the real cluster, a short real load through its
    /// gateway, then the puts read back from a member, and nothing left running after the drop.
    #[tokio::test]
    async fn a_three_member_cluster_takes_the_bench_puts_and_is_gone_after_drop() {
        let etcd = match EtcdCluster::start(false).await.expect("start etcd") {
            Etcd::Running(c) => c,
            Etcd::Missing(why) => panic!("{why}"),
        };
        let (name, leader) = etcd.leader_url().await.unwrap();
        assert!(["m1", "m2", "m3"].contains(&name.as_str()), "{name}");
        let pids = etcd.pids();
        assert_eq!(pids.len(), 3);
        let p = measure_with_cpu(&Target::parse(&leader).unwrap(), &Op::EtcdPut, 2, Duration::from_millis(300), &pids).await;
        assert!(p.ok > 0 && p.errors == 0, "{p:?}");
        assert!(p.cpu_us_per_request().is_some_and(|us| us > 0.0), "{p:?}");
        // Every put stored a distinct key under the bench's prefix (warm-up puts too).
        let b64 = |s: &str| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, s);
        let range = serde_json::json!({"key": b64("toystore-bench/"), "range_end": b64("toystore-bench0"), "count_only": true});
        let other = etcd.members.iter().find(|m| m.name != name).unwrap();
        let r = conn::once(&other.client_url, Method::POST, "/v3/kv/range", Some(Bytes::from(range.to_string())), Duration::from_secs(5)).await.unwrap();
        let count: u64 = r.json()["count"].as_str().and_then(|c| c.parse().ok()).unwrap_or(0);
        assert!(count >= p.ok, "{count} keys for {} puts: {}", p.ok, String::from_utf8_lossy(&r.body));
        let root = etcd.root().to_path_buf();
        assert!(root.join("m1/member").is_dir(), "each member has its own data directory");
        drop(etcd);
        for pid in pids {
            assert!(!Path::new(&format!("/proc/{pid}")).exists(), "etcd {pid} still running");
        }
        assert!(!root.exists(), "{} left behind", root.display());
    }

    #[test]
    fn the_leader_is_the_member_whose_leader_is_itself() {
        let status = |me: &str, leader: &str| serde_json::json!({"header": {"cluster_id": "1", "member_id": me}, "leader": leader, "version": "3.4.23"});
        assert!(status_is_leader(&status("11539305337000706507", "11539305337000706507")));
        assert!(!status_is_leader(&status("8645782499530242234", "11539305337000706507")));
        assert!(!status_is_leader(&status("0", "0")), "no leader yet");
        assert!(!status_is_leader(&serde_json::json!({"error": "etcdserver: no leader"})));
        assert!(status_is_leader(&serde_json::json!({"header": {"member_id": 7}, "leader": 7})), "numbers too");
    }

    #[test]
    fn io_pressure_is_the_some_line() {
        let text = "some avg10=0.67 avg60=8.93 avg300=5.07 total=63122673\nfull avg10=0.00 avg60=0.03 avg300=0.05 total=3929229\n";
        assert_eq!(parse_io_pressure(text).as_deref(), Some("avg10=0.67% avg60=8.93%"));
        assert_eq!(parse_io_pressure("full avg10=1.00 avg60=2.00 avg300=0 total=1\n"), None);
        assert_eq!(parse_io_pressure("some avg10=1.00\n"), None);
    }

    #[test]
    fn initial_cluster_names_every_member_with_its_peer_url() {
        let names = ["m1", "m2", "m3"].map(String::from);
        assert_eq!(initial_cluster(&names, &[1, 2, 3]), "m1=http://127.0.0.1:1,m2=http://127.0.0.1:2,m3=http://127.0.0.1:3");
    }
}
