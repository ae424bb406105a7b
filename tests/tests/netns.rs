//! The store spread over machines, and the network between them failing.
//!
//! Five network namespaces on one bridge stand for five machines: `front` runs the frontend and
//! the catalog (`toystore serve --host front`), `r1`, `r2`, `r3` one order replica each, and
//! `client` the test's clients. Each machine has its own admin endpoint on its private address
//! (`[[host]]` tables), so `toystore replica list` asks all of them.
//!
//! Every replica machine reaches the others through delaying TCP proxies of its own
//! ([`toystore_e2e::proxy`]; this kernel has no `tc netem`): its replica listens on loopback,
//! a proxy on its public address forwards inbound calls to it, and its manifest names loopback
//! proxies for every other service. With no delay set they only pass bytes on.
//!
//! Under a steady load of orders and reads through the frontend, three faults in turn:
//! (a) the leader's machine is cut off (iptables DROP both ways); the other two elect a leader
//!     and serve; the old leader acknowledges nothing; after healing it follows, same log;
//! (b) one follower's link gets 50 ms ± 20 ms delay each way and 5 % packet loss (iptables
//!     `statistic`); orders go on without a single error;
//! (c) one way only: the leader's calls to a follower are dropped while that follower still
//!     reaches everyone; orders go on; after healing it catches up.
//! After each: the history (saved as JSON in the test's directory) passes the checker against
//! the replicas' log, every acknowledged order reads back, the three `orders.csv` are
//! byte-identical, and the catalog never gave out less stock than was ordered.
//!
//! Needs root (`ip netns add`); elsewhere it prints "skipped: ..." and passes.

use std::collections::BTreeMap;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;
use toystore_e2e::history::{self, History, Order, Outcome, Request};
use toystore_e2e::netns::{enter_ns, Lab};
use toystore_e2e::proxy::{Knobs, Proxy};
use toystore_e2e::{host_binary, test_settings, wasm_dir, TOYS};
use toystore_manifest::{FrontendTable, HostTable, ManifestFile, OrderTable, ReplicaTable, ServiceTable};

const MACHINES: [&str; 5] = ["front", "r1", "r2", "r3", "client"];
const FRONTEND_PORT: u16 = 9080;
/// The frontend's internal listener, on the front machine (the catalog, the host and the test call it).
const FRONTEND_INTERNAL_PORT: u16 = 9070;
const CATALOG_PORT: u16 = 9081;
const ADMIN_PORT: u16 = 9079;
/// Replica `i` answers on port 9090 + i (the proxy on its machine's address; the replica
/// itself on loopback there).
const REPLICA_BASE: u16 = 9090;
/// A replica machine's loopback proxies to the other services: 9180 + index in [`SERVICES`].
const OUTBOUND_BASE: u16 = 9180;
const SERVICES: [&str; 5] = ["frontend", "catalog", "order-1", "order-2", "order-3"];
const INITIAL_STOCK: i64 = 100_000;
const CLIENTS: usize = 3;

fn replica_machine(id: usize) -> String {
    format!("r{id}")
}

/// The deployment: namespaces, per-machine manifests, proxies and the host processes.
struct Store {
    hosts: Vec<HostProcess>,
    /// Delay knobs of replica machines 1..=3 (index 0 unused).
    knobs: Vec<Arc<Knobs>>,
    _proxies: Vec<Proxy>,
    agent: ureq::Agent,
    dir: tempfile::TempDir,
    /// Last field, so dropped last: the hosts and proxies go before their namespaces.
    lab: Lab,
}

