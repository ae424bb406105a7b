//! The manifest file as written: the schema `toystore serve` parses and `toystore eval|bench`
//! and the end-to-end harness serialise. Only the shape is checked here; the host's
//! `manifest` module resolves paths and validates the whole (addresses, unique ports, files).

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::Settings;

/// `toystore.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    /// Loopback `IP:port` of the host's admin endpoint (checked by the host, which reports a
    /// readable problem rather than serde's).
    pub admin: String,
    #[serde(default)]
    pub outgoing_http: OutgoingHttp,
    /// `true` says "I run these on a private network": `serve` then stays quiet about internal
    /// listeners (catalog, order replicas, the frontend's `internal_listen`) bound to
    /// non-loopback addresses. By default it warns about each one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub expose_internal: bool,
    /// How a component's call reaches another service of the same host (`http`, the default,
    /// or `direct`).
    #[serde(default, skip_serializing_if = "LocalCalls::is_default")]
    pub local_calls: LocalCalls,
    #[serde(default)]
    pub settings: Settings,
    pub frontend: FrontendTable,
    pub catalog: ServiceTable,
    pub order: OrderTable,
    /// `[[host]]`: which machine runs which services, and where its admin endpoint is. Optional:
    /// without it one `toystore serve` runs everything (or what `--only` names).
    #[serde(default, rename = "host", skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<HostTable>,
}

/// `[[host]]`: one machine of a deployment spread over several. `toystore serve --host <name>`
/// runs its `services` and binds its `admin`; `toystore replica` finds a replica's host here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostTable {
    pub name: String,
    /// `IP:port` of this host's admin endpoint: loopback, or a private address (checked by the
    /// host) that the other machines' `toystore replica` can reach.
    pub admin: String,
    /// Service names (`frontend`, `catalog`, `order-1`, ...) this host runs.
    pub services: Vec<String>,
}

/// `[frontend]`: the public service, with a second, internal listener on the same instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrontendTable {
    pub component: PathBuf,
    /// The public address: the store's API, and nothing else.
    pub listen: String,
    /// The internal address: the frontend's internal routes (`/invalidate`, `/invalidate/*`, `/tick`,
    /// `/cache/stats`, `/leader`, `/debug/*`) as well as the public ones; the catalog and the
    /// host call it. Never to be exposed. Port 0 (the default) takes a free port at start.
    #[serde(default = "FrontendTable::default_internal_listen")]
    pub internal_listen: String,
    pub data_dir: PathBuf,
    /// Files copied into `data_dir` on first start (never over existing ones).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seed: Vec<PathBuf>,
}

impl FrontendTable {
    /// An ephemeral loopback port: enough when every service runs in one `toystore serve`.
    pub const DEFAULT_INTERNAL_LISTEN: &'static str = "127.0.0.1:0";

    fn default_internal_listen() -> String {
        Self::DEFAULT_INTERNAL_LISTEN.into()
    }
}

/// `[catalog]`: one service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceTable {
    pub component: PathBuf,
    pub listen: String,
    pub data_dir: PathBuf,
    /// Files copied into `data_dir` on first start (never over existing ones).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seed: Vec<PathBuf>,
}

/// `[order]`: one component, run as several replicas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderTable {
    pub component: PathBuf,
    /// Seed files copied into every replica's data directory.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seed: Vec<PathBuf>,
    #[serde(default)]
    pub replica: Vec<ReplicaTable>,
}

/// `[[order.replica]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicaTable {
    pub id: u32,
    pub listen: String,
    pub data_dir: PathBuf,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seed: Vec<PathBuf>,
}

/// How outgoing HTTP requests made by components are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutgoingHttp {
    /// One shared keep-alive connection pool for every component (the default).
    #[default]
    Pooled,
    /// wasmtime-wasi-http's own path: a new TCP connection per request (kept for comparison).
    Fresh,
}

impl fmt::Display for OutgoingHttp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OutgoingHttp::Pooled => "pooled",
            OutgoingHttp::Fresh => "fresh",
        })
    }
}

/// How a call from one component to another service **of the same host** travels.
///
/// Real HTTP over loopback is the default (it is what runs under `wasmtime serve` and across
/// machines). `direct` hands such a request to the callee's request path inside the process,
/// skipping the TCP connection and the HTTP encoding and parsing on both sides, with the same
/// limits, pause, kill and timeout behaviour. Calls to any other address still use HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LocalCalls {
    /// Over HTTP, through the callee's listener (the default).
    #[default]
    Http,
    /// In process, into the callee's request path after its HTTP parser (opt-in).
    Direct,
}

impl LocalCalls {
    pub fn is_default(&self) -> bool {
        *self == LocalCalls::default()
    }
}

impl fmt::Display for LocalCalls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LocalCalls::Http => "http",
            LocalCalls::Direct => "direct",
        })
    }
}
