//! The frontend's routes — the only public port (see ARCHITECTURE.md):
//!
//! | route | what |
//! |---|---|
//! | `GET /products/<name>`, `GET /product/<name>`, `GET /product?<name>` (or `?name=`), `GET /lookup?<name>` | cached lookup → `{name,price,quantity}` |
//! | `GET /products` | the whole catalog (not cached) |
//! | `POST /orders` or `POST /order`, `{name or toy, quantity}`; `POST /orders/<name>/<quantity>` | validated here, forwarded to the leader with an idempotency key (echoed in the `Idempotency-Key` response header) |
//! | `GET /orders/<n>`, `GET /order/<n>`, `GET /order?<n>` (or `?number=`) | from the leader |
//! | `GET /openapi.json` | the public API as an OpenAPI 3 document (`openapi.yaml`) |
//! | `GET /health` | liveness |
//! | internal: `POST /invalidate/<name>`, `POST /invalidation/<name>` | drop a cache entry |
//! | internal: `POST /invalidate`, `{"names": [...]}` | drop several (the catalog calls it, once per change) |
//! | internal: `GET /cache/stats`, `GET /leader`, `POST /tick` | the host's scrapes and timer |
//! | internal: `POST /debug/trap`, `POST /debug/spin` | panic / loop forever (only with `DEBUG_ROUTES=true`; else 404) |
//!
//! Internal routes answer only on the internal listener (`internal_listen`); on the public
//! one they are 404 like any unknown path, so the public port serves what `openapi.yaml`
//! describes (and `GET /`, the storefront page, and `/health`). See [`routes`].
//! Nothing here is durable: the cache and the current leader are memory, rebuilt after a
//! restart by the next lookups and the next selection.

use std::cell::{Cell, RefCell};
use std::time::Duration;

use http::Method;
use serde_json::json;
use toystore_guest::request::encode_segment;
use toystore_guest::item::{valid_text, MAX_TEXT};
use toystore_guest::{settings, time, ItemRequest, Net, Reply, Request, Router};

use crate::cache::{Lookup, ProductCache};
use toystore_guest::settings::{OrderReplicas, Settings};

use crate::leader::{pass_through, replicas_from, Leader, RetryPolicy};

/// Longest `Idempotency-Key` header taken from a client; longer ones are refused (400).
pub const MAX_KEY_LEN: usize = 200;

/// What the frontend reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// `CATALOG_URL` (default `http://127.0.0.1:8081`).
    pub catalog_url: String,
    /// `ORDER_REPLICAS` (`1=http://127.0.0.1:8091,...`), parsed once by `toystore-manifest`.
    pub order_replicas: OrderReplicas,
    /// `CACHE_ENABLED` (default true).
    pub cache_enabled: bool,
    /// `CACHE_CAPACITY` (default 5).
    pub cache_capacity: usize,
    /// `CACHE_TTL_SECS` (default 30; 0 = no TTL).
    pub cache_ttl: Duration,
    /// `CALL_TIMEOUT_MS` (default 2000): catalog lookups, pings, inform calls.
    pub call_timeout: Duration,
    /// `HEALTH_CHECK_INTERVAL_MS` (default 1000): leader pings from `POST /tick`.
    pub health_check_interval: Duration,
    /// `LEADER_MISS_LIMIT` (default 3): missed pings in a row before the leader is dropped.
    pub leader_miss_limit: u32,
    /// `DEBUG_ROUTES` (default false): enables `POST /debug/trap` and `POST /debug/spin`.
    pub debug_routes: bool,
    pub retry: RetryPolicy,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            catalog_url: "http://127.0.0.1:8081".into(),
            order_replicas: OrderReplicas((1..=3).map(|id| (id, format!("http://127.0.0.1:{}", 8090 + id))).collect()),
            cache_enabled: true,
            cache_capacity: 5,
            cache_ttl: Duration::from_secs(30),
            call_timeout: Duration::from_millis(2000),
            health_check_interval: Duration::from_millis(1000),
            leader_miss_limit: Settings::default().leader_miss_limit,
            debug_routes: false,
            retry: RetryPolicy::default(),
        }
    }
}

