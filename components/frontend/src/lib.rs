//! toystore frontend: the only public port.
//!
//! The logic is plain Rust, tested natively against an in-process fake of the catalog and the
//! order replicas: [`cache`] (the LRU product cache with versioned invalidation and a TTL),
//! [`leader`] (leader selection, failover and health checks), [`service`] (the routes), [`storefront`] (the HTML page at `GET /`). Only
//! the `wasm` module below touches WASI: one long-lived [`Frontend`] per instance serves every
//! request.

pub mod cache;
pub mod leader;
pub mod service;
pub mod storefront;

#[cfg(test)]
mod fake;

pub use service::{Config, Frontend};

#[cfg(target_arch = "wasm32")]
mod wasm {
    use std::rc::Rc;

    use toystore_guest::wasi::{into_response, read_request, WasiNet};
    use wasip3::http::types::{ErrorCode, Request, Response};

    thread_local! {
        static FRONTEND: Rc<super::Frontend<WasiNet>> = Rc::new(super::Frontend::new(super::Config::from_env(), WasiNet));
    }

    struct Component;
    wasip3::http::service::export!(Component);

    impl wasip3::exports::http::handler::Guest for Component {
        async fn handle(request: Request) -> Result<Response, ErrorCode> {
            let frontend = FRONTEND.with(Rc::clone);
            let reply = match read_request(request).await {
                Ok(req) if super::storefront::is_page(&req) => return super::storefront::response(),
                Ok(req) => frontend.handle(&req).await,
                Err(reply) => reply,
            };
            into_response(reply)
        }
    }
}
