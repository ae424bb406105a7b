//! What every toystore component shares.
//!
//! A component's logic is written against the plain types here ([`Request`], [`Reply`], the
//! [`Net`] trait) so that it compiles and unit-tests natively; only [`wasi`] (built for
//! `wasm32` alone) touches the WASI 0.3 bindings. The component's `wasm` module then stays a
//! dozen lines: turn the WASI request into a [`Request`], call the service, turn the [`Reply`]
//! back.
//!
//! Durability lives in [`durable`] and [`lock`]: the files in a component's data directory are
//! the truth, guest memory is only a cache, and writers from any number of instances are
//! serialised through a lock file in that directory.

pub mod durable;
pub mod item;
pub mod lock;
pub mod net;
pub mod reply;
pub mod request;
pub mod settings;
pub mod sync;
pub mod time;

#[cfg(target_arch = "wasm32")]
pub mod wasi;

pub use item::ItemRequest;
pub use net::{CallError, Net, NetResponse};
pub use reply::Reply;
pub use request::Request;
