//! The manifest (`toystore.toml`) read, resolved and validated: which component runs where,
//! with which data directory and settings. The host serves from it and `toystore check` finds
//! the data directories through it, so both read a manifest the same way. Behind the
//! `resolve` feature, so the components (which only read their environment) do not build it.
//!
//! Parsing happens in two steps so that every mistake gets a clear message:
//! 1. [`ManifestFile`] (the schema shared with the client and the components, [`crate::file`])
//!    mirrors the TOML file exactly: typed settings, unknown keys rejected,
//!    so a typo such as `listn` or `cache_capacty` fails with the file, the key and the known
//!    keys instead of being ignored;
//! 2. [`Manifest::from_raw`] resolves relative paths against the manifest's directory, turns
//!    the three kinds of services into one flat list of [`ServiceSpec`]s and validates the
//!    whole: unique names/ids/addresses, the `[[host]]` tables, a loopback (or, per `[[host]]`,
//!    private) admin address, and for the services this process runs (see [`Selection`]) files
//!    that exist and data directories of their own. Internal listeners on non-loopback
//!    addresses are allowed (several machines on a private network) but listed by
//!    [`Manifest::unprotected_internal_listeners`], which `serve` warns about unless the
//!    manifest says `expose_internal = true`.
//!
//! A manifest describes the whole store even when one process runs only part of it
//! (`toystore serve --only catalog,order-1` or `--host a`): every component is told every
//! service's address, which may be another machine's.
//!
//! Everything in the host after this module works with the validated [`Manifest`] only.

use std::collections::{BTreeSet, HashSet};
use std::net::IpAddr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use crate::{HostTable, Listener, LocalCalls, OutgoingHttp};
use crate::{
    FrontendTable, InternalRoutes, ManifestFile, OrderReplicas, ReplicaTable, ServiceEnv, ServiceTable, Settings,
};

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read the manifest {path}: {error}")]
    Read { path: PathBuf, error: std::io::Error },
    #[error("the manifest {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("the manifest {path} is not valid: {problems}", problems = .problems.join("; "))]
    Invalid { path: PathBuf, problems: Vec<String> },
    /// `--only` named services the manifest does not have (a usage error: exit status 2).
    #[error("no service {unknown} in {path} (its services: {known})", unknown = .unknown.join(", "), known = .known.join(", "))]
    UnknownServices { path: PathBuf, unknown: Vec<String>, known: Vec<String> },
    /// `--host` named a host the manifest's `[[host]]` tables do not have (exit status 2).
    #[error("no [[host]] named {name} in {path} (its hosts: {known})", known = if .known.is_empty() { "none".to_string() } else { .known.join(", ") })]
    UnknownHost { path: PathBuf, name: String, known: Vec<String> },
}

impl ManifestError {
    /// Whether the command line, not the file, is at fault (`toystore serve` exits 2).
    pub fn is_usage(&self) -> bool {
        matches!(self, ManifestError::UnknownServices { .. } | ManifestError::UnknownHost { .. })
    }
}

/// Which services of the manifest this process runs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Selection {
    /// Every service (one machine runs the whole store).
    #[default]
    All,
    /// `--only frontend,order-1`: these, by name.
    Only(Vec<String>),
    /// `--host a`: the services of the `[[host]]` named so, with its admin address.
    Host(String),
}

impl Selection {
    /// Read the manifest without running anything of it (`toystore check`): the whole store is
    /// resolved and validated, but no component or seed file needs to exist here.
    pub fn none() -> Selection {
        Selection::Only(Vec::new())
    }
}

/// One `[[host]]`: a machine, its admin endpoint and the services it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct HostSpec {
    pub name: String,
    pub admin: SocketAddr,
    pub services: Vec<String>,
}

/// What kind of service a [`ServiceSpec`] is; decides its name and its extra environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServiceKind {
    Frontend,
    Catalog,
    Order { replica: u32 },
}

/// One service to run: one long-lived instance of `component` on `listen` (and, for the
/// frontend, on `internal_listen` too).
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSpec {
    pub kind: ServiceKind,
    /// `frontend`, `catalog` or `order-N`; also the `SERVICE_NAME` the component sees.
    pub name: String,
    pub component: PathBuf,
    /// The frontend's public address; for the other services their only (internal) one.
    pub listen: SocketAddr,
    /// The frontend's internal listener (port 0 until `serve` has bound it); `None` for the
    /// other services, whose `listen` is internal.
    pub internal_listen: Option<SocketAddr>,
    pub data_dir: PathBuf,
    /// Files copied into `data_dir` when they are not there yet.
    pub seed: Vec<PathBuf>,
}

impl ServiceSpec {
    /// Where other components and the host reach this service: its internal listener.
    pub fn internal_addr(&self) -> SocketAddr {
        self.internal_listen.unwrap_or(self.listen)
    }

    /// The URL other components use to reach this service (its internal listener).
    pub fn url(&self) -> String {
        format!("http://{}", self.internal_addr())
    }

