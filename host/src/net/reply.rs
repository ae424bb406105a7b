//! Responses the host writes itself, in toystore's JSON envelope (`toystore-api`, the same type
//! the components use): `{"data": ...}` on success, `{"error": {"code": N, "message": "..."}}`
//! on failure.

use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use serde_json::Value;

use crate::net::body::{full_body, Response};

/// `status` with `{"error": {"code": status, "message": message}}`.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    with_json(status, &toystore_api::error_value(status.as_u16(), message))
}

/// `status` with `{"data": data}`.
pub fn data(status: StatusCode, data: Value) -> Response {
    with_json(status, &toystore_api::data_value(data))
}

fn with_json(status: StatusCode, body: &Value) -> Response {
    let bytes = Bytes::from(body.to_string());
    let mut response = http::Response::new(full_body(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}


#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use serde_json::json;

    async fn body_json(response: Response) -> Value {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn envelopes() {
        let e = error(StatusCode::SERVICE_UNAVAILABLE, "busy");
        assert_eq!(e.status(), 503);
        assert_eq!(e.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(body_json(e).await, json!({"error": {"code": 503, "message": "busy"}}));
        let d = data(StatusCode::OK, json!([1, 2]));
        assert_eq!(body_json(d).await, json!({"data": [1, 2]}));
    }
}
