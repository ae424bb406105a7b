//! toystore-host: the runtime that runs the toy store's WebAssembly components under wasmtime,
//! and its own commands ([`serve`], [`replica`]). The `toystore` binary (`cli/`) calls them; this
//! crate does not depend on the load client.
//!
//! Reading order, from the socket to the guest and back:
//! - [`manifest`]: what to run (`toystore.toml`), parsed and validated;
//! - [`runtime`]: the shared wasmtime engine, linker and compiled components;
//! - [`service`]: one service's lifecycle (start, kill, restart, stop);
//! - [`server`]: the hyper listener that turns requests into jobs, behind [`head`]'s check of
//!   every request head (limits, JSON errors where hyper would answer with an empty body);
//! - [`supervisor`]: keeps one instance alive, restarting it after a trap or a spin
//!   ([`spin`]: epoch interruption cuts a guest call that never calls the host);
//! - [`instance`]: one instance serving many jobs concurrently (`run_concurrent`);
//! - [`outgoing`]: how a component's outgoing HTTP calls are sent (a pooled client);
//! - [`local`]: with `local_calls = "direct"`, calls to this host's own services handed over in
//!   process, into the same entry the listener uses;
//! - [`ticker`], [`admin`], [`datadir`], [`reply`]: the timer, the admin endpoint, data
//!   directories and the host's own JSON replies;
//! - [`pause`]: freezing a service like SIGSTOP (the admin's pause and resume);
//! - [`alloc`]: the allocator (jemalloc) and handing freed memory back after a compile;
//! - [`metrics`], [`ops_page`]: `GET /metrics` and the operations page on the admin address;
//! - [`cli`], [`serve`](mod@serve), [`replica_cli`]: the commands.

mod admin;
mod alloc;
mod cli;
mod datadir;
mod head;
mod instance;
mod local;
mod manifest;
mod metrics;
mod ops_page;
mod outgoing;
mod pause;
mod replica_cli;
mod reply;
mod runtime;
mod serve;
mod server;
mod service;
mod spin;
mod supervisor;
mod ticker;

pub use cli::{ReplicaAction, ReplicaArgs, ServeArgs};
pub use manifest::{ManifestError, Selection};
pub use replica_cli::run as replica;
pub use serve::serve;
