//! An in-process stand-in for everything the frontend calls (tests only): a catalog at
//! `http://catalog` and order replicas at `http://order-<id>`, reached through [`Net`].
//!
//! The replicas share one idealised order log (replication itself is the order service's
//! business and tested there); what matters here is who answers, who refuses and who is down.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use http::Method;
use serde_json::{json, Value};
use toystore_guest::{CallError, Net, NetResponse, Request};

#[derive(Debug, Clone)]
struct Replica {
    up: bool,
    ping_status: u16,
    /// Pings get no answer in time (a busy or paused replica), everything else is answered.
    ping_hangs: bool,
    refuses_selection: bool,
    /// Who this replica believes leads.
    leader: Option<u32>,
    informed: Vec<Value>,
    crash_after_commit: bool,
    /// Answer every order call (place or query) with this status instead.
    order_status: Option<u16>,
}

#[derive(Default)]
struct State {
    replicas: BTreeMap<u32, Replica>,
    /// (key, name, quantity), numbered by position.
    orders: Vec<(String, String, u64)>,
    selections: u32,
    epoch: u64,
    catalog: BTreeMap<String, Value>,
    catalog_up: bool,
    catalog_calls: u32,
    /// Runs inside a catalog lookup, after the value was read and before it is returned.
    catalog_hook: Option<Rc<dyn Fn()>>,
}

/// The fake world; clones share it.
#[derive(Clone)]
pub struct World(Rc<RefCell<State>>);

fn reply(status: u16, body: Value) -> Result<NetResponse, CallError> {
    Ok(NetResponse { status, body })
}

fn error(status: u16, message: &str) -> Result<NetResponse, CallError> {
    reply(status, json!({"error": {"code": status, "message": message}}))
}

impl World {
    /// Replicas 1..=n, all up and healthy, and the seed's first three toys.
    pub fn new(n: u32) -> Self {
        let mut s = State { catalog_up: true, ..State::default() };
        for id in 1..=n {
            s.replicas.insert(
                id,
                Replica {
                    up: true,
                    ping_status: 200,
                    ping_hangs: false,
                    refuses_selection: false,
                    leader: None,
                    informed: vec![],
                    crash_after_commit: false,
                    order_status: None,
                },
            );
        }
        for (name, price) in [("Tux", 25.99), ("Fox", 19.99), ("Whale", 34.5)] {
            s.catalog.insert(name.into(), json!({"name": name, "price": price, "quantity": 100}));
        }
        Self(Rc::new(RefCell::new(s)))
    }

    pub fn replica_list(&self) -> toystore_guest::settings::OrderReplicas {
        let s = self.0.borrow();
        toystore_guest::settings::OrderReplicas(s.replicas.keys().map(|id| (*id, format!("http://order-{id}"))).collect())
    }

    fn with_replica(&self, id: u32, f: impl FnOnce(&mut Replica)) {
        if let Some(r) = self.0.borrow_mut().replicas.get_mut(&id) {
            f(r);
        }
    }

    pub fn set_up(&self, id: u32, up: bool) {
        self.with_replica(id, |r| r.up = up);
    }
    pub fn set_ping_status(&self, id: u32, status: u16) {
        self.with_replica(id, |r| r.ping_status = status);
    }
    pub fn set_ping_hangs(&self, id: u32, hangs: bool) {
        self.with_replica(id, |r| r.ping_hangs = hangs);
    }
    pub fn set_refuses_selection(&self, id: u32, refuses: bool) {
        self.with_replica(id, |r| r.refuses_selection = refuses);
    }
    pub fn crash_after_commit(&self, id: u32) {
        self.with_replica(id, |r| r.crash_after_commit = true);
    }
    pub fn set_order_status(&self, id: u32, status: Option<u16>) {
        self.with_replica(id, |r| r.order_status = status);
    }
    /// The replica forgets that it leads (as after a restart).
    pub fn demote(&self, id: u32) {
        self.with_replica(id, |r| r.leader = None);
    }
    pub fn informed(&self, id: u32) -> Vec<Value> {
        self.0.borrow().replicas.get(&id).map(|r| r.informed.clone()).unwrap_or_default()
    }
    pub fn selections(&self) -> u32 {
        self.0.borrow().selections
    }
    pub fn order_count(&self) -> usize {
        self.0.borrow().orders.len()
    }
    pub fn catalog_calls(&self) -> u32 {
        self.0.borrow().catalog_calls
    }
    pub fn set_catalog_up(&self, up: bool) {
        self.0.borrow_mut().catalog_up = up;
    }
    pub fn set_quantity(&self, name: &str, quantity: u64) {
        if let Some(p) = self.0.borrow_mut().catalog.get_mut(name) {
            p["quantity"] = json!(quantity);
        }
    }
    pub fn set_catalog_hook(&self, hook: Option<Rc<dyn Fn()>>) {
        self.0.borrow_mut().catalog_hook = hook;
    }