impl Config {
    /// From the typed settings and identity the host puts in the environment.
    pub fn from_env() -> Self {
        let (s, env) = settings::from_env();
        let d = Self::default();
        Self {
            catalog_url: env
                .catalog_url
                .map(|url| url.trim_end_matches('/').to_string())
                .filter(|url| !url.is_empty())
                .unwrap_or(d.catalog_url),
            order_replicas: env.order_replicas.filter(|r| !r.0.is_empty()).unwrap_or(d.order_replicas),
            cache_enabled: s.cache_enabled,
            cache_capacity: s.cache_capacity,
            cache_ttl: Duration::from_secs(s.cache_ttl_secs),
            call_timeout: Duration::from_millis(s.call_timeout_ms),
            health_check_interval: Duration::from_millis(s.health_check_interval_ms),
            leader_miss_limit: s.leader_miss_limit,
            debug_routes: s.debug_routes,
            retry: d.retry,
        }
    }

    /// Timeout of one order call to the leader: it buys at the catalog and replicates to the
    /// followers (each with `call_timeout`) before it answers. Reads use it too (see `order`).
    fn order_timeout(&self) -> Duration {
        self.call_timeout * 3
    }
}

/// The frontend's routes (the table at the top of this file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Product,
    /// The seed document's `GET /product?<toy_name>` (also `?name=` / `?toy=`).
    ProductByQuery,
    /// The seed document's `GET /order?<order_number>` (also `?number=`).
    OrderByQuery,
    Catalog,
    PlaceOrder,
    /// The seed document's `POST /orders/<product name>/<quantity>`.
    PlaceOrderAt,
    Order,
    Invalidate,
    InvalidateMany,
    CacheStats,
    Leader,
    Tick,
    Health,
    OpenApi,
    Trap,
    Spin,
}

/// `POST /invalidate`'s body: the toys one change at the catalog touched, dropped in one call
/// (a batch of orders touches several; a call each cost the catalog and the frontend a whole
/// request per toy).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Invalidations {
    names: Vec<String>,
}

/// More names than a catalog has toys is not a real change (and bounds the work of a call).
const MAX_INVALIDATIONS: usize = 10_000;

/// The route table. Public routes first; the rest only on the internal listener (the router
/// answers them 404 elsewhere, see `toystore_guest::router`).
fn routes(debug_routes: bool) -> Router<Route> {
    let routes = Router::new()
        .get("/products/{name}", Route::Product)
        .get("/product/{name}", Route::Product)
        .get("/product", Route::ProductByQuery)
        // The seed's client "sends a GET request to the server's /lookup endpoint".
        .get("/lookup", Route::ProductByQuery)
        .get("/products", Route::Catalog)
        .post("/orders", Route::PlaceOrder)
        .post("/order", Route::PlaceOrder)
        // `{n}` is the toy's name here: a path parameter keeps one name per position.
        .post("/orders/{n}/{quantity}", Route::PlaceOrderAt)
        .get("/orders/{n}", Route::Order)
        .get("/order/{n}", Route::Order)
        .get("/order", Route::OrderByQuery)
        .get("/health", Route::Health)
        .get("/openapi.json", Route::OpenApi)
        .internal_post("/invalidate/{name}", Route::Invalidate)
        // The seed catalog's spelling of it.
        .internal_post("/invalidation/{name}", Route::Invalidate)
        .internal_post("/invalidate", Route::InvalidateMany)
        .internal_get("/cache/stats", Route::CacheStats)
        .internal_get("/leader", Route::Leader)
        .internal_post("/tick", Route::Tick);
    if debug_routes {
        routes.internal_post("/debug/trap", Route::Trap).internal_post("/debug/spin", Route::Spin)
    } else {
        routes
    }
}

/// One frontend instance.
pub struct Frontend<N> {
    cfg: Config,
    routes: Router<Route>,
    net: N,
    cache: RefCell<ProductCache>,
    leader: Leader,
    /// When the last health check ran (wall-clock ms; 0 = never).
    last_health_check: Cell<u64>,
    clock: fn() -> u64,
}

impl<N: Net> Frontend<N> {
    pub fn new(cfg: Config, net: N) -> Self {
        let ttl_ms = u64::try_from(cfg.cache_ttl.as_millis()).unwrap_or(u64::MAX);
        let cache = ProductCache::new(cfg.cache_enabled, cfg.cache_capacity, ttl_ms);
        let leader = Leader::new(replicas_from(&cfg.order_replicas), cfg.call_timeout, cfg.retry).with_miss_limit(cfg.leader_miss_limit);
        let routes = routes(cfg.debug_routes);
        Self { cfg, routes, net, cache: RefCell::new(cache), leader, last_health_check: Cell::new(0), clock: time::now_millis }
    }

