//! Replies in toystore's JSON envelope: `{"data": ...}` on success and
//! `{"error": {"code": 404, "message": "product not found"}}` on failure. The envelope itself is
//! `toystore_api::Envelope`, shared with the host, the client and the tests.

use serde::Serialize;
use serde_json::Value;

/// An HTTP reply: a status, a JSON body already in the envelope, and any extra response
/// headers (`content-type` and `content-length` are always set by the WASI glue).
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    /// Extra headers as `(name, value)`; set with [`Reply::with_header`].
    pub headers: Vec<(String, String)>,
}

impl Reply {
    /// 200 with `{"data": data}`.
    pub fn ok(data: impl Serialize) -> Self {
        Self::with_status(200, data)
    }

    /// 200 with `{"data": data}` for data already a JSON value (moved in; [`Reply::ok`] would
    /// copy it): the frontend's cache hits.
    pub fn ok_value(data: serde_json::Value) -> Self {
        Self::raw(200, toystore_api::data_envelope(data))
    }

    /// `status` with `{"data": data}`.
    pub fn with_status(status: u16, data: impl Serialize) -> Self {
        Self::raw(status, toystore_api::data_value(data))
    }

    /// `status` with `{"error": {"code": status, "message": message}}`.
    pub fn error(status: u16, message: impl Into<String>) -> Self {
        Self::raw(status, toystore_api::error_value(status, message))
    }

    /// An error envelope built from `error` (its `code` is the status), extra members included.
    pub fn from_error(error: toystore_api::ErrorBody) -> Self {
        let status = error.code;
        Self::raw(status, toystore_api::Envelope::<Value>::Error(error).to_value())
    }

    /// `status` with `body` as it is (already an envelope, e.g. passed on from another service).
    pub fn raw(status: u16, body: Value) -> Self {
        Self { status, body, headers: Vec::new() }
    }

    /// The same reply with one more response header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The value of response header `name` (case-insensitive), if set.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::error(400, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::error(404, message)
    }

    /// 404 for a path no route matches.
    pub fn no_route(method: &http::Method, path: &str) -> Self {
        Self::error(404, format!("no route for {method} {path}"))
    }

    /// 405 for a known path with the wrong method.
    pub fn method_not_allowed(method: &http::Method, path: &str) -> Self {
        Self::error(405, format!("method {method} not allowed on {path}"))
    }

    /// 503: the service cannot answer now (not synced yet, no quorum, dependency down).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::error(503, message)
    }

    /// 500 for a failure on our side (a file that cannot be written, a corrupt record).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::error(500, message)
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The `data` member, if this is a success envelope.
    pub fn data(&self) -> Option<&Value> {
        toystore_api::data_of(&self.body)
    }

    /// The error message, if this is an error envelope.
    pub fn error_message(&self) -> Option<&str> {
        self.body.get("error")?.get("message")?.as_str()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        // A `Value` always serialises.
        serde_json::to_vec(&self.body).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn envelopes() {
        let ok = Reply::ok(json!({"order_number": 3}));
        assert_eq!(ok.status, 200);
        assert_eq!(ok.body, json!({"data": {"order_number": 3}}));
        let err = Reply::not_found("product not found");
        assert_eq!(err.body, json!({"error": {"code": 404, "message": "product not found"}}));
        assert_eq!(err.error_message(), Some("product not found"));
        assert!(!err.is_success());
        let keyed = err.with_header("Idempotency-Key", "k1");
        assert_eq!((keyed.header("idempotency-key"), keyed.header("x-other")), (Some("k1"), None));
    }
}

/// A fixed document served as it is, outside the JSON envelope (the storefront page): the
/// one kind of answer that is not a [`Reply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaticPage {
    pub content_type: &'static str,
    pub body: &'static str,
}
