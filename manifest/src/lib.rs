//! toystore-manifest: what `toystore.toml` may contain, and what a component's environment is.
//!
//! - [`settings`]: the typed `[settings]` table, every default in one place;
//! - [`file`]: the whole manifest file as written (serde both ways: the host reads it, the
//!   client and the test harness write it with `toml`);
//! - [`env`]: how settings and each service's identity become environment variables, and how a
//!   component reads them back;
//! - [`listener`]: which listener (public or internal) a request arrived on, as the host marks
//!   it, and when a component trusts that mark;
//! - `resolve` (feature `resolve`): a manifest file read, resolved and validated into the
//!   [`resolve::Manifest`] the host serves and `toystore check` reads.
//!
//! Every struct rejects unknown keys, so a typo such as `cache_capacty = 50` is an error naming
//! the key and the known ones instead of a silently ignored line. No runtime dependencies: the
//! components (wasm32-wasip2) use this crate as well as the host.

pub mod env;
pub mod file;
pub mod listener;
pub mod settings;
#[cfg(feature = "resolve")]
pub mod resolve;

pub use env::{EnvError, OrderReplicas, ServiceEnv};
pub use file::{FrontendTable, HostTable, LocalCalls, ManifestFile, OrderTable, OutgoingHttp, ReplicaTable, ServiceTable};
pub use listener::{InternalRoutes, Listener, LISTENER_HEADER};
pub use settings::Settings;
