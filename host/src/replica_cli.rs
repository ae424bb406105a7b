//! `toystore replica list|kill|restart|pause|resume`: a small client of the admin endpoint of a running
//! `toystore serve` that prints readable results.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::cli::{ReplicaAction, ReplicaArgs};
use crate::manifest;

/// Generous: `kill` waits for the replica's tasks to end, `list` pings every replica.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(15);

pub async fn run(args: ReplicaArgs) -> anyhow::Result<()> {
    let admin = match args.admin {
        Some(addr) => addr,
        None => manifest::admin_address(&args.manifest)
            .context("no --admin given, and the admin address could not be read from the manifest")?,
    };
    // Every action but `list` is one POST to `/replicas/<id>/<verb>` and one line of output.
    let (id, verb, done, note) = match args.action {
        ReplicaAction::List => {
            let data = call(admin, http::Method::GET, "/replicas").await?;
            print!("{}", format_table(&data));
            return Ok(());
        }
        ReplicaAction::Kill { id } => (id, "kill", "killed", ""),
        ReplicaAction::Restart { id } => (id, "restart", "restarted", "; it answers /ping once it has resynced"),
        ReplicaAction::Pause { id } => (id, "pause", "paused", "; it answers nothing until resumed"),
        ReplicaAction::Resume { id } => (id, "resume", "resumed", ""),
    };
    let data = call(admin, http::Method::POST, &format!("/replicas/{id}/{verb}")).await?;
    println!("replica {id} {done} ({}): state {}{note}", field(&data, "address"), field(&data, "state"));
    Ok(())
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
                anyhow!("the admin endpoint on {admin} failed: {}", crate::outgoing::error_chain(&e))
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

/// The replicas as a table; `ping` shows the replica's own view, or why it did not answer.
fn format_table(data: &Value) -> String {
    let empty = Vec::new();
    let rows: Vec<[String; 6]> = data
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|r| {
            let ping = r.get("ping").cloned().unwrap_or(Value::Null);
            let view = match ping.get("error") {
                Some(e) => format!("not answering: {}", e.as_str().map(str::to_string).unwrap_or_else(|| e.to_string())),
                None => ["epoch", "last", "synced"]
                    .iter()
                    .filter_map(|k| ping.get(*k).map(|v| format!("{k}={v}")))
                    .collect::<Vec<_>>()
                    .join(" "),
            };
            [field(r, "id"), field(r, "address"), field(r, "state"), field(r, "crashes"), leads(r).to_string(), view]
        })
        .collect();
    let header = ["ID", "ADDRESS", "STATE", "CRASHES", "LEADER", "PING"].map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
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
}
