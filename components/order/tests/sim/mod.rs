//! An in-process toystore for the order protocol: three order replicas (real [`Service`]s on
//! real temporary data directories), a tiny catalog, and a fake network that routes `http://`
//! URLs to them. All of it runs on one thread under `block_on`; concurrency is async
//! interleaving at the await points, as in a guest.
//!
//! Crashes are real enough: [`Sim::kill`] drops the replica's service and makes every request it
//! is still handling vanish at its next await (its future is dropped, as when an instance dies),
//! so it writes nothing more; [`Sim::restart`] builds a fresh service on the same directory.
//! [`Sim::set_fault`] injects faults into single calls (drop the request, lose the reply, kill the
//! caller after the callee applied it, ...), catalog calls included; [`Sim::crash_in_file_op`]
//! makes a replica die inside a file operation (a torn append, between write and fsync, before
//! a rename), through `toystore_guest::durable::crash`.
//!
//! The catalog implements the issue-9 contract exactly: `GET /stock` (quantities and
//! `applied_orders` as one pair), `POST /apply` (gap → 409 with `applied_orders`, already
//! applied orders skipped, unknown toy → 422 and nothing applied), restocks that count in
//! `restocked`; `/buy` and `/release` do not exist. [`Sim::assert_conserved`] is the check.

#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures::future::{select, Either, LocalBoxFuture};
use futures::FutureExt;
use http::Method;
use serde_json::{json, Value};
use toystore_guest::durable::crash;
use toystore_guest::{CallError, Net, NetResponse, Reply, Request};
use toystore_guest::lock::DirAccess;
use toystore_order::{Config, Service};

pub const TOYS: [&str; 4] = ["Tux", "Lego", "Fox", "Barbie"];

/// What to do with one call (decided by the fault hook).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Deliver normally.
    None,
    /// Never deliver; the caller sees a timeout.
    DropRequest,
    /// Deliver (the callee applies it), but the caller sees a timeout.
    LoseReply,
    /// Never deliver, and the caller dies on the spot.
    KillCallerBefore,
    /// Deliver, then the caller dies before it sees the reply.
    KillCallerAfter,
    /// Never answer, like a paused process: the call stays pending until the callee is killed
    /// (then the caller sees the connection reset).
    Hang,
}

/// One call as the fault hook sees it.
#[derive(Debug, Clone)]
pub struct Call {
    /// Replica id of the caller (0 for the test driver).
    pub from: u32,
    /// Replica id of the callee (0 for the catalog).
    pub to: u32,
    pub path: String,
    pub body: Value,
}

type Hook = Box<dyn FnMut(&Call) -> Fault>;

struct Node {
    dir: PathBuf,
    service: Option<Rc<Service<SimNet>>>,
    generation: u64,
    wakers: Vec<Waker>,
}

/// One toy in the tiny catalog: its row of `catalog.csv`.
#[derive(Debug, Clone)]
pub struct CatalogToy {
    pub price: String,
    pub quantity: i64,
    pub seeded: i64,
    pub restocked: i64,
}

#[derive(Default)]
pub struct Catalog {
    pub toys: BTreeMap<String, CatalogToy>,
    /// Orders `0..applied_orders` are reflected in the quantities.
    pub applied_orders: u64,
    /// Every order applied, by number (to check each is applied once and as logged).
    pub applied: Vec<(String, i64)>,
    /// `/apply` calls answered 200, and calls refused with a gap.
    pub applies: usize,
    pub gaps: usize,
    /// The lowest quantity any toy ever had (an oversell makes it negative).
    pub lowest: i64,
    pub down: bool,
}

impl Catalog {
    fn stock_body(&self) -> Value {
        let toys: Vec<Value> = self
            .toys
            .iter()
            .map(|(name, t)| {
                json!({"name": name, "price": t.price.parse::<f64>().unwrap(), "price_text": t.price, "quantity": t.quantity})
            })
            .collect();
        json!({"data": {"applied_orders": self.applied_orders, "toys": toys}})
    }
}

