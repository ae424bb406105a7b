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
        let data = self.body.get("data").unwrap_or(&Value::Null);
        T::deserialize(data).map_err(|e| CallError::BadReply(e.to_string()))
    }

    /// The `error.message` of an error envelope, or the whole body as text.
    pub fn error_message(&self) -> String {
        self.body
            .get("error")
            .and_then(|e| e.get("message"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| self.body.to_string())
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("unexpected reply: {0}")]
    BadReply(String),
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
