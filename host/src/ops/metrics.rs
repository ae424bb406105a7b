//! Prometheus metrics (`GET /metrics` on the admin address), behind one small API so the
//! serving path only needs one-line hooks.
//!
//! Two sources, chosen so each number comes from whoever really knows it:
//! - **measured by the host at its boundary** (always exact, no guest cooperation): every
//!   request a service's listener forwards ([`measure`]: count and latency per service,
//!   route, method and status; orders committed and rejected at the public frontend), requests
//!   refused as busy ([`busy`]), instance restarts by cause ([`restarted`]), paused services
//!   ([`paused`]), and toys restocked
//!   (the catalog's `POST /tick` / `POST /restock` answers, [`restocked`]);
//! - **scraped from the components when `/metrics` is read** (`ops::scrape` asks them, and
//!   hands the answers to [`observe_cache`] and [`observe_replicas`]): the frontend's cache
//!   counters (`GET /cache/stats`) and each replica's `/ping` (leader, epoch, last order), from
//!   which the host derives per-follower lag and last contact.
//!
//! This module imports nothing else of the host but the response type, so that every layer
//! (the entry, the supervisor, a service) can call its one-line hooks.
//!
//! Label cardinality stays bounded: a path is reduced to its route (`/products/Tux` →
//! `/products/<name>`, unknown paths → `other`) by [`route_of`].

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use serde_json::Value;

use toystore_api::{ReplicaPing, ReplicaRole};

use crate::net::body::Response;

/// The content type of [`render`]'s output (OpenMetrics text, which Prometheus scrapes natively).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The public entry, where orders are counted once (the leader's own `POST /orders` is an
/// internal hop of the same order).
pub const FRONTEND: &str = "frontend";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    service: String,
    method: String,
    route: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabel {
    service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RestartLabels {
    service: String,
    cause: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabel {
    event: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReplicaLabel {
    replica: String,
}

/// Why an instance was replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartCause {
    /// The guest trapped (a panic, an out-of-bounds access, ...).
    Trap,
    /// Killed from outside (`POST /replicas/<id>/kill`, `.../restart`).
    Kill,
    /// Cut by the spin guard (a guest call that ran past `spin::SPIN_LIMIT` without calling the host).
    Spin,
    /// Any other failure (instantiation, data directory).
    Other,
}

impl RestartCause {
    const ALL: [RestartCause; 4] = [Self::Trap, Self::Kill, Self::Spin, Self::Other];

    fn label(self) -> &'static str {
        match self {
            Self::Trap => "trap",
            Self::Kill => "kill",
            Self::Spin => "spin",
            Self::Other => "other",
        }
    }
}

type LatencyFamily = Family<RequestLabels, Histogram, fn() -> Histogram>;
type FloatGauge = Gauge<f64, AtomicU64>;

struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: LatencyFamily,
    busy: Family<ServiceLabel, Counter>,
    restarts: Family<RestartLabels, Counter>,
    committed: Counter,
    rejected: Family<ReasonLabel, Counter>,
    restocks: Counter,
    cache: Family<EventLabel, Counter>,
    leader: Gauge,
    epoch: Gauge,
    last_order: Family<ReplicaLabel, Gauge>,
    lag: Family<ReplicaLabel, Gauge>,
    last_contact: Family<ReplicaLabel, FloatGauge>,
    up: Family<ReplicaLabel, Gauge>,
    paused: Family<ServiceLabel, Gauge>,
    local_calls: Family<ServiceLabel, Counter>,
    /// What the previous scrape saw, to turn component counters into increases.
    seen: Mutex<Seen>,
}

/// Where a replica's log ends, as its `/ping` says.
#[derive(Debug, Clone, Copy)]
struct Position {
    /// Index of the last record (lag is counted in records).
    record: i64,
    /// Number of the last order.
    order: i64,
}

#[derive(Default)]
struct Seen {
    cache: HashMap<&'static str, u64>,
    /// Per replica: when its `/ping` last answered, and where it said its log ends.
    replicas: HashMap<u32, (Instant, Position)>,
}

fn latency_histogram() -> Histogram {
    // 0.25 ms .. ~4 s.
    Histogram::new(exponential_buckets(0.00025, 2.0, 15))
}

/// The cache counters copied from the frontend's `GET /cache/stats`.
const CACHE_EVENTS: [&str; 4] = ["hits", "misses", "evictions", "invalidations"];

fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let mut registry = Registry::with_prefix("toystore");
        let m = Metrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            busy: Family::default(),
            restarts: Family::default(),
            committed: Counter::default(),
            rejected: Family::default(),
            restocks: Counter::default(),
            cache: Family::default(),
            leader: Gauge::default(),
            epoch: Gauge::default(),
            last_order: Family::default(),
            lag: Family::default(),
            last_contact: Family::default(),
            up: Family::default(),
            paused: Family::default(),
            local_calls: Family::default(),
            seen: Mutex::new(Seen::default()),
            registry: Registry::default(),
        };
        registry.register("requests", "Requests answered, per service, method, route and status", m.requests.clone());
        registry.register("request_duration_seconds", "Request latency at the host boundary", m.latency.clone());
        registry.register("busy_rejections", "Requests refused with 503 because the service was busy", m.busy.clone());
        registry.register("instance_restarts", "Instances replaced, by cause (trap, kill, spin, other)", m.restarts.clone());
        registry.register("orders_committed", "Orders the frontend answered with success", m.committed.clone());
        registry.register("orders_rejected", "Orders the frontend refused, by reason (from the status)", m.rejected.clone());
        registry.register("restocks", "Toys restocked by the catalog", m.restocks.clone());
        registry.register("cache_events", "Frontend product cache: hits, misses, evictions, invalidations", m.cache.clone());
        registry.register("order_leader", "Order replica that leads (0 = none)", m.leader.clone());
        registry.register("order_epoch", "Epoch of the current order leader", m.epoch.clone());
        registry.register("replica_last_order", "Last order number in each replica's log (-1: none)", m.last_order.clone());
        registry.register("replica_lag_records", "Log records (orders and epoch records) each replica is behind the leader", m.lag.clone());
        registry.register(
            "replica_last_contact_seconds",
            "Seconds since each replica last answered the host's /ping",
            m.last_contact.clone(),
        );
        registry.register("replica_up", "1 if the replica answered /ping at the last scrape", m.up.clone());
        registry.register("paused", "1 while the service is paused by the admin endpoint", m.paused.clone());
        registry.register(
            "local_calls",
            "Requests a service took in process from another service of this host (local_calls = direct)",
            m.local_calls.clone(),
        );
        for event in CACHE_EVENTS {
            drop(m.cache.get_or_create(&EventLabel { event: event.into() }));
        }
        Metrics { registry, ..m }
    })
}

/// Declare the series of one service at 0, so the first event is visible as an increase.
pub fn register_service(service: &str) {
    let m = metrics();
    for cause in RestartCause::ALL {
        drop(m.restarts.get_or_create(&RestartLabels { service: service.into(), cause: cause.label().into() }));
    }
    drop(m.busy.get_or_create(&ServiceLabel { service: service.into() }));
    drop(m.paused.get_or_create(&ServiceLabel { service: service.into() }));
    drop(m.local_calls.get_or_create(&ServiceLabel { service: service.into() }));
}

/// `service` took a request in process (`local_calls = "direct"`, hook in `local::serve_calls`);
/// it is also counted in `requests` like any other.
pub fn local_call(service: &str) {
    metrics().local_calls.get_or_create(&ServiceLabel { service: service.into() }).inc();
}

/// `service` was paused or resumed (hooks in `Service::pause`, `resume`, `kill`, `stop`).
pub fn paused(service: &str, paused: bool) {
    metrics().paused.get_or_create(&ServiceLabel { service: service.into() }).set(i64::from(paused));
}

/// One request a service's listener answered.
fn record(service: &str, method: &Method, route: &'static str, status: StatusCode, elapsed: Duration) {
    let m = metrics();
    let labels = RequestLabels {
        service: service.into(),
        method: method.as_str().into(),
        route: route.into(),
        status: status.as_str().into(),
    };
    m.requests.get_or_create(&labels).inc();
    m.latency.get_or_create(&labels).observe(elapsed.as_secs_f64());
    if places_order(service, method, route) {
        match rejection_reason(status) {
            None => {
                m.committed.inc();
            }
            Some(reason) => {
                m.rejected.get_or_create(&ReasonLabel { reason: reason.into() }).inc();
            }
        }
    }
}

/// A request refused with 503 because the service was busy (hook in `server::forward`).
pub fn busy(service: &str) {
    metrics().busy.get_or_create(&ServiceLabel { service: service.into() }).inc();
}

