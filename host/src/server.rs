//! The HTTP side: a hyper (HTTP/1.1, keep-alive) listener per service, and the admin endpoint
//! on the same accept loop.
//!
//! For a service, [`forward`] turns each request into a [`Job`] for the service's instance and
//! waits for the answer. It marks the request with the listener it arrived on ([`mark`]: the
//! `toystore-listener` header, any client-sent copy removed first), which is how the frontend
//! tells its public listener from its internal one without trusting the client. Two limits keep a flood from piling up unbounded work in the instance:
//! a semaphore of requests in flight and a bounded job queue; beyond either the caller gets
//! 503 at once. Health checks (`GET /ping`, `GET /health`: [`is_probe`]) do not count against
//! the first limit but against a small one of their own: a replica with every slot taken by
//! orders is busy, not dead, and must still tell the frontend so — a 503 to its leader check
//! would look like a crash and start a fail-over exactly when the store is most loaded. The
//! components answer both from memory, so exempting them adds no real work.
//!
//! Every error a client can get is a JSON envelope: request heads are checked by
//! [`head::Guarded`] before hyper sees them (malformed → 400, target over `head::URI_LIMIT` →
//! 414, head over `head::HEAD_LIMIT` → 431, head not finished within `head::HEAD_READ_TIMEOUT`
//! → 408), and a body over [`BODY_LIMIT`] gets 413.
//!
//! The accept loop owns its connections (a `JoinSet`), so aborting the loop's task cuts every
//! open connection too, which is what killing a replica means. A shutdown signal instead stops
//! accepting and lets each connection finish its current request.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;

use futures::FutureExt;

use crate::head;
use crate::instance::{Job, Response};
use crate::manifest::Listener;
use crate::pause;
use wasmtime_wasi_http::WasiBody;
use crate::reply;
use crate::supervisor::Status;

/// Largest request body a service accepts; a larger one gets 413 before it reaches the guest.
pub const BODY_LIMIT: u64 = 1024 * 1024;
/// How long an idle keep-alive connection (no request head started) stays open.
const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Bind `addr` with SO_REUSEADDR, so a restarted replica can take its port back at once even
/// while connections of the killed one linger in TIME_WAIT.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// [`bind`], as a std listener not yet tied to any runtime: a service's listener must be
/// registered with the runtime on the service's own thread, where it is polled, so that its
/// wake-ups stay on that thread.
pub fn bind_std(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    bind(addr)?.into_std()
}

/// What a listener does with a request.
pub type Handler = Arc<dyn Fn(hyper::Request<Incoming>) -> Pin<Box<dyn Future<Output = Response> + Send>> + Send + Sync>;

/// Where a public listener's connections beyond its first [`Spill::in_thread`] are served: a
/// helper thread next to the instance's (internal listeners keep every connection on the
/// instance's thread; `service::IN_THREAD_CONNECTIONS` says why).
///
/// A connection served on the instance's own thread costs no hand-over between threads: its
/// request goes into the job queue and its answer comes back within the thread. But then that
/// one thread also does all the socket and HTTP work, which caps the service at one core. A
/// few connections (a client or two) stay on the instance's thread, where each request is
/// cheapest; more than that means load, and the socket and HTTP work of the others runs on
/// the helper, in parallel with the guest code (hello under wrk at 32
/// connections: the instance's thread was at 100 % of a core with a third of the machine idle;
/// see eval/notes-i11-session4.md).
#[derive(Clone)]
pub struct Spill {
    pub in_thread: usize,
    pub helper: tokio::runtime::Handle,
}

/// Counts a connection served on the accept loop's own thread while it lives.
struct InThread(Arc<AtomicUsize>);

impl InThread {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count.clone())
    }
}

