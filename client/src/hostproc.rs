//! Start and stop a real `toystore serve` for the eval and the bench: free loopback ports, a
//! temporary directory with the manifest, data directories and the host's log.
//!
//! Every measurement runs against a host this module started from scratch, so results never
//! depend on whatever happens to be running on the default ports.

use std::collections::BTreeSet;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use http::Method;
use serde_json::Value;

use toystore_order::log;
use toystore_manifest::{FrontendTable, ManifestFile, OrderTable, ReplicaTable, ServiceTable};

use crate::args::{HostArgs, SEED_TOYS};
use crate::load::conn;

/// The wasm files a host runs: the real services, or the trivial hello everywhere (baseline).
#[derive(Debug, Clone)]
pub struct Components {
    pub frontend: PathBuf,
    pub catalog: PathBuf,
    pub order: PathBuf,
    /// Real components elect a leader; the hello baseline has nothing to wait for.
    pub real: bool,
}

impl Components {
    pub fn real(dir: &Path) -> Self {
        Self {
            frontend: dir.join("toystore_frontend.wasm"),
            catalog: dir.join("toystore_catalog.wasm"),
            order: dir.join("toystore_order.wasm"),
            real: true,
        }
    }

    /// Every service runs `toystore_hello.wasm`: what the host alone costs.
    pub fn hello(dir: &Path) -> Self {
        let h = dir.join("toystore_hello.wasm");
        Self { frontend: h.clone(), catalog: h.clone(), order: h, real: false }
    }

    pub fn check(&self) -> anyhow::Result<()> {
        for p in [&self.frontend, &self.catalog, &self.order] {
            if !p.is_file() {
                bail!("component {} not found: build them first (`just build`) or pass --components DIR", p.display());
            }
        }
        Ok(())
    }
}

/// The directory with the built components: `--components`, else
/// `<target>/wasm32-wasip2/release` beside this executable (`<target>/release/toystore`), else
/// `target/wasm32-wasip2/release` under the current directory.
pub fn components_dir(args: &HostArgs) -> anyhow::Result<PathBuf> {
    if let Some(d) = &args.components {
        return Ok(d.clone());
    }
    let beside_exe = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(|target| target.join("wasm32-wasip2/release")));
    if let Some(d) = beside_exe.filter(|d| d.join("toystore_frontend.wasm").is_file()) {
        return Ok(d);
    }
    Ok(std::env::current_dir().context("current directory")?.join("target/wasm32-wasip2/release"))
}

/// The host binary: `--host-bin`, else this executable (the eval and bench are subcommands of
/// `toystore` itself).
pub fn host_binary(args: &HostArgs) -> anyhow::Result<PathBuf> {
    match &args.host_bin {
        Some(p) => Ok(p.clone()),
        None => std::env::current_exe().context("cannot find the current executable (pass --host-bin)"),
    }
}

/// `[settings]` of the generated manifest: the shared typed schema, so a setting the host does
/// not know cannot be written.
pub use toystore_manifest::{LocalCalls, OutgoingHttp, Settings};

/// How to run one host.
#[derive(Debug, Clone)]
pub struct HostConfig {
    pub components: Components,
    pub settings: Settings,
    /// How the host sends the components' outgoing requests.
    pub outgoing_http: OutgoingHttp,
    /// How calls between the host's own services travel (HTTP, or handed over in process).
    pub local_calls: LocalCalls,
    /// Stock of each seed toy in the catalog the host starts with.
    pub initial_stock: u64,
    /// Short name for messages and the temp dir (`eval-cache-on`, `bench-baseline`, ...).
    pub label: String,
}

impl HostConfig {
    pub fn new(label: &str, components: Components) -> Self {
        Self {
            components,
            settings: Settings::default(),
            outgoing_http: OutgoingHttp::Pooled,
            local_calls: LocalCalls::Http,
            initial_stock: 100,
            label: label.into(),
        }
    }
}

