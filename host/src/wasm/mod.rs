//! The WebAssembly side: the shared engine, linker and compiled components ([`runtime`]), the
//! guard that cuts a spinning guest ([`spin_guard`]), one instance serving many jobs at once
//! ([`instance`]), the supervisor that keeps it alive ([`supervisor`]), the data directory it
//! may touch ([`datadir`]), and the allocator ([`alloc`]).

pub mod alloc;
pub mod datadir;
pub mod instance;
pub mod runtime;
pub mod spin_guard;
pub mod supervisor;
