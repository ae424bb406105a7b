//! The end-to-end harness: a [`Cluster`] is one real `toystore serve` process running the real
//! components, on free 127.0.0.1 ports, with its data directories in a temporary directory.
//!
//! Tests talk to it over HTTP like any client. Paths: the host binary is `TOYSTORE_BIN`
//! (default `target/release/toystore`), the components are in `TOYSTORE_WASM_DIR` (default
//! `target/wasm32-wasip2/release`); `just test` builds both first. [`browser`] drives a real
//! headless Chromium for the page tests; [`netns`], [`proxy`] and [`history`] serve the multi-host
//! test (namespaces as machines, a delaying TCP proxy, client histories and their checker);
//! [`circles`] is the layout check (no modules that import each other in a circle).

pub mod browser;
pub mod circles;
pub mod history;
pub mod netns;
pub mod proxy;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
pub use toystore_client::hostproc::{free_ports, LocalCalls, Ports, Settings};
use toystore_client::hostproc::{manifest_text, Components, HostConfig};

/// The workspace root (this crate lives in `<root>/tests`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

pub fn host_binary() -> PathBuf {
    std::env::var_os("TOYSTORE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/release/toystore"))
}

pub fn wasm_dir() -> PathBuf {
    std::env::var_os("TOYSTORE_WASM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/wasm32-wasip2/release"))
}

/// One free loopback port (never one handed out before in this process).
pub fn free_port() -> u16 {
    free_ports(1).expect("a free port")[0]
}

/// The settings the tests start from: the manifest's defaults, except that restock is hourly
/// (only the restock test wants one), ticks and health checks are faster, and
/// `POST /debug/trap` is on.
pub fn test_settings() -> Settings {
    Settings {
        restock_interval_secs: 3600,
        tick_interval_ms: 500,
        health_check_interval_ms: 500,
        debug_routes: true,
        ..Settings::default()
    }
}

/// A reply: status, parsed JSON body (`Value::Null` when the body is not JSON) and headers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    /// `(name, value)`, names lowercase.
    pub headers: Vec<(String, String)>,
}

impl Reply {
    /// The value of response header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The `data` member (`Null` when this is not a success envelope).
    pub fn data(&self) -> &Value {
        toystore_api::data_of(&self.body).unwrap_or(&Value::Null)
    }

    /// The error message of an error envelope (panics with the body if there is none).
    pub fn error_message(&self) -> String {
        toystore_api::error_of(&self.body).map(|e| e.message).unwrap_or_else(|| panic!("no error message in {}", self.body))
    }
}

/// The manifest of a cluster in `dir` on `ports`, in the same format `toystore eval|bench`
/// generate (one definition: the shared schema, written with `toml`).
pub fn manifest_for(dir: &Path, ports: &Ports, settings: &Settings) -> String {
    manifest_with_calls(dir, ports, settings, LocalCalls::Http)
}

/// [`manifest_for`] with calls between the components travelling as `local_calls` says.
pub fn manifest_with_calls(dir: &Path, ports: &Ports, settings: &Settings, local_calls: LocalCalls) -> String {
    let config = HostConfig {
        settings: settings.clone(),
        local_calls,
        ..HostConfig::new("e2e", Components::real(&wasm_dir()))
    };
    let seed = workspace_root().join("data/catalog.csv");
    manifest_text(&config, ports, &dir.join("data"), &seed).expect("the manifest serialises")
}

/// One running `toystore serve`, killed on drop.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub ports: Ports,
    pub settings: Settings,
    /// How calls between the components travel: over HTTP (the default) or in process.
    pub local_calls: LocalCalls,
    child: Option<Child>,
    agent: ureq::Agent,
}

impl Cluster {
    pub fn start() -> Self {
        Self::start_with(test_settings())
    }

    pub fn start_with(settings: Settings) -> Self {
        Self::start_with_calls(settings, LocalCalls::Http)
    }