/// An instance of `service` was replaced (hooks in the supervisor and `Service::kill`).
pub fn restarted(service: &str, cause: RestartCause) {
    metrics().restarts.get_or_create(&RestartLabels { service: service.into(), cause: cause.label().into() }).inc();
}

/// A catalog answer to `POST /tick` or `POST /restock`: `{"data": {"restocked": [names]}}`.
pub fn restocked(body: &[u8]) {
    let Ok(body) = serde_json::from_slice::<Value>(body) else { return };
    if let Some(names) = body.pointer("/data/restocked").and_then(Value::as_array) {
        metrics().restocks.inc_by(names.len() as u64);
    }
}

/// Why an order was refused, from the frontend's status (a type, not the message text).
fn rejection_reason(status: StatusCode) -> Option<&'static str> {
    match status.as_u16() {
        200..=299 => None,
        // Invalid input, or not enough stock (the catalog answers both with 400).
        400 => Some("invalid_or_out_of_stock"),
        404 => Some("unknown_product"),
        409 => Some("conflict"),
        503 => Some("unavailable"),
        400..=499 => Some("client_error"),
        _ => Some("server_error"),
    }
}

/// The route a path belongs to, with its parameters replaced by `<name>`-style placeholders,
/// so label values stay a small fixed set whatever clients send.
pub fn route_of(path: &str) -> &'static str {
    let path = path.split('?').next().unwrap_or("");
    // At most three segments matter; no allocation on the request path.
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    match (segments.next(), segments.next(), segments.next()) {
        (None, ..) => "/",
        (Some(first), None, _) => match first {
            "products" => "/products",
            "product" => "/product",
            "orders" => "/orders",
            "order" => "/order",
            "openapi.json" => "/openapi.json",
            "leader" => "/leader",
            "health" => "/health",
            "ping" => "/ping",
            "tick" => "/tick",
            "stock" => "/stock",
            "apply" => "/apply",
            "restock" => "/restock",
            "leaderselection" => "/leaderselection",
            "inform_replica" => "/inform_replica",
            "fence" => "/fence",
            "replicate_order" => "/replicate_order",
            "get_last_order_number" => "/get_last_order_number",
            "invalidate" => "/invalidate",
            "lookup" => "/lookup",
            "synchronize" => "/synchronize",
            _ => "other",
        },
        (Some(first), Some(second), None) => match (first, second) {
            ("products", _) => "/products/<name>",
            ("product", _) => "/product/<name>",
            ("orders", _) => "/orders/<number>",
            ("order", _) => "/order/<number>",
            ("invalidate", _) => "/invalidate/<name>",
            ("invalidation", _) => "/invalidation/<name>",
            ("cache", "stats") => "/cache/stats",
            ("get_missed_orders", _) => "/get_missed_orders/<number>",
            ("debug", "trap") => "/debug/trap",
            ("debug", "spin") => "/debug/spin",
            _ => "other",
        },
        (Some("orders"), Some(_), Some(_)) if segments.next().is_none() => "/orders/<name>/<quantity>",
        _ => "other",
    }
}

/// Is this request a client placing an order at the frontend (any spelling)?
fn places_order(service: &str, method: &Method, route: &str) -> bool {
    service == FRONTEND && method == Method::POST && matches!(route, "/orders" | "/order" | "/orders/<name>/<quantity>")
}

/// Record what the frontend's `GET /cache/stats` said (`None`: it did not answer). Component
/// counters restart from zero with their instance; only the increase since the previous
/// observation is added, so the exported counters never go down.
pub fn observe_cache(stats: Option<&Value>) {
    let Some(stats) = stats else { return };
    let m = metrics();
    let mut seen = m.seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    for event in CACHE_EVENTS {
        let now = stats.get(event).and_then(Value::as_u64).unwrap_or(0);
        let before = seen.cache.insert(event, now).unwrap_or(0);
        // A smaller value means the frontend restarted and counts from zero again.
        let increase = if now >= before { now - before } else { now };
        m.cache.get_or_create(&EventLabel { event: event.into() }).inc_by(increase);
    }
}