/// Ports of one host.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// The frontend's public listener.
    pub frontend: u16,
    /// The frontend's internal listener (`internal_listen`: its internal routes).
    pub frontend_internal: u16,
    pub catalog: u16,
    pub replicas: [u16; 3],
    pub admin: u16,
}

impl Ports {
    /// Seven distinct ports that were free a moment ago (see [`free_ports`]).
    pub fn pick() -> anyhow::Result<Self> {
        let p = free_ports(7)?;
        Ok(Self { frontend: p[0], catalog: p[1], replicas: [p[2], p[3], p[4]], admin: p[5], frontend_internal: p[6] })
    }
}

/// `n` distinct loopback ports that were free a moment ago. All are bound at once (so the OS
/// cannot hand out one twice), and none is handed out twice within this process, even to hosts
/// started in parallel (the end-to-end tests start several at once).
///
/// They come from [`PORTS`], below Linux's ephemeral range (32768–60999 by default), not from
/// a bind to port 0: a test host that restarts on its ports (the client and conservation tests
/// do) found one taken in between, as the local end of some process's outgoing connection,
/// which only ever takes ephemeral ports.
pub fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let span = PORTS.end - PORTS.start;
    // Processes (test binaries, benches) running at once start at different places.
    let seed = std::process::id() ^ std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let start = (seed % u32::from(span)) as u16;
    let mut held = Vec::new();
    let mut ports = Vec::new();
    for i in 0..span {
        if ports.len() == n {
            break;
        }
        let port = PORTS.start + (start + i) % span;
        if handed_out.contains(&port) {
            continue;
        }
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            handed_out.insert(port);
            ports.push(port);
            held.push(listener);
        }
    }
    if ports.len() < n {
        bail!("no {n} free loopback ports in {}..{}", PORTS.start, PORTS.end);
    }
    Ok(ports)
}

/// Where [`free_ports`] looks: below the ephemeral range, above the well-known services.
const PORTS: std::ops::Range<u16> = 20_000..32_768;

/// The manifest for `config` with data under `data` and the seed catalog at `seed`.
pub fn manifest(config: &HostConfig, ports: &Ports, data: &Path, seed: &Path) -> ManifestFile {
    let listen = |port: u16| format!("127.0.0.1:{port}");
    let service = |component: &Path, port: u16, name: &str, seed: Vec<PathBuf>| ServiceTable {
        component: component.to_path_buf(),
        listen: listen(port),
        data_dir: data.join(name),
        seed,
    };
    let frontend = FrontendTable {
        component: config.components.frontend.clone(),
        listen: listen(ports.frontend),
        internal_listen: listen(ports.frontend_internal),
        data_dir: data.join("frontend"),
        seed: Vec::new(),
    };
    let replica = |(i, port): (usize, &u16)| ReplicaTable {
        id: i as u32 + 1,
        listen: listen(*port),
        data_dir: data.join(format!("order-{}", i + 1)),
        seed: Vec::new(),
    };
    ManifestFile {
        admin: listen(ports.admin),
        outgoing_http: config.outgoing_http,
        expose_internal: false,
        local_calls: config.local_calls,
        settings: config.settings.clone(),
        frontend,
        catalog: service(&config.components.catalog, ports.catalog, "catalog", vec![seed.to_path_buf()]),
        order: OrderTable {
            component: config.components.order.clone(),
            seed: Vec::new(),
            replica: ports.replicas.iter().enumerate().map(replica).collect(),
        },
        hosts: Vec::new(),
    }
}

/// [`manifest`] as TOML, with a comment saying who wrote it.
pub fn manifest_text(config: &HostConfig, ports: &Ports, data: &Path, seed: &Path) -> anyhow::Result<String> {
    let toml = toml::to_string(&manifest(config, ports, data, seed)).context("serialise the manifest")?;
    Ok(format!("# Generated by toystore eval/bench ({}).\n{toml}", config.label))
}