pub struct Sim {
    _root: tempfile::TempDir,
    nodes: RefCell<Vec<Node>>,
    pub catalog: RefCell<Catalog>,
    hook: RefCell<Option<Hook>>,
    me: Weak<Sim>,
    /// Calls made, by (to, first path segment).
    pub calls: RefCell<BTreeMap<(u32, String), usize>>,
    /// Work requests left for after their reply (the guest's `after_reply`), each with the
    /// replica and generation that runs it: driven by [`Sim::run`] alongside the test's own
    /// futures, dropped when that replica dies.
    background: RefCell<Vec<(u32, u64, LocalBoxFuture<'static, ()>)>>,
}

pub const INITIAL_STOCK: i64 = 1_000_000;
pub const PRICES: [&str; 4] = ["25.99", "9.50", "19.99", "34.50"];

pub fn url(id: u32) -> String {
    format!("http://order-{id}")
}

impl Sim {
    pub fn new() -> Rc<Sim> {
        Sim::with_stock(INITIAL_STOCK)
    }

    /// A store whose catalog starts with `stock` of each toy.
    pub fn with_stock(stock: i64) -> Rc<Sim> {
        quiet_injected_crashes();
        crash::disarm();
        let root = tempfile::tempdir().unwrap();
        let nodes = (1..=3)
            .map(|id| {
                let dir = root.path().join(format!("order-{id}"));
                std::fs::create_dir_all(&dir).unwrap();
                Node { dir, service: None, generation: 0, wakers: Vec::new() }
            })
            .collect();
        let toys = TOYS
            .iter()
            .zip(PRICES)
            .map(|(t, p)| (t.to_string(), CatalogToy { price: p.into(), quantity: stock, seeded: stock, restocked: 0 }))
            .collect();
        let catalog = Catalog { toys, lowest: stock, ..Catalog::default() };
        let sim = Rc::new_cyclic(|me| Sim {
            _root: root,
            nodes: RefCell::new(nodes),
            catalog: RefCell::new(catalog),
            hook: RefCell::new(None),
            me: me.clone(),
            calls: RefCell::new(BTreeMap::new()),
            background: RefCell::new(Vec::new()),
        });
        for id in 1..=3 {
            sim.restart(id);
        }
        sim
    }

    fn config(&self, id: u32) -> Config {
        Config {
            id,
            replicas: (1..=3).map(|i| (i, url(i))).collect(),
            catalog_url: "http://catalog".into(),
            data_dir: self.dir(id),
            timeout: Duration::from_millis(50),
            debug_routes: false,
            // One instance per directory at a time (a crash drops it), as under the toystore host.
            dir_access: DirAccess::Exclusive,
        }
    }

    pub fn dir(&self, id: u32) -> PathBuf {
        self.nodes.borrow()[id as usize - 1].dir.clone()
    }

    pub fn orders_file(&self, id: u32) -> Vec<u8> {
        std::fs::read(self.dir(id).join("orders.csv")).unwrap_or_default()
    }

    pub fn is_up(&self, id: u32) -> bool {
        self.nodes.borrow()[id as usize - 1].service.is_some()
    }

    /// Crash replica `id`: everything it is doing stops at its next await.
    pub fn kill(&self, id: u32) {
        let wakers = {
            let mut nodes = self.nodes.borrow_mut();
            let n = &mut nodes[id as usize - 1];
            n.service = None;
            n.generation += 1;
            std::mem::take(&mut n.wakers)
        };
        for w in wakers {
            w.wake();
        }
    }

    /// Start (or restart) replica `id` from its files, with empty memory.
    pub fn restart(&self, id: u32) {
        self.kill(id);
        let net = SimNet { sim: self.me.clone(), from: id };
        let service = Rc::new(Service::new(self.config(id), net));
        self.nodes.borrow_mut()[id as usize - 1].service = Some(service);
    }

    pub fn set_fault(&self, hook: impl FnMut(&Call) -> Fault + 'static) {
        *self.hook.borrow_mut() = Some(Box::new(hook));
    }

    pub fn clear_fault(&self) {
        *self.hook.borrow_mut() = None;
    }

    pub fn count(&self, to: u32, route: &str) -> usize {
        self.calls.borrow().get(&(to, route.to_string())).copied().unwrap_or(0)
    }

    /// A request from the test driver to replica `id`: Err if it is down or dies meanwhile.
    pub async fn request(&self, id: u32, method: Method, path: &str, body: Option<Value>) -> Result<Reply, String> {
        let r = self.deliver(0, id, method, path, body).await.map_err(|e| e.to_string())?;
        Ok(Reply::raw(r.status, r.body))
    }

