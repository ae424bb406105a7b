//! The order service: configuration, the files under their lock, and the route table. The
//! protocol state and its decisions live in [`crate::replica`]; the modules named for each
//! part of the protocol drive them.
//!
//! Concurrency rules (one instance serves many requests at once on one thread):
//! - `state` (the [`Replica`]) and `log` are `RefCell`s; a borrow is never held across an
//!   `.await`, and `state` changes only through the `Replica`'s named transitions.
//! - `order_lock` (an async mutex) serialises numbering a batch of orders (admission, one
//!   append) and leader (re)election. Replication is not under it: per-follower replicators
//!   ([`crate::commit`]) carry what is appended, and orders wait for the commit index.
//! - `dir` (the data-directory lock) is held only around synchronous file work — never across a
//!   network call — and every decision that depends on the promised epoch is taken under it,
//!   so "check the promise, then append" cannot interleave with "make a new promise".
//! - Under the toystore host ([`DirAccess::Exclusive`]) this instance is the directory's only
//!   writer, so memory is an exact cache of the files: the lock is memory only, the promise is
//!   read from the `epoch` file once and then kept in memory (every new promise goes through
//!   [`Disk::promise`]), and requests do not reload anything first. Under the stock
//!   `wasmtime serve` ([`DirAccess::Shared`]) another instance may have written the files, so
//!   each step re-reads them under the lock file.

use std::cell::{Cell, RefCell};
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use toystore_guest::sync::Mutex;
use serde_json::json;
use toystore_guest::lock::{DirAccess, DirLock};
use toystore_guest::{settings, Net, Reply, Request, Router};

use crate::commit::{Deferred, Replicators};
use crate::epoch;
use crate::log::{Log, Position};
use crate::protocol::Status;
use crate::order::Ticket;
use crate::replica::Replica;
use crate::stock::Base;

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
    /// Whether another instance may write `data_dir` meanwhile (`EXCLUSIVE_DATA_DIR`).
    pub dir_access: DirAccess,
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
            dir_access: DirAccess::from_exclusive(env.exclusive_data_dir),
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

/// The files, while the directory lock is held.
pub struct Disk<'a> {
    pub log: &'a mut Log,
    pub promised: u64,
    dir: &'a Path,
    /// A promise failed to write: the `epoch` file may hold it or not, so the remembered
    /// promise must be read from the file again.
    promise_unsure: bool,
}

impl Disk<'_> {
    /// Durably promise `epoch` (before anyone is told).
    pub fn promise(&mut self, epoch: u64) -> io::Result<()> {
        if let Err(e) = epoch::write(self.dir, epoch) {
            self.promise_unsure = true;
            return Err(e);
        }
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

/// The order replica's routes: the client's, then the peers' (README "Internal routes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Health,
    Ping,
    PlaceOrder,
    Order,
    /// The seed frontend's `GET /orders?<order_number>`.
    OrderByQuery,
    /// The seed's `GET /synchronize` (`crate::seed`).
    Synchronize,
    LeaderSelection,
    InformReplica,
    Fence,
    ReplicateOrder,
    LastOrderNumber,
    MissedOrders,
    Tick,
    Trap,
    Spin,
}

fn routes(debug_routes: bool) -> Router<Route> {
    let routes = Router::new()
        .get("/health", Route::Health)
        .get("/ping", Route::Ping)
        .post("/orders", Route::PlaceOrder)
        .get("/orders/{n}", Route::Order)
        .get("/orders", Route::OrderByQuery)
        .get("/synchronize", Route::Synchronize)
        .post("/synchronize", Route::Synchronize)
        .post("/leaderselection", Route::LeaderSelection)
        .post("/inform_replica", Route::InformReplica)
        .post("/fence", Route::Fence)
        .post("/replicate_order", Route::ReplicateOrder)
        .get("/get_last_order_number", Route::LastOrderNumber)
        .get("/get_missed_orders/{n}", Route::MissedOrders)
        .post("/tick", Route::Tick);
    if debug_routes {
        routes.post("/debug/trap", Route::Trap).post("/debug/spin", Route::Spin)
    } else {
        routes
    }
}