impl Drop for InThread {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Accept connections on `listener` and serve them with `handler` until `shutdown` turns true;
/// then stop accepting and wait for the open connections to finish their current request.
/// With `spill`, connections beyond its first ones are served on its helper thread.
pub async fn accept_loop(
    name: Arc<str>,
    listener: TcpListener,
    handler: Handler,
    mut shutdown: watch::Receiver<bool>,
    spill: Option<Spill>,
) {
    // Owns every connection, on whichever thread it runs: aborting the loop cuts them all.
    let mut connections = JoinSet::new();
    let in_thread = Arc::new(AtomicUsize::new(0));
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let connection = serve_connection(name.clone(), stream, peer, handler.clone(), shutdown.clone());
                    match &spill {
                        Some(spill) if in_thread.load(Ordering::Relaxed) >= spill.in_thread => {
                            connections.spawn_on(connection, &spill.helper);
                        }
                        _ => {
                            let counted = InThread::new(&in_thread);
                            connections.spawn(async move {
                                let _counted = counted;
                                connection.await
                            });
                        }
                    }
                }
                // E.g. out of file descriptors: log, breathe, keep going.
                Err(e) => {
                    tracing::warn!(service = %name, error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            _ = stopped(&mut shutdown) => break,
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next() => {}
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// Resolves once shutdown is signalled (or its sender is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Serve one connection. Its request heads pass [`head::Guarded`] first; when that refuses
/// one, hyper is done with the connection once it has answered everything before it, and the
/// refusal is written here, as a JSON error, before closing.
async fn serve_connection(
    name: Arc<str>,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    handler: Handler,
    mut shutdown: watch::Receiver<bool>,
) {
    let service = service_fn(move |request| handler(request).map(Ok::<_, Infallible>));
    let mut connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .keep_alive(true)
        // An idle keep-alive connection is closed after this (hyper's default, made explicit).
        .header_read_timeout(IDLE_TIMEOUT)
        // A refused head looks to hyper like the client closing its side: the responses owed
        // for the requests before it must still go out.
        .half_close(true)
        .serve_connection(TokioIo::new(head::Guarded::new(stream)), service);
    let result = tokio::select! {
        result = std::future::poll_fn(|cx| connection.poll_without_shutdown(cx)) => result,
        _ = stopped(&mut shutdown) => {
            Pin::new(&mut connection).graceful_shutdown();
            std::future::poll_fn(|cx| connection.poll_without_shutdown(cx)).await
        }
    };
    if let Err(e) = result {
        // Clients that hang up mid-request are routine; not worth more than debug.
        tracing::debug!(service = %name, %peer, error = %e, "connection ended with an error");
        return;
    }
    let (mut stream, rejection) = connection.into_parts().io.into_inner().into_parts();
    if let Some(rejection) = rejection {
        tracing::debug!(service = %name, %peer, status = %rejection.status, message = %rejection.message, "request head refused");
        if let Err(e) = rejection.write_to(&mut stream).await {
            tracing::debug!(service = %name, %peer, error = %e, "cannot write the refusal");
        }
    }
}

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
        Ok(collected) => Ok(crate::instance::full_body(collected.to_bytes())),
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
    pub status: Arc<Status>,
}

/// One listener of a service: which one it is, and its address as a URI authority (made once:
/// the URL of every request it forwards is built from it).
pub struct Door {
    pub listener: Listener,
    pub authority: http::uri::Authority,
}

/// Mark a request as arriving on `listener`: every copy of the marker header a client may have
/// sent is removed, then the host's own is set. Components trust only this one (see
/// `toystore_manifest::listener`).
pub fn mark(headers: &mut http::HeaderMap, listener: Listener) {
    headers.remove(toystore_manifest::LISTENER_HEADER);
    headers.insert(toystore_manifest::LISTENER_HEADER, http::HeaderValue::from_static(listener.as_str()));
}

/// A health check: `GET /ping` or `GET /health` (any query). See the module docs for why
/// these have an in-flight limit of their own.
pub fn is_probe(method: &http::Method, path: &str) -> bool {
    method == http::Method::GET && matches!(path, "/ping" | "/health")
}

/// Where a service's requests enter through one of its doors, whichever way they came: the
/// door's listener (after hyper), or a component of the same host handing one over in process
/// ([`crate::local`]) to the door's address. Both take the same path from here: measured, held
/// while paused, then [`forward`]ed and marked with the door's listener.
pub struct Entry {
    pub gate: Arc<Gate>,
    pub door: Arc<Door>,
    pub paused: watch::Receiver<bool>,
}

impl Entry {
    pub async fn handle<B>(self: Arc<Self>, request: http::Request<B>) -> Response
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error> + Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let name = self.gate.name.clone();
        crate::metrics::measure(name, request, move |request| async move {
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
        crate::metrics::busy(&gate.name);
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
        if matches!(e, mpsc::error::TrySendError::Full(_)) { crate::metrics::busy(&gate.name); }
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
                crate::spin::SPIN_LIMIT
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
