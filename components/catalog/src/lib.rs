//! toystore catalog: the toys, their prices and their stock.
//!
//! The logic is plain Rust, tested natively: [`inventory`] (the CSV file and stock
//! arithmetic), [`restock`] (when to restock), [`invalidation`] (telling the frontend), [`service`] (the routes). Only the
//! `wasm` module below touches WASI: one long-lived [`Catalog`] per instance serves every
//! request.

pub mod inventory;
pub mod invalidation;
pub mod restock;
pub mod service;

pub use service::{Catalog, Config};

#[cfg(target_arch = "wasm32")]
mod wasm {
    use std::rc::Rc;

    use toystore_guest::wasi::{into_response, read_request, WasiNet};
    use wasip3::http::types::{ErrorCode, Request, Response};

    thread_local! {
        static CATALOG: Rc<super::Catalog<WasiNet>> = Rc::new(super::Catalog::new(super::Config::from_env(), WasiNet));
    }

    struct Component;
    wasip3::http::service::export!(Component);

    impl wasip3::exports::http::handler::Guest for Component {
        async fn handle(request: Request) -> Result<Response, ErrorCode> {
            let catalog = CATALOG.with(Rc::clone);
            let reply = match read_request(request).await {
                Ok(req) => catalog.handle(&req).await,
                Err(reply) => reply,
            };
            into_response(reply)
        }
    }
}
