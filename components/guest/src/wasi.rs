//! The thin layer between WASI 0.3 HTTP and toystore's plain types (built for wasm32 only).
//!
//! It works on the `wasi:http` resources directly rather than through `wasip3::http_compat`'s
//! `http` types. Every resource operation (a header list, a body stream, its end, a setter) is
//! a call into the host through the component model's machinery, and this layer runs for every
//! request a component serves and every call it makes, so it makes as few as the request
//! needs, and as few waits (each wait is one more turn of the instance through the host: a
//! callback into the guest): a GET's body is not read, a call without a body has no body
//! stream, a reply's headers are not copied out and its trailers not waited for. That took a
//! third of the host's CPU off each cache miss (eval/bench.md).

use std::cell::RefCell;
use std::time::Duration;

use futures::future::{select, Either};
use http::Method;
use serde_json::Value;
use wasip3::http::types::{self, ErrorCode};

use crate::net::{CallError, Net, NetResponse};
use crate::request::MAX_BODY_BYTES;
use toystore_manifest::{InternalRoutes, LISTENER_HEADER};
use crate::{Reply, Request, StaticPage};

/// Who may use this component's internal routes (`INTERNAL_ROUTES`, read once per instance).
fn internal_routes() -> InternalRoutes {
    thread_local! {
        static POLICY: InternalRoutes = crate::settings::from_env().1.internal_routes;
    }
    POLICY.with(|p| *p)
}

/// Read a WASI request into a [`Request`], or the error reply to send instead. Its
/// [`Request::listener`] comes from the host's mark, trusted only as `INTERNAL_ROUTES` says.
pub async fn read_request(request: types::Request) -> Result<Request, Reply> {
    let method = http_method(request.get_method())
        .map_err(|e| Reply::bad_request(format!("unreadable request: {e}")))?;
    let path_and_query = request.get_path_with_query().unwrap_or_else(|| "/".to_string());
    let headers: Vec<(String, String)> = request
        .get_headers()
        .copy_all()
        .into_iter()
        .filter_map(|(name, value)| Some((name, String::from_utf8(value).ok()?)))
        .collect();
    // No toystore route reads the body of a GET or HEAD (it has no meaning there), so it is
    // left unread: for the most common requests that saves a body stream, its reads and its
    // end, each a call into the host.
    let body = if matches!(method, Method::GET | Method::HEAD) {
        drop(request);
        Vec::new()
    } else {
        let (done, consumed) = wasip3::wit_future::new::<Result<(), ErrorCode>>(|| Ok(()));
        let (stream, trailers) = types::Request::consume_body(request, consumed);
        let body = read_all(stream, trailers, MAX_BODY_BYTES).await;
        drop(done);
        body.map_err(|e| match e {
            BodyError::TooLong => Reply::error(413, format!("request body larger than {MAX_BODY_BYTES} bytes")),
            BodyError::Failed(reason) => Reply::bad_request(format!("unreadable request body: {reason}")),
        })?
    };
    let mut req = Request::new(method, &path_and_query, body);
    req.headers = headers;
    req.listener = internal_routes().listener(req.header(LISTENER_HEADER));
    Ok(req)
}

/// Turn a [`Reply`] into a WASI response with a JSON body.
pub fn into_response(reply: Reply) -> Result<types::Response, ErrorCode> {
    let body = reply.to_bytes();
    let mut headers = Vec::with_capacity(2 + reply.headers.len());
    headers.push(("content-type".to_string(), b"application/json".to_vec()));
    headers.extend(reply.headers.into_iter().map(|(name, value)| (name, value.into_bytes())));
    response(reply.status, headers, body)
}

/// Turn a [`StaticPage`] into a 200 WASI response.
pub fn page_response(page: StaticPage) -> Result<types::Response, ErrorCode> {
    let headers = vec![("content-type".to_string(), page.content_type.as_bytes().to_vec())];
    response(200, headers, page.body.as_bytes().to_vec())
}

