//! `GET /metrics` on the admin address: ask the components what only they know (the
//! frontend's cache counters, each replica's `/ping`), hand that to [`metrics`], then answer
//! everything in the OpenMetrics text format.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::join_all;
use http::{header, HeaderValue, Method};
use serde_json::Value;
use toystore_api::ReplicaPing;

use crate::net::body::{full_body, Response};
use crate::ops::metrics;
use crate::service::Service;
use crate::wasm::supervisor::State;

/// How long one component may take to answer a scrape before it counts as not answering.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(1);

/// Refresh what the components know (cache counters, leader, epoch, lag, last contact).
pub async fn scrape(services: &[Arc<Service>]) {
    let frontend = services.iter().find(|s| s.name() == metrics::FRONTEND);
    let replicas: Vec<_> = services.iter().filter_map(|s| Some((s.spec.replica_id()?, s))).collect();
    let cache_stats = async {
        match frontend {
            Some(f) => call_data(f, "/cache/stats").await,
            None => None,
        }
    };
    let pings = join_all(replicas.iter().map(|(id, s)| async move { (*id, ping(s).await) }));
    let (cache_stats, pings) = futures::join!(cache_stats, pings);
    metrics::observe_cache(cache_stats.as_ref());
    metrics::observe_replicas(&pings);
}

/// A running replica's `GET /ping`. One that does not read as a [`ReplicaPing`] (a replica of
/// another version) counts as no answer.
async fn ping(service: &Service) -> Option<ReplicaPing> {
    serde_json::from_value(call_data(service, "/ping").await?).ok()
}

/// The `data` of a successful answer of a running service to `GET path`.
async fn call_data(service: &Service, path: &str) -> Option<Value> {
    if service.state() != State::Running {
        return None;
    }
    let (status, body) = service.call(Method::GET, path, SCRAPE_TIMEOUT).await.ok()?;
    if !status.is_success() {
        return None;
    }
    serde_json::from_slice::<Value>(&body).ok()?.get("data").cloned()
}

/// `GET /metrics`: scrape the components, then answer everything in the OpenMetrics text format.
pub async fn respond(services: &[Arc<Service>]) -> Response {
    scrape(services).await;
    let mut response = http::Response::new(full_body(Bytes::from(metrics::render())));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(metrics::CONTENT_TYPE));
    response
}
