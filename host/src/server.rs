//! The HTTP side: a hyper (HTTP/1.1, keep-alive) listener per service, and the admin endpoint
//! on the same accept loop.
//!
//! For a service, [`forward`] turns each request into a [`Job`] for the service's instance and
//! waits for the answer. Two limits keep a flood from piling up unbounded work in the instance:
//! a semaphore of requests in flight and a bounded job queue; beyond either the caller gets
//! 503 at once.
//!
//! The accept loop owns its connections (a `JoinSet`), so aborting the loop's task cuts every
//! open connection too, which is what killing a replica means. A shutdown signal instead stops
//! accepting and lets each connection finish its current request.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use http::StatusCode;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;

use crate::instance::{Job, Response};
use crate::reply;
use crate::supervisor::Status;

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

/// Accept connections on `listener` and serve them with `handler` until `shutdown` turns true;
/// then stop accepting and wait for the open connections to finish their current request.
pub async fn accept_loop(name: Arc<str>, listener: TcpListener, handler: Handler, mut shutdown: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    connections.spawn(serve_connection(name.clone(), stream, peer, handler.clone(), shutdown.clone()));
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

async fn serve_connection(
    name: Arc<str>,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    handler: Handler,
    mut shutdown: watch::Receiver<bool>,
) {
    let service = service_fn(move |request| {
        let response = handler(request);
        async move { Ok::<_, Infallible>(response.await) }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = stopped(&mut shutdown) => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        // Clients that hang up mid-request are routine; not worth more than debug.
        tracing::debug!(service = %name, %peer, error = %e, "connection ended with an error");
    }
}

/// The entry to one service's instance: its job queue and in-flight limit.
pub struct Gate {
    pub name: Arc<str>,
    /// `listen` as a URI authority, made once: every request's URL is built from it.
    pub authority: http::uri::Authority,
    pub jobs: mpsc::Sender<Job>,
    pub permits: Arc<Semaphore>,
    /// The service's status, to tell a request cut by the spin guard from one lost in a crash.
    pub status: Arc<Status>,
}

/// Hand one incoming request to the service's instance and wait for its response.
pub async fn forward(gate: Arc<Gate>, request: hyper::Request<Incoming>) -> Response {
    let Ok(_permit) = gate.permits.clone().try_acquire_owned() else {
        return reply::error(StatusCode::SERVICE_UNAVAILABLE, format!("{} is busy: too many requests in flight", gate.name));
    };
    let (mut parts, body) = request.into_parts();
    // Requests arrive origin-form (`/products/Tux`); the guest gets the full URL it was
    // addressed by, as under `wasmtime serve`. Built from parts: no formatting or re-parsing.
    let mut uri = std::mem::take(&mut parts.uri).into_parts();
    uri.scheme = Some(http::uri::Scheme::HTTP);
    uri.authority = Some(gate.authority.clone());
    if uri.path_and_query.is_none() {
        uri.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    parts.uri = match http::Uri::from_parts(uri) {
        Ok(uri) => uri,
        Err(e) => return reply::error(StatusCode::BAD_REQUEST, format!("invalid request target: {e}")),
    };
    let body = body.map_err(wasmtime_wasi_http::Error::from).boxed_unsync();
    let (job, receiver) = Job::new(http::Request::from_parts(parts, body));
    let spin_cuts_before = gate.status.spin_cuts();
    if let Err(e) = gate.jobs.try_send(job) {
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
