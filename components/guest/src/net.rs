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

/// What came back from another component.
#[derive(Debug, Clone)]
pub struct NetResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

impl NetResponse {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON (`Value::Null` if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The `data` member of a success envelope, decoded as `T`.
    pub fn data<T: DeserializeOwned>(&self) -> Result<T, CallError> {
        let v = self.json();
        let data = v.get("data").cloned().unwrap_or(Value::Null);
        serde_json::from_value(data).map_err(|e| CallError::BadReply(e.to_string()))
    }

    /// The `error.message` of an error envelope, or the raw body.
    pub fn error_message(&self) -> String {
        let v = self.json();
        v.get("error")
            .and_then(|e| e.get("message"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&self.body).into_owned())
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