    /// Every listener of the service, each with what it is: the frontend has a public and an
    /// internal one, the other services one internal listener.
    pub fn listeners(&self) -> Vec<(Listener, SocketAddr)> {
        match (self.kind, self.internal_listen) {
            (ServiceKind::Frontend, Some(internal)) => vec![(Listener::Public, self.listen), (Listener::Internal, internal)],
            (ServiceKind::Frontend, None) => vec![(Listener::Public, self.listen)],
            _ => vec![(Listener::Internal, self.listen)],
        }
    }

    pub fn replica_id(&self) -> Option<u32> {
        match self.kind {
            ServiceKind::Order { replica } => Some(replica),
            _ => None,
        }
    }
}

/// A validated manifest. Paths are absolute (or relative to the current directory if the
/// manifest path itself was relative).
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// Where the manifest was read from (for messages).
    pub path: PathBuf,
    /// Address of the admin endpoint this process binds: the top-level `admin` (loopback), or
    /// with [`Selection::Host`] that host's (loopback or private).
    pub admin: SocketAddr,
    pub outgoing_http: OutgoingHttp,
    /// `expose_internal = true`: internal listeners on non-loopback addresses are intended (a
    /// private network), so `serve` does not warn about them.
    pub expose_internal: bool,
    /// Calls to services of this host: over HTTP (the default) or handed over in process.
    pub local_calls: LocalCalls,
    /// `[settings]`, typed; absent keys hold their defaults.
    pub settings: Settings,
    /// Every service of the store (frontend, catalog, then the order replicas by id), the ones
    /// other machines run included: components are told all their addresses.
    pub services: Vec<ServiceSpec>,
    /// Names of the services this process runs (all of them unless a [`Selection`] says less).
    pub local: BTreeSet<String>,
    /// `[[host]]` tables (empty when the manifest has none).
    pub hosts: Vec<HostSpec>,
}

