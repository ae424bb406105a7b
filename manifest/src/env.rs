//! A component's environment: the host writes it ([`Settings::to_env`],
//! [`ServiceEnv::to_env`]), the component reads it back ([`Settings::from_env`],
//! [`ServiceEnv::from_env`]). Names are the field names upper-cased (`cache_capacity` ->
//! `CACHE_CAPACITY`); under the stock `wasmtime serve` they are `--env` flags.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{InternalRoutes, Settings};

/// A variable that is set but does not parse as its setting's type.
#[derive(Debug)]
pub struct EnvError(envy::Error);

impl fmt::Display for EnvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad environment: {}", self.0)
    }
}

impl std::error::Error for EnvError {}

impl Settings {
    /// The settings from these variables; absent ones take their default, variables that are
    /// not settings are ignored (a process has many).
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self, EnvError> {
        let ours = vars.into_iter().filter(|(k, _)| Settings::KEYS.contains(&k.to_ascii_lowercase().as_str()));
        envy::from_iter(ours).map_err(EnvError)
    }

    /// [`Settings::from_vars`] over this process's environment.
    pub fn from_env() -> Result<Self, EnvError> {
        Self::from_vars(std::env::vars())
    }

    /// `CACHE_CAPACITY=5`, ...: every setting, as the host hands it to each component.
    pub fn to_env(&self) -> Vec<(String, String)> {
        upper_case_vars(self)
    }
}

/// What the host tells each service about itself and the others, beside the settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceEnv {
    /// `DATA_DIR`: where the service's data directory is mounted.
    #[serde(default = "default_data_dir")]
    pub data_dir: String,
    /// `SERVICE_NAME`: `frontend`, `catalog` or `order-N`.
    #[serde(default)]
    pub service_name: Option<String>,
    /// `FRONTEND_URL`: where the catalog sends cache invalidations.
    #[serde(default)]
    pub frontend_url: Option<String>,
    /// `CATALOG_URL`.
    #[serde(default)]
    pub catalog_url: Option<String>,
    /// `ORDER_REPLICAS`: `1=http://127.0.0.1:8091,2=...`.
    #[serde(default)]
    pub order_replicas: Option<OrderReplicas>,
    /// `REPLICA_ID`, for the order replicas only.
    #[serde(default)]
    pub replica_id: Option<u32>,
    /// `INTERNAL_ROUTES`: who may use the component's internal routes (the host sets
    /// `marked`; absent means `off`, see [`crate::listener`]).
    #[serde(default)]
    pub internal_routes: InternalRoutes,
    /// `EXCLUSIVE_DATA_DIR=true`: no other instance writes this service's data directory while
    /// this one runs. The `toystore` host guarantees it (one instance per service, the next
    /// started only after the last was dropped) and sets it; then a component keeps its lock
    /// in memory and trusts what it remembers of its files. Absent (false) under the stock
    /// `wasmtime serve`, which may run several instances on one directory at once.
    #[serde(default)]
    pub exclusive_data_dir: bool,
}

fn default_data_dir() -> String {
    "/data".into()
}

impl Default for ServiceEnv {
    fn default() -> Self {
        Self {
            data_dir: default_data_dir(),
            service_name: None,
            frontend_url: None,
            catalog_url: None,
            order_replicas: None,
            replica_id: None,
            internal_routes: InternalRoutes::default(),
            exclusive_data_dir: false,
        }
    }
}

impl ServiceEnv {
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self, EnvError> {
        envy::from_iter(vars).map_err(EnvError)
    }

    pub fn from_env() -> Result<Self, EnvError> {
        Self::from_vars(std::env::vars())
    }

    /// `DATA_DIR=/data`, `SERVICE_NAME=...`, ...: the unset ones are left out.
    pub fn to_env(&self) -> Vec<(String, String)> {
        upper_case_vars(self)
    }
}

/// The order replicas, `(id, base URL)` in the written order; written and read as
/// `1=http://127.0.0.1:8091,2=http://127.0.0.1:8092`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OrderReplicas(pub Vec<(u32, String)>);

