//! The order service: configuration, in-memory state, disciplined access to the files, and the
//! route table. The protocol itself lives in the modules named for each part of it.
//!
//! Concurrency rules (one instance serves many requests at once on one thread):
//! - `state` and `log` are `RefCell`s; a borrow is never held across an `.await`.
//! - `order_lock` (an async mutex) serialises the leader's order path and leader (re)election:
//!   numbering, appending and replicating one order happen as one step.
//! - `dir` (the data-directory lock) is held only around synchronous file work — never across a
//!   network call — and every decision that depends on the promised epoch is taken under it,
//!   so "check the promise, then append" cannot interleave with "make a new promise".

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toystore_guest::sync::Mutex;
use serde_json::json;
use toystore_guest::lock::DirLock;
use toystore_guest::{settings, Net, Reply, Request};

use crate::epoch;
use crate::log::{Log, Position};
use crate::protocol::Status;

/// Where this replica and its peers are, and how long to wait for any of them.
#[derive(Debug, Clone)]
pub struct Config {
    pub id: u32,
    /// Every replica, this one included: `(id, base URL)`.
    pub replicas: Vec<(u32, String)>,
    pub catalog_url: String,
    pub data_dir: PathBuf,
    pub timeout: Duration,
    pub debug_routes: bool,
}

impl Config {
    /// From the environment the host gives each replica (see ARCHITECTURE.md).
    pub fn from_env() -> Config {
        let (s, env) = settings::from_env();
        Config {
            id: env.replica_id.unwrap_or(1),
            replicas: env.order_replicas.map(|r| r.0).unwrap_or_default(),
            catalog_url: env
                .catalog_url
                .map(|url| url.trim_end_matches('/').to_string())
                .filter(|url| !url.is_empty())
                .unwrap_or_else(|| "http://127.0.0.1:8081".into()),
            data_dir: PathBuf::from(env.data_dir),
            timeout: Duration::from_millis(s.call_timeout_ms),
            debug_routes: s.debug_routes,
        }
    }

    /// The other replicas.
    pub fn peers(&self) -> Vec<Peer> {
        self.replicas
            .iter()
            .filter(|(id, _)| *id != self.id)
            .map(|(id, url)| Peer { id: *id, url: url.trim_end_matches('/').to_string() })
            .collect()
    }

    /// How many replicas (this one included) make a majority.
    pub fn majority(&self) -> usize {
        let total = self.peers().len() + 1;
        total / 2 + 1
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub id: u32,
    pub url: String,
}

/// What this replica is doing in the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Follower,
    /// Fencing peers for this epoch; takes no orders and appends nothing yet.
    Candidate(u64),
    /// Leads `epoch`. Numbers orders only when `ready`: its whole log is on a majority and it
    /// has not since failed to replicate (after a failure it must renew with a new epoch).
    Leader { epoch: u64, ready: bool },
}

/// Memory only; rebuilt from the files and the peers after a restart.
#[derive(Debug)]
pub struct State {
    pub role: Role,
    /// The leader this replica believes in, and its epoch (for `/ping` and 409s).
    pub leader: Option<u32>,
    pub leader_epoch: u64,
    /// The promised epoch as last read from the `epoch` file.
    pub promised: u64,
    /// Highest epoch heard of from anyone (a new candidacy goes above it).
    pub seen_epoch: u64,
    /// Start-up resync done: `/ping` answers 200.
    pub synced: bool,
    /// Leader only: every entry up to here is on a majority.
    pub commit: i64,
    /// Leader only: each follower's last entry as it last reported it.
    pub peer_last: HashMap<u32, i64>,
    /// Leader only: followers that timed out recently, skipped while a majority is reachable
    /// without them (so a hung follower does not cost a timeout per order).
    pub suspect_until: HashMap<u32, u64>,
}

impl State {
    fn new() -> State {
        State {
            role: Role::Follower,
            leader: None,
            leader_epoch: 0,
            promised: 0,
            seen_epoch: 0,
            synced: false,
            commit: -1,
            peer_last: HashMap::new(),
            suspect_until: HashMap::new(),
        }
    }