/// One replica of the order service, generic over how it reaches other services so that the
/// whole protocol runs natively in tests with an in-process network.
pub struct Service<N: Net> {
    pub(crate) cfg: Config,
    pub(crate) net: N,
    pub(crate) state: RefCell<Replica>,
    /// `None` until the first request loads it.
    log: RefCell<Option<Log>>,
    /// The promise as last read from or written to the `epoch` file; kept between requests
    /// only under [`DirAccess::Exclusive`].
    promised: Cell<Option<u64>>,
    pub(crate) order_lock: Mutex<()>,
    /// Orders waiting to be numbered in the next batch (group commit, `order.rs`).
    pub(crate) queue: RefCell<Vec<Ticket>>,
    /// The per-follower replicators and what orders waiting for a majority watch.
    pub(crate) replicators: Replicators,
    /// One start-up resync / catch-up at a time.
    pub(crate) sync_lock: Mutex<()>,
    /// The catalog's stock as last read (`/stock`, or a `/apply` answer): the base of the
    /// leader's stock view. Memory only; re-read when missing.
    pub(crate) stock: RefCell<Option<Base>>,
    /// One push of committed orders to the catalog at a time.
    pub(crate) push_lock: Mutex<()>,
    dir: DirLock,
    routes: Router<Route>,
}