impl fmt::Display for OrderReplicas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(id, url)| format!("{id}={url}")).collect();
        f.write_str(&parts.join(","))
    }
}

impl FromStr for OrderReplicas {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        s.split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(|part| {
                let (id, url) = part.split_once('=').ok_or_else(|| format!("`{part}` is not id=url"))?;
                let id = id.trim().parse().map_err(|_| format!("`{id}` is not a replica id"))?;
                Ok((id, url.trim().trim_end_matches('/').to_string()))
            })
            .collect::<Result<_, _>>()
            .map(OrderReplicas)
    }
}

impl TryFrom<String> for OrderReplicas {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<OrderReplicas> for String {
    fn from(r: OrderReplicas) -> String {
        r.to_string()
    }
}

/// A flat struct's fields as `UPPER_CASE=value` pairs (`None` left out). serde_json does the
/// walking, so the names are exactly the ones `envy` reads back.
fn upper_case_vars(value: &impl Serialize) -> Vec<(String, String)> {
    let Ok(Value::Object(map)) = serde_json::to_value(value) else { return Vec::new() };
    map.into_iter()
        .filter_map(|(k, v)| {
            let text = match v {
                Value::Null => return None,
                Value::String(s) => s,
                other => other.to_string(),
            };
            Some((k.to_ascii_uppercase(), text))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_through_the_environment() {
        let s = Settings { cache_enabled: false, cache_capacity: 7, debug_routes: true, ..Settings::default() };
        let mut vars = s.to_env();
        assert!(vars.contains(&("CACHE_CAPACITY".into(), "7".into())));
        assert!(vars.contains(&("CACHE_ENABLED".into(), "false".into())));
        vars.push(("PATH".into(), "/bin".into()));
        assert_eq!(Settings::from_vars(vars).unwrap(), s);
        assert_eq!(Settings::from_vars(Vec::new()).unwrap(), Settings::default());
        let bad = Settings::from_vars(vec![("CALL_TIMEOUT_MS".into(), "soon".into())]);
        let msg = bad.unwrap_err().to_string();
        assert!(msg.to_ascii_lowercase().contains("call_timeout_ms"), "names the variable: {msg}");
    }

    #[test]
    fn service_env_round_trips() {
        let e = ServiceEnv {
            service_name: Some("order-2".into()),
            catalog_url: Some("http://127.0.0.1:8081".into()),
            order_replicas: Some("1=http://a:1/, 2=http://b:2".parse().unwrap()),
            replica_id: Some(2),
            internal_routes: InternalRoutes::Marked,
            exclusive_data_dir: true,
            ..ServiceEnv::default()
        };
        let vars = e.to_env();
        assert!(vars.contains(&("ORDER_REPLICAS".into(), "1=http://a:1,2=http://b:2".into())));
        assert!(vars.contains(&("DATA_DIR".into(), "/data".into())));
        assert!(vars.contains(&("INTERNAL_ROUTES".into(), "marked".into())));
        assert!(vars.contains(&("EXCLUSIVE_DATA_DIR".into(), "true".into())));
        assert!(!vars.iter().any(|(k, _)| k == "FRONTEND_URL"));
        assert_eq!(ServiceEnv::from_vars(vars).unwrap(), e);
        assert_eq!(ServiceEnv::from_vars(Vec::new()).unwrap(), ServiceEnv::default());
        assert!("1=http://a,x=http://b".parse::<OrderReplicas>().is_err());
        // Under the stock runtime, by hand: `--env INTERNAL_ROUTES=on`.
        let on = ServiceEnv::from_vars(vec![("INTERNAL_ROUTES".into(), "on".into())]).unwrap();
        assert_eq!(on.internal_routes, InternalRoutes::On);
        assert!(ServiceEnv::from_vars(vec![("INTERNAL_ROUTES".into(), "yes".into())]).is_err());
    }
}