impl Manifest {
    /// Read, parse and validate the manifest at `path`.
    pub fn load(path: &Path, selection: &Selection) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| ManifestError::Read { path: path.to_path_buf(), error })?;
        Self::parse_selected(&text, path, selection)
    }

    /// Parse and validate manifest text; relative paths resolve against `path`'s directory.
    #[cfg(test)]
    pub fn parse(text: &str, path: &Path) -> Result<Self, ManifestError> {
        Self::parse_selected(text, path, &Selection::All)
    }

    /// [`Self::parse`] for a process that runs only `selection`: files are checked for those
    /// services only (a machine running `order-2` needs no frontend component).
    pub fn parse_selected(text: &str, path: &Path, selection: &Selection) -> Result<Self, ManifestError> {
        let raw: ManifestFile = toml::from_str(text)
            .map_err(|e| ManifestError::Parse { path: path.to_path_buf(), message: e.to_string() })?;
        Self::from_raw(raw, path, selection)
    }

    fn from_raw(raw: ManifestFile, path: &Path, selection: &Selection) -> Result<Self, ManifestError> {
        let base = path.parent().unwrap_or(Path::new("")).to_path_buf();
        let resolve = |p: &Path| if p.is_absolute() { p.to_path_buf() } else { base.join(p) };
        let mut problems = Vec::new();

        let admin = parse_addr("admin", &raw.admin, &mut problems);
        if let Some(addr) = admin {
            if !addr.ip().is_loopback() {
                problems.push(format!(
                    "admin = \"{addr}\" must be a loopback address (127.0.0.1 or ::1): the admin \
                     endpoint can kill replicas"
                ));
            }
        }

        let mut services = Vec::new();
        let mut push = |kind: ServiceKind, name: String, component: &Path, raw: Endpoint<'_>, extra_seed: &[PathBuf], problems: &mut Vec<String>| {
            let Some(listen) = parse_addr(&format!("{name}.listen"), raw.listen, problems) else {
                return;
            };
            if listen.port() == 0 {
                problems.push(format!(
                    "{name}.listen = \"{listen}\" needs a fixed port: other components are told \
                     its URL"
                ));
            }
            // Port 0 is fine here: `serve` binds it before any component is told the URL.
            let internal_listen = match raw.internal_listen {
                Some(text) => match parse_addr(&format!("{name}.internal_listen"), text, problems) {
                    Some(addr) => Some(addr),
                    None => return,
                },
                None => None,
            };
            services.push(ServiceSpec {
                kind,
                name,
                component: resolve(component),
                listen,
                internal_listen,
                data_dir: resolve(raw.data_dir),
                seed: extra_seed.iter().chain(raw.seed).map(|p| resolve(p)).collect(),
            });
        };
        push(
            ServiceKind::Frontend,
            "frontend".into(),
            &raw.frontend.component,
            (&raw.frontend).into(),
            &[],
            &mut problems,
        );
        push(
            ServiceKind::Catalog,
            "catalog".into(),
            &raw.catalog.component,
            (&raw.catalog).into(),
            &[],
            &mut problems,
        );
        if raw.order.replica.is_empty() {
            problems.push("[order] needs at least one [[order.replica]]".into());
        }
        let mut replicas: Vec<&ReplicaTable> = raw.order.replica.iter().collect();
        replicas.sort_by_key(|r| r.id);
        for r in replicas {
            if r.id == 0 {
                problems.push("order.replica ids start at 1 (id = 0 found)".into());
            }
            push(
                ServiceKind::Order { replica: r.id },
                format!("order-{}", r.id),
                &raw.order.component,
                r.into(),
                &raw.order.seed,
                &mut problems,
            );
        }

        let hosts = check_hosts(&raw.hosts, &services, &mut problems);
        check_unique(&services, admin, &hosts, &mut problems);
        // `admin` is None only with a problem reported above.
        let mut admin = admin.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        // Files are checked for the selected services, and reported with any problem above.
        let local = select(selection, &services, &hosts, path, &mut admin)?;
        let local_specs: Vec<&ServiceSpec> = services.iter().filter(|s| local.contains(&s.name)).collect();
        check_files(&local_specs, &mut problems);
        check_data_dirs(&local_specs, &mut problems);
        if !problems.is_empty() {
            return Err(ManifestError::Invalid { path: path.to_path_buf(), problems });
        }
        Ok(Manifest {
            path: path.to_path_buf(),
            admin,
            outgoing_http: raw.outgoing_http,
            expose_internal: raw.expose_internal,
            local_calls: raw.local_calls,
            settings: raw.settings,
            services,
            local,
            hosts,
        })
    }

    /// Internal listeners (the catalog's, the replicas', the frontend's `internal_listen`) bound
    /// to a non-loopback address, as `(service, address)`, of the services this process runs, unless the manifest says
    /// `expose_internal = true`. Their routes trust every caller (stock changes, replication,
    /// cache invalidation), so anyone who can reach them can break the store: `serve` warns.
    pub fn unprotected_internal_listeners(&self) -> Vec<(&str, SocketAddr)> {
        if self.expose_internal {
            return Vec::new();
        }
        self.local_services()
            .flat_map(|s| s.listeners().into_iter().map(move |(listener, addr)| (s.name.as_str(), listener, addr)))
            .filter(|(_, listener, addr)| *listener == Listener::Internal && !addr.ip().is_loopback())
            .map(|(name, _, addr)| (name, addr))
            .collect()
    }

    /// The services this process runs, in manifest order.
    pub fn local_services(&self) -> impl Iterator<Item = &ServiceSpec> {
        self.services.iter().filter(|s| self.local.contains(&s.name))
    }

    /// `settings.tick_interval_ms`; 0 would spin the timer, so it means the default.
    pub fn tick_interval_ms(&self) -> u64 {
        match self.settings.tick_interval_ms {
            0 => Settings::default().tick_interval_ms,
            ms => ms,
        }
    }

    #[cfg(test)]
    pub fn service(&self, name: &str) -> Option<&ServiceSpec> {
        self.services.iter().find(|s| s.name == name)
    }

    /// The full environment of one service: every setting, then who it is and where the
    /// others are (the mapping itself lives in `toystore-manifest`, beside the reading side).
    pub fn env_for(&self, service: &ServiceSpec) -> Vec<(String, String)> {
        let url_of = |kind: ServiceKind| self.services.iter().find(|s| s.kind == kind).map(ServiceSpec::url);
        let replicas = self.services.iter().filter_map(|s| s.replica_id().map(|id| (id, s.url()))).collect();
        let identity = ServiceEnv {
            data_dir: "/data".into(),
            service_name: Some(service.name.clone()),
            frontend_url: url_of(ServiceKind::Frontend),
            catalog_url: url_of(ServiceKind::Catalog),
            order_replicas: Some(OrderReplicas(replicas)),
            replica_id: service.replica_id(),
            // Every listener marks its requests (`server::forward`), so the mark can be trusted.
            internal_routes: InternalRoutes::Marked,
            // One instance per service, each with its own directory (`check_unique`), and the
            // supervisor starts the next instance only after dropping the last: no other
            // instance ever writes this directory while this one runs.
            exclusive_data_dir: true,
        };
        let mut env = self.settings.to_env();
        env.extend(identity.to_env());
        env
    }
}

/// Only the `admin` address of the manifest at `path`, for the `toystore replica` commands:
/// they must work without the components being built, so nothing else is checked.
pub fn admin_address(path: &Path) -> Result<SocketAddr, ManifestError> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| ManifestError::Read { path: path.to_path_buf(), error })?;
    let invalid = |message: String| ManifestError::Parse { path: path.to_path_buf(), message };
    let table: toml::Table = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    let admin = table.get("admin").and_then(toml::Value::as_str).ok_or_else(|| invalid("no `admin` address".into()))?;
    admin.parse().map_err(|_| invalid(format!("admin = \"{admin}\" is not an IP:port address")))
}

/// Only the `[[host]]` tables of the manifest at `path` (none: an empty list), for
/// `toystore replica`, which asks the host that runs a replica. Like [`admin_address`], nothing
/// else is checked.
pub fn hosts_of(path: &Path) -> Result<Vec<HostSpec>, ManifestError> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| ManifestError::Read { path: path.to_path_buf(), error })?;
    let invalid = |message: String| ManifestError::Parse { path: path.to_path_buf(), message };
    let table: toml::Table = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    let Some(hosts) = table.get("host") else { return Ok(Vec::new()) };
    let raw: Vec<HostTable> = hosts.clone().try_into().map_err(|e: toml::de::Error| invalid(format!("[[host]]: {e}")))?;
    raw.into_iter()
        .map(|h| match h.admin.parse() {
            Ok(admin) => Ok(HostSpec { name: h.name, admin, services: h.services }),
            Err(_) => Err(invalid(format!("host {}'s admin = \"{}\" is not an IP:port address", h.name, h.admin))),
        })
        .collect()
}

