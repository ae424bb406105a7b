//! toystore catalog: the toys, their prices and their stock.
//!
//! The logic is plain Rust, tested natively: [`inventory`] (the CSV file and stock
//! arithmetic), [`apply`] (the order leader's `/apply` body), [`restock`] (when to restock),
//! [`invalidation`] (telling the frontend), [`service`] (the routes). Only the one-line WASI
//! entry below touches WASI: one long-lived [`Catalog`] per instance serves every request, and
//! its invalidations run after the reply.

pub mod apply;
pub mod inventory;
pub mod invalidation;
pub mod restock;
pub mod service;

pub use service::{Catalog, Config};

toystore_guest::export_service!(Catalog<toystore_guest::wasi::WasiNet> =
    Catalog::new(Config::from_env(), toystore_guest::wasi::WasiNet),
    after_reply = Catalog::after_reply);
