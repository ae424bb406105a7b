//! The smallest toystore-shaped component: it answers every request with `{"data":"hello"}`.
//! The benchmark runs it under the same host to measure what the host itself costs.

use toystore_guest::{Reply, Request};

pub fn handle(_request: &Request) -> Reply {
    Reply::ok("hello")
}

#[cfg(target_arch = "wasm32")]
mod wasm {
    use wasip3::http::types::{ErrorCode, Request, Response};
    use toystore_guest::wasi::{into_response, read_request};

    struct Hello;
    wasip3::http::service::export!(Hello);

    impl wasip3::exports::http::handler::Guest for Hello {
        async fn handle(request: Request) -> Result<Response, ErrorCode> {
            let reply = match read_request(request).await {
                Ok(req) => super::handle(&req),
                Err(reply) => reply,
            };
            into_response(reply)
        }
    }
}