    pub fn call(&self, id: u32, method: Method, path: &str, body: Option<Value>) -> Result<Reply, String> {
        self.run(self.request(id, method, path, body))
    }

    pub fn get(&self, id: u32, path: &str) -> Result<Reply, String> {
        self.call(id, Method::GET, path, None)
    }

    pub fn post(&self, id: u32, path: &str, body: Value) -> Result<Reply, String> {
        self.call(id, Method::POST, path, Some(body))
    }

    /// Run `fut` to completion on this thread, driving the replicas' after-reply work meanwhile
    /// (what is still pending when `fut` is done waits for the next `run`).
    pub fn run<T>(&self, fut: impl Future<Output = T>) -> T {
        futures::executor::block_on(async {
            let fut = std::pin::pin!(fut);
            let background = std::pin::pin!(futures::future::poll_fn(|cx| self.poll_background(cx)));
            match select(fut, background).await {
                Either::Left((t, _)) => t,
                Either::Right(((), _)) => unreachable!("the background never finishes"),
            }
        })
    }

    /// Drive the after-reply work (replicators still catching a follower up) until there is
    /// none left, or it cannot move.
    pub fn settle(&self) {
        for _ in 0..1_000 {
            if self.background.borrow().is_empty() {
                return;
            }
            self.run(toystore_guest::time::yield_now());
        }
    }

    /// Like [`Sim::run`], for a future that runs on an executor of its own (the test's pool):
    /// drives the after-reply work while `fut` runs.
    pub async fn run_here<T>(&self, fut: impl Future<Output = T>) -> T {
        let fut = std::pin::pin!(fut);
        let background = std::pin::pin!(futures::future::poll_fn(|cx| self.poll_background(cx)));
        match select(fut, background).await {
            Either::Left((t, _)) => t,
            Either::Right(((), _)) => unreachable!("the background never finishes"),
        }
    }

    /// Poll every live replica's after-reply work once; never ready.
    fn poll_background(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut tasks = std::mem::take(&mut *self.background.borrow_mut());
        tasks.retain_mut(|(id, generation, task)| {
            let alive = {
                let mut nodes = self.nodes.borrow_mut();
                let n = &mut nodes[*id as usize - 1];
                // A kill must wake us, to drop its work.
                n.wakers.push(cx.waker().clone());
                n.generation == *generation
            };
            alive && task.as_mut().poll(cx).is_pending()
        });
        // Work added while we polled (by the requests these tasks made) goes after ours.
        let mut added = std::mem::take(&mut *self.background.borrow_mut());
        tasks.append(&mut added);
        *self.background.borrow_mut() = tasks;
        Poll::Pending
    }

    /// Route one call, applying the fault hook.
    async fn deliver(&self, from: u32, to: u32, method: Method, path: &str, body: Option<Value>) -> Result<NetResponse, CallError> {
        let route = path.split('/').nth(1).unwrap_or("").to_string();
        *self.calls.borrow_mut().entry((to, route)).or_default() += 1;
        let fault = {
            let call = Call { from, to, path: path.to_string(), body: body.clone().unwrap_or(Value::Null) };
            match self.hook.borrow_mut().as_mut() {
                Some(h) => h(&call),
                None => Fault::None,
            }
        };
        let timeout = CallError::Timeout(Duration::from_millis(50));
        match fault {
            Fault::DropRequest => return Err(timeout),
            Fault::KillCallerBefore => return self.die(from).await,
            Fault::Hang if to != 0 => {
                let generation = self.nodes.borrow()[to as usize - 1].generation;
                Death { sim: self, id: to, generation }.await;
                return Err(CallError::Unreachable { url: url(to), reason: "connection reset".into() });
            }
            _ => {}
        }
        let response = if to == 0 {
            Ok(self.catalog_handle(path, body.unwrap_or(Value::Null)))
        } else {
            self.to_replica(to, method, path, body).await
        };
        match fault {
            Fault::LoseReply => Err(timeout),
            Fault::KillCallerAfter => self.die(from).await,
            _ => response,
        }
    }

    /// The calling replica crashes: this call never returns; its request futures are dropped.
    async fn die(&self, id: u32) -> Result<NetResponse, CallError> {
        if id != 0 {
            self.kill(id);
        }
        futures::future::pending().await
    }