    /// Use `clock` (wall-clock ms) instead of the system clock.
    pub fn with_clock(mut self, clock: fn() -> u64) -> Self {
        self.clock = clock;
        self
    }

    pub fn leader(&self) -> &Leader {
        &self.leader
    }

    /// Drop `name` from the cache (what `POST /invalidate/<name>` does).
    pub fn invalidate(&self, name: &str) {
        self.cache.borrow_mut().invalidate(name);
    }

    pub async fn handle(&self, req: &Request) -> Reply {
        let matched = match self.routes.at(req) {
            Ok(m) => m,
            Err(reply) => return reply,
        };
        match matched.route {
            Route::Product => self.product(matched.param("name")).await,
            Route::ProductByQuery => match req.query_value(&["name", "toy"]) {
                Some(name) => self.product(&name).await,
                None => Reply::bad_request("name the toy: /product?<name>, /product?name=<name> or /product/<name>"),
            },
            Route::OrderByQuery => match req.query_value(&["number", "order_number"]) {
                Some(n) => self.order(&n).await,
                None => Reply::bad_request("name the order: /order?<number>, /order?number=<n> or /order/<n>"),
            },
            Route::Catalog => self.catalog_list().await,
            Route::PlaceOrder => self.place_order(req).await,
            Route::PlaceOrderAt => match order_at(matched.param("n"), matched.param("quantity"), &req.body) {
                Ok((name, quantity)) => self.place(req, name, quantity).await,
                Err(reply) => reply,
            },
            Route::Order => self.order(matched.param("n")).await,
            Route::Invalidate => {
                let name = matched.param("name");
                self.invalidate(name);
                Reply::ok(json!({ "invalidated": name }))
            }
            Route::InvalidateMany => match req.json::<Invalidations>() {
                Ok(Invalidations { names }) if names.len() <= MAX_INVALIDATIONS && names.iter().all(|n| valid_text(n)) => {
                    for name in &names {
                        self.invalidate(name);
                    }
                    Reply::ok(json!({ "invalidated": names }))
                }
                Ok(_) => Reply::bad_request(format!(
                    "`names` must hold at most {MAX_INVALIDATIONS} toy names of 1-{MAX_TEXT} printable characters"
                )),
                Err(reply) => reply,
            },
            Route::CacheStats => Reply::ok(self.cache.borrow().stats_json()),
            Route::Leader => Reply::ok(self.leader.describe()),
            Route::Tick => self.tick().await,
            Route::Health => Reply::ok(json!({ "status": "ok", "service": "frontend" })),
            Route::Trap => panic!("frontend: POST /debug/trap (DEBUG_ROUTES is on)"),
            // Burns CPU without ever calling the host, for the host's spin guard to cut.
            Route::Spin => loop {
                std::hint::black_box(());
            },
            Route::OpenApi => openapi(),
        }
    }

    /// Read-through lookup (see [`crate::cache`] for the race and the staleness bound).
    async fn product(&self, name: &str) -> Reply {
        let lookup = {
            let mut cache = self.cache.borrow_mut();
            // The clock is a host call: a disabled cache needs none.
            let now = if cache.keeps_entries() { (self.clock)() } else { 0 };
            cache.lookup(name, now)
        };
        let ticket = match lookup {
            Lookup::Hit(v) => return Reply::ok_value(v),
            Lookup::Miss(t) => t,
        };
        let url = format!("{}/products/{}", self.cfg.catalog_url, encode_segment(name));
        let r = match self.net.call(Method::GET, &url, None, self.cfg.call_timeout).await {
            Ok(r) => r,
            Err(e) => return Reply::unavailable(format!("catalog unavailable: {e}")),
        };
        match r.status {
            200 => match r.into_data() {
                Some(product) if product.is_object() => {
                    let mut cache = self.cache.borrow_mut();
                    // A disabled cache takes nothing: no copy, no clock.
                    if cache.keeps_entries() {
                        cache.insert(name, product.clone(), ticket, (self.clock)());
                    }
                    Reply::ok_value(product)
                }
                _ => Reply::error(502, "catalog sent an unreadable product"),
            },
            404 => Reply::not_found("product not found"),
            s if s >= 500 => Reply::unavailable(format!("catalog unavailable: {}", r.error_message())),
            _ => pass_through(r),
        }
    }

    async fn catalog_list(&self) -> Reply {
        let url = format!("{}/products", self.cfg.catalog_url);
        match self.net.call(Method::GET, &url, None, self.cfg.call_timeout).await {
            Ok(r) if r.status < 500 => pass_through(r),
            Ok(r) => Reply::unavailable(format!("catalog unavailable: {}", r.error_message())),
            Err(e) => Reply::unavailable(format!("catalog unavailable: {e}")),
        }
    }

