//! The WASI 0.3 entry: one [`Service`] per instance (its state lives as long as the instance),
//! each request read into a [`toystore_guest::Request`] and answered by the service.

use std::rc::Rc;

use toystore_guest::wasi::{into_response, read_request, WasiNet};
use wasip3::http::types::{ErrorCode, Request, Response};

use crate::{Config, Service};

thread_local! {
    static SERVICE: Rc<Service<WasiNet>> = Rc::new(Service::new(Config::from_env(), WasiNet));
}

struct Order;
wasip3::http::service::export!(Order);

impl wasip3::exports::http::handler::Guest for Order {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let service = SERVICE.with(Rc::clone);
        let reply = match read_request(request).await {
            Ok(req) => service.handle(&req).await,
            Err(reply) => reply,
        };
        into_response(reply)
    }
}
