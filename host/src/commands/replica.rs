//! `toystore replica list|kill|restart|pause|resume`: a small client of the admin endpoint of a running
//! `toystore serve` that prints readable results.
//!
//! Each host supervises only its own services, so the command asks the host that runs the
//! replica: `--admin` if given; else, when the manifest has `[[host]]` tables, the host whose
//! `services` name `order-<id>` (and `list` asks every host, one table with a HOST column);
//! else the manifest's top-level `admin`.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use futures::future::join_all;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::commands::cli::{ReplicaAction, ReplicaArgs};
use toystore_manifest::resolve as manifest;

/// Generous: `kill` waits for the replica's tasks to end, `list` pings every replica.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(15);

/// One admin endpoint to ask: a `[[host]]` of the manifest, or the one admin address.
#[derive(Debug, Clone)]
struct Target {
    /// The host's name (`None`: `--admin`, or a manifest without `[[host]]` tables).
    host: Option<String>,
    admin: SocketAddr,
    /// The services the host runs (empty: unknown, it may run any).
    services: Vec<String>,
}

/// Whom to ask, from `--admin` or the manifest.
fn targets(args: &ReplicaArgs) -> anyhow::Result<Vec<Target>> {
    if let Some(admin) = args.admin {
        return Ok(vec![Target { host: None, admin, services: Vec::new() }]);
    }
    let hosts = manifest::hosts_of(&args.manifest).context("no --admin given, and the manifest could not be read")?;
    if !hosts.is_empty() {
        return Ok(hosts.into_iter().map(|h| Target { host: Some(h.name), admin: h.admin, services: h.services }).collect());
    }
    let admin = manifest::admin_address(&args.manifest)
        .context("no --admin given, and the admin address could not be read from the manifest")?;
    Ok(vec![Target { host: None, admin, services: Vec::new() }])
}

/// The target that runs replica `id`.
fn target_of(targets: &[Target], id: u32) -> anyhow::Result<&Target> {
    let name = format!("order-{id}");
    match targets {
        [only] if only.host.is_none() => Ok(only),
        _ => targets.iter().find(|t| t.services.contains(&name)).ok_or_else(|| {
            let hosts: Vec<&str> = targets.iter().filter_map(|t| t.host.as_deref()).collect();
            anyhow!("no [[host]] of the manifest runs {name} (hosts: {}); pass --admin", hosts.join(", "))
        }),
    }
}

pub async fn run(args: ReplicaArgs) -> anyhow::Result<()> {
    let targets = targets(&args)?;
    // Every action but `list` is one POST to `/replicas/<id>/<verb>` and one line of output.
    let (id, verb, done, note) = match args.action {
        ReplicaAction::List => return list(&targets).await,
        ReplicaAction::Kill { id } => (id, "kill", "killed", ""),
        ReplicaAction::Restart { id } => (id, "restart", "restarted", "; it answers /ping once it has resynced"),
        ReplicaAction::Pause { id } => (id, "pause", "paused", "; it answers nothing until resumed"),
        ReplicaAction::Resume { id } => (id, "resume", "resumed", ""),
    };
    let target = target_of(&targets, id)?;
    let data = call(target.admin, http::Method::POST, &format!("/replicas/{id}/{verb}")).await?;
    let on = target.host.as_ref().map(|h| format!(" on host {h}")).unwrap_or_default();
    println!("replica {id} {done}{on} ({}): state {}{note}", field(&data, "address"), field(&data, "state"));
    Ok(())
}

/// Ask every target at once; one table of every replica (with a HOST column when the
/// manifest names hosts), then a line for each host that did not answer. Fails only if none
/// answered.
async fn list(targets: &[Target]) -> anyhow::Result<()> {
    let answers = join_all(targets.iter().map(|t| call(t.admin, http::Method::GET, "/replicas"))).await;
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for (target, answer) in targets.iter().zip(answers) {
        match answer {
            Ok(Value::Array(replicas)) => rows.extend(replicas.into_iter().map(|mut r| {
                if let (Some(host), Some(map)) = (&target.host, r.as_object_mut()) {
                    map.insert("host".into(), Value::String(host.clone()));
                }
                r
            })),
            Ok(other) => failures.push(format!("{}: unexpected answer {other}", describe(target))),
            Err(e) => failures.push(format!("{}: {e:#}", describe(target))),
        }
    }
    if rows.is_empty() && !failures.is_empty() {
        bail!("{}", failures.join("\n"));
    }
    rows.sort_by_key(|r| r.get("id").and_then(Value::as_u64));
    print!("{}", format_table(&Value::Array(rows)));
    for failure in failures {
        println!("not answering: {failure}");
    }
    Ok(())
}

fn describe(target: &Target) -> String {
    match &target.host {
        Some(host) => format!("host {host} (admin {})", target.admin),
        None => format!("admin {}", target.admin),
    }
}

