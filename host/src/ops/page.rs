//! The operations page: `GET /` on the admin address. One HTML page (embedded at compile time,
//! no build step) that polls the admin API every second: `GET /services`, `GET /replicas`
//! (state, leader, epoch, last order, lag, crashes; kill, restart, pause and resume buttons) and
//! `GET /metrics` (live rates: orders/s, lookups/s, cache hit ratio, computed in the page from
//! the difference between two scrapes).

use bytes::Bytes;
use http::{header, HeaderValue};

use crate::net::body::{full_body, Response};

const PAGE: &str = include_str!("../../assets/ops.html");

/// The page itself.
pub fn respond() -> Response {
    let mut response = http::Response::new(full_body(Bytes::from_static(PAGE.as_bytes())));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    response
}
