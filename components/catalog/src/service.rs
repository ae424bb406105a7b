//! The catalog's routes (see ARCHITECTURE.md):
//!
//! | route | what |
//! |---|---|
//! | `GET /products` | every toy, in file order |
//! | `GET /products/<name>` | one toy (404 `product not found`) |
//! | `POST /buy {name,quantity,key}` | take stock → the toy with the quantity left |
//! | `POST /release {name,quantity,key}` | give stock back (an order that did not commit) |
//! | `POST /restock` | restock now |
//! | `POST /tick` | restock if due; resend pending invalidations |
//! | `GET /health` | liveness |
//! | `POST /debug/trap` | panic (only with `DEBUG_ROUTES=true`; else 404) |
//! | `POST /debug/spin` | loop forever (only with `DEBUG_ROUTES=true`; else 404) |
//!
//! `catalog.csv` is the truth and is read on every request (ten rows), so several instances
//! sharing the data directory never disagree. Every change happens under the data-directory
//! lock, re-reading the file inside it, and is on disk (atomic replace) before the reply.
//!
//! Buy and release bodies are validated by [`ItemRequest`] (the same rules at every hop).
//! `key` is the order's idempotency key; the catalog does not deduplicate on it: the order
//! leader already answers a repeated key with the order it numbered, and a catalog that
//! remembered keys would need a second durable file updated atomically with `catalog.csv`.
//! ARCHITECTURE.md ("Guarantees") names the one window where stock can stay taken.

use std::cell::Cell;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::Method;
use serde_json::json;
use toystore_guest::lock::DirLock;
use toystore_guest::{durable, settings, time, ItemRequest, Net, Reply, Request};

use crate::inventory::{Inventory, StockError};
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
}

impl Config {
    pub fn from_env() -> Self {
        let defaults = RestockPolicy::default();
        Self {
            data_dir: PathBuf::from(settings::string("DATA_DIR", "/data")),
            frontend_url: std::env::var("FRONTEND_URL").ok(),
            call_timeout: Duration::from_millis(settings::get("CALL_TIMEOUT_MS", 2000)),
            restock: RestockPolicy {
                interval_ms: settings::get("RESTOCK_INTERVAL_SECS", defaults.interval_ms / 1000).saturating_mul(1000),
                threshold: settings::get("RESTOCK_THRESHOLD", defaults.threshold),
                amount: settings::get("RESTOCK_AMOUNT", defaults.amount),
            },
            debug_routes: settings::flag("DEBUG_ROUTES", false),
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
        }
    }
}

/// One catalog instance. Memory holds only the lock, the pending invalidations and the last
/// restock time seen; the files decide everything else.
pub struct Catalog<N> {
    cfg: Config,
    net: N,
    lock: DirLock,
    invalidator: Invalidator,
    /// The newest restock stamp this instance has seen (a lower bound of the file's).
    last_restock_seen: Cell<Option<u64>>,
    /// Wall clock in ms; replaceable so tests can move time.
    clock: fn() -> u64,
}