    /// Start with the manifest [`manifest_for`] writes, changed by `edit` first (e.g. to bind
    /// a service to another address). Restarts run the edited manifest too.
    pub fn start_edited(settings: Settings, edit: impl FnOnce(String) -> String) -> Self {
        Self::start_full(settings, LocalCalls::Http, |_, manifest| edit(manifest))
    }

    /// [`Self::start_calls`] with `stock` of every toy instead of the seed's 100, for tests
    /// whose load must never run a toy out (at ~350 orders/s, 100 of each of ten toys last
    /// about three seconds).
    pub fn start_stocked(local_calls: LocalCalls, stock: u64) -> Self {
        Self::start_full(test_settings(), local_calls, |dir, manifest| {
            // Seeds are copied by file name: it must be `catalog.csv`.
            let seed = dir.join("stocked").join("catalog.csv");
            fs::create_dir_all(dir.join("stocked")).expect("a seed directory");
            fs::write(&seed, toystore_client::hostproc::catalog_csv(stock)).expect("write the stocked seed");
            let default_seed = workspace_root().join("data/catalog.csv");
            let edited = manifest.replace(&*default_seed.to_string_lossy(), &seed.to_string_lossy());
            assert_ne!(edited, manifest, "the manifest names the default seed");
            edited
        })
    }

    /// [`Self::start`] with calls between the components travelling as `local_calls` says.
    ///
    /// The tests of those calls run on both paths: each of their files names its path in a
    /// `const LOCAL_CALLS` (`http`) and starts clusters with `crate::LOCAL_CALLS`;
    /// `tests/local_calls.rs` includes the same files as modules under a crate root whose
    /// `LOCAL_CALLS` is `direct`.
    pub fn start_calls(local_calls: LocalCalls) -> Self {
        Self::start_with_calls(test_settings(), local_calls)
    }

    /// [`Self::start_with`] and [`Self::start_calls`] together.
    pub fn start_with_calls(settings: Settings, local_calls: LocalCalls) -> Self {
        Self::start_full(settings, local_calls, |_, manifest| manifest)
    }

    fn start_full(settings: Settings, local_calls: LocalCalls, edit: impl FnOnce(&Path, String) -> String) -> Self {
        let dir = tempfile::Builder::new().prefix("toystore-e2e-").tempdir().expect("temp dir");
        let ports = Ports::pick().expect("free ports");
        let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();
        let mut cluster = Self { dir, ports, settings, local_calls, child: None, agent };
        let manifest = edit(cluster.dir.path(), cluster.manifest());
        fs::write(cluster.manifest_path(), manifest).expect("write manifest");
        cluster.spawn();
        cluster
    }

    pub fn manifest_path(&self) -> PathBuf {
        self.dir.path().join("toystore.toml")
    }

    /// The data directory of a service (`frontend`, `catalog`, `order-1`, ...).
    pub fn data_dir(&self, service: &str) -> PathBuf {
        self.dir.path().join("data").join(service)
    }

    fn manifest(&self) -> String {
        manifest_with_calls(self.dir.path(), &self.ports, &self.settings, self.local_calls)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("host.log")
    }

    fn spawn(&mut self) {
        let bin = host_binary();
        assert!(bin.exists(), "host binary {} missing: run `just build` first", bin.display());
        let log = fs::OpenOptions::new().create(true).append(true).open(self.log_path()).expect("host log");
        let child = Command::new(&bin)
            .arg("serve")
            .arg("--manifest")
            .arg(self.manifest_path())
            .env("TOYSTORE_LOG", std::env::var("TOYSTORE_LOG").unwrap_or_else(|_| "info".into()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        self.child = Some(child);
        self.wait_ready();
    }

    /// Wait until the frontend answers and an order leader has been chosen.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("host exited early with {status}; log:\n{}", self.log_tail());
                }
            }
            let frontend_up = self.try_get("/health").map(|r| r.status == 200).unwrap_or(false);
            let replicas_up = (1..=3).all(|id| self.try_replica(id, "/ping").map(|r| r.status == 200).unwrap_or(false));
            if frontend_up && replicas_up {
                return;
            }
            assert!(Instant::now() < deadline, "host not ready within 90 s; log:\n{}", self.log_tail());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The host's whole log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The last lines of the host's log (for failure messages).
    pub fn log_tail(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = fs::File::open(self.log_path()) {
            let _ = f.read_to_string(&mut s);
        }
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    /// Stop the host with SIGTERM (a clean shutdown) and wait for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kill the host with SIGKILL: no clean shutdown at all.
    pub fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start the host again on the same ports and data directories after [`Self::crash`]
    /// (or [`Self::stop`]), and wait until it is ready.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the host is still running: crash() or stop() it first");
        self.spawn();
    }

