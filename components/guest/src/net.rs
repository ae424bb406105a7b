//! Calls from one component to another.
//!
//! Service logic is written against the [`Net`] trait so it can be unit-tested natively with an
//! in-process transport (one service's `handle` wired to another's); in the guest it is
//! [`crate::wasi::WasiNet`], a real outgoing `wasi:http/client` request to a plain `http://`
//! URL. Every call has a timeout: a peer that does not answer is treated like one that is down.

use std::time::Duration;

use http::Method;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// What came back from another component: the status and the body, parsed once.
///
/// Every toystore reply is a JSON envelope, so the transport parses the body as it arrives (a
/// body that does not parse was cut short and is a failed call, see [`CallError::BadReply`]) and
/// callers read the parsed value without parsing it again.
#[derive(Debug, Clone)]
pub struct NetResponse {
    pub status: u16,
    pub body: Value,
}

impl NetResponse {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The whole JSON body.
    pub fn json(&self) -> &Value {
        &self.body
    }

    /// The `data` member of a success envelope, decoded as `T`.
    pub fn data<T: DeserializeOwned>(&self) -> Result<T, CallError> {
        let data = toystore_api::data_of(&self.body).unwrap_or(&Value::Null);
        T::deserialize(data).map_err(|e| CallError::BadReply(e.to_string()))
    }

    /// The `data` member of a success envelope, moved out (no copy, unlike [`Self::data`]).
    pub fn into_data(mut self) -> Option<Value> {
        self.body.get_mut("data").map(Value::take)
    }

    /// The `error` member of an error envelope, with any extra members it carries.
    pub fn error(&self) -> Option<toystore_api::ErrorBody> {
        toystore_api::error_of(&self.body)
    }

    /// The `error.message` of an error envelope, or the whole body as text.
    pub fn error_message(&self) -> String {
        self.error().map(|e| e.message).unwrap_or_else(|| self.body.to_string())
    }
}

/// Why a call to another component failed. Callers decide on the variant, never on the text:
/// only [`CallError::Refused`] proves the request never reached the peer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// The peer's address refused the connection: the request certainly never arrived.
    #[error("cannot reach {url}: connection refused")]
    Refused { url: String },
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// No answer for any other reason (DNS, connection lost mid-request, a malformed request):
    /// the peer may or may not have received and acted on the request.
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("unexpected reply: {0}")]
    BadReply(String),
}

impl CallError {
    /// Did this call certainly fail before the request reached the peer? Only then may a
    /// caller treat the peer as not having acted on it.
    pub fn never_delivered(&self) -> bool {
        matches!(self, CallError::Refused { .. })
    }

    /// Classify the `wasi:http` error code of a failed outgoing request to `url`.
    ///
    /// Only a refused connection is known to have carried nothing; timeouts of the connection
    /// or the response are [`CallError::Timeout`] with the caller's `timeout`; everything else
    /// (DNS, connection reset mid-request, protocol errors) is [`CallError::Unreachable`].
    pub fn from_wasi(url: &str, timeout: Duration, code: &wasip3::http::types::ErrorCode) -> CallError {
        use wasip3::http::types::ErrorCode as E;
        match code {
            E::ConnectionRefused => CallError::Refused { url: url.to_string() },
            E::ConnectionTimeout
            | E::ConnectionReadTimeout
            | E::ConnectionWriteTimeout
            | E::HttpResponseTimeout
            | E::DnsTimeout => CallError::Timeout(timeout),
            other => CallError::Unreachable { url: url.to_string(), reason: format!("{other:?}") },
        }
    }
}

/// An outgoing HTTP call with a JSON body.
#[allow(async_fn_in_trait)]
pub trait Net {
    async fn call(
        &self,
        method: Method,
        url: &str,
        body: Option<Value>,
        timeout: Duration,
    ) -> Result<NetResponse, CallError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasip3::http::types::ErrorCode;

    const URL: &str = "http://127.0.0.1:8092/replicate_order";
    const T: Duration = Duration::from_millis(500);

    #[test]
    fn only_a_refused_connection_was_never_delivered() {
        let refused = CallError::from_wasi(URL, T, &ErrorCode::ConnectionRefused);
        assert_eq!(refused, CallError::Refused { url: URL.into() });
        assert!(refused.never_delivered());
        for code in [
            ErrorCode::ConnectionTerminated,
            ErrorCode::DestinationUnavailable,
            ErrorCode::HttpProtocolError,
            ErrorCode::InternalError(Some("refused".into())),
            ErrorCode::ConnectionTimeout,
        ] {
            let e = CallError::from_wasi(URL, T, &code);
            assert!(!e.never_delivered(), "{code:?} may have reached the peer");
        }
        assert!(!CallError::BadReply("cut short".into()).never_delivered());
    }

    #[test]
    fn wasi_timeouts_are_timeouts_and_the_rest_unreachable() {
        for code in [ErrorCode::ConnectionTimeout, ErrorCode::ConnectionReadTimeout, ErrorCode::HttpResponseTimeout] {
            assert_eq!(CallError::from_wasi(URL, T, &code), CallError::Timeout(T));
        }
        let lost = CallError::from_wasi(URL, T, &ErrorCode::ConnectionTerminated);
        assert!(matches!(lost, CallError::Unreachable { ref url, .. } if url == URL), "{lost:?}");
    }

    #[test]
    fn data_is_moved_out_of_a_success_envelope_only() {
        let product = serde_json::json!({"name": "Tux", "price": 25.99, "quantity": 100});
        let ok = NetResponse { status: 200, body: serde_json::json!({ "data": product.clone() }) };
        assert_eq!(ok.data::<Value>().ok(), Some(product.clone()));
        assert_eq!(ok.into_data(), Some(product));
        let failed = NetResponse { status: 404, body: serde_json::json!({"error": {"code": 404, "message": "product not found"}}) };
        assert_eq!(failed.into_data(), None);
    }
}