/// Call the admin endpoint and return the `data` of a success, or the error message.
async fn call(admin: SocketAddr, method: http::Method, path: &str) -> anyhow::Result<Value> {
    let client: Client<_, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(hyper_util::client::legacy::connect::HttpConnector::new());
    let request = http::Request::builder()
        .method(method)
        .uri(format!("http://{admin}{path}"))
        .body(Full::new(Bytes::new()))
        .context("building the admin request")?;
    let exchange = async {
        let response = client.request(request).await.map_err(|e| {
            if e.is_connect() {
                anyhow!("no toystore host is answering on {admin} (is `toystore serve` running?)")
            } else {
                anyhow!("the admin endpoint on {admin} failed: {}", crate::net::outgoing::error_chain(&e))
            }
        })?;
        let status = response.status();
        let body = response.into_body().collect().await.context("reading the admin reply")?.to_bytes();
        Ok::<_, anyhow::Error>((status, body))
    };
    let (status, body) = tokio::time::timeout(ADMIN_TIMEOUT, exchange)
        .await
        .map_err(|_| anyhow!("the admin endpoint on {admin} did not answer within {ADMIN_TIMEOUT:?}"))??;
    let json: Value = serde_json::from_slice(&body)
        .with_context(|| format!("the admin endpoint answered {status} with non-JSON: {}", String::from_utf8_lossy(&body)))?;
    if !status.is_success() {
        let message = toystore_api::error_of(&json).map(|e| e.message).unwrap_or_else(|| "(no message)".into());
        bail!("{message} (HTTP {status})");
    }
    Ok(toystore_api::data_of(&json).cloned().unwrap_or(Value::Null))
}

fn field(data: &Value, name: &str) -> String {
    match data.get(name) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(v) => v.to_string(),
    }
}

/// Whether a replica leads, from its `/ping` `leader` member: a flag, or the leader's id.
fn leads(replica: &Value) -> &'static str {
    match replica.get("leader") {
        Some(Value::Bool(true)) => "yes",
        Some(Value::Bool(false)) => "no",
        Some(Value::Number(n)) if n.as_u64() == replica.get("id").and_then(Value::as_u64) => "yes",
        Some(Value::Number(_)) => "no",
        _ => "-",
    }
}

/// The replicas as a table; `ping` shows the replica's own view, or why it did not answer. A
/// HOST column comes first when the rows carry a `host`.
fn format_table(data: &Value) -> String {
    let empty = Vec::new();
    let replicas = data.as_array().unwrap_or(&empty);
    let with_host = replicas.iter().any(|r| r.get("host").is_some());
    let rows: Vec<Vec<String>> = replicas
        .iter()
        .map(|r| {
            let ping = r.get("ping").cloned().unwrap_or(Value::Null);
            let view = match ping.get("error") {
                Some(e) => format!("not answering: {}", e.as_str().map(str::to_string).unwrap_or_else(|| e.to_string())),
                None => ["epoch", "last", "last_order", "synced"]
                    .iter()
                    .filter_map(|k| ping.get(*k).map(|v| format!("{k}={v}")))
                    .collect::<Vec<_>>()
                    .join(" "),
            };
            let mut row = vec![field(r, "id"), field(r, "address"), field(r, "state"), field(r, "crashes"), leads(r).to_string(), view];
            if with_host {
                row.insert(0, field(r, "host"));
            }
            row
        })
        .collect();
    let mut header: Vec<String> = ["ID", "ADDRESS", "STATE", "CRASHES", "LEADER", "PING"].map(String::from).to_vec();
    if with_host {
        header.insert(0, "HOST".into());
    }
    let mut widths: Vec<usize> = header.iter().map(String::len).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table_shows_state_leader_and_ping() {
        let data = json!([
            {"id": 1, "address": "http://127.0.0.1:8091", "state": "running", "crashes": 0,
             "leader": false, "ping": {"id": 1, "leader": false, "epoch": 2, "last": 7, "synced": true}},
            {"id": 3, "address": "http://127.0.0.1:8093", "state": "running", "crashes": 1,
             "leader": 3, "ping": {"epoch": 2}},
            {"id": 2, "address": "http://127.0.0.1:8092", "state": "killed", "crashes": 0,
             "leader": null, "ping": {"error": "replica is killed"}},
        ]);
        let table = format_table(&data);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("ID  ADDRESS"), "{table}");
        assert!(lines[1].contains("running") && lines[1].contains(" no ") && lines[1].contains("epoch=2 last=7 synced=true"), "{table}");
        assert!(lines[2].contains(" yes "), "{table}");
        assert!(lines[3].contains("killed") && lines[3].contains("not answering: replica is killed"), "{table}");
    }

    #[test]
    fn table_gets_a_host_column_when_rows_name_hosts() {
        let data = json!([
            {"host": "a", "id": 1, "address": "http://10.0.0.1:8091", "state": "running", "crashes": 0, "leader": 1, "ping": {}},
            {"host": "b", "id": 2, "address": "http://10.0.0.2:8092", "state": "running", "crashes": 0, "leader": 1, "ping": {}},
        ]);
        let table = format_table(&data);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("HOST  ID  ADDRESS"), "{table}");
        assert!(lines[1].starts_with("a     1 ") && lines[1].contains(" yes"), "{table}");
        assert!(lines[2].starts_with("b     2 ") && lines[2].contains(" no"), "{table}");
    }

    #[test]
    fn a_replica_command_goes_to_the_host_that_runs_it() {
        let host = |name: &str, port: u16, services: &[&str]| Target {
            host: Some(name.into()),
            admin: SocketAddr::from(([10, 0, 0, 1], port)),
            services: services.iter().map(|s| s.to_string()).collect(),
        };
        let targets = [host("a", 1, &["frontend", "order-1"]), host("b", 2, &["order-2"])];
        assert_eq!(target_of(&targets, 2).unwrap().host.as_deref(), Some("b"));
        assert_eq!(target_of(&targets, 1).unwrap().host.as_deref(), Some("a"));
        let err = target_of(&targets, 3).unwrap_err().to_string();
        assert!(err.contains("order-3") && err.contains("a, b"), "{err}");
        let one = [Target { host: None, admin: SocketAddr::from(([127, 0, 0, 1], 9)), services: Vec::new() }];
        assert_eq!(target_of(&one, 3).unwrap().admin.port(), 9);
    }
}