    /// Start the host again on the same ports and data directories.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// The frontend's public address: the store's API, what clients use.
    pub fn frontend_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.frontend)
    }

    /// The frontend's internal address (`internal_listen`): its internal routes as well.
    pub fn internal_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.frontend_internal)
    }

    pub fn catalog_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.catalog)
    }

    pub fn replica_url(&self, id: usize) -> String {
        format!("http://127.0.0.1:{}", self.ports.replicas[id - 1])
    }

    pub fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.admin)
    }

    /// A raw request to any URL; transport errors are `Err`, every HTTP status is `Ok`.
    pub fn request(&self, method: &str, url: &str, body: Option<&str>) -> Result<Reply, String> {
        self.request_with(method, url, body, &[])
    }

    /// [`Self::request`] with extra request headers.
    pub fn request_with(&self, method: &str, url: &str, body: Option<&str>, headers: &[(&str, &str)]) -> Result<Reply, String> {
        let mut req = self.agent.request(method, url);
        for (name, value) in headers {
            req = req.set(name, value);
        }
        let result = match body {
            Some(b) => req.send_string(b),
            None => req.call(),
        };
        let response = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => return Err(e.to_string()),
        };
        let status = response.status();
        let headers = response
            .headers_names()
            .into_iter()
            .filter_map(|n| response.header(&n).map(|v| (n.to_ascii_lowercase(), v.to_string())))
            .collect();
        let text = response.into_string().map_err(|e| e.to_string())?;
        Ok(Reply { status, body: serde_json::from_str(&text).unwrap_or(Value::Null), headers })
    }

    fn try_get(&self, path: &str) -> Result<Reply, String> {
        self.request("GET", &format!("{}{path}", self.frontend_url()), None)
    }

    fn try_replica(&self, id: usize, path: &str) -> Result<Reply, String> {
        self.request("GET", &format!("{}{path}", self.replica_url(id)), None)
    }

    /// GET on the frontend's internal listener (`/cache/stats`, `/leader`, ...).
    pub fn internal_get(&self, path: &str) -> Reply {
        self.request("GET", &format!("{}{path}", self.internal_url()), None)
            .unwrap_or_else(|e| panic!("internal GET {path}: {e}\nlog:\n{}", self.log_tail()))
    }

    /// POST on the frontend's internal listener (`/invalidate/<name>`, `/tick`, ...).
    pub fn internal_post(&self, path: &str, body: &str) -> Reply {
        self.request("POST", &format!("{}{path}", self.internal_url()), Some(body))
            .unwrap_or_else(|e| panic!("internal POST {path}: {e}\nlog:\n{}", self.log_tail()))
    }

    /// GET on the frontend.
    pub fn get(&self, path: &str) -> Reply {
        self.try_get(path).unwrap_or_else(|e| panic!("GET {path}: {e}\nlog:\n{}", self.log_tail()))
    }

    /// POST on the frontend.
    pub fn post(&self, path: &str, body: &str) -> Reply {
        self.request("POST", &format!("{}{path}", self.frontend_url()), Some(body))
            .unwrap_or_else(|e| panic!("POST {path}: {e}\nlog:\n{}", self.log_tail()))
    }

    /// GET on the catalog directly (bypasses the frontend cache).
    pub fn catalog(&self, path: &str) -> Reply {
        self.request("GET", &format!("{}{path}", self.catalog_url()), None)
            .unwrap_or_else(|e| panic!("catalog GET {path}: {e}\nlog:\n{}", self.log_tail()))
    }

    /// Stock of a toy, read from the catalog directly.
    pub fn stock(&self, name: &str) -> i64 {
        let r = self.catalog(&format!("/products/{name}"));
        assert_eq!(r.status, 200, "catalog lookup of {name}: {:?}", r.body);
        r.data()["quantity"].as_i64().expect("quantity")
    }

    /// Place an order through the frontend; returns the reply.
    pub fn order(&self, name: &str, quantity: i64) -> Reply {
        self.post("/orders", &format!(r#"{{"name":"{name}","quantity":{quantity}}}"#))
    }

    /// Place an order through the frontend with an `Idempotency-Key` header.
    pub fn order_with_key(&self, name: &str, quantity: i64, key: &str) -> Reply {
        let body = format!(r#"{{"name":"{name}","quantity":{quantity}}}"#);
        self.request_with("POST", &format!("{}/orders", self.frontend_url()), Some(&body), &[("Idempotency-Key", key)])
            .unwrap_or_else(|e| panic!("POST /orders: {e}\nlog:\n{}", self.log_tail()))
    }

    /// Admin endpoint call (`GET /replicas`, `POST /replicas/2/kill`, ...).
    pub fn admin(&self, method: &str, path: &str) -> Reply {
        self.request(method, &format!("{}{path}", self.admin_url()), if method == "POST" { Some("") } else { None })
            .unwrap_or_else(|e| panic!("admin {method} {path}: {e}\nlog:\n{}", self.log_tail()))
    }

    pub fn kill_replica(&self, id: usize) {
        let r = self.admin("POST", &format!("/replicas/{id}/kill"));
        assert_eq!(r.status, 200, "kill replica {id}: {:?}", r.body);
    }

    pub fn restart_replica(&self, id: usize) {
        let r = self.admin("POST", &format!("/replicas/{id}/restart"));
        assert_eq!(r.status, 200, "restart replica {id}: {:?}", r.body);
    }

    /// The frontend's current order leader, if any.
    pub fn leader(&self) -> Option<u64> {
        self.internal_get("/leader").data()["leader"].as_u64()
    }

    /// The frontend's current order leader, or `None` when there is none or the frontend
    /// does not answer (never panics: for fault loops that run while things are down).
    pub fn leader_now(&self) -> Option<u64> {
        let url = format!("{}/leader", self.internal_url());
        self.request("GET", &url, None).ok()?.data()["leader"].as_u64()
    }

    /// Wait until `check` holds, or panic with `what` and the host log.
    pub fn wait_for(&self, what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !check() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}; log:\n{}", self.log_tail());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The bytes of a replica's `orders.csv`.
    pub fn orders_file(&self, id: usize) -> Vec<u8> {
        fs::read(self.data_dir(&format!("order-{id}")).join("orders.csv")).unwrap_or_default()
    }

    /// The three replicas' `orders.csv` once they agree byte for byte. An order is answered
    /// once a majority holds it, so the other follower may write it a moment later: a snapshot
    /// taken to prove that rejected requests change nothing must start from settled files.
    pub fn settled_orders_files(&self) -> Vec<Vec<u8>> {
        self.wait_for("the replicas' orders.csv to agree", Duration::from_secs(30), || {
            let f: Vec<Vec<u8>> = (1..=3).map(|id| self.orders_file(id)).collect();
            f[0] == f[1] && f[1] == f[2]
        });
        (1..=3).map(|id| self.orders_file(id)).collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.crash();
        if std::thread::panicking() {
            eprintln!("--- host log ({}) ---\n{}", self.log_path().display(), self.log_tail());
        }
    }
}

/// The ten toys of the seed catalog.
pub const TOYS: [&str; 10] =
    ["Tux", "Fox", "Whale", "Dolphin", "Python", "Elephant", "Monopoly", "Lego", "Marbles", "Barbie"];