    async fn to_replica(&self, id: u32, method: Method, path: &str, body: Option<Value>) -> Result<NetResponse, CallError> {
        let (service, generation) = {
            let nodes = self.nodes.borrow();
            let n = &nodes[id as usize - 1];
            (n.service.clone(), n.generation)
        };
        let Some(service) = service else {
            return Err(CallError::Refused { url: url(id) });
        };
        let bytes = body.map(|b| b.to_string()).unwrap_or_default();
        let req = Request::new(method, path, bytes);
        let handling = Box::pin(std::panic::AssertUnwindSafe(async { service.handle(&req).await }).catch_unwind());
        let death = Death { sim: self, id, generation };
        let reset = || CallError::Unreachable { url: url(id), reason: "connection reset".into() };
        // Death first: a replica that died (even while another of its requests was being
        // polled) runs nothing more, like a killed process.
        let outcome = match select(death, handling).await {
            Either::Right((Ok(reply), _)) => {
                // Like the guest's export: the work the request left runs after its reply.
                if let Some(after) = Service::after_reply(Rc::clone(&service)) {
                    self.background.borrow_mut().push((id, generation, after));
                }
                Ok(NetResponse { status: reply.status, body: reply.body })
            }
            Either::Right((Err(panic), _)) => {
                if !panic.is::<crash::InjectedCrash>() {
                    std::panic::resume_unwind(panic);
                }
                // Died inside a file operation: as dead as a kill.
                self.kill(id);
                Err(reset())
            }
            Either::Left(((), handling)) => {
                drop(handling); // the crash: whatever it was doing stops here
                Err(reset())
            }
        };
        outcome
    }

    fn catalog_handle(&self, path: &str, body: Value) -> NetResponse {
        let mut c = self.catalog.borrow_mut();
        let reply = |status: u16, v: Value| NetResponse { status, body: v };
        let error = |status: u16, message: &str| reply(status, json!({"error": {"code": status, "message": message}}));
        if c.down {
            return error(503, "catalog down");
        }
        match path {
            "/stock" => reply(200, c.stock_body()),
            "/apply" => {
                let from = body["from"].as_u64().unwrap_or(u64::MAX);
                let orders = body["orders"].as_array().cloned().unwrap_or_default();
                let a = c.applied_orders;
                if from > a {
                    c.gaps += 1;
                    let message = format!("gap: orders from {from} sent, {a} applied");
                    return reply(409, json!({"error": {"code": 409, "message": message, "applied_orders": a}}));
                }
                let mut parsed = Vec::new();
                for (i, o) in orders.iter().enumerate() {
                    let (Some(n), Some(name), Some(q)) = (o["number"].as_u64(), o["name"].as_str(), o["quantity"].as_i64()) else {
                        return error(400, "bad order");
                    };
                    if n != from + i as u64 {
                        return error(400, "orders must be numbered contiguously from `from`");
                    }
                    if !c.toys.contains_key(name) {
                        return error(422, "unknown toy");
                    }
                    parsed.push((n, name.to_string(), q));
                }
                for (n, name, q) in parsed {
                    if n < c.applied_orders {
                        continue; // already applied: idempotent
                    }
                    let t = c.toys.get_mut(&name).unwrap();
                    t.quantity -= q;
                    let now = t.quantity;
                    c.lowest = c.lowest.min(now);
                    c.applied.push((name, q));
                    c.applied_orders = n + 1;
                }
                c.applies += 1;
                reply(200, c.stock_body())
            }
            _ => error(404, "no route"),
        }
    }

    /// A restock of `delta` units of `toy` (one atomic write: quantity and `restocked`).
    pub fn restock(&self, toy: &str, delta: i64) {
        let mut c = self.catalog.borrow_mut();
        let t = c.toys.get_mut(toy).unwrap();
        t.quantity += delta;
        t.restocked += delta;
    }

    /// Total quantity taken from the catalog (applied orders).
    pub fn taken(&self) -> i64 {
        self.catalog.borrow().toys.values().map(|t| t.seeded + t.restocked - t.quantity).sum()
    }

    /// Make the next durable operation of replica `id` on `file` crash at `point`.
    pub fn crash_in_file_op(&self, id: u32, file: &str, point: crash::Point) {
        crash::arm(&format!("order-{id}/{file}"), point);
    }

