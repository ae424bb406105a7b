//! The tests of calls between components again, with `local_calls = "direct"`: a component's
//! call to another service of the same host is handed over in process instead of going over a
//! loopback HTTP connection (`host/src/local.rs`). Same files, same assertions: each included
//! file starts its clusters with `crate::LOCAL_CALLS`, which here is this crate root's.
//!
//! Run only these: `cargo test --release <the native -p list> --test local_calls`.

use toystore_e2e::LocalCalls;

const LOCAL_CALLS: LocalCalls = LocalCalls::Direct;

#[path = "cache_and_restock.rs"]
mod cache_and_restock;
#[path = "foundation.rs"]
mod foundation;
#[path = "pause.rs"]
mod pause;
#[path = "replication.rs"]
mod replication;
