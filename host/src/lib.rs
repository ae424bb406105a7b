//! toystore-host: the runtime that runs the toy store's WebAssembly components under wasmtime,
//! and its own commands ([`serve`], [`replica`]). The `toystore` binary (`cli/`) calls them; this
//! crate does not depend on the load client.
//!
//! The modules are layers; each imports only the ones listed before it (a test in `tests/`
//! checks that no two files import each other in a circle). Reading order, from the bottom:
//! - `toystore_manifest::resolve` (the manifest crate): what to run (`toystore.toml`), read,
//!   resolved and validated;
//! - `net`: HTTP in and out — the response type, JSON replies, the head check, the accept loop,
//!   and a guest's outgoing calls (pooled, or handed over in process with `local_calls =
//!   "direct"`);
//! - `wasm`: the shared engine and compiled components, the spin guard, one instance serving
//!   many jobs concurrently (`run_concurrent`), and the supervisor that restarts it;
//! - `service`: one service's lifecycle (start, kill, restart, pause, stop) and its entry, where
//!   every request goes in (limits, pause, metrics, marking) and becomes a job;
//! - `ops`: the admin endpoint, metrics and their scrape, the operations page, pause, the ticker;
//! - `commands`: `serve` and `replica`, and their arguments.
//!
//! Two modules below their layer are called from above by one-line hooks: `ops::metrics`
//! (recording imports nothing but the response type) and `ops::pause` (the gate a paused
//! service waits at).

mod commands;
mod net;
mod ops;
mod service;
mod wasm;

pub use commands::cli::{ReplicaAction, ReplicaArgs, ServeArgs};
pub use commands::replica::run as replica;
pub use commands::serve::serve;
pub use toystore_manifest::resolve::{ManifestError, Selection};