/// A response with `headers`, a `content-length` (it lets the receiving side tell a complete
/// body from one cut short) and `body`, which is written once the response has been returned
/// (the component-model task outlives its return value).
fn response(status: u16, mut headers: Vec<(String, Vec<u8>)>, body: Vec<u8>) -> Result<types::Response, ErrorCode> {
    headers.push(("content-length".to_string(), body.len().to_string().into_bytes()));
    let headers = types::Fields::from_list(&headers)
        .map_err(|e| ErrorCode::InternalError(Some(format!("response headers: {e:?}"))))?;
    let (trailers_writer, trailers) = no_trailers();
    let (response, _sent) = types::Response::new(headers, Some(body_stream(body, trailers_writer)), trailers);
    // A new response is a 200 (and a new request a GET): setting either costs a call.
    if status != 200 {
        response
            .set_status_code(status)
            .map_err(|()| ErrorCode::InternalError(Some(format!("status {status} refused"))))?;
    }
    Ok(response)
}

type TrailersWriter = wasip3::wit_bindgen::FutureWriter<Result<Option<types::Trailers>, ErrorCode>>;
type TrailersReader = wasip3::wit_bindgen::FutureReader<Result<Option<types::Trailers>, ErrorCode>>;

/// The trailers of a body that has none: the writer, dropped unwritten, sends its default,
/// `Ok(None)`, by itself (when it is dropped matters, see [`WasiNet::call`]).
fn no_trailers() -> (TrailersWriter, TrailersReader) {
    wasip3::wit_future::new(|| Ok(None))
}

/// A body stream carrying `bytes`, written once the host reads it (after the message that
/// holds it has been handed over); `then` is dropped after the last byte.
fn body_stream<T: 'static>(bytes: Vec<u8>, then: T) -> wasip3::wit_bindgen::StreamReader<u8> {
    let (mut writer, reader) = wasip3::wit_stream::new::<u8>();
    drop(wasip3::spawn_local(async move {
        writer.write_all(bytes).await;
        drop(writer);
        drop(then);
    }));
    reader
}

fn http_method(method: types::Method) -> Result<Method, String> {
    Ok(match method {
        types::Method::Get => Method::GET,
        types::Method::Head => Method::HEAD,
        types::Method::Post => Method::POST,
        types::Method::Put => Method::PUT,
        types::Method::Delete => Method::DELETE,
        types::Method::Connect => Method::CONNECT,
        types::Method::Options => Method::OPTIONS,
        types::Method::Trace => Method::TRACE,
        types::Method::Patch => Method::PATCH,
        types::Method::Other(other) => Method::from_bytes(other.as_bytes()).map_err(|e| format!("method {other:?}: {e}"))?,
    })
}

/// Why a body could not be read whole.
enum BodyError {
    /// Longer than the limit (reading stopped there).
    TooLong,
    /// It ended with an error: the peer went away mid-body, or a timeout between frames.
    Failed(String),
}

/// A request body: its bytes, at most `limit`, then its end (`trailers`), which says whether
/// it ended cleanly.
async fn read_all(
    stream: wasip3::wit_bindgen::StreamReader<u8>,
    trailers: TrailersReader,
    limit: usize,
) -> Result<Vec<u8>, BodyError> {
    let body = read_stream(stream, limit).await?;
    match trailers.await {
        Ok(_) => Ok(body),
        Err(code) => Err(BodyError::Failed(format!("{code:?}"))),
    }
}

/// A body's bytes until its stream ends, at most `limit`. Bodies here are small JSON
/// documents: the buffer starts at 1 KiB and doubles.
async fn read_stream(mut stream: wasip3::wit_bindgen::StreamReader<u8>, limit: usize) -> Result<Vec<u8>, BodyError> {
    use wasip3::wit_bindgen::StreamResult;
    let mut body = Vec::with_capacity(1024);
    loop {
        if body.len() == body.capacity() {
            body.reserve(body.len());
        }
        let (status, read) = stream.read(body).await;
        body = read;
        match status {
            StreamResult::Complete(_) if body.len() > limit => return Err(BodyError::TooLong),
            StreamResult::Complete(_) => {}
            StreamResult::Dropped => return Ok(body),
            StreamResult::Cancelled => return Err(BodyError::Failed("read cancelled".to_string())),
        }
    }
}

