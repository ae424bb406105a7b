//! One service (frontend, catalog or an order replica) as the host controls it: started at
//! launch, killed and restarted by the admin endpoint, stopped at shutdown.
//!
//! A running service is two tasks joined by its job queue:
//! - the **listener** ([`server::accept_loop`]) accepts connections and turns requests into jobs;
//! - the **supervisor** ([`Supervisor::run`]) owns the instance that serves the jobs.
//!
//! Killing a service aborts both: the listener socket closes (new connections are refused),
//! open connections are dropped mid-request, and the store, with everything in flight in it, is
//! dropped. Restarting binds the same port again (SO_REUSEADDR) and builds a fresh instance on
//! the same data directory.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use serde::Serialize;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;

use crate::instance::{self, Job, ReplyError};
use crate::manifest::ServiceSpec;
use crate::runtime::{InstanceSpec, Runtime};
use crate::server::{self, Gate, Handler};
use crate::supervisor::{State, Status, StatusSnapshot, Supervisor};

/// Requests one service may have in flight before new ones get 503.
pub const MAX_IN_FLIGHT: usize = 1024;
/// Room in the job queue beyond that, for the host's own ticks and pings.
const QUEUE_SLACK: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("cannot listen on {addr} for {service}: {error}")]
    Bind { service: String, addr: SocketAddr, error: std::io::Error },
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("the service is not running")]
    NotRunning,
    #[error("the service's queue is full")]
    Busy,
    #[error(transparent)]
    Reply(#[from] ReplyError),
}

/// What is reported about a service (`GET /services`).
#[derive(Debug, Clone, Serialize)]
pub struct ServiceReport {
    pub name: String,
    pub address: String,
    #[serde(flatten)]
    pub status: StatusSnapshot,
}

pub struct Service {
    pub spec: ServiceSpec,
    runtime: Arc<Runtime>,
    instance: Arc<InstanceSpec>,
    status: Arc<Status>,
    /// The job queue of the running service, for the host's own requests.
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    /// The running service's tasks; the async lock serialises start/kill/restart.
    control: tokio::sync::Mutex<Option<Running>>,
    /// Set while a timer tick is outstanding, so slow ticks do not pile up.
    tick_busy: AtomicBool,
}

struct Running {
    shutdown: watch::Sender<bool>,
    listener: JoinHandle<()>,
    supervisor: JoinHandle<()>,
}