    /// The orders of replica `id`'s `orders.csv`, in number order: (toy, quantity, key).
    pub fn orders(&self, id: u32) -> Vec<(String, i64, String)> {
        let path = self.dir(id).join(toystore_order::log::FILE);
        let parsed = toystore_order::log::parse(&path, &self.orders_file(id)).unwrap();
        parsed.orders().map(|o| (o.name.clone(), o.quantity, o.key.clone())).collect()
    }

    /// Bring the store to a quiet point: every replica up and caught up, a leader elected, and
    /// the leader's pushes to the catalog drained (`applied_orders` = the orders in its log,
    /// all committed by its election).
    pub fn quiesce(&self) {
        crash::disarm();
        self.clear_fault();
        self.catalog.borrow_mut().down = false;
        for id in 1..=3 {
            if !self.is_up(id) {
                self.restart(id);
            }
        }
        for _ in 0..3 {
            self.tick_all();
        }
        let leader = self.leader().or_else(|| self.elect()).expect("a leader at a quiet point");
        for _ in 0..10 {
            let _ = self.post(leader, "/tick", json!({}));
            if self.catalog.borrow().applied_orders == self.orders(leader).len() as u64 {
                break;
            }
        }
    }

    /// At a quiet point, for each toy: `seeded + restocked − quantity == Σ quantity of the
    /// committed orders` (taken == logged, equality), each order applied once, exactly as
    /// logged; and no quantity ever went below zero.
    pub fn assert_conserved(&self, context: &str) {
        self.quiesce();
        let leader = self.leader().expect("a leader");
        let orders = self.orders(leader);
        let c = self.catalog.borrow();
        assert_eq!(c.applied_orders, orders.len() as u64, "{context}: the pushes drained");
        let applied: Vec<(String, i64)> = orders.iter().map(|(t, q, _)| (t.clone(), *q)).collect();
        assert_eq!(c.applied, applied, "{context}: the catalog applied each committed order once, as logged");
        for (name, t) in &c.toys {
            let logged: i64 = orders.iter().filter(|(toy, _, _)| toy == name).map(|(_, q, _)| q).sum();
            assert_eq!(t.seeded + t.restocked - t.quantity, logged, "{context}: {name}: taken == logged");
        }
        assert!(c.lowest >= 0, "{context}: a quantity went to {} (oversold)", c.lowest);
    }

    // --- what the frontend does -------------------------------------------------------

    /// Leader selection as the frontend does it: ping from the highest id down, the first
    /// healthy replica gets `/leaderselection`, then everyone is informed.
    pub fn elect(&self) -> Option<u32> {
        self.run(self.elect_from(&[3, 2, 1]))
    }

    /// Leader selection by a frontend that tries replicas in `order`.
    pub async fn elect_from(&self, order: &[u32]) -> Option<u32> {
        for &id in order {
            let healthy = self.request(id, Method::GET, "/ping", None).await.map(|r| r.status == 200).unwrap_or(false);
            if !healthy {
                continue;
            }
            let Ok(r) = self.request(id, Method::POST, "/leaderselection", Some(json!({}))).await else { continue };
            if r.status != 200 {
                continue;
            }
            let epoch = r.body["data"]["epoch"].as_u64().unwrap();
            for other in 1..=3 {
                let _ = self.request(other, Method::POST, "/inform_replica", Some(json!({"leader": id, "epoch": epoch}))).await;
            }
            return Some(id);
        }
        None
    }

    /// The replica that is a ready leader, if any.
    pub fn leader(&self) -> Option<u32> {
        self.run(self.leader_among(&[3, 2, 1]))
    }

    /// The first replica in `order` that says it is a ready leader.
    pub async fn leader_among(&self, order: &[u32]) -> Option<u32> {
        for &id in order {
            let r = self.request(id, Method::GET, "/health", None).await;
            if r.is_ok_and(|r| r.body["data"]["role"] == "leader") {
                return Some(id);
            }
        }
        None
    }

    /// Place an order the way the frontend does: to the leader, re-electing and retrying with
    /// the same key on 409, 503 or a dead leader.
    pub fn place(&self, key: &str, name: &str, qty: i64) -> Result<u64, String> {
        self.run(self.place_via(&[3, 2, 1], key, name, qty))
    }