impl<N: Net> Catalog<N> {
    pub fn new(cfg: Config, net: N) -> Self {
        let lock = DirLock::new(&cfg.data_dir);
        let invalidator = Invalidator::new(cfg.frontend_url.clone(), cfg.call_timeout);
        Self { cfg, net, lock, invalidator, last_restock_seen: Cell::new(None), clock: time::now_millis }
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

    pub async fn handle(&self, req: &Request) -> Reply {
        let segments = req.segments();
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let is_tick = segments == ["tick"];
        if !is_tick {
            // Catch-up for hosts without a tick (stock `wasmtime serve`): see `restock`.
            if let Err(reply) = self.restock(false).await {
                eprintln!("catalog: catch-up restock failed: {}", reply.error_message().unwrap_or(""));
            }
        }
        let (allowed, reply) = match segments.as_slice() {
            ["health"] => (Method::GET, None),
            ["products"] | ["products", _] => (Method::GET, None),
            ["buy"] | ["release"] | ["restock"] | ["tick"] => (Method::POST, None),
            ["debug", "trap"] | ["debug", "spin"] if self.cfg.debug_routes => (Method::POST, None),
            _ => (Method::GET, Some(Reply::no_route(&req.method, &req.path))),
        };
        if let Some(reply) = reply {
            return reply;
        }
        if req.method != allowed {
            return Reply::method_not_allowed(&req.method, &req.path);
        }
        match segments.as_slice() {
            ["health"] => Reply::ok(json!({ "status": "ok", "service": "catalog" })),
            ["products"] => match self.load() {
                Ok(inv) => Reply::ok(inv.products().iter().map(|p| p.to_json()).collect::<Vec<_>>()),
                Err(reply) => reply,
            },
            ["products", name] => match self.load() {
                Ok(inv) => match inv.get(name) {
                    Some(p) => Reply::ok(p.to_json()),
                    None => Reply::not_found("product not found"),
                },
                Err(reply) => reply,
            },
            ["buy"] => match ItemRequest::parse(&req.body) {
                Ok(c) => self.change(|inv| inv.take(&c.name, c.quantity)).await,
                Err(reply) => reply,
            },
            ["release"] => match ItemRequest::parse(&req.body) {
                Ok(c) => self.change(|inv| inv.give_back(&c.name, c.quantity)).await,
                Err(reply) => reply,
            },
            ["restock"] => match self.restock(true).await {
                Ok(names) => Reply::ok(json!({ "restocked": names.unwrap_or_default() })),
                Err(reply) => reply,
            },
            ["tick"] => self.tick().await,
            ["debug", "trap"] => panic!("catalog: POST /debug/trap (DEBUG_ROUTES is on)"),
            // Burns CPU without ever calling the host, for the host's spin guard to cut.
            ["debug", "spin"] => loop {
                std::hint::black_box(());
            },
            _ => Reply::no_route(&req.method, &req.path),
        }
    }

    fn csv_path(&self) -> PathBuf {
        self.cfg.data_dir.join(CATALOG_FILE)
    }

    /// Read `catalog.csv` (a missing or corrupt file is a 500: nothing is guessed).
    fn load(&self) -> Result<Inventory, Reply> {
        let path = self.csv_path();
        let bytes = std::fs::read(&path).map_err(|e| io_error(&path, "read", e))?;
        Inventory::parse(&bytes).map_err(|e| Reply::internal(e.to_string()))
    }

    fn store(&self, inv: &Inventory) -> Result<(), Reply> {
        let path = self.csv_path();
        durable::atomic_replace(&path, &inv.to_csv()).map_err(|e| io_error(&path, "write", e))
    }

    /// Apply one stock change durably, then tell the frontend (outside the lock).
    async fn change(&self, f: impl FnOnce(&mut Inventory) -> Result<crate::inventory::Product, StockError>) -> Reply {
        let product = {
            let _guard = match self.lock.lock().await {
                Ok(g) => g,
                Err(e) => return Reply::unavailable(format!("catalog busy: {e}")),
            };
            let mut inv = match self.load() {
                Ok(inv) => inv,
                Err(reply) => return reply,
            };
            let product = match f(&mut inv) {
                Ok(p) => p,
                Err(e) => return stock_error(e),
            };
            if let Err(reply) = self.store(&inv) {
                return reply;
            }
            product
        };
        // Committed and unlocked: now the frontend, together with any earlier failures.
        let mut names = self.invalidator.pending();
        if !names.contains(&product.name) {
            names.push(product.name.clone());
        }
        self.invalidator.send(&self.net, &names).await;
        Reply::ok(product.to_json())
    }

    /// Restock if due (or now, with `force`). `Ok(None)`: not due. `Ok(Some(names))`: done,
    /// `names` changed (and were sent to the frontend).
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
        self.invalidator.send(&self.net, &changed).await;
        Ok(Some(changed))
    }

    /// `POST /tick`: restock if due, resend what the frontend missed.
    async fn tick(&self) -> Reply {
        let restocked = match self.restock(false).await {
            Ok(names) => names.unwrap_or_default(),
            Err(reply) => return reply,
        };
        self.invalidator.retry_pending(&self.net).await;
        Reply::ok(json!({ "restocked": restocked, "pending_invalidations": self.invalidator.pending() }))
    }
}

fn stock_error(e: StockError) -> Reply {
    match e {
        StockError::UnknownProduct => Reply::not_found(e.to_string()),
        StockError::NotEnough { .. } | StockError::InvalidQuantity | StockError::Overflow => {
            Reply::bad_request(e.to_string())
        }
    }
}

fn io_error(path: &Path, what: &str, e: io::Error) -> Reply {
    Reply::internal(format!("cannot {what} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests;