/// The seed catalog: the ten toys, `stock` each.
/// The seed prices of [`SEED_TOYS`], as the seed catalog spells them.
const SEED_PRICES: [&str; 10] = ["25.99", "19.99", "34.50", "29.99", "15.00", "39.95", "24.99", "49.99", "5.99", "22.50"];

pub fn catalog_csv(stock: u64) -> String {
    let mut s = String::from("name,price,quantity\n");
    for (t, p) in SEED_TOYS.iter().zip(SEED_PRICES) {
        s.push_str(&format!("{t},{p},{stock}\n"));
    }
    s
}

/// One `toystore serve` process and its temporary directory. Killed on drop.
pub struct Host {
    pub config: HostConfig,
    pub ports: Ports,
    root: PathBuf,
    _dir: Option<tempfile::TempDir>,
    exe: PathBuf,
    child: Option<Child>,
    /// Peak resident memory of the last process, read just before it was stopped.
    last_peak_kib: Option<u64>,
}

impl Host {
    /// Create the directory, the seed catalog and the manifest; nothing runs yet, so a caller
    /// may put files into the data directories first.
    pub fn create(exe: &Path, config: HostConfig, keep: bool) -> anyhow::Result<Host> {
        config.components.check()?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("toystore-{}-", config.label))
            .tempdir()
            .context("create a temporary directory")?;
        let (root, dir) = if keep { (dir.keep(), None) } else { (dir.path().to_path_buf(), Some(dir)) };
        let ports = Ports::pick()?;
        let data = root.join("data");
        for s in ["frontend", "catalog", "order-1", "order-2", "order-3"] {
            fs::create_dir_all(data.join(s)).with_context(|| format!("create {}", data.join(s).display()))?;
        }
        // The host copies a seed file under its own name: it must be called catalog.csv.
        let seed = root.join("seed").join("catalog.csv");
        fs::create_dir_all(root.join("seed")).context("create the seed directory")?;
        fs::write(&seed, catalog_csv(config.initial_stock)).context("write the seed catalog")?;
        fs::write(root.join("toystore.toml"), manifest_text(&config, &ports, &data, &seed)?).context("write the manifest")?;
        Ok(Host { config, ports, root, _dir: dir, exe: exe.to_path_buf(), child: None, last_peak_kib: None })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Data directory of `frontend`, `catalog` or `order-N`.
    pub fn data_dir(&self, service: &str) -> PathBuf {
        self.root.join("data").join(service)
    }

    pub fn log_path(&self) -> PathBuf {
        self.root.join("host.log")
    }

