//! toystore frontend: the only public port.
//!
//! The logic is plain Rust, tested natively against an in-process fake of the catalog and the
//! order replicas: [`cache`] (the LRU product cache with versioned invalidation and a TTL),
//! [`leader`] (leader selection, failover and health checks), [`service`] (the routes),
//! [`storefront`] (the HTML page at `GET /`). Only the one-line WASI entry below touches WASI:
//! one long-lived [`Frontend`] per instance serves every request.

pub mod cache;
pub mod leader;
pub mod service;
pub mod storefront;

#[cfg(test)]
mod fake;

pub use service::{Config, Frontend};

toystore_guest::export_service!(Frontend<toystore_guest::wasi::WasiNet> =
    Frontend::new(Config::from_env(), toystore_guest::wasi::WasiNet), pages = storefront::page);