    /// [`Sim::place`] by a frontend that looks for (and elects) leaders in `order`.
    pub async fn place_via(&self, order: &[u32], key: &str, name: &str, qty: i64) -> Result<u64, String> {
        let body = json!({"name": name, "quantity": qty, "key": key});
        let mut last = String::new();
        for _ in 0..6 {
            let leader = match self.leader_among(order).await {
                Some(l) => Some(l),
                None => self.elect_from(order).await,
            };
            let Some(leader) = leader else { return Err(format!("no leader ({last})")) };
            match self.request(leader, Method::POST, "/orders", Some(body.clone())).await {
                Ok(r) if r.status == 200 => return Ok(r.body["data"]["order_number"].as_u64().unwrap()),
                Ok(r) if r.status == 400 || r.status == 404 || r.status == 422 => return Err(format!("{} {}", r.status, r.body)),
                Ok(r) => last = format!("{} {}", r.status, r.body),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Tick every live replica (start-up resync, followers catching up).
    pub fn tick_all(&self) {
        for id in 1..=3 {
            let _ = self.post(id, "/tick", json!({}));
        }
    }

    pub fn last(&self, id: u32) -> Option<i64> {
        self.get(id, "/get_last_order_number").ok()?.body["data"]["last"].as_i64()
    }

    /// `GET /orders/<n>` at replica `id`: the toy and quantity if it answered 200.
    pub fn read(&self, id: u32, n: u64) -> Option<(String, i64)> {
        let r = self.get(id, &format!("/orders/{n}")).ok()?;
        (r.status == 200).then(|| (r.body["data"]["name"].as_str().unwrap().to_string(), r.body["data"]["quantity"].as_i64().unwrap()))
    }

    /// `GET /orders/<n>` the way the frontend does it: at the leader, re-electing on 409, 503
    /// or a dead leader. The last answer (or why there was none).
    pub fn read_via_leader(&self, n: u64) -> Result<Reply, String> {
        let mut last = String::new();
        for _ in 0..6 {
            let Some(leader) = self.leader().or_else(|| self.elect()) else { return Err(format!("no leader ({last})")) };
            match self.get(leader, &format!("/orders/{n}")) {
                Ok(r) if r.status < 500 && r.status != 409 => return Ok(r),
                Ok(r) => last = format!("{} {}", r.status, r.body),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Order `n` as replica `id`'s own `orders.csv` holds it (toy, quantity).
    pub fn local(&self, id: u32, n: u64) -> Option<(String, i64)> {
        let path = self.dir(id).join(toystore_order::log::FILE);
        let parsed = toystore_order::log::parse(&path, &self.orders_file(id)).ok()?;
        let found = parsed.orders().nth(n as usize).map(|o| (o.name.clone(), o.quantity));
        found
    }
}

/// Injected crashes unwind; keep the default panic message for every other panic only.
fn quiet_injected_crashes() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info.payload().is::<crash::InjectedCrash>() {
                default(info);
            }
        }));
    });
}

/// Resolves when replica `id` has died since `generation`.
struct Death<'a> {
    sim: &'a Sim,
    id: u32,
    generation: u64,
}

impl Future for Death<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut nodes = self.sim.nodes.borrow_mut();
        let n = &mut nodes[self.id as usize - 1];
        if n.generation != self.generation {
            Poll::Ready(())
        } else {
            n.wakers.push(cx.waker().clone());
            Poll::Pending
        }
    }
}

/// The network a simulated replica sees.
pub struct SimNet {
    sim: Weak<Sim>,
    from: u32,
}

impl Net for SimNet {
    async fn call(&self, method: Method, url: &str, body: Option<Value>, _timeout: Duration) -> Result<NetResponse, CallError> {
        let sim = self.sim.upgrade().ok_or_else(|| CallError::Unreachable { url: url.into(), reason: "no sim".into() })?;
        let rest = url.strip_prefix("http://").unwrap_or(url);
        let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let to = match host {
            "catalog" => 0,
            h => match h.strip_prefix("order-").and_then(|i| i.parse().ok()) {
                Some(id) => id,
                None => return Err(CallError::Refused { url: url.into() }),
            },
        };
        sim.deliver(self.from, to, method, path, body).await
    }
}
