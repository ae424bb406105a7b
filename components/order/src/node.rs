//! One order replica's node: everything it holds (its configuration, protocol state, the log
//! and promise under the directory lock, the batch queue, the replicators' bookkeeping, the
//! stock base) and the disciplined access to the files. The protocol's decisions live in
//! [`crate::replica`]; the request handlers (`service` routes them) are `impl` blocks in the
//! modules named for each part of the protocol.
//!
//! Concurrency rules (one instance serves many requests at once on one thread):
//! - `state` (the [`Replica`]) and `log` are `RefCell`s; a borrow is never held across an
//!   `.await`, and `state` changes only through the `Replica`'s named transitions.
//! - `order_lock` (an async mutex) serialises numbering a batch of orders (admission, one
//!   append) and leader (re)election. Replication is not under it: per-follower replicators
//!   (`crate::commit`) carry what is appended, and orders wait for the commit index.
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
use std::path::Path;

use toystore_guest::lock::{DirAccess, DirLock};
use toystore_guest::sync::Mutex;
use toystore_guest::{Net, Reply, Router};

use crate::admission::Base;
use crate::config::Config;
use crate::epoch;
use crate::log::{Log, Position};
use crate::protocol::Status;
use crate::queue::Ticket;
use crate::replica::Replica;
use crate::replicators::Replicators;
use crate::routes::{routes, Route};

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
    pub(crate) routes: Router<Route>,
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
    pub(crate) fn loaded(&self) -> bool {
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
}