    /// The frontend's public address (the store's API).
    pub fn frontend_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.frontend)
    }

    /// The frontend's internal address (`/leader`, `/cache/stats`, ...).
    pub fn frontend_internal_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.frontend_internal)
    }

    pub fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.admin)
    }

    pub fn replica_url(&self, id: u32) -> String {
        let i = (id as usize).clamp(1, 3) - 1;
        format!("http://127.0.0.1:{}", self.ports.replicas[i])
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Spawn the host and wait until it serves; returns how long that took.
    pub async fn start(&mut self, timeout: Duration) -> anyhow::Result<Duration> {
        if self.child.is_some() {
            bail!("host {} already running", self.config.label);
        }
        let log = fs::OpenOptions::new().create(true).append(true).open(self.log_path()).context("open the host log")?;
        let start = Instant::now();
        let child = Command::new(&self.exe)
            .arg("serve")
            .arg("--manifest")
            .arg(self.root.join("toystore.toml"))
            .env("TOYSTORE_LOG", std::env::var("TOYSTORE_LOG").unwrap_or_else(|_| "warn".into()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("log fd")?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("start {} serve", self.exe.display()))?;
        self.child = Some(child);
        self.wait_ready(start + timeout).await?;
        Ok(start.elapsed())
    }

    /// Wait until the frontend answers `/health`, every replica answers `/ping` with 200 and
    /// (real components) the frontend has chosen a leader.
    pub async fn wait_ready(&mut self, deadline: Instant) -> anyhow::Result<()> {
        let t = Duration::from_secs(2);
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    bail!("host {} exited early with {status}; log:\n{}", self.config.label, self.log_tail(40));
                }
            }
            let mut ready = is_200(&self.frontend_url(), "/health", t).await;
            for id in 1..=3 {
                ready = ready && self.replica_serving(id).await;
            }
            if ready && self.config.components.real {
                ready = matches!(self.leader().await, Ok(Some(_)));
            }
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("host {} not ready in time; log:\n{}", self.config.label, self.log_tail(40));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Replica `id` answers `/ping` with 200 (its start-up resync is done).
    pub async fn replica_serving(&self, id: u32) -> bool {
        is_200(&self.replica_url(id), "/ping", Duration::from_secs(2)).await
    }

    /// The frontend's current order leader (`GET /leader`, an internal route).
    pub async fn leader(&self) -> anyhow::Result<Option<u32>> {
        let r = conn::once(&self.frontend_internal_url(), Method::GET, "/leader", None, Duration::from_secs(5)).await?;
        if !r.status.is_success() {
            bail!("GET /leader: {}", r.status);
        }
        Ok(toystore_api::data_of(&r.json()).and_then(|d| d["leader"].as_u64()).map(|n| n as u32))
    }

    /// Make the frontend choose a leader if it has none yet, by placing nothing: a `GET /leader`
    /// poll until one is there.
    pub async fn wait_leader(&self, timeout: Duration) -> anyhow::Result<u32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(id)) = self.leader().await {
                return Ok(id);
            }
            if Instant::now() >= deadline {
                bail!("no order leader within {} s", timeout.as_secs());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `POST /replicas/<id>/<action>` on the admin endpoint (`kill` or `restart`).
    pub async fn admin(&self, id: u32, action: &str) -> anyhow::Result<Value> {
        let r = conn::once(&self.admin_url(), Method::POST, &format!("/replicas/{id}/{action}"), None, Duration::from_secs(30))
            .await?;
        if !r.status.is_success() {
            bail!("admin {action} replica {id}: {} {}", r.status, String::from_utf8_lossy(&r.body));
        }
        Ok(r.json())
    }

    /// Peak resident memory (VmHWM) of the running host, in KiB; after [`Host::stop`], the value
    /// read just before stopping.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        self.pid().and_then(|pid| proc_status_kib(pid, "VmHWM")).or(self.last_peak_kib)
    }

    /// Stop the host: SIGTERM, then SIGKILL after 10 s.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            self.last_peak_kib = proc_status_kib(child.id(), "VmHWM").or(self.last_peak_kib);
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The last `lines` lines of the host's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(self.log_path()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn is_200(url: &str, path: &str, timeout: Duration) -> bool {
    matches!(conn::once(url, Method::GET, path, None, timeout).await, Ok(r) if r.status.is_success())
}

/// A `kB` field of `/proc/<pid>/status` (VmHWM = peak resident set, VmRSS = current).
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_kib(&text, field)
}

