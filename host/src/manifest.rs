//! The manifest (`toystore.toml`): which component runs where, with which data directory and
//! settings.
//!
//! Parsing happens in two steps so that every mistake gets a clear message:
//! 1. [`ManifestFile`] (the schema shared with the client and the components, in
//!    `toystore-manifest`) mirrors the TOML file exactly: typed settings, unknown keys rejected,
//!    so a typo such as `listn` or `cache_capacty` fails with the file, the key and the known
//!    keys instead of being ignored;
//! 2. [`Manifest::from_raw`] resolves relative paths against the manifest's directory, turns
//!    the three kinds of services into one flat list of [`ServiceSpec`]s and validates the
//!    whole: unique names/ids/addresses/data directories, files that exist, loopback-only
//!    internal addresses.
//!
//! Everything after this module works with the validated [`Manifest`] only.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use toystore_manifest::{LocalCalls, OutgoingHttp};
use toystore_manifest::{ManifestFile, OrderReplicas, ReplicaTable, ServiceEnv, ServiceTable, Settings};

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read the manifest {path}: {error}")]
    Read { path: PathBuf, error: std::io::Error },
    #[error("the manifest {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("the manifest {path} is not valid: {problems}", problems = .problems.join("; "))]
    Invalid { path: PathBuf, problems: Vec<String> },
}

/// What kind of service a [`ServiceSpec`] is; decides its name and its extra environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServiceKind {
    Frontend,
    Catalog,
    Order { replica: u32 },
}

/// One service to run: one long-lived instance of `component` on `listen`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSpec {
    pub kind: ServiceKind,
    /// `frontend`, `catalog` or `order-N`; also the `SERVICE_NAME` the component sees.
    pub name: String,
    pub component: PathBuf,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Files copied into `data_dir` when they are not there yet.
    pub seed: Vec<PathBuf>,
}

impl ServiceSpec {
    /// The URL other components use to reach this service.
    pub fn url(&self) -> String {
        format!("http://{}", self.listen)
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
    /// Loopback address of the admin endpoint.
    pub admin: SocketAddr,
    pub outgoing_http: OutgoingHttp,
    /// Calls to services of this host: over HTTP (the default) or handed over in process.
    pub local_calls: LocalCalls,
    /// `[settings]`, typed; absent keys hold their defaults.
    pub settings: Settings,
    /// Frontend, catalog, then the order replicas by id.
    pub services: Vec<ServiceSpec>,
}

impl Manifest {
    /// Read, parse and validate the manifest at `path`.
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| ManifestError::Read { path: path.to_path_buf(), error })?;
        Self::parse(&text, path)
    }

    /// Parse and validate manifest text; relative paths resolve against `path`'s directory.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ManifestError> {
        let raw: ManifestFile = toml::from_str(text)
            .map_err(|e| ManifestError::Parse { path: path.to_path_buf(), message: e.to_string() })?;
        Self::from_raw(raw, path)
    }

    fn from_raw(raw: ManifestFile, path: &Path) -> Result<Self, ManifestError> {
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
            // Only the frontend is meant to be reached from outside; everything else talks
            // over loopback.
            if kind != ServiceKind::Frontend && !listen.ip().is_loopback() {
                problems.push(format!("{name}.listen = \"{listen}\" must be a loopback address"));
            }
            if listen.port() == 0 {
                problems.push(format!(
                    "{name}.listen = \"{listen}\" needs a fixed port: other components are told \
                     its URL"
                ));
            }
            services.push(ServiceSpec {
                kind,
                name,
                component: resolve(component),
                listen,
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

        check_unique(&services, admin, &mut problems);
        check_files(&services, &mut problems);

        if !problems.is_empty() {
            return Err(ManifestError::Invalid { path: path.to_path_buf(), problems });
        }
        Ok(Manifest {
            path: path.to_path_buf(),
            // `admin` is Some: a parse failure would have been a problem above.
            admin: admin.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0))),
            outgoing_http: raw.outgoing_http,
            local_calls: raw.local_calls,
            settings: raw.settings,
            services,
        })
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

fn parse_addr(what: &str, text: &str, problems: &mut Vec<String>) -> Option<SocketAddr> {
    match text.parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            problems.push(format!("{what} = \"{text}\" is not an IP:port address (e.g. 127.0.0.1:8080)"));
            None
        }
    }
}

fn check_unique(services: &[ServiceSpec], admin: Option<SocketAddr>, problems: &mut Vec<String>) {
    let mut names = HashSet::new();
    let mut ports: Vec<(u16, String)> = admin.map(|a| (a.port(), "admin".to_string())).into_iter().collect();
    let mut dirs: Vec<(&Path, &str)> = Vec::new();
    for s in services {
        if !names.insert(&s.name) {
            problems.push(format!("two services are named {} (replica ids must be unique)", s.name));
        }
        if let Some((_, other)) = ports.iter().find(|(p, _)| *p == s.listen.port()) {
            problems.push(format!("{} and {other} both use port {}", s.name, s.listen.port()));
        }
        ports.push((s.listen.port(), s.name.clone()));
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

fn check_files(services: &[ServiceSpec], problems: &mut Vec<String>) {
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

/// What every running service has: an address, a data directory and optional seed files.
struct Endpoint<'a> {
    listen: &'a str,
    data_dir: &'a Path,
    seed: &'a [PathBuf],
}

impl<'a> From<&'a ServiceTable> for Endpoint<'a> {
    fn from(t: &'a ServiceTable) -> Self {
        Endpoint { listen: &t.listen, data_dir: &t.data_dir, seed: &t.seed }
    }
}

impl<'a> From<&'a ReplicaTable> for Endpoint<'a> {
    fn from(t: &'a ReplicaTable) -> Self {
        Endpoint { listen: &t.listen, data_dir: &t.data_dir, seed: &t.seed }
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
        assert_eq!(env["FRONTEND_URL"], "http://127.0.0.1:8080");
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
    fn internal_services_must_be_loopback_and_settings_typed() {
        let dir = tempfile::tempdir().unwrap();
        let text = sample(dir.path()).replace("127.0.0.1:8081", "0.0.0.0:8081");
        assert!(problems(&text, dir.path()).contains("catalog.listen"));
        // The frontend may listen publicly.
        let text = sample(dir.path()).replace("127.0.0.1:8080", "0.0.0.0:8080");
        assert!(parse(&text, dir.path()).is_ok());
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
