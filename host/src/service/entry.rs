//! A service's entry: where its requests go in, whichever way they came (one of its listeners,
//! or a component of the same host handing one over in process), and how each becomes a
//! [`Job`] for its instance.
//!
//! [`forward`] marks the request with the listener it arrived on ([`mark`]: the
//! `toystore-listener` header, any client-sent copy removed first), which is how the frontend
//! tells its public listener from its internal one without trusting the client. Two limits
//! keep a flood from piling up unbounded work in the instance: a semaphore of requests in
//! flight and a bounded job queue; beyond either the caller gets 503 at once. Health checks
//! (`GET /ping`, `GET /health`: [`is_probe`]) do not count against the first limit but against
//! a small one of their own: a replica with every slot taken by orders is busy, not dead, and
//! must still tell the frontend so — a 503 to its leader check would look like a crash and
//! start a fail-over exactly when the store is most loaded. The components answer both from
//! memory, so exempting them adds no real work. A body over [`BODY_LIMIT`] gets 413.

use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::BodyExt;
use hyper::body::Body;
use tokio::sync::{mpsc, watch, Semaphore};
use wasmtime_wasi_http::WasiBody;

use crate::net::body::{full_body, Response};
use crate::net::marker::mark;
use crate::net::reply;
use toystore_manifest::resolve::Listener;
use crate::ops::{metrics, pause};
use crate::wasm::instance::Job;
use crate::wasm::spin_guard::SPIN_LIMIT;
use crate::wasm::supervisor::ServiceStatus;

/// Largest request body a service accepts; a larger one gets 413 before it reaches the guest.
pub const BODY_LIMIT: u64 = 1024 * 1024;

/// Refuse a body over [`BODY_LIMIT`] with 413. A body of declared length streams on to the
/// guest; one without (chunked, or a component's request handed over in process) is read here
/// first, up to the limit.
async fn limit_body<B>(body: B) -> Result<WasiBody, Response>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<wasmtime_wasi_http::Error> + Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let too_large = || reply::error(StatusCode::PAYLOAD_TOO_LARGE, format!("request body larger than {BODY_LIMIT} bytes"));
    if let Some(length) = body.size_hint().exact() {
        if length > BODY_LIMIT {
            return Err(too_large());
        }
        return Ok(body.map_err(Into::into).boxed_unsync());
    }
    match http_body_util::Limited::new(body, BODY_LIMIT as usize).collect().await {
        Ok(collected) => Ok(full_body(collected.to_bytes())),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(reply::error(StatusCode::BAD_REQUEST, format!("cannot read the request body: {e}"))),
    }
}

/// The entry to one service's instance: its job queue and in-flight limit, shared by all of
/// its listeners.
pub struct Gate {
    pub name: Arc<str>,
    pub jobs: mpsc::Sender<Job>,
    pub permits: Arc<Semaphore>,
    /// The separate, smaller limit of health checks in flight ([`is_probe`]).
    pub probe_permits: Arc<Semaphore>,
    /// The service's status, to tell a request cut by the spin guard from one lost in a crash.
    pub status: Arc<ServiceStatus>,
}

/// One listener of a service: which one it is, and its address as a URI authority (made once:
/// the URL of every request it forwards is built from it).
pub struct Door {
    pub listener: Listener,
    pub authority: http::uri::Authority,
}

/// A health check: `GET /ping` or `GET /health` (any query). See the module docs for why
/// these have an in-flight limit of their own.
pub fn is_probe(method: &http::Method, path: &str) -> bool {
    method == http::Method::GET && matches!(path, "/ping" | "/health")
}

/// Where a service's requests enter through one of its doors, whichever way they came: the
/// door's listener (after hyper), or a component of the same host handing one over in process
/// (`service::inbox`) to the door's address. Both take the same path from here: measured, held
/// while paused, then [`forward`]ed and marked with the door's listener.
pub struct Entrance {
    pub gate: Arc<Gate>,
    pub door: Arc<Door>,
    pub paused: watch::Receiver<bool>,
}

