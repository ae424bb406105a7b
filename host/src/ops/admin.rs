//! The admin endpoint (loopback only): JSON over HTTP, used by `toystore replica` and tests.
//!
//! | route | what |
//! |---|---|
//! | `GET /services` | every service: name, address, state, crashes, last crash, uptime |
//! | `GET /replicas` | the order replicas, plus what each one's `/ping` says (leader, epoch, ...) |
//! | `POST /replicas/<id>/kill` | stop replica `<id>` abruptly; it stays down until restarted |
//! | `POST /replicas/<id>/restart` | start a fresh instance of it (kills it first if running) |
//! | `POST /replicas/<id>/pause` | freeze it like SIGSTOP (see [`crate::ops::pause`]); 409 unless running |
//! | `POST /replicas/<id>/resume` | let a paused replica continue where it stopped; 409 unless paused |
//! | `POST /services/<name>/kill`, `.../restart`, `.../pause`, `.../resume` | the same for any service |
//! | `GET /health` | `{"data":"ok"}` |
//! | `GET /metrics` | Prometheus metrics (OpenMetrics text; see [`crate::ops::metrics`]) |
//! | `GET /` | the operations page (HTML; see [`crate::ops::page`]) |
//!
//! Replies use the components' envelope: `{"data": ...}` or `{"error": {"code", "message"}}`.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use http::{Method, StatusCode};
use hyper::body::Incoming;
use serde_json::{json, Value};

use crate::net::body::Response;
use crate::net::reply;
use crate::service::Service;
use crate::wasm::supervisor::State;

/// How long `GET /replicas` waits for each replica's `/ping`.
const PING_TIMEOUT: Duration = Duration::from_secs(1);

pub struct Admin {
    services: Vec<Arc<Service>>,
}

impl Admin {
    pub fn new(services: Vec<Arc<Service>>) -> Arc<Self> {
        Arc::new(Self { services })
    }

    pub async fn handle(self: Arc<Self>, request: hyper::Request<Incoming>) -> Response {
        let method = request.method().clone();
        let path = request.uri().path().to_string();
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        tracing::debug!(%method, %path, "admin request");
        match (&method, segments.as_slice()) {
            (&Method::GET, []) => crate::ops::page::respond(),
            (&Method::GET, ["metrics"]) => crate::ops::scrape::respond(&self.services).await,
            (&Method::GET, ["health"]) => reply::data(StatusCode::OK, json!("ok")),
            (&Method::GET, ["services"]) => {
                let reports: Vec<Value> = self.services.iter().map(|s| to_json(s.report())).collect();
                reply::data(StatusCode::OK, Value::Array(reports))
            }
            (&Method::GET, ["replicas"]) => {
                let replicas = self.replicas();
                let reports = join_all(replicas.iter().map(|s| replica_report(s, true))).await;
                reply::data(StatusCode::OK, Value::Array(reports))
            }
            (&Method::POST, ["replicas", id, action]) => match self.replica(id) {
                Some(service) => control(service, action).await,
                None => {
                    let known: Vec<String> =
                        self.replicas().iter().filter_map(|s| s.spec.replica_id()).map(|id| id.to_string()).collect();
                    reply::error(StatusCode::NOT_FOUND, format!("no replica {id} (replicas: {})", known.join(", ")))
                }
            },
            (&Method::POST, ["services", name, action]) => match self.services.iter().find(|s| s.name() == *name) {
                Some(service) => control(service, action).await,
                None => reply::error(StatusCode::NOT_FOUND, format!("no service {name}")),
            },
            (_, [] | ["health" | "metrics" | "services" | "replicas"] | ["replicas" | "services", _, "kill" | "restart" | "pause" | "resume"]) => {
                reply::error(StatusCode::METHOD_NOT_ALLOWED, format!("method {method} not allowed on {path}"))
            }
            _ => reply::error(StatusCode::NOT_FOUND, format!("no route for {method} {path}")),
        }
    }

    fn replicas(&self) -> Vec<&Arc<Service>> {
        self.services.iter().filter(|s| s.spec.replica_id().is_some()).collect()
    }

    fn replica(&self, id: &str) -> Option<&Arc<Service>> {
        let id: u32 = id.parse().ok()?;
        self.services.iter().find(|s| s.spec.replica_id() == Some(id))
    }
}

/// Kill, restart, pause or resume `service`, answering with its state afterwards.
async fn control(service: &Service, action: &str) -> Response {
    match action {
        "kill" => service.kill().await,
        "pause" | "resume" => {
            let done = if action == "pause" { service.pause().await } else { service.resume().await };
            if let Err(e) = done {
                return reply::error(StatusCode::CONFLICT, e.to_string());
            }
        }
        "restart" => {
            if let Err(e) = service.restart().await {
                return reply::error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
            }
        }
        other => return reply::error(StatusCode::NOT_FOUND, format!("unknown action {other} (kill, restart, pause or resume)")),
    }
    let report = match service.spec.replica_id() {
        Some(_) => replica_report(service, false).await,
        None => to_json(service.report()),
    };
    reply::data(StatusCode::OK, report)
}

/// A replica's report; with `ping`, also what its `/ping` answers right now.
async fn replica_report(service: &Service, ping: bool) -> Value {
    let mut report = to_json(service.report());
    if let Some(map) = report.as_object_mut() {
        map.insert("id".into(), json!(service.spec.replica_id()));
        if ping {
            let (leader, ping) = ping_replica(service).await;
            map.insert("leader".into(), leader);
            map.insert("ping".into(), ping);
        }
    }
    report
}

/// `(leader, ping)`: the `leader` member of the replica's `/ping` data (null when it does not
/// answer) and the whole answer (its data, or `{"error": why}`).
async fn ping_replica(service: &Service) -> (Value, Value) {
    if service.state() != State::Running {
        return (Value::Null, json!({ "error": format!("replica is {}", service.state()) }));
    }
    match service.call(Method::GET, "/ping", PING_TIMEOUT).await {
        Ok((status, body)) => {
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if status.is_success() {
                let data = toystore_api::data_of(&body).cloned().unwrap_or(Value::Null);
                (data.get("leader").cloned().unwrap_or(Value::Null), data)
            } else {
                let message = toystore_api::error_of(&body).map_or(json!(status.as_u16()), |e| json!(e.message));
                (Value::Null, json!({ "error": message, "status": status.as_u16() }))
            }
        }
        Err(e) => (Value::Null, json!({ "error": e.to_string() })),
    }
}

fn to_json(value: impl serde::Serialize) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}