    /// The epoch this replica may number orders in right now.
    pub fn ready_epoch(&self) -> Option<u64> {
        match self.role {
            Role::Leader { epoch, ready: true } => Some(epoch),
            _ => None,
        }
    }

    /// Is order `n` known to be on a majority (so it may be acknowledged)?
    pub fn committed(&self, n: u64) -> bool {
        self.ready_epoch().is_some() && (n as i64) <= self.commit
    }

    /// The epoch this replica itself claims (as candidate or leader), if any.
    pub fn own_epoch(&self) -> Option<u64> {
        match self.role {
            Role::Candidate(e) | Role::Leader { epoch: e, .. } => Some(e),
            Role::Follower => None,
        }
    }

    pub fn step_down(&mut self) {
        if self.role != Role::Follower {
            eprintln!("order: stepping down ({:?})", self.role);
        }
        self.role = Role::Follower;
        self.peer_last.clear();
        self.suspect_until.clear();
    }

    /// A promise to `epoch` was made or seen: anything this replica led before it is over.
    pub fn observe_promise(&mut self, epoch: u64) {
        self.promised = self.promised.max(epoch);
        self.seen_epoch = self.seen_epoch.max(epoch);
        if self.own_epoch().is_some_and(|own| own < epoch) {
            self.step_down();
        }
    }
}

/// The files, while the directory lock is held.
pub struct Disk<'a> {
    pub log: &'a mut Log,
    pub promised: u64,
    dir: &'a Path,
}

impl Disk<'_> {
    /// Durably promise `epoch` (before anyone is told).
    pub fn promise(&mut self, epoch: u64) -> io::Result<()> {
        epoch::write(self.dir, epoch)?;
        self.promised = epoch;
        Ok(())
    }

    pub fn status(&self) -> Status {
        Status { last: self.log.last(), last_epoch: self.log.last_epoch(), epoch: self.promised }
    }
}

pub fn internal(e: impl std::fmt::Display) -> Reply {
    Reply::internal(format!("order log: {e}"))
}

/// One replica of the order service, generic over how it reaches other services so that the
/// whole protocol runs natively in tests with an in-process network.
pub struct Service<N: Net> {
    pub(crate) cfg: Config,
    pub(crate) net: N,
    pub(crate) state: RefCell<State>,
    /// `None` until the first request loads it.
    log: RefCell<Option<Log>>,
    pub(crate) order_lock: Mutex<()>,
    /// One start-up resync / catch-up at a time.
    pub(crate) sync_lock: Mutex<()>,
    dir: DirLock,
}

