//! The toystore order service: three replicas keep `orders.csv` identical by primary-backup
//! replication with epochs, fencing and majority acknowledgement (ARCHITECTURE.md, "Replication
//! protocol"). The logic is plain Rust over the [`toystore_guest::Net`] trait, tested natively
//! with an in-process three-replica cluster; [`wasm`] only adapts it to WASI HTTP.
//!
//! - [`log`]: `orders.csv` — records (epoch and order), parse, serialise, append, cut, the
//!   bounded index over it (sparse offsets, a tail of recent records, the per-toy sums of
//!   orders the catalog has not applied); [`keys`]: the sealed idempotency-key segments.
//! - [`admission`]: the leader's stock view and the admission decision (pure); `stock`: reading
//!   the catalog's stock as its base.
//! - [`replica`]: the protocol state (the role and what only a leader has) and every
//!   decision, as pure functions with table tests — start reading here.
//! - [`epoch`]: the durable promise.
//! - [`protocol`]: the JSON messages between replicas.
//! - [`config`]: where the replicas are; [`node`]: what one replica holds (state, files under
//!   their lock, queue, replicators' bookkeeping) — `queue` and `replicators` are its parts;
//!   `routes` and `service`: the route table and answering a request.
//! - Drivers that do the I/O a decision names and apply it: `order`: the leader's order path
//!   (group commit); `commit`: per-follower replicators and the wait for a majority;
//!   `apply`: pushing committed orders to the catalog;
//!   `read`: `GET /orders/<n>` (leader only, committed only);
//!   `replication`: the leader pushing entries; `follower`: the peer routes; `election`:
//!   becoming leader; `sync`: catching up; `seed`: the seed document's spellings of
//!   `/ping`, `/synchronize` and the order query.

pub mod admission;
pub mod config;
pub mod epoch;
pub mod keys;
pub mod log;
pub mod node;
pub mod protocol;
pub mod replica;

mod apply;
mod commit;
mod election;
mod follower;
mod order;
mod queue;
mod read;
mod replicators;
mod replication;
mod routes;
mod seed;
mod service;
mod stock;
mod sync;

pub use replication::never_delivered;
pub use replica::Role;
pub use config::Config;
pub use node::Service;

#[cfg(target_arch = "wasm32")]
mod wasm;
