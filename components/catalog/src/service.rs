//! The catalog's routes (see ARCHITECTURE.md, "Stock"):
//!
//! | route | what |
//! |---|---|
//! | `GET /products` | every toy, in file order |
//! | `GET /products/<name>`, `GET /product?<name>` (the seed's) | one toy (404 `product not found`) |
//! | `GET /stock` | `{applied_orders, toys:[{name,price,price_text,quantity}]}`: the order leader's base |
//! | `POST /apply {from,orders}` | apply committed orders (idempotent) → the new `/stock`; 409 gap, 422 unknown toy |
//! | `POST /restock` | restock now |
//! | `POST /tick` | restock if due; resend pending invalidations |
//! | `GET /health` | liveness |
//! | `POST /debug/trap` | panic (only with `DEBUG_ROUTES=true`; else 404) |
//! | `POST /debug/spin` | loop forever (only with `DEBUG_ROUTES=true`; else 404) |
//!
//! `catalog.csv` is the truth. Under the stock `wasmtime serve`, several instances may share
//! the data directory, so it is read on every request and they never disagree. Under the
//! toystore host (`EXCLUSIVE_DATA_DIR`, one instance per directory) nobody else writes it, so
//! the table is read once and kept in memory: a lookup then costs no file calls (they were
//! most of a lookup's time, see eval/bench.md). Every change happens under the data-directory
//! lock, starting from the file (or the memory that equals it), and is one atomic replace on
//! disk before the reply; memory takes the new table only after that write succeeded, and a
//! failed write drops it, so the next request reads the file again, whatever it now holds.
//!
//! The replicated order log is the only authority for stock: the catalog never takes stock on
//! its own. The order leader admits an order against `GET /stock`, and once the order is
//! committed pushes it here with `POST /apply`; `applied_orders` (in the same file as the
//! quantities) makes a resent batch harmless. There is no `/buy` or `/release`.
//!
//! No reply waits for the frontend: the toys a change touched are queued and invalidated after
//! the reply ([`Catalog::after_reply`]) and on tick.

use std::cell::{Cell, RefCell};
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use serde_json::json;
use toystore_guest::lock::{DirAccess, DirLock};
use toystore_guest::{durable, settings, time, AfterReply, Net, Reply, Request, Router};

use crate::apply::{self, ApplyRequest};
use crate::inventory::Inventory;
use crate::invalidation::Invalidator;
use crate::restock::{self, RestockPolicy};

/// The catalog file's name inside the data directory.
pub const CATALOG_FILE: &str = "catalog.csv";

/// What the catalog reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// `DATA_DIR` (default `/data`): holds `catalog.csv`, `restock.stamp` and `LOCK`.
    pub data_dir: PathBuf,
    /// `FRONTEND_URL`: where invalidations go (unset: none are sent).
    pub frontend_url: Option<String>,
    /// `CALL_TIMEOUT_MS` (default 2000): timeout of each outgoing call.
    pub call_timeout: Duration,
    /// `RESTOCK_INTERVAL_SECS` (10), `RESTOCK_THRESHOLD` (10), `RESTOCK_AMOUNT` (100).
    pub restock: RestockPolicy,
    /// `DEBUG_ROUTES` (default false): enables `POST /debug/trap` and `POST /debug/spin`.
    pub debug_routes: bool,
    /// `EXCLUSIVE_DATA_DIR` (the toystore host): the lock needs no lock file.
    pub dir_access: DirAccess,
}

impl Config {
    /// From the typed settings and identity the host (or `wasmtime serve --env`) provides.
    pub fn from_env() -> Self {
        let (s, env) = settings::from_env();
        Self {
            data_dir: PathBuf::from(env.data_dir),
            frontend_url: env.frontend_url,
            call_timeout: Duration::from_millis(s.call_timeout_ms),
            restock: RestockPolicy {
                interval_ms: s.restock_interval_secs.saturating_mul(1000),
                threshold: s.restock_threshold,
                amount: s.restock_amount,
            },
            debug_routes: s.debug_routes,
            dir_access: DirAccess::from_exclusive(env.exclusive_data_dir),
        }
    }

    /// Defaults with the given data directory and frontend (for tests and tools).
    pub fn new(data_dir: impl Into<PathBuf>, frontend_url: Option<String>) -> Self {
        Self {
            data_dir: data_dir.into(),
            frontend_url,
            call_timeout: Duration::from_millis(2000),
            restock: RestockPolicy::default(),
            debug_routes: false,
            dir_access: DirAccess::Shared,
        }
    }
}

/// The catalog's routes (the table at the top of this file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Health,
    List,
    Product,
    /// The seed document's `GET /product?<toy_name>` (also `?name=` / `?toy=`).
    ProductByQuery,
    Stock,
    Apply,
    Restock,
    Tick,
    Trap,
    Spin,
}

