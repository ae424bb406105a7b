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

/// `ORDER_REPLICAS`-style lists: `1=http://127.0.0.1:8091,2=http://127.0.0.1:8092`.
/// Entries that do not parse are skipped (the strict form is [`OrderReplicas`]).
pub fn id_urls(value: &str) -> Vec<(u32, String)> {
    value
        .split(',')
        .filter_map(|part| {
            let (id, url) = part.trim().split_once('=')?;
            Some((id.trim().parse().ok()?, url.trim().trim_end_matches('/').to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn id_urls_parse() {
        let v = super::id_urls("1=http://a:1/, 2=http://b:2,bad,x=http://c");
        assert_eq!(v, vec![(1, "http://a:1".to_string()), (2, "http://b:2".to_string())]);
    }
}