fn parse_addr(what: &str, text: &str, problems: &mut Vec<String>) -> Option<SocketAddr> {
    match text.parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            problems.push(format!("{what} = \"{text}\" is not an IP:port address (e.g. 127.0.0.1:8080)"));
            None
        }
    }
}

/// Names unique; no two listeners on one port of one address (the same port on two machines'
/// addresses is fine; an unspecified address such as 0.0.0.0 clashes with every address).
fn check_unique(services: &[ServiceSpec], admin: Option<SocketAddr>, hosts: &[HostSpec], problems: &mut Vec<String>) {
    let mut names = HashSet::new();
    let mut taken: Vec<(SocketAddr, String)> = admin.map(|a| (a, "admin".to_string())).into_iter().collect();
    taken.extend(hosts.iter().map(|h| (h.admin, format!("host {}'s admin", h.name))));
    for s in services {
        if !names.insert(&s.name) {
            problems.push(format!("two services are named {} (replica ids must be unique)", s.name));
        }
        for (_, addr) in s.listeners() {
            // Port 0 is a fresh ephemeral port each time: it cannot collide.
            if addr.port() == 0 {
                continue;
            }
            // Services on different machines may share a port; on one address (or with one on
            // every address) they cannot.
            let clash = |(a, _): &&(SocketAddr, String)| {
                a.port() == addr.port() && (a.ip() == addr.ip() || a.ip().is_unspecified() || addr.ip().is_unspecified())
            };
            if let Some((_, other)) = taken.iter().find(clash) {
                problems.push(format!("{} and {other} both use port {}", s.name, addr.port()));
            }
            taken.push((addr, s.name.clone()));
        }
    }
}

/// Services that run in one process need data directories of their own.
fn check_data_dirs(services: &[&ServiceSpec], problems: &mut Vec<String>) {
    let mut dirs: Vec<(&Path, &str)> = Vec::new();
    for s in services {
        if let Some((_, other)) = dirs.iter().find(|(d, _)| *d == s.data_dir.as_path()) {
            problems.push(format!(
                "{} and {other} share the data directory {}: each service needs its own",
                s.name,
                s.data_dir.display()
            ));
        }
        dirs.push((&s.data_dir, &s.name));
    }
}

/// An admin endpoint can kill replicas, so it listens on loopback unless a `[[host]]` table
/// puts it on a private address explicitly (never a public or unspecified one).
fn admin_address_allowed(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        // fc00::/7 (unique local) and fe80::/10 (link local).
        IpAddr::V6(v6) => v6.is_loopback() || (v6.segments()[0] & 0xfe00) == 0xfc00 || (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

/// Validate the `[[host]]` tables: unique names, admin addresses loopback or private, every
/// service named exists and is run by one host at most.
fn check_hosts(raw: &[HostTable], services: &[ServiceSpec], problems: &mut Vec<String>) -> Vec<HostSpec> {
    let mut hosts = Vec::new();
    let mut names = HashSet::new();
    let mut runs: Vec<(&str, &str)> = Vec::new();
    for h in raw {
        if !names.insert(h.name.as_str()) {
            problems.push(format!("two [[host]] tables are named {}", h.name));
        }
        let admin = parse_addr(&format!("host {}'s admin", h.name), &h.admin, problems);
        if let Some(addr) = admin.filter(|a| !admin_address_allowed(a.ip())) {
            problems.push(format!(
                "host {}'s admin = \"{addr}\" must be a loopback or private address (10/8, \
                 172.16/12, 192.168/16, fc00::/7): the admin endpoint can kill replicas",
                h.name
            ));
        }
        for service in &h.services {
            if !services.iter().any(|s| &s.name == service) {
                problems.push(format!("host {} runs {service}, which the manifest does not have", h.name));
            } else if let Some((_, other)) = runs.iter().find(|(s, _)| s == service) {
                problems.push(format!("{service} is run by two hosts, {other} and {}", h.name));
            } else {
                runs.push((service, &h.name));
            }
        }
        if let Some(admin) = admin {
            hosts.push(HostSpec { name: h.name.clone(), admin, services: h.services.clone() });
        }
    }
    hosts
}

/// The names of the services `selection` runs; with a host, `admin` becomes that host's.
fn select(
    selection: &Selection,
    services: &[ServiceSpec],
    hosts: &[HostSpec],
    path: &Path,
    admin: &mut SocketAddr,
) -> Result<BTreeSet<String>, ManifestError> {
    let known = || services.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
    match selection {
        Selection::All => Ok(known().into_iter().collect()),
        Selection::Only(names) => {
            let unknown: Vec<String> = names.iter().filter(|n| !services.iter().any(|s| &s.name == *n)).cloned().collect();
            if !unknown.is_empty() {
                return Err(ManifestError::UnknownServices { path: path.to_path_buf(), unknown, known: known() });
            }
            Ok(names.iter().cloned().collect())
        }
        Selection::Host(name) => match hosts.iter().find(|h| &h.name == name) {
            Some(host) => {
                *admin = host.admin;
                Ok(host.services.iter().cloned().collect())
            }
            None => Err(ManifestError::UnknownHost {
                path: path.to_path_buf(),
                name: name.clone(),
                known: hosts.iter().map(|h| h.name.clone()).collect(),
            }),
        },
    }
}

fn check_files(services: &[&ServiceSpec], problems: &mut Vec<String>) {
    let mut reported = HashSet::new();
    for s in services {
        if !s.component.is_file() && reported.insert(s.component.clone()) {
            problems.push(format!(
                "component {} (for {}) does not exist; build it with `cargo build --release \
                 --target wasm32-wasip2`",
                s.component.display(),
                s.name
            ));
        }
        for seed in &s.seed {
            if !seed.is_file() && reported.insert(seed.clone()) {
                problems.push(format!("seed file {} (for {}) does not exist", seed.display(), s.name));
            }
        }
        if s.data_dir.exists() && !s.data_dir.is_dir() {
            problems.push(format!("data_dir {} (for {}) is not a directory", s.data_dir.display(), s.name));
        }
    }
}

/// What every running service has: an address (the frontend two), a data directory and
/// optional seed files.
struct Endpoint<'a> {
    listen: &'a str,
    internal_listen: Option<&'a str>,
    data_dir: &'a Path,
    seed: &'a [PathBuf],
}

impl<'a> From<&'a FrontendTable> for Endpoint<'a> {
    fn from(t: &'a FrontendTable) -> Self {
        Endpoint { listen: &t.listen, internal_listen: Some(&t.internal_listen), data_dir: &t.data_dir, seed: &t.seed }
    }
}