struct HostProcess {
    machine: String,
    child: Child,
    log: PathBuf,
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Store {
    fn public(&self, service: &str) -> SocketAddr {
        public_addr(&self.lab, service)
    }

    fn frontend(&self) -> String {
        format!("http://{}", self.public("frontend"))
    }

    fn replica_url(&self, id: usize) -> String {
        format!("http://{}", self.public(&format!("order-{id}")))
    }

    fn get(&self, url: &str) -> Option<Value> {
        match self.agent.get(url).call() {
            Ok(r) => Some(json(r)),
            Err(ureq::Error::Status(_, r)) => Some(json(r)),
            Err(_) => None,
        }
    }

    /// The frontend's current leader (an internal route: asked on its internal listener).
    fn leader(&self) -> Option<usize> {
        let internal = SocketAddr::from((self.lab.ip("front"), FRONTEND_INTERNAL_PORT));
        self.get(&format!("http://{internal}/leader"))?.get("data")?.get("leader")?.as_u64().map(|l| l as usize)
    }

    /// What replica `id`'s `/ping` says (its data), if it answers.
    fn ping(&self, id: usize) -> Option<Value> {
        self.get(&format!("{}/ping", self.replica_url(id)))?.get("data").cloned()
    }

    fn orders_file(&self, id: usize) -> Vec<u8> {
        fs::read(self.dir.path().join(format!("data/order-{id}/orders.csv"))).unwrap_or_default()
    }

    /// The order records of replica `id`'s log.
    fn log(&self, id: usize) -> Vec<Order> {
        let path = self.dir.path().join(format!("data/order-{id}/orders.csv"));
        let bytes = self.orders_file(id);
        toystore_order::log::parse(&path, &bytes).unwrap_or_else(|e| panic!("{e}")).orders().cloned().collect()
    }

    /// The epoch of each order record of replica `id`'s log, by order number.
    fn order_epochs(&self, id: usize) -> Vec<u64> {
        let path = self.dir.path().join(format!("data/order-{id}/orders.csv"));
        let parsed = toystore_order::log::parse(&path, &self.orders_file(id)).unwrap_or_else(|e| panic!("{e}"));
        parsed.entries.iter().filter(|e| e.order.is_some()).map(|e| e.epoch).collect()
    }

    fn log_tails(&self) -> String {
        let mut out = String::new();
        for h in &self.hosts {
            let text = fs::read_to_string(&h.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            out.push_str(&format!("--- {} ({}) ---\n{}\n", h.machine, h.log.display(), lines[lines.len().saturating_sub(25)..].join("\n")));
        }
        out
    }

    /// Wait (bounded) until `check` holds; panic with `what` and the hosts' logs otherwise.
    fn wait_for(&self, what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + limit;
        while !check() {
            assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}\n{}", self.log_tails());
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Wait until the three replicas' files are byte-identical and not empty.
    fn wait_identical(&self, what: &str) {
        self.wait_for(&format!("identical orders.csv ({what})"), Duration::from_secs(45), || {
            let f = self.orders_file(1);
            f.len() > 0 && f == self.orders_file(2) && f == self.orders_file(3)
        });
    }
}

/// The address other machines call `service` at.
fn public_addr(lab: &Lab, service: &str) -> SocketAddr {
    match service {
        "frontend" => SocketAddr::from((lab.ip("front"), FRONTEND_PORT)),
        "catalog" => SocketAddr::from((lab.ip("front"), CATALOG_PORT)),
        replica => {
            let id: usize = replica.trim_start_matches("order-").parse().expect("order-N");
            SocketAddr::from((lab.ip(&replica_machine(id)), REPLICA_BASE + id as u16))
        }
    }
}

fn outbound_port(service: &str) -> u16 {
    OUTBOUND_BASE + SERVICES.iter().position(|s| *s == service).expect("a service") as u16
}

/// The manifest as `machine` sees it: the front machine with everyone's public addresses; a
/// replica machine with its replica on loopback and every other service at its own loopback
/// proxy.
fn manifest(lab: &Lab, root: &Path, machine: &str) -> ManifestFile {
    let wasm = wasm_dir();
    let data = root.join("data");
    let own_replica = machine.strip_prefix('r').and_then(|id| id.parse::<usize>().ok());
    let addr = |service: &str| -> String {
        match own_replica {
            None => public_addr(lab, service).to_string(),
            Some(id) if service == format!("order-{id}") => format!("127.0.0.1:{}", REPLICA_BASE + id as u16),
            Some(_) => format!("127.0.0.1:{}", outbound_port(service)),
        }
    };
    let table = |service: &str, component: &str, seed: Vec<PathBuf>| ServiceTable {
        component: wasm.join(component),
        listen: addr(service),
        data_dir: data.join(service),
        seed,
    };
    let mut settings = test_settings();
    settings.call_timeout_ms = 2000;
    ManifestFile {
        admin: "127.0.0.1:9079".into(),
        outgoing_http: Default::default(),
        // The namespaces are this test's private network.
        expose_internal: true,
        local_calls: Default::default(),
        settings,
        frontend: FrontendTable {
            component: wasm.join("toystore_frontend.wasm"),
            listen: addr("frontend"),
            // The catalog (same machine), the host and this test call it; no client does.
            internal_listen: SocketAddr::from((lab.ip("front"), FRONTEND_INTERNAL_PORT)).to_string(),
            data_dir: data.join("frontend"),
            seed: Vec::new(),
        },
        catalog: table("catalog", "toystore_catalog.wasm", vec![root.join("seed/catalog.csv")]),
        order: OrderTable {
            component: wasm.join("toystore_order.wasm"),
            seed: Vec::new(),
            replica: (1..=3)
                .map(|id| ReplicaTable {
                    id: id as u32,
                    listen: addr(&format!("order-{id}")),
                    data_dir: data.join(format!("order-{id}")),
                    seed: Vec::new(),
                })
                .collect(),
        },
        hosts: ["front", "r1", "r2", "r3"]
            .iter()
            .map(|m| HostTable {
                name: m.to_string(),
                admin: SocketAddr::from((lab.ip(m), ADMIN_PORT)).to_string(),
                services: match *m {
                    "front" => vec!["frontend".into(), "catalog".into()],
                    r => vec![format!("order-{}", &r[1..])],
                },
            })
            .collect(),
    }
}

fn manifest_path(root: &Path, machine: &str) -> PathBuf {
    root.join(format!("toystore-{machine}.toml"))
}

/// Build the machines, start the proxies and the four hosts, and wait until a leader serves.
/// `None`: skipped (printed).
fn start() -> Option<Store> {
    let lab = match Lab::create(&MACHINES) {
        Ok(lab) => lab,
        Err(skip) => {
            eprintln!("skipped: {}", skip.0);
            return None;
        }
    };
    let dir = tempfile::Builder::new().prefix("toystore-netns-").tempdir().expect("temp dir");
    let root = dir.path().to_path_buf();
    fs::create_dir_all(root.join("seed")).expect("seed dir");
    fs::write(root.join("seed/catalog.csv"), toystore_client::hostproc::catalog_csv(INITIAL_STOCK as u64)).expect("seed");
    for machine in ["front", "r1", "r2", "r3"] {
        let text = toml::to_string(&manifest(&lab, &root, machine)).expect("manifest serialises");
        fs::write(manifest_path(&root, machine), text).expect("write manifest");
    }
    // Proxies: each runs in a thread that entered its replica machine's namespace.
    let knobs: Vec<Arc<Knobs>> = (0..=3).map(|_| Arc::new(Knobs::default())).collect();
    let mut proxies = Vec::new();
    for id in 1..=3usize {
        let ns = lab.ns(&replica_machine(id));
        let mut routes = vec![(public_addr(&lab, &format!("order-{id}")), SocketAddr::from(([127, 0, 0, 1], REPLICA_BASE + id as u16)))];
        for service in SERVICES.iter().filter(|s| **s != format!("order-{id}")) {
            routes.push((SocketAddr::from(([127, 0, 0, 1], outbound_port(service))), public_addr(&lab, service)));
        }
        let knobs = knobs[id].clone();
        let started = thread::spawn(move || {
            enter_ns(&ns);
            routes.into_iter().map(|(listen, target)| Proxy::start(listen, target, knobs.clone())).collect::<Result<Vec<_>, _>>()
        });
        proxies.extend(started.join().expect("proxy thread").expect("proxies start"));
    }
    // The test's own requests come from the client machine.
    lab.enter("client");
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(10)).build();
    let mut store = Store { hosts: Vec::new(), knobs, _proxies: proxies, agent, dir, lab };
    let bin = host_binary();
    assert!(bin.exists(), "host binary {} missing: run `just build` first", bin.display());
    // The front machine first: nothing in its start may wait for replicas on other machines.
    for machine in ["front", "r1", "r2", "r3"] {
        let log = root.join(format!("host-{machine}.log"));
        let file = fs::File::create(&log).expect("host log");
        let child = store
            .lab
            .command(machine, bin.to_str().expect("utf-8 path"))
            .args(["serve", "--host", machine, "--manifest"])
            .arg(manifest_path(&root, machine))
            .env("TOYSTORE_LOG", std::env::var("TOYSTORE_LOG").unwrap_or_else(|_| "info".into()))
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log fd"))
            .stderr(file)
            .spawn()
            .expect("start a host");
        store.hosts.push(HostProcess { machine: machine.into(), child, log });
    }
    store.wait_for("the frontend, three replicas and a leader", Duration::from_secs(180), || {
        (1..=3).all(|id| store.ping(id).is_some()) && store.leader().is_some()
    });
    Some(store)
}

/// Clients ordering (with idempotency keys, retried on 503 or no answer) and reading acknowledged
/// orders back, until stopped; everything goes into the history.
struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    fn start(store: &Store, phase: &str, history: &History, acked: &Arc<Mutex<Vec<u64>>>) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..CLIENTS)
            .map(|client| {
                let ns = store.lab.ns("client");
                let url = store.frontend();
                let (phase, history, acked, stop) = (phase.to_string(), history.clone(), acked.clone(), stop.clone());
                thread::spawn(move || {
                    enter_ns(&ns);
                    run_client(client, &url, &phase, &history, &acked, &stop)
                })
            })
            .collect();
        Load { stop, threads }
    }

    fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            t.join().expect("client thread");
        }
    }
}

