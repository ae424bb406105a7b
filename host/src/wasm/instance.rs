//! One long-lived instance serving many requests at once.
//!
//! A service's requests arrive as [`Job`]s on a channel. [`serve`] owns the instance's store
//! and drives it with `Store::run_concurrent`: every job becomes a guest call
//! (`wasi:http/handler.handle`) that runs concurrently with the others in the same instance, so
//! the guest's memory (caches, the current leader, ...) is one shared state. wasmtime's own
//! `ProxyHandler` is not used on purpose: it starts extra instances under load.
//!
//! Each job carries a oneshot sender for its response. If the instance traps,
//! `run_concurrent` returns the error, the pending calls are dropped with their senders, and
//! every waiting caller sees a cancelled response (the server answers 500).

use std::time::Duration;

use bytes::Bytes;
use futures::channel::oneshot;
use futures::stream::{FuturesUnordered, StreamExt};
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use tokio::sync::mpsc;
use wasmtime::component::Accessor;
use wasmtime::{AsContextMut, Store};
use wasmtime_wasi_http::handler::{Prepared, Proxy};
use wasmtime_wasi_http::{WasiBody, WasiHttpView};

use crate::net::body::{full_body, Response};
use crate::net::marker::mark;
use toystore_manifest::resolve::Listener;
use crate::wasm::runtime::StoreData;

/// Where a job's result goes: the response, or why the guest produced none.
pub type ReplySender = oneshot::Sender<Result<Response, wasmtime::Error>>;
pub type ReplyReceiver = oneshot::Receiver<Result<Response, wasmtime::Error>>;

/// One request for an instance, with the channel its response goes back on.
pub struct Job {
    pub request: http::Request<WasiBody>,
    pub reply: ReplySender,
}

impl Job {
    pub fn new(request: http::Request<WasiBody>) -> (Self, ReplyReceiver) {
        let (reply, receiver) = oneshot::channel();
        (Self { request, reply }, receiver)
    }
}

/// Serve `jobs` on the instance `proxy` of `store` until the channel closes (`Ok`) or the
/// instance fails (`Err`, typically a trap). `first` runs before anything from the channel.
///
/// On `Err` the store is unusable; the caller drops it and builds a new instance, which keeps
/// reading the same channel, so queued jobs are not lost.
pub async fn serve(
    store: &mut Store<StoreData>,
    proxy: &Proxy,
    jobs: &mut mpsc::Receiver<Job>,
    first: Option<Job>,
) -> wasmtime::Result<()> {
    store
        .run_concurrent(async |accessor| -> wasmtime::Result<()> {
            let mut running = FuturesUnordered::new();
            if let Some(job) = first {
                running.push(start(accessor, proxy, job)?);
            }
            loop {
                tokio::select! {
                    // Finished calls first: a failed one means the instance is gone.
                    Some(done) = running.next() => { done?; }
                    job = jobs.recv() => match job {
                        Some(job) => running.push(start(accessor, proxy, job)?),
                        None => break,
                    },
                }
            }
            // The channel closed (the host is stopping): let the calls in flight finish.
            while let Some(done) = running.next().await {
                done?;
            }
            Ok(())
        })
        .await?
}

/// Start the guest call for `job` and return the future that completes it.
fn start<'a>(
    accessor: &'a Accessor<StoreData>,
    proxy: &'a Proxy,
    job: Job,
) -> wasmtime::Result<impl std::future::Future<Output = wasmtime::Result<bool>> + 'a> {
    let Job { request, reply } = job;
    // An error here (the instance cannot take a call) drops the reply sender, so the caller
    // gets a 500; returning it also makes the supervisor replace the instance.
    let (tx, rx) = oneshot::channel();
    let prepared = accessor.with(|mut store| Prepared::new(store.as_context_mut(), proxy, request, StoreData::http, tx))?;
    Ok(async move {
        // No per-request expiry: callers bound their own waits (components use call timeouts).
        let sent = prepared.run(accessor, std::future::pending()).await?;
        let response = match rx.await {
            Ok(response) => response,
            // Dropped unanswered: the caller sees a cancelled reply, as before.
            Err(oneshot::Canceled) => return Ok(sent),
        };
        let _ = reply.send(match response {
            Ok(response) => Ok(buffer_small(response).await),
            Err(e) => Err(e),
        });
        Ok(sent)
    })
}

/// Largest response body (by its `content-length`) read whole on the instance's thread before
/// the response is handed back; larger or unsized bodies stream.
pub const BUFFERED_BODY_LIMIT: u64 = 64 * 1024;

/// Read a small response's body whole, here, on the instance's thread, and hand back a body
/// that replays the same frames (data, trailers, or the error it ended with).
///
/// wasi-http delivers a guest's body through a channel of one chunk, its end and its trailers
/// through more: read from the connection's task, every one of those is a wake-up of the other
/// side. Read here, within the store's own polling, they cost nothing extra, and the connection
/// gets one finished response. Every toystore reply is a small JSON body with a
/// `content-length`, so what a client sees is the same; only a body written slowly arrives
/// with its head instead of after it, as it would have to be read whole anyway.
async fn buffer_small(response: Response) -> Response {
    let small = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .is_some_and(|length| length <= BUFFERED_BODY_LIMIT);
    if !small {
        return response;
    }
    let (parts, mut body) = response.into_parts();
    let mut frames = Vec::with_capacity(2);
    while let Some(frame) = body.frame().await {
        let failed = frame.is_err();
        frames.push(frame);
        if failed {
            break;
        }
    }
    let replay = http_body_util::StreamBody::new(futures::stream::iter(frames));
    Response::from_parts(parts, replay.boxed_unsync())
}

/// A request made by the host itself (ticks, the admin's `/ping`, metrics scrapes), addressed
/// like one from outside to the service's internal listener, `http://{internal}{path}`, and
/// marked as arriving there.
pub fn host_request(internal: std::net::SocketAddr, method: Method, path: &str, body: Bytes) -> http::Request<WasiBody> {
    let mut request = http::Request::new(full_body(body));
    *request.method_mut() = method;
    // `listen` and `path` come from the host's own constants and manifest; a bad one is a bug
    // that shows up as a request for `/`.
    *request.uri_mut() = format!("http://{internal}{path}").parse().unwrap_or_else(|_| http::Uri::from_static("/"));
    request.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    mark(request.headers_mut(), Listener::Internal);
    request
}

#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    #[error("the instance failed before answering (trap or restart)")]
    Cancelled,
    #[error("the guest produced no response: {0}")]
    Guest(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("reading the response body failed: {0}")]
    Body(String),
}

/// Wait for a job's response and read its body whole, within `timeout`.
pub async fn read_reply(receiver: ReplyReceiver, timeout: Duration) -> Result<(StatusCode, Bytes), ReplyError> {
    let exchange = async {
        let response = match receiver.await {
            Err(oneshot::Canceled) => return Err(ReplyError::Cancelled),
            Ok(Err(e)) => return Err(ReplyError::Guest(format!("{e:#}"))),
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        let body = response.into_body().collect().await.map_err(|e| ReplyError::Body(e.to_string()))?;
        Ok((status, body.to_bytes()))
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| ReplyError::Timeout(timeout))?
}