impl<N: Net> Service<N> {
    pub fn new(cfg: Config, net: N) -> Self {
        let dir = DirLock::new(&cfg.data_dir);
        Service { cfg, net, state: RefCell::new(State::new()), log: RefCell::new(None), order_lock: Mutex::new(()), sync_lock: Mutex::new(()), dir }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Run `f` on the files under the directory lock, after checking the index against the
    /// file and re-reading the promised epoch (the files are the truth; another instance may
    /// have written them). Loads the log on first use — with no network, so peers can always
    /// be answered from what is on disk.
    pub(crate) async fn on_disk<R>(&self, f: impl FnOnce(&mut Disk<'_>, &mut State) -> R) -> Result<R, Reply> {
        let _guard = self.dir.lock().await.map_err(|e| Reply::unavailable(e.to_string()))?;
        let mut slot = self.log.borrow_mut();
        let log = match slot.as_mut() {
            Some(log) => {
                log.refresh().map_err(internal)?;
                log
            }
            None => slot.insert(Log::open(&self.cfg.data_dir).map_err(internal)?),
        };
        let promised = epoch::read(&self.cfg.data_dir).map_err(internal)?;
        let mut state = self.state.borrow_mut();
        state.observe_promise(promised);
        let mut disk = Disk { log, promised, dir: &self.cfg.data_dir };
        Ok(f(&mut disk, &mut state))
    }

    /// Read the in-memory index without the lock (it may trail another instance's writes;
    /// decisions that matter are re-checked under [`Self::on_disk`]).
    pub(crate) fn read_log<R>(&self, f: impl FnOnce(&Log) -> R) -> Option<R> {
        self.log.borrow().as_ref().map(f)
    }

    pub(crate) fn position(&self) -> Position {
        self.read_log(Log::position).unwrap_or(Position { last_epoch: 0, last: -1 })
    }

    /// Answer one request.
    pub async fn handle(&self, req: &Request) -> Reply {
        // The first request of any kind loads the local log (and cuts a torn tail).
        if let Err(reply) = self.on_disk(|_, _| ()).await {
            return reply;
        }
        let segments = req.segments();
        let path: Vec<&str> = segments.iter().map(String::as_str).collect();
        let method = req.method.as_str();
        match (method, path.as_slice()) {
            ("GET", ["health"]) => self.health(),
            ("GET", ["ping"]) => self.ping().await,
            ("POST", ["orders"]) => self.place_order(req).await,
            ("GET", ["orders", n]) => self.get_order(n),
            ("POST", ["leaderselection"]) => self.leader_selection().await,
            ("POST", ["inform_replica"]) => self.inform_replica(req),
            ("POST", ["fence"]) => self.fence(req).await,
            ("POST", ["replicate_order"]) => self.replicate_order(req).await,
            ("GET", ["get_last_order_number"]) => self.last_order_number().await,
            ("GET", ["get_missed_orders", n]) => self.missed_orders(n).await,
            ("POST", ["tick"]) => self.tick().await,
            ("POST", ["debug", "trap"]) if self.cfg.debug_routes => {
                panic!("order replica {}: trap requested via /debug/trap", self.cfg.id)
            }
            (
                _,
                ["health"] | ["ping"] | ["orders"] | ["orders", _] | ["leaderselection"] | ["inform_replica"]
                | ["fence"] | ["replicate_order"] | ["get_last_order_number"] | ["get_missed_orders", _]
                | ["tick"],
            ) => Reply::method_not_allowed(&req.method, &req.path),
            _ => Reply::no_route(&req.method, &req.path),
        }
    }

    fn health(&self) -> Reply {
        let s = self.state.borrow();
        Reply::ok(json!({
            "status": "ok", "id": self.cfg.id, "role": role_name(s.role), "synced": s.synced,
            "last": self.position().last,
        }))
    }

    /// `GET /ping`: healthy only once the start-up resync is done, so the frontend never makes
    /// a replica leader while it may still be missing orders its peers have.
    async fn ping(&self) -> Reply {
        if !self.state.borrow().synced {
            self.resync().await;
        }
        let s = self.state.borrow();
        if !s.synced {
            return Reply::unavailable(format!("replica {} is still catching up with its peers", self.cfg.id));
        }
        // Never name ourselves unless we lead (a stepped-down leader must look like one).
        let leader = s.leader.filter(|&l| l != self.cfg.id || matches!(s.role, Role::Leader { .. }));
        Reply::ok(json!({
            "id": self.cfg.id, "leader": leader, "epoch": s.promised, "last": self.position().last,
            "synced": true, "role": role_name(s.role),
        }))
    }

    /// `GET /orders/<n>` from the local log.
    fn get_order(&self, n: &str) -> Reply {
        let Ok(n) = n.parse::<i64>() else { return Reply::bad_request(format!("order number must be an integer, got {n:?}")) };
        let found = u64::try_from(n).ok().and_then(|n| self.read_log(|log| log.get(n).cloned()).flatten());
        match found {
            Some(e) => Reply::ok(json!({ "number": e.number, "name": e.name, "quantity": e.quantity })),
            None => Reply::not_found(format!("order {n} not found")),
        }
    }

    /// `POST /tick`: finish the start-up resync if it is not done; a follower also checks
    /// whether a peer is ahead of it (it missed orders while slow) and catches up.
    async fn tick(&self) -> Reply {
        let (synced, role) = {
            let s = self.state.borrow();
            (s.synced, s.role)
        };
        if !synced {
            self.resync().await;
        } else if role == Role::Follower {
            self.follower_tick().await;
        }
        let s = self.state.borrow();
        Reply::ok(json!({ "synced": s.synced, "role": role_name(s.role), "last": self.position().last }))
    }
}

pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Follower => "follower",
        Role::Candidate(_) => "candidate",
        Role::Leader { ready: true, .. } => "leader",
        Role::Leader { ready: false, .. } => "leader (renewing)",
    }
}
