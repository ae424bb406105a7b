//! Where this replica and its peers are, and how long to wait for any of them: read once from
//! the environment the host (or `wasmtime serve`) gives the component.

use std::path::PathBuf;
use std::time::Duration;

use toystore_guest::lock::DirAccess;
use toystore_guest::settings;

/// Where this replica and its peers are, and how long to wait for any of them.
#[derive(Debug, Clone)]
pub struct Config {
    pub id: u32,
    /// Every replica, this one included: `(id, base URL)`.
    pub replicas: Vec<(u32, String)>,
    pub catalog_url: String,
    pub data_dir: PathBuf,
    pub timeout: Duration,
    pub debug_routes: bool,
    /// Whether another instance may write `data_dir` meanwhile (`EXCLUSIVE_DATA_DIR`).
    pub dir_access: DirAccess,
}

impl Config {
    /// From the environment the host gives each replica (see ARCHITECTURE.md).
    pub fn from_env() -> Config {
        let (s, env) = settings::from_env();
        Config {
            id: env.replica_id.unwrap_or(1),
            replicas: env.order_replicas.map(|r| r.0).unwrap_or_default(),
            catalog_url: env
                .catalog_url
                .map(|url| url.trim_end_matches('/').to_string())
                .filter(|url| !url.is_empty())
                .unwrap_or_else(|| "http://127.0.0.1:8081".into()),
            data_dir: PathBuf::from(env.data_dir),
            timeout: Duration::from_millis(s.call_timeout_ms),
            debug_routes: s.debug_routes,
            dir_access: DirAccess::from_exclusive(env.exclusive_data_dir),
        }
    }

    /// The other replicas.
    pub fn peers(&self) -> Vec<Peer> {
        self.replicas
            .iter()
            .filter(|(id, _)| *id != self.id)
            .map(|(id, url)| Peer { id: *id, url: url.trim_end_matches('/').to_string() })
            .collect()
    }

    /// How many replicas (this one included) make a majority.
    pub fn majority(&self) -> usize {
        let total = self.peers().len() + 1;
        total / 2 + 1
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub id: u32,
    pub url: String,
}
