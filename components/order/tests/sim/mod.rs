//! An in-process toystore for the order protocol: three order replicas (real [`Service`]s on
//! real temporary data directories), a tiny catalog, and a fake network that routes `http://`
//! URLs to them. All of it runs on one thread under `block_on`; concurrency is async
//! interleaving at the await points, as in a guest.
//!
//! Crashes are real enough: [`Sim::kill`] drops the replica's service and makes every request it
//! is still handling vanish at its next await (its future is dropped, as when an instance dies),
//! so it writes nothing more; [`Sim::restart`] builds a fresh service on the same directory.
//! [`Sim::set_fault`] injects faults into single calls (drop the request, lose the reply, kill the
//! caller after the callee applied it, ...).

#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures::future::{select, Either};
use http::Method;
use serde_json::{json, Value};
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

#[derive(Default)]
pub struct Catalog {
    pub stock: HashMap<String, i64>,
    pub buys: usize,
    pub releases: usize,
    pub down: bool,
}

pub struct Sim {
    _root: tempfile::TempDir,
    nodes: RefCell<Vec<Node>>,
    pub catalog: RefCell<Catalog>,
    hook: RefCell<Option<Hook>>,
    me: Weak<Sim>,
    /// Calls made, by (to, first path segment).
    pub calls: RefCell<BTreeMap<(u32, String), usize>>,
}

pub const INITIAL_STOCK: i64 = 1_000_000;

pub fn url(id: u32) -> String {
    format!("http://order-{id}")
}

impl Sim {
    pub fn new() -> Rc<Sim> {
        let root = tempfile::tempdir().unwrap();
        let nodes = (1..=3)
            .map(|id| {
                let dir = root.path().join(format!("order-{id}"));
                std::fs::create_dir_all(&dir).unwrap();
                Node { dir, service: None, generation: 0, wakers: Vec::new() }
            })
            .collect();
        let catalog = Catalog { stock: TOYS.iter().map(|t| (t.to_string(), INITIAL_STOCK)).collect(), ..Catalog::default() };
        let sim = Rc::new_cyclic(|me| Sim {
            _root: root,
            nodes: RefCell::new(nodes),
            catalog: RefCell::new(catalog),
            hook: RefCell::new(None),
            me: me.clone(),
            calls: RefCell::new(BTreeMap::new()),
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
        futures::executor::block_on(self.request(id, method, path, body))
    }

    pub fn get(&self, id: u32, path: &str) -> Result<Reply, String> {
        self.call(id, Method::GET, path, None)
    }

    pub fn post(&self, id: u32, path: &str, body: Value) -> Result<Reply, String> {
        self.call(id, Method::POST, path, Some(body))
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
        let handling = Box::pin(async { service.handle(&req).await });
        let death = Death { sim: self, id, generation };
        let outcome = match select(handling, death).await {
            Either::Left((reply, _)) => Ok(NetResponse { status: reply.status, body: reply.body }),
            Either::Right(((), handling)) => {
                drop(handling); // the crash: whatever it was doing stops here
                Err(CallError::Unreachable { url: url(id), reason: "connection reset".into() })
            }
        };
        outcome
    }

    fn catalog_handle(&self, path: &str, body: Value) -> NetResponse {
        let mut c = self.catalog.borrow_mut();
        let reply = |status: u16, v: Value| NetResponse { status, body: v };
        if c.down {
            return reply(503, json!({"error": {"code": 503, "message": "catalog down"}}));
        }
        let name = body["name"].as_str().unwrap_or("").to_string();
        let qty = body["quantity"].as_i64().unwrap_or(0);
        let Some(&stock) = c.stock.get(&name) else {
            return reply(404, json!({"error": {"code": 404, "message": "product not found"}}));
        };
        match path {
            "/buy" if stock < qty => reply(400, json!({"error": {"code": 400, "message": "not enough stock"}})),
            "/buy" => {
                c.stock.insert(name.clone(), stock - qty);
                c.buys += 1;
                reply(200, json!({"data": {"name": name, "price": 1.0, "quantity": stock - qty}}))
            }
            "/release" => {
                c.stock.insert(name, stock + qty);
                c.releases += 1;
                reply(200, json!({"data": {}}))
            }
            _ => reply(404, json!({"error": {"code": 404, "message": "no route"}})),
        }
    }

    /// Total quantity taken from the catalog.
    pub fn taken(&self) -> i64 {
        self.catalog.borrow().stock.values().map(|s| INITIAL_STOCK - s).sum()
    }

    // --- what the frontend does -------------------------------------------------------

    /// Leader selection as the frontend does it: ping from the highest id down, the first
    /// healthy replica gets `/leaderselection`, then everyone is informed.
    pub fn elect(&self) -> Option<u32> {
        for id in (1..=3).rev() {
            let healthy = self.get(id, "/ping").map(|r| r.status == 200).unwrap_or(false);
            if !healthy {
                continue;
            }
            let Ok(r) = self.post(id, "/leaderselection", json!({})) else { continue };
            if r.status != 200 {
                continue;
            }
            let epoch = r.body["data"]["epoch"].as_u64().unwrap();
            for other in 1..=3 {
                let _ = self.post(other, "/inform_replica", json!({"leader": id, "epoch": epoch}));
            }
            return Some(id);
        }
        None
    }

    /// The replica that is a ready leader, if any.
    pub fn leader(&self) -> Option<u32> {
        (1..=3).rev().find(|&id| {
            self.get(id, "/health").map(|r| r.body["data"]["role"] == "leader").unwrap_or(false)
        })
    }

    /// Place an order the way the frontend does: to the leader, re-electing and retrying with
    /// the same key on 409, 503 or a dead leader.
    pub fn place(&self, key: &str, name: &str, qty: i64) -> Result<u64, String> {
        let body = json!({"name": name, "quantity": qty, "key": key});
        let mut last = String::new();
        for _ in 0..6 {
            let leader = match self.leader().or_else(|| self.elect()) {
                Some(l) => l,
                None => return Err(format!("no leader ({last})")),
            };
            match self.post(leader, "/orders", body.clone()) {
                Ok(r) if r.status == 200 => return Ok(r.body["data"]["order_number"].as_u64().unwrap()),
                Ok(r) if r.status == 400 || r.status == 404 => return Err(format!("{} {}", r.status, r.body)),
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

    /// Entry `n` as replica `id`'s own `orders.csv` holds it (toy, quantity).
    pub fn local(&self, id: u32, n: u64) -> Option<(String, i64)> {
        let path = self.dir(id).join(toystore_order::log::FILE);
        let parsed = toystore_order::log::parse(&path, &self.orders_file(id)).ok()?;
        parsed.entries.get(n as usize).map(|e| (e.name.clone(), e.quantity))
    }
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