impl<N: Net + 'static> Service<N> {
    pub fn new(cfg: Config, net: N) -> Self {
        let dir = DirLock::with_access(&cfg.data_dir, cfg.dir_access);
        let state = RefCell::new(Replica::new(cfg.id));
        let routes = routes(cfg.debug_routes);
        Service {
            cfg,
            net,
            state,
            log: RefCell::new(None),
            promised: Cell::new(None),
            order_lock: Mutex::new(()),
            queue: RefCell::new(Vec::new()),
            replicators: Replicators::new(),
            sync_lock: Mutex::new(()),
            stock: RefCell::new(None),
            push_lock: Mutex::new(()),
            dir,
            routes,
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Run `f` on the files under the directory lock, after checking the index against the
    /// file and reading the promised epoch (the files are the truth; under
    /// [`DirAccess::Shared`] another instance may have written them, so the promise is re-read
    /// each time; under [`DirAccess::Exclusive`] once). Loads the log on first use — with no
    /// network, so peers can always be answered from what is on disk.
    pub(crate) async fn on_disk<R>(&self, f: impl FnOnce(&mut Disk<'_>, &mut Replica) -> R) -> Result<R, Reply> {
        let _guard = self.dir.lock().await.map_err(|e| Reply::unavailable(e.to_string()))?;
        let mut slot = self.log.borrow_mut();
        let log = match slot.as_mut() {
            // `refresh` is one `stat`; it also re-reads a log whose last write failed midway.
            Some(log) => {
                log.refresh().map_err(internal)?;
                log
            }
            None => slot.insert(Log::open(&self.cfg.data_dir).map_err(internal)?),
        };
        let promised = match (self.cfg.dir_access, self.promised.get()) {
            (DirAccess::Exclusive, Some(promised)) => promised,
            _ => epoch::read(&self.cfg.data_dir).map_err(internal)?,
        };
        let mut state = self.state.borrow_mut();
        state.observe_promise(promised);
        let mut disk = Disk { log, promised, dir: &self.cfg.data_dir, promise_unsure: false };
        let result = f(&mut disk, &mut state);
        self.promised.set(if disk.promise_unsure { None } else { Some(disk.promised) });
        Ok(result)
    }

    /// Whether the first request has loaded the log (it stays loaded for the instance's life).
    fn loaded(&self) -> bool {
        self.log.borrow().is_some()
    }

    /// Read the in-memory index without the lock (it may trail another instance's writes;
    /// decisions that matter are re-checked under [`Self::on_disk`]).
    pub(crate) fn read_log<R>(&self, f: impl FnOnce(&Log) -> R) -> Option<R> {
        self.log.borrow().as_ref().map(f)
    }

    /// The last record of our own log known to be on our disk (the leader's own copy counts
    /// towards a majority only from then on).
    pub(crate) fn own_durable(&self) -> i64 {
        self.read_log(Log::durable_last).unwrap_or(-1)
    }

    /// Change the in-memory log without the directory lock: only bookkeeping that no other
    /// instance needs to see (which records an fsync covered).
    pub(crate) fn log_mut<R>(&self, f: impl FnOnce(&mut Log) -> R) -> Option<R> {
        self.log.borrow_mut().as_mut().map(f)
    }

    pub(crate) fn position(&self) -> Position {
        self.read_log(Log::position).unwrap_or(Position { last_epoch: 0, last: -1 })
    }

    /// Answer one request. Replicators this request started and that are still running are
    /// left for [`Self::after_reply`] as it returns (see [`crate::commit`]).
    pub async fn handle(self: &Rc<Self>, req: &Request) -> Reply {
        let deferred = Deferred::default();
        let reply = self.route(req, &deferred).await;
        self.defer(deferred);
        reply
    }

    async fn route(self: &Rc<Self>, req: &Request, deferred: &Deferred) -> Reply {
        let matched = self.routes.at(req);
        // The first request of any kind loads the local log (and cuts a torn tail). After that,
        // `/ping` and `/health` answer from memory — no lock, no file — so a replica busy
        // writing still answers its health checks at once; and under exclusive access memory is
        // the files, so only the steps that write or decide on the promise touch them.
        let from_memory = self.loaded()
            && (self.cfg.dir_access == DirAccess::Exclusive
                || matches!(&matched, Ok(m) if matches!(m.route, Route::Ping | Route::Health)));
        if !from_memory {
            if let Err(reply) = self.on_disk(|_, _| ()).await {
                return reply;
            }
        }
        let matched = match matched {
            Ok(m) => m,
            Err(reply) => return reply,
        };
        match matched.route {
            Route::Health => self.health(),
            Route::Ping => match crate::seed::ping_message(req) {
                Ok(message) => self.ping(message).await,
                Err(reply) => reply,
            },
            Route::PlaceOrder => self.place_order(req, deferred).await,
            Route::Order => self.get_order(matched.param("n")).await,
            Route::OrderByQuery => self.order_by_query(req).await,
            Route::Synchronize => self.synchronize().await,
            Route::LeaderSelection => self.leader_selection().await,
            Route::InformReplica => self.inform_replica(req),
            Route::Fence => self.fence(req).await,
            Route::ReplicateOrder => self.replicate_order(req).await,
            Route::LastOrderNumber => self.last_order_number().await,
            Route::MissedOrders => self.missed_orders(matched.param("n")).await,
            Route::Tick => self.tick().await,
            Route::Trap => panic!("order replica {}: trap requested via /debug/trap", self.cfg.id),
            // Burns CPU without ever calling the host, for the host's spin guard to cut.
            Route::Spin => loop {
                std::hint::black_box(());
            },
        }
    }

    fn health(&self) -> Reply {
        let s = self.state.borrow();
        Reply::ok(json!({
            "status": "ok", "id": self.cfg.id, "role": s.role().name(), "synced": s.synced(),
            "last": self.position().last,
        }))
    }

    /// `GET /ping`: healthy only once the start-up resync is done, so the frontend never makes
    /// a replica leader while it may still be missing orders its peers have. The seed's ping
    /// (`?message=Ping`) gets its `message` answer beside the store's fields.
    async fn ping(&self, message: Option<&str>) -> Reply {
        if !self.state.borrow().synced() {
            self.resync().await;
        }
        let s = self.state.borrow();
        if !s.synced() {
            return Reply::unavailable(format!("replica {} is still catching up with its peers", self.cfg.id));
        }
        let leader = s.named_leader();
        let last_order = self.read_log(|log| log.next_number() as i64 - 1).unwrap_or(-1);
        let mut data = json!({
            "id": self.cfg.id, "leader": leader, "epoch": s.promised(), "last": self.position().last,
            "last_order": last_order, "synced": true, "role": s.role().name(),
        });
        if let Some(message) = message {
            data["message"] = json!(message);
        }
        Reply::ok(data)
    }

    /// `POST /tick`: finish the start-up resync if it is not done; a follower also checks
    /// whether a peer is ahead of it (it missed orders while slow) and catches up; a leader
    /// checks it still leads and pushes committed orders the catalog has not applied yet.
    async fn tick(&self) -> Reply {
        let (synced, follower, leader) = {
            let s = self.state.borrow();
            (s.synced(), s.is_follower(), s.is_leader())
        };
        if !synced {
            self.resync().await;
        } else if follower {
            self.follower_tick().await;
        } else if leader {
            self.leader_tick().await;
        }
        let s = self.state.borrow();
        Reply::ok(json!({ "synced": s.synced(), "role": s.role().name(), "last": self.position().last }))
    }
}
