//! Settings arrive as environment variables (the host passes the manifest's `[settings]`
//! upper-cased, plus each service's identity; under `wasmtime serve` they are `--env` flags).
//! The types, their defaults and the variable names live in `toystore-manifest`, shared with
//! the host that writes them; this module only reads them.

pub use toystore_manifest::{OrderReplicas, ServiceEnv, Settings};

/// The settings and the service's identity from this process's environment.
///
/// A variable that does not parse (only possible outside the host, which validates the
/// manifest) is reported on stderr, and that half falls back to its defaults rather than
/// keeping the component from starting.
pub fn from_env() -> (Settings, ServiceEnv) {
    let settings = Settings::from_env().unwrap_or_else(|e| {
        eprintln!("toystore: {e}; using the default settings");
        Settings::default()
    });
    let service = ServiceEnv::from_env().unwrap_or_else(|e| {
        eprintln!("toystore: {e}; using the default service environment");
        ServiceEnv::default()
    });
    (settings, service)
}