/// Outgoing calls over `wasi:http/client`.
///
/// A call without a body sends no body stream at all, the response's headers are never copied
/// out (every toystore reply is a JSON envelope), the body is read into one buffer, and the
/// request options come from a per-timeout template (one `clone` instead of a constructor and
/// three setters).
#[derive(Debug, Default, Clone, Copy)]
pub struct WasiNet;

impl Net for WasiNet {
    async fn call(
        &self,
        method: Method,
        url: &str,
        body: Option<Value>,
        timeout: Duration,
    ) -> Result<NetResponse, CallError> {
        let unreachable = |reason: String| CallError::Unreachable { url: url.to_string(), reason };
        let target = Target::parse(url).map_err(unreachable)?;
        let body = body.map(|b| b.to_string().into_bytes());
        // The host enforces the timeout through the request's options when it takes them
        // (both toystore's outgoing paths and `wasmtime serve` do); only otherwise does the
        // call race a timer of its own — a timer per call measured ~17 % of a cache miss.
        let options = timeout_options(timeout);
        let bounded = options.is_some();
        let exchange = async move {
            let (request, trailers_writer) = outgoing_request(&method, &target, body, options).map_err(unreachable)?;
            // The request has no trailers; its trailers writer, dropped, sends the default
            // `Ok(None)`. Dropped once `send` has started, that write finds the host already
            // reading and completes at once; dropped before, it would wait and cost the
            // instance one more turn through the host when the host takes it.
            let mut send = std::pin::pin!(wasip3::http::client::send(request));
            let first = futures::poll!(send.as_mut());
            drop(trailers_writer);
            let response = match first {
                std::task::Poll::Ready(response) => response,
                std::task::Poll::Pending => send.await,
            };
            let response = response.map_err(|code| CallError::from_wasi(url, timeout, &code))?;
            let status = response.get_status_code();
            let body = read_body(response, MAX_BODY_BYTES * 64)
                .await
                .map_err(|e| unreachable(format!("reading the reply body: {e}")))?;
            // Every toystore reply is a JSON envelope. A body that does not parse was cut short
            // (e.g. the peer was killed mid-reply and the stream still ended cleanly): report
            // it as a failed call, so callers retry instead of passing on a torn answer.
            let body = serde_json::from_slice(&body).map_err(|_| {
                CallError::BadReply(format!("{status} with a body that is not complete JSON ({} bytes)", body.len()))
            })?;
            Ok(NetResponse { status, body })
        };
        if bounded {
            return exchange.await;
        }
        match select(Box::pin(exchange), Box::pin(crate::time::sleep(timeout))).await {
            Either::Left((result, _)) => result,
            // Dropping the exchange cancels the outgoing request.
            Either::Right(((), _)) => Err(CallError::Timeout(timeout)),
        }
    }
}

/// Where a call goes: an `http://` or `https://` URL taken apart the way `wasi:http` wants it.
struct Target {
    scheme: types::Scheme,
    authority: String,
    path_and_query: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target, String> {
        let uri: http::Uri = url.parse().map_err(|e| format!("bad URL: {e}"))?;
        let scheme = match uri.scheme_str() {
            Some("http") => types::Scheme::Http,
            Some("https") => types::Scheme::Https,
            other => return Err(format!("bad URL: scheme {other:?} is not http or https")),
        };
        let authority = uri.authority().map(|a| a.as_str().to_string()).ok_or("bad URL: no host")?;
        let path_and_query = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/").to_string();
        Ok(Target { scheme, authority, path_and_query })
    }
}