fn routes(debug_routes: bool) -> Router<Route> {
    let routes = Router::new()
        .get("/health", Route::Health)
        .get("/products", Route::List)
        .get("/products/{name}", Route::Product)
        .get("/product", Route::ProductByQuery)
        .get("/stock", Route::Stock)
        .post("/apply", Route::Apply)
        .post("/restock", Route::Restock)
        .post("/tick", Route::Tick);
    if debug_routes {
        routes.post("/debug/trap", Route::Trap).post("/debug/spin", Route::Spin)
    } else {
        routes
    }
}

/// One catalog instance. Memory holds the lock, the pending invalidations, the last restock
/// time seen and, under [`DirAccess::Exclusive`], the table as the file holds it; the files
/// decide everything else.
pub struct Catalog<N> {
    cfg: Config,
    routes: Router<Route>,
    net: N,
    lock: DirLock,
    invalidator: Invalidator,
    /// The newest restock stamp this instance has seen (a lower bound of the file's).
    last_restock_seen: Cell<Option<u64>>,
    /// `catalog.csv` as last read or durably written, kept only under
    /// [`DirAccess::Exclusive`]; `None`: not read yet, or a write failed (read the file).
    table: RefCell<Option<Inventory>>,
    /// Wall clock in ms; replaceable so tests can move time.
    clock: fn() -> u64,
}

impl<N: Net> Catalog<N> {
    pub fn new(cfg: Config, net: N) -> Self {
        let lock = DirLock::with_access(&cfg.data_dir, cfg.dir_access);
        let invalidator = Invalidator::new(cfg.frontend_url.clone(), cfg.call_timeout);
        let routes = routes(cfg.debug_routes);
        Self {
            cfg,
            routes,
            net,
            lock,
            invalidator,
            last_restock_seen: Cell::new(None),
            table: RefCell::new(None),
            clock: time::now_millis,
        }
    }

    /// Use `clock` (wall-clock ms) instead of the system clock.
    pub fn with_clock(mut self, clock: fn() -> u64) -> Self {
        self.clock = clock;
        self
    }

    /// Names whose invalidation the frontend has not acknowledged yet.
    pub fn pending_invalidations(&self) -> Vec<String> {
        self.invalidator.pending()
    }

    /// The work to run once a reply has gone out: the queued invalidations, if any. The WASI
    /// entry spawns it (`export_service!`'s `after_reply`); a failure leaves the names for the
    /// next flush or tick.
    pub fn after_reply(self: Rc<Self>) -> Option<AfterReply>
    where
        N: 'static,
    {
        if !self.invalidator.has_pending() {
            return None;
        }
        Some(Box::pin(async move { self.invalidator.flush(&self.net).await }))
    }

    pub async fn handle(&self, req: &Request) -> Reply {
        let is_tick = req.segments() == ["tick"];
        if !is_tick {
            // Catch-up for hosts without a tick (stock `wasmtime serve`): see `restock`.
            if let Err(reply) = self.restock(false).await {
                eprintln!("catalog: catch-up restock failed: {}", reply.error_message().unwrap_or(""));
            }
        }
        let matched = match self.routes.at(req) {
            Ok(m) => m,
            Err(reply) => return reply,
        };
        match matched.route {
            Route::Health => Reply::ok(json!({ "status": "ok", "service": "catalog" })),
            Route::List => self
                .read(|inv| Reply::ok(inv.products().iter().map(|p| p.to_json()).collect::<Vec<_>>()))
                .unwrap_or_else(|reply| reply),
            Route::Product => self.product(matched.param("name")),
            Route::ProductByQuery => match req.query_value(&["name", "toy"]) {
                Some(name) => self.product(&name),
                None => Reply::bad_request("name the toy: /product?<name>, /product?name=<name> or /products/<name>"),
            },
            Route::Stock => self.read(|inv| Reply::ok(inv.stock_json())).unwrap_or_else(|reply| reply),
            Route::Apply => match ApplyRequest::parse(&req.body) {
                Ok(batch) => self.apply(batch).await,
                Err(reply) => reply,
            },
            Route::Restock => match self.restock(true).await {
                Ok(names) => Reply::ok(json!({ "restocked": names.unwrap_or_default() })),
                Err(reply) => reply,
            },
            Route::Tick => self.tick().await,
            Route::Trap => panic!("catalog: POST /debug/trap (DEBUG_ROUTES is on)"),
            // Burns CPU without ever calling the host, for the host's spin guard to cut.
            Route::Spin => loop {
                std::hint::black_box(());
            },
        }
    }

    fn product(&self, name: &str) -> Reply {
        self.read(|inv| match inv.get(name) {
            Some(p) => Reply::ok(p.to_json()),
            None => Reply::not_found("product not found"),
        })
        .unwrap_or_else(|reply| reply)
    }

    fn csv_path(&self) -> PathBuf {
        self.cfg.data_dir.join(CATALOG_FILE)
    }

    /// Whether the table may live in memory: only when this instance is the directory's sole
    /// writer (the toystore host says so).
    fn keeps_table(&self) -> bool {
        self.cfg.dir_access == DirAccess::Exclusive
    }