impl Service {
    pub fn new(spec: ServiceSpec, runtime: Arc<Runtime>, instance: InstanceSpec) -> Arc<Self> {
        crate::metrics::register_service(&spec.name);
        Arc::new(Self {
            spec,
            runtime,
            instance: Arc::new(instance),
            status: Arc::new(Status::new()),
            jobs: Mutex::new(None),
            control: tokio::sync::Mutex::new(None),
            tick_busy: AtomicBool::new(false),
        })
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn state(&self) -> State {
        self.status.state()
    }

    /// Wait (at most `limit`) until an instance has answered its start-up tick.
    pub async fn wait_started(&self, limit: Duration) -> bool {
        self.status.wait_started(limit).await
    }

    pub fn report(&self) -> ServiceReport {
        ServiceReport { name: self.spec.name.clone(), address: self.spec.url(), status: self.status.snapshot() }
    }

    /// Bind the listener and start the first instance. Does nothing if already running.
    pub async fn start(&self) -> Result<(), ServiceError> {
        let mut control = self.control.lock().await;
        if control.is_some() {
            return Ok(());
        }
        let addr = self.spec.listen;
        let listener = server::bind(addr)
            .map_err(|error| ServiceError::Bind { service: self.spec.name.clone(), addr, error })?;
        let name: Arc<str> = Arc::from(self.spec.name.as_str());
        let (jobs, queue) = mpsc::channel(MAX_IN_FLIGHT + QUEUE_SLACK);
        let gate = Arc::new(Gate {
            name: name.clone(),
            listen: addr,
            jobs: jobs.clone(),
            permits: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        });
        let handler: Handler = Arc::new(move |request| {
            let gate = gate.clone();
            Box::pin(crate::metrics::measure(gate.name.clone(), request, move |request| server::forward(gate, request)))
        });
        let (shutdown, shutdown_rx) = watch::channel(false);

        self.status.set(State::Starting);
        let supervisor = Supervisor {
            name: name.clone(),
            listen: addr,
            runtime: self.runtime.clone(),
            instance: self.instance.clone(),
            seed: self.spec.seed.clone(),
            status: self.status.clone(),
        };
        let supervisor = tokio::spawn(supervisor.run(queue));
        let listener = tokio::spawn(server::accept_loop(name, listener, handler, shutdown_rx));
        *self.lock_jobs() = Some(jobs);
        *control = Some(Running { shutdown, listener, supervisor });
        tracing::info!("{} listening on http://{addr}", self.spec.name);
        Ok(())
    }

    /// Stop abruptly: close the listener, cut open connections, drop the instance.
    pub async fn kill(&self) {
        let mut control = self.control.lock().await;
        self.lock_jobs().take();
        if let Some(running) = control.take() {
            running.listener.abort();
            running.supervisor.abort();
            // Wait until both are really gone, so the port is closed when we return.
            let _ = running.listener.await;
            let _ = running.supervisor.await;
            crate::metrics::restarted(&self.spec.name, crate::metrics::RestartCause::Kill);
        }
        self.status.set(State::Killed);
        tracing::warn!(service = %self.spec.name, "killed");
    }

    /// Kill if running, then start a fresh instance on the same port and data directory.
    pub async fn restart(&self) -> Result<(), ServiceError> {
        if self.control.lock().await.is_some() {
            self.kill().await;
        }
        self.start().await?;
        tracing::info!(service = %self.spec.name, "restarted");
        Ok(())
    }

    /// Stop accepting, let open connections finish their current request for up to `grace`,
    /// then drop everything.
    pub async fn stop(&self, grace: Duration) {
        let mut control = self.control.lock().await;
        self.lock_jobs().take();
        if let Some(mut running) = control.take() {
            let _ = running.shutdown.send(true);
            if tokio::time::timeout(grace, &mut running.listener).await.is_err() {
                tracing::warn!(service = %self.spec.name, "requests still open after {grace:?}; cutting them");
                running.listener.abort();
            }
            running.supervisor.abort();
            let _ = running.supervisor.await;
        }
        self.status.set(State::Stopped);
    }

    /// Send the running instance a request from the host itself and read the whole answer.
    pub async fn call(&self, method: Method, path: &str, timeout: Duration) -> Result<(StatusCode, Bytes), CallError> {
        let jobs = self.lock_jobs().clone().ok_or(CallError::NotRunning)?;
        let request = instance::host_request(self.spec.listen, method, path, Bytes::new());
        let (job, receiver) = Job::new(request);
        jobs.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => CallError::Busy,
            mpsc::error::TrySendError::Closed(_) => CallError::NotRunning,
        })?;
        Ok(instance::read_reply(receiver, timeout).await?)
    }

    /// Send the timer's `POST /tick` unless the instance is not running or the previous tick
    /// has not been answered yet. Failures are expected (a replica resyncing, a peer down) and
    /// only logged at debug level.
    pub fn tick(self: &Arc<Self>, timeout: Duration) {
        if self.state() != State::Running || self.tick_busy.swap(true, Ordering::AcqRel) {
            return;
        }
        let service = self.clone();
        tokio::spawn(async move {
            match service.call(Method::POST, "/tick", timeout).await {
                Ok((status, body)) if status.is_success() => crate::metrics::restocked(&body),
                Ok((status, body)) => tracing::debug!(
                    service = %service.spec.name, %status, body = %String::from_utf8_lossy(&body), "tick answered with an error"
                ),
                Err(e) => tracing::debug!(service = %service.spec.name, error = %e, "tick failed"),
            }
            service.tick_busy.store(false, Ordering::Release);
        });
    }

    fn lock_jobs(&self) -> std::sync::MutexGuard<'_, Option<mpsc::Sender<Job>>> {
        self.jobs.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// These run the real host path (listener → job queue → one instance under `run_concurrent`)