/// Record what each replica's `GET /ping` said (`None`: it did not answer): who is up, the
/// leader and its epoch, each replica's last order, its lag behind the leader and how long ago
/// it last answered.
pub fn observe_replicas(pings: &[(u32, Option<ReplicaPing>)]) {
    let m = metrics();
    let mut seen = m.seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut leader = None;
    for (id, ping) in pings {
        let label = ReplicaLabel { replica: id.to_string() };
        m.up.get_or_create(&label).set(i64::from(ping.is_some()));
        let Some(ping) = ping else { continue };
        // -1 (an empty log) reads as "nothing yet".
        let last = Position { record: ping.last, order: ping.last_order };
        seen.replicas.insert(*id, (Instant::now(), last));
        if ping.role == ReplicaRole::Leader {
            leader = Some((*id, i64::try_from(ping.epoch).unwrap_or(i64::MAX), last));
        }
    }
    m.leader.set(leader.map_or(0, |(id, _, _)| i64::from(id)));
    if let Some((_, epoch, _)) = leader {
        m.epoch.set(epoch);
    }
    for (id, _) in pings {
        let label = ReplicaLabel { replica: id.to_string() };
        let Some(&(contact, last)) = seen.replicas.get(id) else { continue };
        m.last_order.get_or_create(&label).set(last.order);
        m.last_contact.get_or_create(&label).set(contact.elapsed().as_secs_f64());
        if let Some((_, _, leader_last)) = leader {
            m.lag.get_or_create(&label).set((leader_last.record - last.record).max(0));
        }
    }
}

/// Run `serve` on `request` and record the request (the hook on every service's entry: its
/// listener, and the in-process path of `local_calls = "direct"`).
pub async fn measure<B, F>(
    service: Arc<str>,
    request: http::Request<B>,
    serve: impl FnOnce(http::Request<B>) -> F,
) -> Response
where
    F: Future<Output = Response>,
{
    let started = Instant::now();
    let method = request.method().clone();
    let route = route_of(request.uri().path());
    let response = serve(request).await;
    record(&service, &method, route, response.status(), started.elapsed());
    response
}

/// Everything, in the OpenMetrics text format.
pub fn render() -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &metrics().registry);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_replace_parameters_and_bound_unknown_paths() {
        assert_eq!(route_of("/products/Tux"), "/products/<name>");
        assert_eq!(route_of("/orders/17?x=1"), "/orders/<number>");
        assert_eq!(route_of("/orders"), "/orders");
        assert_eq!(route_of("/stock"), "/stock");
        assert_eq!(route_of("/apply"), "/apply");
        assert_eq!(route_of("/invalidate"), "/invalidate");
        assert_eq!(route_of("/invalidate/Tux"), "/invalidate/<name>");
        assert_eq!(route_of("/buy"), "other", "not a route of the store");
        assert_eq!(route_of("/"), "/");
        assert_eq!(route_of("/no/such/thing"), "other");
        assert_eq!(route_of("/random-junk-123"), "other");
        // The seed document's spellings are routes of their own, not "other".
        assert_eq!(route_of("/product?Tux"), "/product");
        assert_eq!(route_of("/order?3"), "/order");
        assert_eq!(route_of("/order/3"), "/order/<number>");
        assert_eq!(route_of("/openapi.json"), "/openapi.json");
        assert_eq!(route_of("/a/b/c"), "other");
        assert_eq!(route_of("/lookup?Tux"), "/lookup");
        assert_eq!(route_of("/invalidation/Tux"), "/invalidation/<name>");
        assert_eq!(route_of("/synchronize"), "/synchronize");
        assert_eq!(route_of("/orders/Tux/2"), "/orders/<name>/<quantity>");
        assert_eq!(route_of("/orders/Tux/2/3"), "other");
    }

    #[test]
    fn orders_are_counted_under_both_spellings() {
        assert!(places_order(FRONTEND, &Method::POST, route_of("/orders")));
        assert!(places_order(FRONTEND, &Method::POST, route_of("/order")));
        assert!(places_order(FRONTEND, &Method::POST, route_of("/orders/Tux/2")));
        assert!(!places_order(FRONTEND, &Method::GET, route_of("/order?3")));
        assert!(!places_order("order-1", &Method::POST, route_of("/orders")));
    }

    #[test]
    fn order_outcomes_follow_the_status() {
        assert_eq!(rejection_reason(StatusCode::OK), None);
        assert_eq!(rejection_reason(StatusCode::NOT_FOUND), Some("unknown_product"));
        assert_eq!(rejection_reason(StatusCode::SERVICE_UNAVAILABLE), Some("unavailable"));
    }
}
