//! The thin layer between WASI 0.3 HTTP and toystore's plain types (built for wasm32 only).

use std::time::Duration;

use futures::future::{select, Either};
use http::Method;
use http_body_util::{BodyExt, Limited};
use serde_json::Value;
use wasip3::http::types::{self, ErrorCode};
use wasip3::http_compat::{
    http_from_wasi_request, http_from_wasi_response, http_into_wasi_request, http_into_wasi_response,
    RequestOptionsExtension,
};

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
    let request = http_from_wasi_request(request)
        .map_err(|e| Reply::bad_request(format!("unreadable request: {e:?}")))?;
    let (parts, body) = request.into_parts();
    let body = Limited::new(body, MAX_BODY_BYTES)
        .collect()
        .await
        .map_err(|_| Reply::error(413, format!("request body larger than {MAX_BODY_BYTES} bytes")))?
        .to_bytes();
    let path_and_query = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut req = Request::new(parts.method, path_and_query, body.to_vec());
    for (name, value) in &parts.headers {
        if let Ok(v) = value.to_str() {
            req.headers.push((name.as_str().to_string(), v.to_string()));
        }
    }
    req.listener = internal_routes().listener(req.header(LISTENER_HEADER));
    Ok(req)
}

/// Turn a [`Reply`] into a WASI response with a JSON body.
pub fn into_response(reply: Reply) -> Result<types::Response, ErrorCode> {
    let body = String::from_utf8(reply.to_bytes()).unwrap_or_default();
    // An explicit length lets the receiving side tell a complete body from one cut short.
    let mut builder = http::Response::builder()
        .status(reply.status)
        .header("content-type", "application/json")
        .header("content-length", body.len());
    for (name, value) in &reply.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let response = builder
        .body(body)
        .map_err(|e| ErrorCode::InternalError(Some(e.to_string())))?;
    http_into_wasi_response(response)
}

/// Turn a [`StaticPage`] into a 200 WASI response.
pub fn page_response(page: StaticPage) -> Result<types::Response, ErrorCode> {
    let response = http::Response::builder()
        .status(200)
        .header("content-type", page.content_type)
        .header("content-length", page.body.len())
        .body(page.body.to_string())
        .map_err(|e| ErrorCode::InternalError(Some(e.to_string())))?;
    http_into_wasi_response(response)
}

/// Outgoing calls over `wasi:http/client`.
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
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut request = http::Request::builder()
            .method(method)
            .uri(url)
            .header("content-type", "application/json")
            .body(body)
            .map_err(|e| unreachable(e.to_string()))?;
        // The host enforces the timeout through the request's options when it takes them
        // (both toystore's outgoing paths and `wasmtime serve` do); only otherwise does the
        // call race a timer of its own — a timer per call measured ~17 % of a cache miss.
        let bounded = match timeout_options(timeout) {
            Some(options) => {
                request.extensions_mut().insert(RequestOptionsExtension(options));
                true
            }
            None => false,
        };
        let exchange = async move {
            let request = http_into_wasi_request(request).map_err(|e| unreachable(format!("{e:?}")))?;
            let response = wasip3::http::client::send(request)
                .await
                .map_err(|code| CallError::from_wasi(url, timeout, &code))?;
            let response = http_from_wasi_response(response).map_err(|e| unreachable(format!("{e:?}")))?;
            let status = response.status().as_u16();
            let body = Limited::new(response.into_body(), MAX_BODY_BYTES * 64)
                .collect()
                .await
                .map_err(|e| unreachable(format!("reading the reply body: {e}")))?
                .to_bytes()
                .to_vec();
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

/// Request options that bound a call to about `timeout`: a quarter of it to connect (a
/// refused connection fails at once; a machine that is gone does not answer the SYN), the rest
/// for the response head, and `timeout` between body frames (replies are small, one or two
/// frames). `None` if the host refuses any of them.
fn timeout_options(timeout: Duration) -> Option<types::RequestOptions> {
    let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    let connect = timeout / 4;
    let options = types::RequestOptions::new();
    options.set_connect_timeout(Some(nanos(connect))).ok()?;
    options.set_first_byte_timeout(Some(nanos(timeout - connect))).ok()?;
    options.set_between_bytes_timeout(Some(nanos(timeout))).ok()?;
    Some(options)
}