/// One request to the frontend, as an outcome.
fn call(agent: &ureq::Agent, url: &str, request: &Request) -> Outcome {
    let result = match request {
        Request::Order { key, toy, quantity } => agent
            .post(&format!("{url}/orders"))
            .set("Idempotency-Key", key)
            .send_string(&format!(r#"{{"name":"{toy}","quantity":{quantity}}}"#)),
        Request::Read { number } => agent.get(&format!("{url}/orders/{number}")).call(),
    };
    let (status, body): (u16, Value) = match result {
        Ok(r) => (r.status(), json(r)),
        Err(ureq::Error::Status(s, r)) => (s, json(r)),
        Err(e) => return Outcome::Lost { error: e.to_string() },
    };
    let data = &body["data"];
    match (request, status) {
        (Request::Order { .. }, 200) => match data["order_number"].as_u64() {
            Some(number) => Outcome::Ordered { number },
            None => Outcome::Failed { status, message: format!("no order number in {body}") },
        },
        (Request::Read { .. }, 200) => Outcome::Found {
            toy: data["name"].as_str().unwrap_or_default().to_string(),
            quantity: data["quantity"].as_i64().unwrap_or(-1),
        },
        (Request::Read { .. }, 404) => Outcome::NotFound,
        _ => Outcome::Failed { status, message: body["error"]["message"].as_str().unwrap_or_default().to_string() },
    }
}

fn run_client(client: usize, url: &str, phase: &str, history: &History, acked: &Mutex<Vec<u64>>, stop: &AtomicBool) {
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(15)).build();
    let mut seq = 0u64;
    // Bounded: the test stops it, and at most 2 000 operations per client and phase anyway.
    while !stop.load(Ordering::SeqCst) && seq < 2000 {
        seq += 1;
        let pick = (seq as usize * 7 + client * 3) % TOYS.len();
        let request = if seq % 3 == 0 {
            let known = acked.lock().unwrap().clone();
            match known.get((seq as usize * 31 + client) % known.len().max(1)) {
                Some(&number) => Request::Read { number },
                None => continue,
            }
        } else {
            Request::Order { key: format!("{phase}-{client}-{seq}"), toy: TOYS[pick].to_string(), quantity: 1 + (seq % 3) as i64 }
        };
        // An order without a clear answer is retried with its key (at most 20 times).
        for attempt in 0..20 {
            let invoked = history.now_ms();
            let outcome = call(&agent, url, &request);
            let again = matches!(request, Request::Order { .. })
                && matches!(outcome, Outcome::Lost { .. } | Outcome::Failed { status: 500..=599, .. });
            if let Outcome::Ordered { number } = outcome {
                acked.lock().unwrap().push(number);
            }
            history.record(client, phase, invoked, request.clone(), outcome);
            if !again || attempt == 19 {
                break;
            }
            thread::sleep(Duration::from_millis(200));
        }
        thread::sleep(Duration::from_millis(40));
    }
}

/// Judge the history so far against replica 1's log (after [`Store::wait_identical`]), save it,
/// read every acknowledged order back through the frontend, and check stock.
fn check_after(store: &Store, history: &History, phase: &str) -> history::Verdict {
    let log = store.log(1);
    // Read back every order acknowledged so far (recorded as reads of their own).
    let acked: BTreeMap<u64, ()> = history
        .ops()
        .iter()
        .filter_map(|op| match op.outcome {
            Outcome::Ordered { number } => Some((number, ())),
            _ => None,
        })
        .collect();
    for number in acked.keys() {
        let request = Request::Read { number: *number };
        let invoked = history.now_ms();
        let outcome = call(&store.agent, &store.frontend(), &request);
        assert!(matches!(outcome, Outcome::Found { .. }), "acknowledged order {number} does not read back after {phase}: {outcome:?}");
        history.record(99, &format!("{phase}-readback"), invoked, request, outcome);
    }
    let path = store.dir.path().join(format!("history-{phase}.json"));
    history.save(&path).expect("save the history");
    let verdict = history::check(&history.ops(), &log);
    assert!(
        verdict.violations.is_empty(),
        "history {} violates:\n{}\n{}",
        path.display(),
        verdict.violations.join("\n"),
        store.log_tails()
    );
    // The store's own fsck at a quiet point (the load of this phase is over): the replicas
    // agree, numbers are contiguous, keys unique, and per toy
    // `seeded + restocked - quantity == ordered` (the catalog trails the commit by one push,
    // so give it a moment to apply the last orders).
    let dirs = toystore_client::check::Dirs {
        catalog: store.dir.path().join("data/catalog"),
        replicas: (1..=3).map(|id| store.dir.path().join(format!("data/order-{id}"))).collect(),
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let report = loop {
        let report = toystore_client::check::check(&dirs, true);
        if report.ok || std::time::Instant::now() > deadline {
            break report;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(report.ok, "toystore check --strict after {phase}:\n{}\n{}", report.summary(), store.log_tails());
    let mut ordered: BTreeMap<&str, i64> = BTreeMap::new();
    for e in &log {
        *ordered.entry(e.name.as_str()).or_default() += e.quantity;
    }
    let taken_total: i64 = report.catalog.iter().flat_map(|c| &c.toys).map(|t| t.seeded + t.restocked - t.quantity).sum();
    let committed_total: i64 = ordered.values().sum();
    eprintln!(
        "{phase}: {} acknowledged, {} reads, {} without success so far; log {} entries; stock taken {taken_total} for {committed_total} ordered",
        verdict.acknowledged,
        verdict.reads,
        verdict.unsuccessful,
        log.len()
    );
    verdict
}

fn isolate(store: &Store, machine: &str) {
    store.lab.iptables(machine, &["-A", "INPUT", "-i", "eth0", "-j", "DROP"]);
    store.lab.iptables(machine, &["-A", "OUTPUT", "-o", "eth0", "-j", "DROP"]);
}

fn orders_in(history: &History, phase: &str) -> Vec<history::Op> {
    history.ops().into_iter().filter(|op| op.phase == phase && matches!(op.request, Request::Order { .. })).collect()
}

#[test]
fn partitions_delay_and_loss_between_machines_lose_no_acknowledged_order() {
    let Some(store) = start() else { return };
    let history = History::new();
    let acked = Arc::new(Mutex::new(Vec::new()));
    let test_started = Instant::now();

    // Each machine's admin supervises its own services only; `replica list` asks them all.
    let out = store
        .lab
        .command("client", host_binary().to_str().expect("utf-8"))
        .args(["replica", "list", "--manifest"])
        .arg(manifest_path(store.dir.path(), "front"))
        .output()
        .expect("toystore replica list");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "replica list: {}{table}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<&str> = table.lines().collect();
    assert!(rows[0].starts_with("HOST"), "{table}");
    for id in 1..=3 {
        assert!(rows.iter().any(|r| r.starts_with(&format!("r{id} ")) && r.contains("running")), "{table}");
    }
    let front_admin = store.get(&format!("http://{}/replicas", SocketAddr::from((store.lab.ip("front"), ADMIN_PORT)))).expect("front admin");
    assert_eq!(front_admin["data"], Value::Array(Vec::new()), "the front machine supervises no replica");

    // (a) Cut the leader's machine off while clients keep ordering.
    let old = store.leader().expect("a leader");
    let old_epoch = store.ping(old).and_then(|p| p["epoch"].as_u64()).expect("the leader's epoch");
    let load = Load::start(&store, "isolate-leader", &history, &acked);
    thread::sleep(Duration::from_secs(3));
    isolate(&store, &replica_machine(old));
    // The cut is in place only once both rules are: an order invoked while they were being
    // added (two `iptables` runs, tens of ms) may still have been committed by the old leader.
    let cut_at = history.now_ms();
    store.wait_for("the majority side to elect and serve", Duration::from_secs(60), || {
        store.leader().is_some_and(|l| l != old)
            && history.ops().iter().any(|op| op.invoke_ms > cut_at && matches!(op.outcome, Outcome::Ordered { .. }))
    });
    thread::sleep(Duration::from_secs(4));
    load.stop();
    let isolated_lines = store.log(old).len();
    let dropped = store.lab.dropped(&replica_machine(old));
    assert!(dropped > 0, "the isolation dropped no packet");
    store.lab.heal(&replica_machine(old));
    store.wait_for("the old leader to rejoin as a follower", Duration::from_secs(45), || {
        store.ping(old).is_some_and(|p| p["epoch"].as_u64().is_some_and(|e| e > old_epoch) && p["leader"].as_u64() != Some(old as u64))
    });
    store.wait_identical("after the leader's machine rejoined");
    check_after(&store, &history, "isolate-leader");
    // The isolated old leader acknowledged nothing: every order invoked after the cut and
    // acknowledged was written under a newer epoch.
    let epochs = store.order_epochs(1);
    for op in orders_in(&history, "isolate-leader") {
        if let (Outcome::Ordered { number }, true) = (&op.outcome, op.invoke_ms > cut_at) {
            let epoch = epochs[*number as usize];
            assert!(epoch > old_epoch, "order {number}, invoked after the cut, was acknowledged under the old epoch {epoch}");
        }
    }
    eprintln!("isolate-leader: old leader {old} (epoch {old_epoch}, {isolated_lines} entries while cut off), new leader {:?}", store.leader());

    // (b) 50 ms ± 20 ms each way and 5 % loss on one follower's link: no client sees an error.
    let leader = store.leader().expect("a leader");
    let slow = (1..=3).find(|id| *id != leader).expect("a follower");
    let machine = replica_machine(slow);
    let delayed_before = store.knobs[slow].delayed();
    store.knobs[slow].set(50, 20);
    for chain in ["INPUT", "OUTPUT"] {
        let dev = if chain == "INPUT" { "-i" } else { "-o" };
        store.lab.iptables(&machine, &["-A", chain, dev, "eth0", "-m", "statistic", "--mode", "random", "--probability", "0.05", "-j", "DROP"]);
    }
    let load = Load::start(&store, "slow-link", &history, &acked);
    thread::sleep(Duration::from_secs(15));
    load.stop();
    store.knobs[slow].set(0, 0);
    let delayed = store.knobs[slow].delayed() - delayed_before;
    let dropped = store.lab.dropped(&machine);
    store.lab.heal(&machine);
    let slow_orders = orders_in(&history, "slow-link");
    let failed: Vec<_> = slow_orders.iter().filter(|op| !matches!(op.outcome, Outcome::Ordered { .. })).collect();
    assert!(failed.is_empty(), "orders failed while replica {slow}'s link was slow and lossy: {failed:#?}");
    let mut latencies: Vec<u64> = slow_orders.iter().map(|op| op.complete_ms - op.invoke_ms).collect();
    latencies.sort_unstable();
    eprintln!(
        "slow-link: replica {slow} (leader {leader}): {} orders, latency p50 {} ms, max {} ms",
        latencies.len(),
        latencies.get(latencies.len() / 2).copied().unwrap_or(0),
        latencies.last().copied().unwrap_or(0)
    );
    assert!(latencies.len() >= 20, "too few orders went through: {}", latencies.len());
    // The delay was on the path (the proxy held back traffic to and from the slow follower),
    // yet an order waits for a majority — the leader and the other follower — and never for
    // the slow one, whose round trip is at least 2 x 30 ms.
    assert!(delayed > 0, "the proxy delayed nothing: the slow link was not on the path");
    let p50 = latencies[latencies.len() / 2];
    assert!(p50 < 60, "median order latency {p50} ms: orders waited for the slow follower");
    assert!(dropped > 0, "the 5 % loss rules dropped no packet");
    eprintln!("slow-link: {dropped} packets dropped and {delayed} chunks delayed on replica {slow}'s link");
    store.wait_identical("after the slow link");
    check_after(&store, &history, "slow-link");

    // (c) One way: the leader's calls to a follower are dropped; the follower still reaches
    // every other machine (its own calls, and the answers to them, pass).
    let leader = store.leader().expect("a leader");
    let cut = (1..=3).find(|id| *id != leader).expect("a follower");
    let leader_ip = store.lab.ip(&replica_machine(leader)).to_string();
    let port = (REPLICA_BASE + cut as u16).to_string();
    store.lab.iptables(&replica_machine(cut), &["-A", "INPUT", "-i", "eth0", "-s", &leader_ip, "-p", "tcp", "--dport", &port, "-j", "DROP"]);
    let load = Load::start(&store, "one-way", &history, &acked);
    let one_way_at = history.now_ms();
    thread::sleep(Duration::from_secs(10));
    load.stop();
    let ok_during = orders_in(&history, "one-way")
        .iter()
        .filter(|op| op.invoke_ms > one_way_at && matches!(op.outcome, Outcome::Ordered { .. }))
        .count();
    assert!(ok_during > 0, "no order went through while the leader could not reach replica {cut}");
    let dropped = store.lab.dropped(&replica_machine(cut));
    assert!(dropped > 0, "the one-way rule dropped no packet");
    store.lab.heal(&replica_machine(cut));
    store.wait_identical("after the one-way partition");
    let verdict = check_after(&store, &history, "one-way");
    eprintln!(
        "one-way: leader {leader} cannot call replica {cut} ({dropped} packets dropped): {ok_during} orders acknowledged meanwhile; whole run: {} acknowledged, {} reads in {:?}",
        verdict.acknowledged,
        verdict.reads,
        test_started.elapsed()
    );
}

/// A response body as JSON (`Null` when it is not).
fn json(response: ureq::Response) -> Value {
    response.into_string().ok().and_then(|text| serde_json::from_str(&text).ok()).unwrap_or(Value::Null)
}