    /// `f` of the table as `catalog.csv` holds it: from memory when kept there, else read.
    fn read<T>(&self, f: impl FnOnce(&Inventory) -> T) -> Result<T, Reply> {
        if let Some(inv) = self.table.borrow().as_ref() {
            return Ok(f(inv));
        }
        let inv = self.read_file()?;
        let out = f(&inv);
        if self.keeps_table() {
            *self.table.borrow_mut() = Some(inv);
        }
        Ok(out)
    }

    /// The table to change (a copy: memory keeps the old one until the write succeeded).
    fn load(&self) -> Result<Inventory, Reply> {
        self.read(Inventory::clone)
    }

    /// Read `catalog.csv` (a missing or corrupt file is a 500: nothing is guessed).
    fn read_file(&self) -> Result<Inventory, Reply> {
        let path = self.csv_path();
        let bytes = std::fs::read(&path).map_err(|e| io_error(&path, "read", e))?;
        Inventory::parse(&bytes).map_err(|e| Reply::internal(e.to_string()))
    }

    /// Write `inv` durably, then make it the table in memory. A failed write forgets the
    /// memory: the replace may have happened (e.g. only the directory fsync failed), so the
    /// next request reads whatever the file now holds.
    fn store(&self, inv: &Inventory) -> Result<(), Reply> {
        let path = self.csv_path();
        match durable::atomic_replace(&path, &inv.to_csv()) {
            Ok(()) => {
                if self.keeps_table() {
                    *self.table.borrow_mut() = Some(inv.clone());
                }
                Ok(())
            }
            Err(e) => {
                self.table.borrow_mut().take();
                Err(io_error(&path, "write", e))
            }
        }
    }

    /// `POST /apply`: committed orders, under the lock, one atomic replace; the frontend is
    /// told after the reply.
    async fn apply(&self, batch: ApplyRequest) -> Reply {
        let (inv, changed) = {
            let _guard = match self.lock.lock().await {
                Ok(g) => g,
                Err(e) => return Reply::unavailable(format!("catalog busy: {e}")),
            };
            let mut inv = match self.load() {
                Ok(inv) => inv,
                Err(reply) => return reply,
            };
            let before = inv.applied_orders();
            let applied = match inv.apply(batch.from, &batch.orders) {
                Ok(applied) => applied,
                Err(e) => return apply::refusal(e),
            };
            if inv.applied_orders() != before {
                if let Err(reply) = self.store(&inv) {
                    return reply;
                }
            }
            for (name, quantity) in &applied.oversold {
                // The log is the authority, so the order stands; this is a bug upstream, kept
                // on disk as a negative quantity for `toystore check` to report.
                eprintln!(
                    "catalog: ERROR oversold: {name} is at {quantity} after applying orders up to {}",
                    inv.applied_orders()
                );
            }
            (inv, applied.changed)
        };
        self.invalidator.queue(&changed);
        Reply::ok(inv.stock_json())
    }

    /// Restock if due (or now, with `force`). `Ok(None)`: not due. `Ok(Some(names))`: done,
    /// `names` changed (and are queued for the frontend).
    async fn restock(&self, force: bool) -> Result<Option<Vec<String>>, Reply> {
        let policy = self.cfg.restock;
        if !force && !policy.is_due(self.last_restock_seen.get(), (self.clock)()) {
            return Ok(None);
        }
        let changed = {
            let _guard = self.lock.lock().await.map_err(|e| Reply::unavailable(format!("catalog busy: {e}")))?;
            // Another instance (or task) may have restocked while we waited for the lock.
            let now = (self.clock)();
            let last = restock::read_stamp(&self.cfg.data_dir);
            if !force && !policy.is_due(last, now) {
                self.last_restock_seen.set(last);
                return Ok(None);
            }
            let mut inv = self.load()?;
            let changed = inv.restock(policy.threshold, policy.amount);
            if !changed.is_empty() {
                self.store(&inv)?;
            }
            // A stamp that fails to write only means the next check restocks again (a no-op
            // for toys that are already full), so it does not fail the restock.
            if let Err(e) = restock::write_stamp(&self.cfg.data_dir, now) {
                eprintln!("catalog: cannot write {}: {e}", restock::STAMP_FILE);
            }
            self.last_restock_seen.set(Some(now));
            changed
        };
        self.invalidator.queue(&changed);
        Ok(Some(changed))
    }

    /// `POST /tick`: restock if due, resend what the frontend missed.
    async fn tick(&self) -> Reply {
        let restocked = match self.restock(false).await {
            Ok(names) => names.unwrap_or_default(),
            Err(reply) => return reply,
        };
        self.invalidator.flush(&self.net).await;
        Reply::ok(json!({ "restocked": restocked, "pending_invalidations": self.invalidator.pending() }))
    }
}

fn io_error(path: &Path, what: &str, e: io::Error) -> Reply {
    Reply::internal(format!("cannot {what} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests;