fn parse_status_kib(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

/// Write an order log of `count` orders (an epoch record at index 0, then orders 0..count at
/// indexes 1..=count, all of `epoch`, at the seed prices) into the data directory of a replica,
/// plus its `epoch` promise — what a replica that took those orders would have on disk. Used by the bench to start from a long log
/// without placing 100 k orders through the store.
pub fn write_order_log(dir: &Path, count: u64, epoch: u64) -> anyhow::Result<()> {
    use std::io::Write;
    let path = dir.join("orders.csv");
    let file = fs::File::create(&path).with_context(|| format!("create {}", path.display()))?;
    let mut w = std::io::BufWriter::new(file);
    // The order crate's own header and line format, so this file is exactly what a replica
    // would have written.
    w.write_all(log::HEADER.as_bytes())?;
    w.write_all(log::Record::epoch_record(0, epoch).to_line().as_bytes())?;
    for n in 0..count {
        let toy = (n % SEED_TOYS.len() as u64) as usize;
        let order = log::Order {
            number: n,
            name: SEED_TOYS[toy].to_string(),
            quantity: 1 + (n % 3) as i64,
            price: SEED_PRICES[toy].to_string(),
            key: format!("bench-{n:016x}"),
        };
        w.write_all(log::Record::order_record(n + 1, epoch, order).to_line().as_bytes())?;
    }
    w.flush()?;
    w.into_inner().map_err(|e| anyhow!("flush {}: {e}", path.display()))?.sync_all()?;
    fs::write(dir.join("epoch"), format!("{epoch}\n")).context("write the epoch file")?;
    Ok(())
}

/// Write the catalog's `catalog.csv` as a catalog that applied the `count` orders
/// [`write_order_log`] writes (from `stock` of each seed toy): the quantities they took and
/// `applied_orders = count`. Without it a store started on a pre-written log would count every
/// one of those orders as not yet applied, and push them all to the catalog on its first order.
pub fn write_applied_catalog(dir: &Path, count: u64, stock: u64) -> anyhow::Result<()> {
    let mut taken = [0u64; SEED_TOYS.len()];
    for n in 0..count {
        taken[(n % SEED_TOYS.len() as u64) as usize] += 1 + n % 3;
    }
    let mut s = String::from("name,price,quantity,seeded,restocked,applied_orders\n");
    for ((t, p), took) in SEED_TOYS.iter().zip(SEED_PRICES).zip(taken) {
        s.push_str(&format!("{t},{p},{},{stock},0,{count}\n", stock as i64 - took as i64));
    }
    fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    fs::write(dir.join("catalog.csv"), s).with_context(|| format!("write {}", dir.join("catalog.csv").display()))?;
    Ok(())
}

/// Cut a replica's order log to its first `keep` records (the replica must not be running): it
/// has then missed every later record, which its peers still have.
pub fn truncate_order_log(dir: &Path, keep: u64) -> anyhow::Result<()> {
    let path = dir.join("orders.csv");
    let text = fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    let kept: Vec<&str> = text.lines().take(1 + keep as usize).collect();
    fs::write(&path, kept.join("\n") + "\n").with_context(|| format!("write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> HostConfig {
        HostConfig::new("t", Components::real(Path::new("/w")))
    }

    #[test]
    fn free_ports_are_distinct_bindable_and_outside_the_ephemeral_range() {
        let a = free_ports(7).unwrap();
        let b = free_ports(7).unwrap();
        let all: BTreeSet<u16> = a.iter().chain(&b).copied().collect();
        assert_eq!(all.len(), 14, "{a:?} {b:?}");
        assert!(all.iter().all(|p| PORTS.contains(p)), "{all:?}");
        for p in all {
            TcpListener::bind(("127.0.0.1", p)).unwrap_or_else(|e| panic!("port {p}: {e}"));
        }
    }

    #[test]
    fn manifest_has_every_service_and_setting() {
        let ports = Ports::pick().unwrap();
        let mut c = config();
        c.settings.cache_enabled = false;
        c.outgoing_http = OutgoingHttp::Fresh;
        c.local_calls = LocalCalls::Direct;
        let m = manifest_text(&c, &ports, Path::new("/d"), Path::new("/s/cat \"x\".csv")).unwrap();
        // What the host will read back: the same schema, every key known.
        let back: ManifestFile = toml::from_str(&m).unwrap();
        assert_eq!(back, manifest(&c, &ports, Path::new("/d"), Path::new("/s/cat \"x\".csv")));
        assert_eq!(back.admin, format!("127.0.0.1:{}", ports.admin));
        assert_eq!(back.outgoing_http, OutgoingHttp::Fresh);
        assert_eq!(back.local_calls, LocalCalls::Direct);
        assert!(m.contains("local_calls = \"direct\""), "{m}");
        assert!(!back.settings.cache_enabled);
        assert_eq!(back.frontend.component, Path::new("/w/toystore_frontend.wasm"));
        assert_eq!(back.frontend.internal_listen, format!("127.0.0.1:{}", ports.frontend_internal));
        assert!(!m.contains("expose_internal"), "left at its default");
        assert_eq!(back.catalog.seed, vec![PathBuf::from("/s/cat \"x\".csv")]);
        assert_eq!(back.order.replica.len(), 3);
        for (i, (r, p)) in back.order.replica.iter().zip(ports.replicas).enumerate() {
            let want = (i as u32 + 1, format!("127.0.0.1:{p}"), PathBuf::from(format!("/d/order-{}", i + 1)));
            assert_eq!((r.id, r.listen.clone(), r.data_dir.clone()), want);
        }
        assert!(m.starts_with("# Generated by toystore eval/bench (t)."));
        let hello = HostConfig::new("b", Components::hello(Path::new("/w")));
        let m = manifest_text(&hello, &ports, Path::new("/d"), Path::new("/s")).unwrap();
        assert_eq!(m.matches("toystore_hello.wasm").count(), 3);
    }

    #[test]
    fn ports_are_distinct() {
        let p = Ports::pick().unwrap();
        let mut all = vec![p.frontend, p.frontend_internal, p.catalog, p.admin, p.replicas[0], p.replicas[1], p.replicas[2]];
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 7);
    }

    #[test]
    fn catalog_has_the_ten_toys() {
        let c = catalog_csv(7);
        assert_eq!(c.lines().count(), 11);
        assert!(c.contains("\nTux,25.99,7\n") && c.ends_with("Barbie,22.50,7\n"));
    }

    #[test]
    fn reads_proc_status() {
        let text = "Name:\tx\nVmPeak:\t  2000 kB\nVmHWM:\t    1234 kB\nVmRSS:\t  1000 kB\n";
        assert_eq!(parse_status_kib(text, "VmHWM"), Some(1234));
        assert_eq!(parse_status_kib(text, "VmRSS"), Some(1000));
        assert_eq!(parse_status_kib(text, "VmSwap"), None);
        assert!(proc_status_kib(std::process::id(), "VmHWM").unwrap() > 0);
    }

    #[test]
    fn order_log_write_and_truncate() {
        let d = tempfile::tempdir().unwrap();
        write_order_log(d.path(), 25, 3).unwrap();
        let text = fs::read_to_string(d.path().join("orders.csv")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 27);
        assert_eq!(lines[0], "index,epoch,kind,number,name,quantity,price,key");
        assert_eq!(lines[1], "0,3,epoch,,,,,");
        assert_eq!(lines[2], "1,3,order,0,Tux,1,25.99,bench-0000000000000000");
        assert!(lines[26].starts_with("25,3,order,24,Python,1,15.00,"));
        assert_eq!(fs::read_to_string(d.path().join("epoch")).unwrap().trim(), "3");
        // The order crate reads it back as its own.
        let parsed = log::parse(&d.path().join("orders.csv"), text.as_bytes()).unwrap();
        assert_eq!(parsed.orders().count(), 25);
        write_applied_catalog(d.path(), 25, 100).unwrap();
        let catalog = fs::read_to_string(d.path().join("catalog.csv")).unwrap();
        // Tux takes orders 0, 10, 20: quantities 1 + n % 3 = 1, 2, 3.
        assert!(catalog.starts_with("name,price,quantity,seeded,restocked,applied_orders\nTux,25.99,94,100,0,25\n"), "{catalog}");
        truncate_order_log(d.path(), 10).unwrap();
        let text = fs::read_to_string(d.path().join("orders.csv")).unwrap();
        assert_eq!(text.lines().count(), 11);
        assert!(text.ends_with("9,3,order,8,Marbles,3,5.99,bench-0000000000000008\n"));
    }
}
