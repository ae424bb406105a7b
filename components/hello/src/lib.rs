//! The smallest toystore-shaped component: it answers every request with `{"data":"hello"}`.
//! The benchmark runs it under the same host to measure what the host itself costs.

use toystore_guest::{Reply, Request};

/// The whole service: no state, no routes.
pub struct Hello;

impl Hello {
    pub async fn handle(&self, _request: &Request) -> Reply {
        Reply::ok("hello")
    }
}

toystore_guest::export_service!(Hello = Hello);