impl<'a> From<&'a ServiceTable> for Endpoint<'a> {
    fn from(t: &'a ServiceTable) -> Self {
        Endpoint { listen: &t.listen, internal_listen: None, data_dir: &t.data_dir, seed: &t.seed }
    }
}

impl<'a> From<&'a ReplicaTable> for Endpoint<'a> {
    fn from(t: &'a ReplicaTable) -> Self {
        Endpoint { listen: &t.listen, internal_listen: None, data_dir: &t.data_dir, seed: &t.seed }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A manifest like the repository's, with component/seed files created in `dir`.
    fn sample(dir: &Path) -> String {
        for f in ["front.wasm", "cat.wasm", "order.wasm", "catalog.csv"] {
            std::fs::write(dir.join(f), b"x").unwrap();
        }
        r#"
admin = "127.0.0.1:8079"

[settings]
cache_enabled = true
cache_capacity = 5
call_timeout_ms = 2000
tick_interval_ms = 250
debug_routes = true

[frontend]
component = "front.wasm"
listen = "127.0.0.1:8080"
internal_listen = "127.0.0.1:8070"
data_dir = "run/frontend"

[catalog]
component = "cat.wasm"
listen = "127.0.0.1:8081"
data_dir = "run/catalog"
seed = ["catalog.csv"]

[order]
component = "order.wasm"

[[order.replica]]
id = 2
listen = "127.0.0.1:8092"
data_dir = "run/order-2"

[[order.replica]]
id = 1
listen = "127.0.0.1:8091"
data_dir = "run/order-1"
"#
        .to_string()
    }

    fn parse(text: &str, dir: &Path) -> Result<Manifest, ManifestError> {
        Manifest::parse(text, &dir.join("toystore.toml"))
    }

    fn problems(text: &str, dir: &Path) -> String {
        match parse(text, dir) {
            Ok(_) => panic!("expected the manifest to be rejected"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn parses_and_resolves_relative_paths() {
        let dir = tempfile::tempdir().unwrap();
        let m = parse(&sample(dir.path()), dir.path()).unwrap();
        assert_eq!(m.admin, "127.0.0.1:8079".parse().unwrap());
        assert_eq!(m.outgoing_http, OutgoingHttp::Pooled);
        let names: Vec<&str> = m.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["frontend", "catalog", "order-1", "order-2"]);
        let catalog = m.service("catalog").unwrap();
        assert_eq!(catalog.component, dir.path().join("cat.wasm"));
        assert_eq!(catalog.data_dir, dir.path().join("run/catalog"));
        assert_eq!(catalog.seed, vec![dir.path().join("catalog.csv")]);
        assert_eq!(m.service("order-2").unwrap().replica_id(), Some(2));
        assert_eq!(m.tick_interval_ms(), 250);
    }

    #[test]
    fn environment_has_settings_urls_and_identity() {
        let dir = tempfile::tempdir().unwrap();
        let m = parse(&sample(dir.path()), dir.path()).unwrap();
        let env: BTreeMap<String, String> = m.env_for(m.service("order-1").unwrap()).into_iter().collect();
        assert_eq!(env["CACHE_ENABLED"], "true");
        assert_eq!(env["CACHE_CAPACITY"], "5");
        assert_eq!(env["DEBUG_ROUTES"], "true");
        // Settings the manifest leaves out reach the components with their defaults.
        assert_eq!(env["CACHE_TTL_SECS"], "30");
        assert_eq!(env["RESTOCK_AMOUNT"], "100");
        assert_eq!(env["DATA_DIR"], "/data");
        assert_eq!(env["SERVICE_NAME"], "order-1");
        assert_eq!(env["REPLICA_ID"], "1");
        // Other components reach the frontend on its internal listener.
        assert_eq!(env["FRONTEND_URL"], "http://127.0.0.1:8070");
        assert_eq!(env["INTERNAL_ROUTES"], "marked");
        assert_eq!(env["EXCLUSIVE_DATA_DIR"], "true", "the host owns each data directory alone");
        assert_eq!(env["CATALOG_URL"], "http://127.0.0.1:8081");
        assert_eq!(env["ORDER_REPLICAS"], "1=http://127.0.0.1:8091,2=http://127.0.0.1:8092");
        let front: BTreeMap<String, String> = m.env_for(m.service("frontend").unwrap()).into_iter().collect();
        assert!(!front.contains_key("REPLICA_ID"));
    }

    #[test]
    fn outgoing_http_mode_and_default_tick() {
        let dir = tempfile::tempdir().unwrap();
        let text = sample(dir.path())
            .replace("admin = ", "outgoing_http = \"fresh\"\nadmin = ")
            .replace("tick_interval_ms = 250\n", "");
        let m = parse(&text, dir.path()).unwrap();
        assert_eq!(m.outgoing_http, OutgoingHttp::Fresh);
        assert_eq!(m.tick_interval_ms(), Settings::default().tick_interval_ms);
        let bad = sample(dir.path()).replace("admin = ", "outgoing_http = \"magic\"\nadmin = ");
        assert!(problems(&bad, dir.path()).contains("magic"));
    }

    #[test]
    fn local_calls_are_http_unless_direct_is_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(parse(&sample(dir.path()), dir.path()).unwrap().local_calls, LocalCalls::Http);
        let direct = sample(dir.path()).replace("admin = ", "local_calls = \"direct\"\nadmin = ");
        assert_eq!(parse(&direct, dir.path()).unwrap().local_calls, LocalCalls::Direct);
        let bad = sample(dir.path()).replace("admin = ", "local_calls = \"shared-memory\"\nadmin = ");
        let msg = problems(&bad, dir.path());
        assert!(msg.contains("shared-memory") && msg.contains("direct"), "{msg}");
    }

    #[test]
    fn duplicate_ports_ids_and_dirs_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let text = sample(dir.path()).replace("8092", "8081").replace("id = 2", "id = 1");
        let msg = problems(&text, dir.path());
        assert!(msg.contains("port 8081"), "{msg}");
        assert!(msg.contains("two services are named order-1"), "{msg}");
        let text = sample(dir.path()).replace("run/order-2", "run/order-1");
        assert!(problems(&text, dir.path()).contains("share the data directory"));
    }

    #[test]
    fn missing_files_and_bad_addresses_are_reported_together() {
        let dir = tempfile::tempdir().unwrap();
        let text = sample(dir.path())
            .replace("cat.wasm", "nope.wasm")
            .replace("\"catalog.csv\"", "\"missing.csv\"")
            .replace("127.0.0.1:8079", "0.0.0.0:8079")
            .replace("127.0.0.1:8091", "localhost");
        let msg = problems(&text, dir.path());
        assert!(msg.contains("nope.wasm"), "{msg}");
        assert!(msg.contains("missing.csv"), "{msg}");
        assert!(msg.contains("admin = \"0.0.0.0:8079\" must be a loopback"), "{msg}");
        assert!(msg.contains("order-1.listen = \"localhost\""), "{msg}");
    }

    #[test]
    fn the_frontend_has_a_public_and_an_internal_listener() {
        let dir = tempfile::tempdir().unwrap();
        let m = parse(&sample(dir.path()), dir.path()).unwrap();
        let front = m.service("frontend").unwrap();
        let (public, internal): (SocketAddr, SocketAddr) = ("127.0.0.1:8080".parse().unwrap(), "127.0.0.1:8070".parse().unwrap());
        assert_eq!(front.listeners(), vec![(Listener::Public, public), (Listener::Internal, internal)]);
        assert_eq!(front.url(), "http://127.0.0.1:8070");
        let catalog = m.service("catalog").unwrap();
        assert_eq!(catalog.listeners(), vec![(Listener::Internal, "127.0.0.1:8081".parse().unwrap())]);
        // Left out: a free loopback port, taken when `serve` starts.
        let text = sample(dir.path()).replace("internal_listen = \"127.0.0.1:8070\"\n", "");
        let m = parse(&text, dir.path()).unwrap();
        assert_eq!(m.service("frontend").unwrap().internal_listen, Some("127.0.0.1:0".parse().unwrap()));
        // Its port is checked against the others like any listener's.
        let text = sample(dir.path()).replace("127.0.0.1:8070", "127.0.0.1:8081");
        assert!(problems(&text, dir.path()).contains("both use port 8081"));
        let text = sample(dir.path()).replace("127.0.0.1:8070", "nowhere");
        assert!(problems(&text, dir.path()).contains("frontend.internal_listen = \"nowhere\""));
        // Only the frontend has one.
        let text = sample(dir.path()).replace("seed = [\"catalog.csv\"]", "internal_listen = \"127.0.0.1:8071\"");
        assert!(problems(&text, dir.path()).contains("internal_listen"));
    }

    #[test]
    fn non_loopback_internal_listeners_are_listed_unless_exposed_on_purpose() {
        let dir = tempfile::tempdir().unwrap();
        assert!(parse(&sample(dir.path()), dir.path()).unwrap().unprotected_internal_listeners().is_empty());
        let text = sample(dir.path())
            .replace("127.0.0.1:8081", "0.0.0.0:8081")
            .replace("127.0.0.1:8070", "10.0.0.5:8070")
            .replace("127.0.0.1:8092", "[::]:8092")
            // The public listener may be anywhere.
            .replace("127.0.0.1:8080", "0.0.0.0:8080");
        let m = parse(&text, dir.path()).unwrap();
        let listed: Vec<(&str, String)> = m.unprotected_internal_listeners().into_iter().map(|(n, a)| (n, a.to_string())).collect();
        assert_eq!(
            listed,
            [("frontend", "10.0.0.5:8070".to_string()), ("catalog", "0.0.0.0:8081".into()), ("order-2", "[::]:8092".into())]
        );
        let exposed = parse(&text.replace("admin = ", "expose_internal = true\nadmin = "), dir.path()).unwrap();
        assert!(exposed.expose_internal);
        assert!(exposed.unprotected_internal_listeners().is_empty());
    }

    #[test]
    fn settings_are_typed() {
        let dir = tempfile::tempdir().unwrap();
        let text = sample(dir.path()).replace("cache_capacity = 5", "cache_capacity = \"five\"");
        let msg = problems(&text, dir.path());
        assert!(msg.contains("cache_capacity") && msg.contains("five"), "{msg}");
    }

    /// A misspelled key, wherever it is, names the file, the key and the known keys.
    #[test]
    fn misspelled_keys_name_the_file_the_key_and_the_known_keys() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("toystore.toml");
        let cases = [
            ("cache_capacity = 5", "cache_capacty = 50", "cache_capacty", ["cache_capacity", "call_timeout_ms"]),
            ("admin = ", "admn = \"x\"\nadmin = ", "admn", ["outgoing_http", "local_calls"]),
            ("data_dir = \"run/catalog\"", "data_dir = \"run/catalog\"\nseeds = []", "seeds", ["seed", "data_dir"]),
        ];
        for (from, to, typo, known) in cases {
            let msg = problems(&sample(dir.path()).replace(from, to), dir.path());
            assert!(msg.contains(&manifest.display().to_string()), "{msg}");
            assert!(msg.contains(&format!("`{typo}`")), "{typo}: {msg}");
            for key in known {
                assert!(msg.contains(&format!("`{key}`")), "{key}: {msg}");
            }
        }
    }

    #[test]
    fn unknown_keys_and_missing_sections_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let text = sample(dir.path()).replace("listen = \"127.0.0.1:8080\"", "listn = \"127.0.0.1:8080\"");
        assert!(problems(&text, dir.path()).contains("listn"));
        let text = sample(dir.path()).replace("[[order.replica]]", "[[order.replicas]]");
        assert!(problems(&text, dir.path()).contains("replicas"));
        let no_replicas: String = sample(dir.path()).split("[[order.replica]]").next().unwrap().to_string();
        assert!(problems(&no_replicas, dir.path()).contains("at least one"));
    }

    /// `sample` with the services split over two machines.
    fn two_hosts(dir: &Path) -> String {
        sample(dir).replace("127.0.0.1:8092", "10.0.0.2:8091").replace("run/order-2", "run/order-1")
            + r#"
[[host]]
name = "a"
admin = "10.0.0.1:8079"
services = ["frontend", "catalog", "order-1"]

[[host]]
name = "b"
admin = "10.0.0.2:8079"
services = ["order-2"]
"#
    }

    #[test]
    fn only_runs_a_subset_and_checks_files_for_it_alone() {
        let dir = tempfile::tempdir().unwrap();
        let text = sample(dir.path());
        let only = |names: &[&str]| Selection::Only(names.iter().map(|n| n.to_string()).collect());
        let path = dir.path().join("toystore.toml");
        let m = Manifest::parse_selected(&text, &path, &only(&["catalog", "order-2"])).unwrap();
        let local: Vec<&str> = m.local_services().map(|s| s.name.as_str()).collect();
        assert_eq!(local, ["catalog", "order-2"]);
        assert_eq!(m.services.len(), 4, "every service stays known, for the components' URLs");
        let env: BTreeMap<String, String> = m.env_for(m.service("order-2").unwrap()).into_iter().collect();
        assert_eq!(env["FRONTEND_URL"], "http://127.0.0.1:8070", "the frontend's internal listener");
        // A machine that does not run the frontend needs no frontend component.
        std::fs::remove_file(dir.path().join("front.wasm")).unwrap();
        assert!(Manifest::parse_selected(&text, &path, &only(&["order-1"])).is_ok());
        assert!(problems(&text, dir.path()).contains("front.wasm"));
        // Unknown names: a usage error naming the known ones.
        match Manifest::parse_selected(&text, &path, &only(&["order-1", "order-9", "db"])) {
            Err(e @ ManifestError::UnknownServices { .. }) => {
                assert!(e.is_usage());
                let msg = e.to_string();
                assert!(msg.contains("order-9, db") && msg.contains("frontend, catalog, order-1, order-2"), "{msg}");
            }
            other => panic!("expected UnknownServices, got {other:?}"),
        }
    }

    #[test]
    fn hosts_split_the_services_and_bind_their_own_admin() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("toystore.toml");
        let text = two_hosts(dir.path());
        let m = Manifest::parse_selected(&text, &path, &Selection::Host("b".into())).unwrap();
        assert_eq!(m.admin, "10.0.0.2:8079".parse().unwrap());
        assert_eq!(m.local.iter().map(String::as_str).collect::<Vec<_>>(), ["order-2"]);
        assert_eq!(m.hosts.len(), 2);
        // The same port (and data directory) on two machines is fine.
        let a = Manifest::parse_selected(&text, &path, &Selection::Host("a".into())).unwrap();
        assert_eq!(a.admin, "10.0.0.1:8079".parse().unwrap());
        assert!(a.local.contains("order-1") && !a.local.contains("order-2"));
        // `--only` keeps the top-level admin.
        let only = Manifest::parse_selected(&text, &path, &Selection::Only(vec!["order-2".into()])).unwrap();
        assert_eq!(only.admin, "127.0.0.1:8079".parse().unwrap());
        match Manifest::parse_selected(&text, &path, &Selection::Host("c".into())) {
            Err(e @ ManifestError::UnknownHost { .. }) => assert!(e.is_usage() && e.to_string().contains("a, b"), "{e}"),
            other => panic!("expected UnknownHost, got {other:?}"),
        }
        // Both on one machine: the data directory is shared, which is refused.
        assert!(problems(&text, dir.path()).contains("share the data directory"));
    }

    #[test]
    fn host_tables_are_validated() {
        let dir = tempfile::tempdir().unwrap();
        let text = two_hosts(dir.path())
            .replace("\"10.0.0.2:8079\"", "\"8.8.8.8:8079\"")
            .replace("services = [\"order-2\"]", "services = [\"order-2\", \"order-1\", \"order-7\"]");
        let msg = problems(&text, dir.path());
        assert!(msg.contains("host b's admin = \"8.8.8.8:8079\" must be a loopback or private"), "{msg}");
        assert!(msg.contains("order-1 is run by two hosts, a and b"), "{msg}");
        assert!(msg.contains("host b runs order-7, which the manifest does not have"), "{msg}");
        let text = two_hosts(dir.path()).replace("\"10.0.0.2:8079\"", "\"0.0.0.0:8079\"");
        assert!(problems(&text, dir.path()).contains("must be a loopback or private"));
        let text = two_hosts(dir.path()).replace("name = \"b\"", "name = \"a\"");
        assert!(problems(&text, dir.path()).contains("two [[host]] tables are named a"));
        // A listener on the same IP and port as a host's admin clashes.
        let text = two_hosts(dir.path()).replace("10.0.0.2:8079", "10.0.0.2:8091");
        assert!(problems(&text, dir.path()).contains("both use port 8091"));
        // `toystore replica` reads the host tables alone.
        std::fs::write(&dir.path().join("m.toml"), two_hosts(dir.path())).unwrap();
        let hosts = hosts_of(&dir.path().join("m.toml")).unwrap();
        assert_eq!(hosts[1], HostSpec { name: "b".into(), admin: "10.0.0.2:8079".parse().unwrap(), services: vec!["order-2".into()] });
        std::fs::write(&dir.path().join("m.toml"), sample(dir.path())).unwrap();
        assert!(hosts_of(&dir.path().join("m.toml")).unwrap().is_empty());
    }

    #[test]
    fn admin_address_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.toml");
        std::fs::write(&path, "admin = \"127.0.0.1:9\"\n[frontend]\ncomponent = \"missing.wasm\"\n").unwrap();
        assert_eq!(admin_address(&path).unwrap(), "127.0.0.1:9".parse().unwrap());
        std::fs::write(&path, "x = 1\n").unwrap();
        assert!(admin_address(&path).unwrap_err().to_string().contains("admin"));
        assert!(admin_address(&dir.path().join("none.toml")).is_err());
    }

    #[test]
    fn the_repository_manifest_parses() {
        // Only the syntax: the components may not be built in a unit-test run.
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../toystore.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        match Manifest::parse(&text, &path) {
            Ok(m) => assert_eq!(m.services.len(), 5),
            Err(ManifestError::Invalid { problems, .. }) => {
                assert!(problems.iter().all(|p| p.contains("does not exist")), "{problems:?}")
            }
            Err(e) => panic!("{e}"),
        }
    }
}