/// against the `hello` component; they are skipped when it has not been built
/// (`cargo build --release --target wasm32-wasip2 -p toystore-hello`).
#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{OutgoingHttp, ServiceKind};
    use crate::outgoing::Outgoing;
    use http_body_util::{BodyExt, Full};
    use hyper_util::client::legacy::{connect::HttpConnector, Client};
    use hyper_util::rt::TokioExecutor;
    use std::path::{Path, PathBuf};

    fn hello_wasm() -> Option<PathBuf> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip2/release/toystore_hello.wasm");
        if path.is_file() {
            Some(path)
        } else {
            eprintln!("skipped: {} is not built", path.display());
            None
        }
    }

    fn free_addr() -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    }

    async fn get(addr: SocketAddr, path: &str) -> Result<(StatusCode, String), String> {
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        let uri = format!("http://{addr}{path}");
        let response = client.get(uri.parse().unwrap()).await.map_err(|e| e.to_string())?;
        let status = response.status();
        let body = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn serves_kills_and_restarts_one_instance() {
        let Some(wasm) = hello_wasm() else { return };
        let data = tempfile::tempdir().unwrap();
        let seed = data.path().join("seed.csv");
        std::fs::write(&seed, "x\n").unwrap();
        let mut runtime = Runtime::new(Outgoing::new(OutgoingHttp::Pooled)).unwrap();
        let pre = runtime.load(&wasm).unwrap();
        let listen = free_addr();
        let spec = ServiceSpec {
            kind: ServiceKind::Order { replica: 1 },
            name: "order-1".into(),
            component: wasm,
            listen,
            data_dir: data.path().join("order-1"),
            seed: vec![seed],
        };
        let instance = InstanceSpec { pre, env: vec![("SERVICE_NAME".into(), "order-1".into())], data_dir: spec.data_dir.clone() };
        let service = Service::new(spec, Arc::new(runtime), instance);

        service.start().await.unwrap();
        assert!(service.wait_started(Duration::from_secs(10)).await, "start-up tick answered");
        assert_eq!(service.state(), State::Running);
        assert!(data.path().join("order-1/seed.csv").is_file(), "seeded");
        assert_eq!(get(listen, "/products/Tux").await.unwrap(), (StatusCode::OK, r#"{"data":"hello"}"#.into()));

        // Many concurrent requests on the one instance.
        let answers = futures::future::join_all((0..50).map(|_| get(listen, "/x"))).await;
        assert!(answers.iter().all(|a| a.as_ref().is_ok_and(|(s, _)| *s == StatusCode::OK)));

        // The host's own requests go through the same queue.
        let (status, body) = service.call(Method::POST, "/tick", Duration::from_secs(5)).await.unwrap();
        assert_eq!((status, &body[..]), (StatusCode::OK, &br#"{"data":"hello"}"#[..]));

        service.kill().await;
        assert_eq!(service.state(), State::Killed);
        assert!(get(listen, "/x").await.is_err(), "connections are refused once killed");
        assert!(matches!(service.call(Method::GET, "/ping", Duration::from_secs(1)).await, Err(CallError::NotRunning)));

        // Restart rebinds the same port at once.
        service.restart().await.unwrap();
        assert_eq!(get(listen, "/x").await.unwrap().0, StatusCode::OK);
        assert_eq!(service.report().status.crashes, 0);
        // Restarting a running service replaces its instance.
        service.restart().await.unwrap();
        assert_eq!(get(listen, "/x").await.unwrap().0, StatusCode::OK);

        service.stop(Duration::from_secs(1)).await;
        assert_eq!(service.state(), State::Stopped);
        assert!(get(listen, "/x").await.is_err());
    }
}