impl Entrance {
    pub async fn handle<B>(self: Arc<Self>, request: http::Request<B>) -> Response
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error> + Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let name = self.gate.name.clone();
        metrics::measure(name, request, move |request| async move {
            let mut paused = self.paused.clone();
            pause::wait_resumed(&mut paused).await;
            forward(&self.gate, &self.door, request).await
        })
        .await
    }
}

/// Hand one request, which arrived at `door`, to the service's instance and wait for its
/// response.
pub async fn forward<B>(gate: &Gate, door: &Door, request: http::Request<B>) -> Response
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<wasmtime_wasi_http::Error> + Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let permits = if is_probe(request.method(), request.uri().path()) { &gate.probe_permits } else { &gate.permits };
    let Ok(_permit) = permits.clone().try_acquire_owned() else {
        metrics::busy(&gate.name);
        return reply::error(StatusCode::SERVICE_UNAVAILABLE, format!("{} is busy: too many requests in flight", gate.name));
    };
    let (mut parts, body) = request.into_parts();
    mark(&mut parts.headers, door.listener);
    let body = match limit_body(body).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    // Requests arrive origin-form (`/products/Tux`); the guest gets the full URL it was
    // addressed by, as under `wasmtime serve`. Built from parts: no formatting or re-parsing.
    // One handed over in process already carries it.
    let addressed = parts.uri.scheme() == Some(&http::uri::Scheme::HTTP) && parts.uri.authority() == Some(&door.authority);
    if !addressed {
        parts.uri = match origin_to_absolute(door, std::mem::take(&mut parts.uri)) {
            Ok(uri) => uri,
            Err(e) => return reply::error(StatusCode::BAD_REQUEST, format!("invalid request target: {e}")),
        };
    }
    let (job, receiver) = Job::new(http::Request::from_parts(parts, body));
    let spin_cuts_before = gate.status.spin_cuts();
    if let Err(e) = gate.jobs.try_send(job) {
        if matches!(e, mpsc::error::TrySendError::Full(_)) { metrics::busy(&gate.name); }
        let why = match e {
            mpsc::error::TrySendError::Full(_) => "is busy: its request queue is full",
            mpsc::error::TrySendError::Closed(_) => "is not running",
        };
        return reply::error(StatusCode::SERVICE_UNAVAILABLE, format!("{} {why}", gate.name));
    }
    match receiver.await {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => {
            tracing::debug!(service = %gate.name, error = %format!("{e:#}"), "guest produced no response");
            reply::error(StatusCode::INTERNAL_SERVER_ERROR, format!("{} failed to answer: {e:#}", gate.name))
        }
        Err(_cancelled) if gate.status.spin_cuts() > spin_cuts_before => reply::error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "{} was cut off: a request kept it busy for over {:?} (spinning); it is being restarted",
                gate.name,
                SPIN_LIMIT
            ),
        ),
        Err(_cancelled) => reply::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{} crashed while handling the request; it is being restarted", gate.name),
        ),
    }
}

/// `http://{the service's address}{path and query of uri}`.
fn origin_to_absolute(door: &Door, uri: http::Uri) -> Result<http::Uri, http::uri::InvalidUriParts> {
    let mut uri = uri.into_parts();
    uri.scheme = Some(http::uri::Scheme::HTTP);
    uri.authority = Some(door.authority.clone());
    if uri.path_and_query.is_none() {
        uri.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    http::Uri::from_parts(uri)
}

#[cfg(test)]
mod tests {
    use super::is_probe;
    use http::Method;

    #[test]
    fn only_health_checks_are_probes() {
        assert!(is_probe(&Method::GET, "/ping"));
        assert!(is_probe(&Method::GET, "/health"));
        assert!(!is_probe(&Method::POST, "/ping"));
        assert!(!is_probe(&Method::GET, "/ping/x"));
        assert!(!is_probe(&Method::GET, "/orders"));
    }
}