/// The WASI request for one call, and the writer of its (empty) trailers for the caller to drop
/// at the right moment. A JSON body travels with its length, so the receiving side reads it in
/// one piece; a call without a body has no body stream.
fn outgoing_request(
    method: &Method,
    target: &Target,
    body: Option<Vec<u8>>,
    options: Option<types::RequestOptions>,
) -> Result<(types::Request, TrailersWriter), String> {
    let headers = match &body {
        Some(bytes) => types::Fields::from_list(&[
            ("content-type".to_string(), b"application/json".to_vec()),
            ("content-length".to_string(), bytes.len().to_string().into_bytes()),
        ])
        .map_err(|e| format!("request headers: {e:?}"))?,
        None => types::Fields::new(),
    };
    let contents = body.map(|bytes| body_stream(bytes, ()));
    let (trailers_writer, trailers) = no_trailers();
    let (request, _sent) = types::Request::new(headers, contents, trailers, options);
    if *method != Method::GET {
        request.set_method(&wasi_method(method)).map_err(|()| format!("method {method} refused"))?;
    }
    request.set_scheme(Some(&target.scheme)).map_err(|()| "scheme refused".to_string())?;
    request.set_authority(Some(&target.authority)).map_err(|()| format!("authority {} refused", target.authority))?;
    request
        .set_path_with_query(Some(&target.path_and_query))
        .map_err(|()| format!("path {} refused", target.path_and_query))?;
    Ok((request, trailers_writer))
}

fn wasi_method(method: &Method) -> types::Method {
    match *method {
        Method::GET => types::Method::Get,
        Method::POST => types::Method::Post,
        Method::PUT => types::Method::Put,
        Method::DELETE => types::Method::Delete,
        Method::HEAD => types::Method::Head,
        Method::OPTIONS => types::Method::Options,
        Method::PATCH => types::Method::Patch,
        Method::CONNECT => types::Method::Connect,
        Method::TRACE => types::Method::Trace,
        ref other => types::Method::Other(other.as_str().to_string()),
    }
}

/// A response's whole body, at most `limit` bytes.
///
/// Its end (the trailers future) is not waited for: that wait costs the instance another turn
/// through the host (two guest callbacks a call, measured), and it tells nothing the caller
/// does not check anyway. A body cut short by an error ends its stream early, and every
/// toystore reply is one JSON object, of which no strict prefix parses: [`WasiNet::call`]
/// turns it into [`CallError::BadReply`].
async fn read_body(response: types::Response, limit: usize) -> Result<Vec<u8>, String> {
    let (done, consumed) = wasip3::wit_future::new::<Result<(), ErrorCode>>(|| Ok(()));
    let (stream, trailers) = types::Response::consume_body(response, consumed);
    drop(trailers);
    let body = read_stream(stream, limit).await;
    drop(done);
    body.map_err(|e| match e {
        BodyError::TooLong => format!("longer than {limit} bytes"),
        BodyError::Failed(reason) => reason,
    })
}

/// How many per-timeout option templates an instance keeps.
const MAX_TEMPLATES: usize = 8;

/// Request options that bound a call to about `timeout`: a quarter of it to connect (a
/// refused connection fails at once; a machine that is gone does not answer the SYN), the rest
/// for the response head, and `timeout` between body frames (replies are small, one or two
/// frames). `None` if the host refuses any of them.
///
/// Made once per distinct timeout and cloned for each call: the template stays in the instance,
/// each request takes a copy. A component uses two or three timeouts; one shortened to a
/// deadline's remainder gets options of its own (at most [`MAX_TEMPLATES`] are kept).
fn timeout_options(timeout: Duration) -> Option<types::RequestOptions> {
    thread_local! {
        static TEMPLATES: RefCell<Vec<(Duration, Option<types::RequestOptions>)>> = const { RefCell::new(Vec::new()) };
    }
    TEMPLATES.with(|templates| {
        let mut templates = templates.borrow_mut();
        if let Some((_, template)) = templates.iter().find(|(t, _)| *t == timeout) {
            return template.as_ref().map(types::RequestOptions::clone);
        }
        if templates.len() >= MAX_TEMPLATES {
            return new_timeout_options(timeout);
        }
        let template = new_timeout_options(timeout);
        let copy = template.as_ref().map(types::RequestOptions::clone);
        templates.push((timeout, template));
        copy
    })
}

fn new_timeout_options(timeout: Duration) -> Option<types::RequestOptions> {
    let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    let connect = timeout / 4;
    let options = types::RequestOptions::new();
    options.set_connect_timeout(Some(nanos(connect))).ok()?;
    options.set_first_byte_timeout(Some(nanos(timeout - connect))).ok()?;
    options.set_between_bytes_timeout(Some(nanos(timeout))).ok()?;
    Some(options)
}