    /// `POST /orders`: validate, attach an idempotency key, forward to the leader.
    async fn place_order(&self, req: &Request) -> Reply {
        let (name, quantity) = match ItemRequest::parse(&req.body).map(|i| (i.name, i.quantity)) {
            Ok(o) => o,
            Err(reply) => return reply,
        };
        self.place(req, name, quantity).await
    }

    /// Place a validated order: attach the request's idempotency key (or a new one), forward.
    async fn place(&self, req: &Request, name: String, quantity: u64) -> Reply {
        let key = match req.header("idempotency-key").map(str::trim).filter(|k| !k.is_empty()) {
            Some(k) if k.len() > MAX_KEY_LEN => {
                return Reply::bad_request(format!("Idempotency-Key longer than {MAX_KEY_LEN} characters"))
            }
            Some(k) => k.to_string(),
            None => time::random_key(),
        };
        let body = json!({ "name": name, "quantity": quantity, "key": key });
        let reply =
            self.leader.forward(&self.net, Method::POST, "/orders", Some(body), self.cfg.order_timeout()).await;
        if reply.is_success() {
            // The catalog invalidates too; this makes our own client's next lookup fresh even
            // if that invalidation is late.
            self.invalidate(&name);
        }
        // Every answer names the key (the client's, or the one made up here), so a client whose
        // order timed out or failed with 503 can retry it safely.
        reply.with_header("Idempotency-Key", key)
    }

    /// `GET /orders/<n>` from the leader.
    async fn order(&self, n: &str) -> Reply {
        let Ok(n) = n.parse::<u64>() else {
            return Reply::bad_request("order number must be a non-negative integer");
        };
        let path = format!("/orders/{n}");
        // Past its commit index the leader asks its peers (each with `call_timeout`) before
        // it answers 404: give it the order path's time, or a hung follower would make us
        // drop a healthy leader.
        self.leader.forward(&self.net, Method::GET, &path, None, self.cfg.order_timeout()).await
    }

    /// `POST /tick`: the leader health check, at most every `HEALTH_CHECK_INTERVAL_MS`.
    async fn tick(&self) -> Reply {
        let now = (self.clock)();
        let interval = u64::try_from(self.cfg.health_check_interval.as_millis()).unwrap_or(u64::MAX);
        let last = self.last_health_check.get();
        let checked = last == 0 || now.saturating_sub(last) >= interval || now < last;
        if checked {
            // Set before the await so overlapping ticks do not all ping.
            self.last_health_check.set(now.max(1));
            self.leader.health_check(&self.net).await;
        }
        let mut data = self.leader.describe();
        data["health_checked"] = json!(checked);
        Reply::ok(data)
    }
}

/// The order `POST /orders/<name>/<quantity>` names. The seed document also sends the order as
/// the body; a body, when there is one, must be a valid order naming the same toy and quantity,
/// so the two can never disagree about what was bought.
fn order_at(name: &str, quantity: &str, body: &[u8]) -> Result<(String, u64), Reply> {
    // Through the body's own validation, so both spellings accept exactly the same orders.
    let quantity = quantity.parse::<i64>().map_or_else(|_| serde_json::Value::from(quantity), serde_json::Value::from);
    let at = ItemRequest::parse(json!({ "name": name, "quantity": quantity }).to_string().as_bytes())?;
    if !body.iter().all(u8::is_ascii_whitespace) {
        let sent = ItemRequest::parse(body)?;
        if (sent.name.as_str(), sent.quantity) != (at.name.as_str(), at.quantity) {
            return Err(Reply::bad_request(format!(
                "the body orders {} of {:?} but the path {} of {:?}; send one order",
                sent.quantity, sent.name, at.quantity, at.name
            )));
        }
    }
    Ok((at.name, at.quantity))
}

/// The repository's `openapi.json` (the public API as OpenAPI 3, the same document as
/// `openapi.yaml`), embedded at build time and served as is, not in the envelope.
pub const OPENAPI_JSON: &str = include_str!("../../../openapi.json");

fn openapi() -> Reply {
    match serde_json::from_str(OPENAPI_JSON) {
        Ok(document) => Reply::raw(200, document),
        Err(e) => Reply::internal(format!("the embedded OpenAPI document is not JSON: {e}")),
    }
}

#[cfg(test)]
mod tests;