    fn catalog(&self, method: &Method, segments: &[String]) -> Result<NetResponse, CallError> {
        let found = {
            let mut s = self.0.borrow_mut();
            if !s.catalog_up {
                return Err(CallError::Refused { url: "http://catalog".into() });
            }
            s.catalog_calls += 1;
            match (method, segments) {
                (&Method::GET, [p, name]) if p == "products" => s.catalog.get(name).cloned(),
                _ => return error(404, "no route"),
            }
        };
        // Not borrowed here: the hook may call back into the frontend and this world.
        let hook = self.0.borrow().catalog_hook.clone();
        if let Some(hook) = hook {
            hook();
        }
        match found {
            Some(p) => reply(200, json!({ "data": p })),
            None => error(404, "product not found"),
        }
    }

    fn replica(&self, id: u32, method: &Method, segments: &[String], body: Option<Value>) -> Result<NetResponse, CallError> {
        let mut guard = self.0.borrow_mut();
        let s = &mut *guard;
        let Some(r) = s.replicas.get(&id).cloned() else {
            return Err(CallError::Unreachable { url: format!("http://order-{id}"), reason: "no such host".into() });
        };
        if !r.up {
            return Err(CallError::Refused { url: format!("http://order-{id}") });
        }
        let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
        match (method.clone(), segs.as_slice()) {
            (Method::GET, ["ping"]) if r.ping_hangs => Err(CallError::Timeout(Duration::from_millis(50))),
            (Method::GET, ["ping"]) => reply(
                r.ping_status,
                json!({"data": {"id": id, "leader": r.leader, "epoch": s.epoch, "last": s.orders.len() as i64 - 1, "synced": r.ping_status == 200}}),
            ),
            (Method::POST, ["leaderselection"]) => {
                if r.refuses_selection {
                    return error(503, "no majority");
                }
                s.epoch += 1;
                s.selections += 1;
                if let Some(me) = s.replicas.get_mut(&id) {
                    me.leader = Some(id);
                }
                reply(200, json!({"data": {"leader": id, "epoch": s.epoch}}))
            }
            (Method::POST, ["inform_replica"]) => {
                let body = body.unwrap_or(Value::Null);
                if let Some(me) = s.replicas.get_mut(&id) {
                    me.leader = body["leader"].as_u64().map(|l| l as u32);
                    me.informed.push(body);
                }
                reply(200, json!({"data": {}}))
            }
            (Method::POST, ["orders"]) => {
                if let Some(status) = r.order_status {
                    return error(status, "forced failure");
                }
                if r.leader != Some(id) {
                    return reply(409, json!({"error": {"code": 409, "message": "not the leader"}, "leader": r.leader}));
                }
                let body = body.unwrap_or(Value::Null);
                let (Some(key), Some(name), Some(q)) = (body["key"].as_str(), body["name"].as_str(), body["quantity"].as_u64()) else {
                    return error(400, "bad order");
                };
                if let Some(n) = s.orders.iter().position(|o| o.0 == key) {
                    if (s.orders[n].1.as_str(), s.orders[n].2) != (name, q) {
                        return error(422, "idempotency key was used for a different order");
                    }
                    return reply(200, json!({"data": {"order_number": n}}));
                }
                if !s.catalog.contains_key(name) {
                    return error(404, "product not found");
                }
                s.orders.push((key.to_string(), name.to_string(), q));
                if r.crash_after_commit {
                    if let Some(me) = s.replicas.get_mut(&id) {
                        me.up = false;
                        me.crash_after_commit = false;
                    }
                    return Err(CallError::Timeout(Duration::from_millis(1)));
                }
                reply(200, json!({"data": {"order_number": s.orders.len() - 1}}))
            }
            (Method::GET, ["orders", n]) => {
                if let Some(status) = r.order_status {
                    return error(status, "forced failure");
                }
                if r.leader != Some(id) {
                    return error(409, "not the leader");
                }
                match n.parse::<usize>().ok().and_then(|n| s.orders.get(n).map(|o| (n, o))) {
                    Some((n, o)) => reply(200, json!({"data": {"number": n, "name": o.1, "quantity": o.2}})),
                    None => error(404, "order not found"),
                }
            }
            _ => error(404, "no route"),
        }
    }
}

impl Net for World {
    async fn call(&self, method: Method, url: &str, body: Option<Value>, _t: Duration) -> Result<NetResponse, CallError> {
        let rest = url.strip_prefix("http://").unwrap_or(url);
        let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, "/".into()));
        let segments = Request::new(method.clone(), &path, "").segments();
        if host == "catalog" {
            return self.catalog(&method, &segments);
        }
        match host.strip_prefix("order-").and_then(|id| id.parse().ok()) {
            Some(id) => self.replica(id, &method, &segments, body),
            None => Err(CallError::Unreachable { url: url.into(), reason: "unknown host".into() }),
        }
    }
}
