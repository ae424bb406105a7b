//! Outgoing HTTP from components: how a guest's `wasi:http/client.send` reaches the network.
//!
//! Components call each other over real HTTP (`http://127.0.0.1:PORT/...`). wasmtime-wasi-http's
//! own `send_request` opens a new TCP connection for every request, which caps a call chain at
//! a few thousand requests per second and leaves thousands of sockets in TIME_WAIT. In
//! `pooled` mode (the default) every component's requests go through one shared hyper client
//! with a keep-alive connection pool instead; `fresh` keeps wasmtime's path for comparison.
//!
//! The hook is [`WasiHttpHooks::send_request`]: wasmtime hands us the request (already
//! validated, with a `host` header) and awaits the response we return; the response body then
//! streams back into the guest.
//!
//! Each store (instance) gets a pool of its own. Its connections are driven by tasks spawned
//! from the instance's task, so they live on the service's own thread, and a call's wake-ups
//! stay on that thread; a pool shared by all services would hand a connection opened by one
//! service's thread to another's and wake across threads on every call.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::uri::Scheme;
use http_body_util::BodyExt;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::net::call_timeouts::{head_timeout, with_frame_timeout, SendResult};
use crate::net::directory::{self, Directory};
use toystore_manifest::resolve::OutgoingHttp;

/// Idle pooled connections are closed after this long (kept below the 30 s the host's own
/// servers wait for a next request, so the client normally closes first).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(20);
/// Connecting to a loopback port either works at once or not at all; this only bounds the odd
/// case of a full accept queue. A shorter per-request timeout still applies.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The shared client, cheap to clone (the pool is behind an `Arc`).
type PooledClient = Client<HttpConnector, WasiBody>;

/// Builds the per-store [`Hooks`].
#[derive(Clone)]
pub struct Outgoing {
    mode: OutgoingHttp,
    /// Set with `local_calls = "direct"`: requests to this host's own services are handed over
    /// in process ([`crate::net::directory`]) instead of going out over HTTP.
    local: Option<Arc<Directory>>,
}

impl Outgoing {
    pub fn new(mode: OutgoingHttp, local: Option<Arc<Directory>>) -> Self {
        Self { mode, local }
    }

    /// The hooks one store gets, with a pool of its own in `pooled` mode.
    pub fn hooks(&self) -> Hooks {
        let pool = match self.mode {
            OutgoingHttp::Fresh => None,
            OutgoingHttp::Pooled => {
                let mut connector = HttpConnector::new();
                connector.set_nodelay(true);
                connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
                let client = Client::builder(TokioExecutor::new())
                    .pool_idle_timeout(POOL_IDLE_TIMEOUT)
                    .pool_timer(TokioTimer::new())
                    .build(connector);
                Some(client)
            }
        };
        Hooks { pool, local: self.local.clone() }
    }
}

/// wasi-http hooks of one store: requests to this host's own services go in process when
/// `local` is set; the rest through the store's pool, or through wasmtime's default path when
/// there is none (`outgoing_http = "fresh"`).
pub struct Hooks {
    pool: Option<PooledClient>,
    local: Option<Arc<Directory>>,
}

type SendFuture = Box<dyn Future<Output = SendResult> + Send>;

impl WasiHttpHooks for Hooks {
    /// Components address each other with `http://` URLs; a URL without a scheme means the
    /// same rather than wasmtime's default of https.
    fn default_scheme(&mut self) -> Option<Scheme> {
        Some(Scheme::HTTP)
    }

    /// The pool speaks plain HTTP only (all traffic is loopback); `fresh` keeps wasmtime's
    /// http + https.
    fn is_supported_scheme(&mut self, scheme: &Scheme) -> bool {
        *scheme == Scheme::HTTP || (self.pool.is_none() && *scheme == Scheme::HTTPS)
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_result: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        if let Some(inbox) = self.local.as_ref().and_then(|local| local.route(request.uri())) {
            return Box::new(directory::send(inbox, request, options));
        }
        match &self.pool {
            Some(client) => Box::new(send_pooled(client.clone(), request, options)),
            None => Box::new(async move {
                let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
                Ok((
                    response.map(BodyExt::boxed_unsync),
                    Box::new(io) as Box<dyn Future<Output = Result<(), Error>> + Send>,
                ))
            }),
        }
    }
}

/// Send one request over a pooled keep-alive connection.
///
/// Timeouts from the guest's `request-options`: the connect and first-byte timeouts together
/// bound the wait for the response head (connecting happens inside the pool, so the two cannot
/// be told apart); the between-bytes timeout bounds each wait for a body frame.
async fn send_pooled(
    client: PooledClient,
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> SendResult {
    if request.uri().scheme() != Some(&Scheme::HTTP) {
        return Err(Error::HttpRequestUriInvalid);
    }
    let options = options.unwrap_or_default();
    let head_timeout = head_timeout(&options);
    let uri = request.uri().clone();
    let pending = client.request(request);
    let result = match head_timeout {
        Some(limit) => tokio::time::timeout(limit, pending).await.map_err(|_| Error::ConnectionReadTimeout)?,
        None => pending.await,
    };
    let response = result.map_err(|e| {
        tracing::debug!(%uri, error = %error_chain(&e), "outgoing request failed");
        client_error(&e)
    })?;
    let response = response.map(|body| with_frame_timeout(body.map_err(Error::from).boxed_unsync(), options.between_bytes_timeout));
    // The connection is driven by the pool's own task, so there is no I/O future to hand back.
    let io: Box<dyn Future<Output = Result<(), Error>> + Send> = Box::new(async { Ok(()) });
    Ok((response, io))
}

/// The wasi-http error a guest sees for a failed pooled request.
fn client_error(e: &hyper_util::client::legacy::Error) -> Error {
    if e.is_connect() {
        return Error::ConnectionRefused;
    }
    let hyper_error = std::error::Error::source(e).and_then(|s| s.downcast_ref::<hyper::Error>());
    match hyper_error {
        Some(h) if h.is_timeout() => Error::HttpResponseTimeout,
        Some(h) if h.is_parse() => Error::HttpProtocolError,
        // The peer closed the connection (e.g. a replica that was killed mid-request).
        _ => Error::ConnectionTerminated,
    }
}

/// `error: cause: cause` for logs.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}
