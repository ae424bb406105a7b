//! One service (frontend, catalog or an order replica) as the host controls it: started at
//! launch, killed and restarted by the admin endpoint, stopped at shutdown.
//!
//! A running service is two tasks joined by its job queue, both on the service's own thread
//! ([`thread::ServiceThread`]):
//! - the **listener** ([`listener::accept_loop`]) accepts connections and turns requests into jobs
//!   (the frontend has two, public and internal, feeding the same queue; each marks its
//!   requests with which one it is, see [`entry::forward`]); on a public listener,
//!   connections beyond the first few run on the service's helper thread ([`listener::Spill`]),
//!   still owned by the listener;
//! - the **supervisor** ([`Supervisor::run`]) owns the instance that serves the jobs.
//!
//! Killing a service aborts both: the listener socket closes (new connections are refused),
//! open connections are dropped mid-request, and the store, with everything in flight in it, is
//! dropped. Restarting binds the same port again (SO_REUSEADDR) and builds a fresh instance on
//! the same data directory.
//!
//! Pausing freezes the listener, the request handlers and the supervisor in place without
//! dropping anything; resuming lets them continue ([`crate::ops::pause`] says where the gate sits).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use serde::Serialize;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;

mod entry;
mod inbox;
mod thread;

use toystore_manifest::resolve::{Listener, ServiceSpec};
use crate::net::directory::{self, Directory};
use crate::net::listener::{self, Handler};
use crate::ops::{metrics, pause};
use crate::wasm::instance::{self, Job, ReplyError};
use crate::wasm::runtime::{InstanceSpec, Runtime};
use crate::wasm::supervisor::{State, ServiceStatus, StatusSnapshot, Supervisor};
use entry::{Door, Entrance, Gate};
use thread::ServiceThread;

/// Requests one service may have in flight before new ones get 503.
pub const MAX_IN_FLIGHT: usize = 1024;
/// Health checks (`GET /ping`, `GET /health`) in flight, counted apart from [`MAX_IN_FLIGHT`]
/// (see [`entry::is_probe`]): a replica busy with 1024 orders must still answer its leader
/// check, or the frontend would take busy for dead.
pub const MAX_PROBES_IN_FLIGHT: usize = 64;
/// Connections of a public listener served on the instance's own thread; more go to its
/// helper thread (see [`listener::Spill`]). Eight keep the benchmark's 1 and 8 connections
/// entirely on the instance's thread.
///
/// Internal listeners (the catalog, the order replicas, the frontend's internal one) serve
/// every connection on the instance's thread. Their clients are this store's components,
/// whose pools open a connection per call in flight, so a count above eight means a busy
/// caller, not a crowd of clients: handing those connections to a helper put two more
/// hand-overs between threads on each call while the callee's thread had room (cache misses
/// and order queries over HTTP were slower that way; the figures are in eval/bench.md).
pub const IN_THREAD_CONNECTIONS: usize = 8;

/// Room in the job queue beyond those, for the host's own ticks and pings.
const QUEUE_SLACK: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("cannot listen on {addr} for {service}: {error}")]
    Bind { service: String, addr: SocketAddr, error: std::io::Error },
    #[error("cannot start the thread of {service}: {error}")]
    Thread { service: String, error: std::io::Error },
}

/// Why a pause or resume was refused (the admin endpoint answers 409).
#[derive(Debug, thiserror::Error)]
pub enum PauseError {
    #[error("{service} is {state}: only a running service can be paused")]
    NotRunning { service: String, state: State },
    #[error("{service} is already paused")]
    AlreadyPaused { service: String },
    #[error("{service} is not paused (it is {state})")]
    NotPaused { service: String, state: State },
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceCallError {
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
    /// `listen`: the frontend's public address, the other services' only one.
    pub address: String,
    /// The frontend's internal listener.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub internal_address: Option<String>,
    #[serde(flatten)]
    pub status: StatusSnapshot,
}

pub struct Service {
    pub spec: ServiceSpec,
    runtime: Arc<Runtime>,
    instance: Arc<InstanceSpec>,
    status: Arc<ServiceStatus>,
    /// The job queue of the running service, for the host's own requests.
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    /// The running service's tasks; the async lock serialises start/kill/restart.
    control: tokio::sync::Mutex<Option<Running>>,
    /// Set while a timer tick is outstanding, so slow ticks do not pile up.
    tick_busy: AtomicBool,
    /// `true` while paused; every task of the running service watches it.
    pause: pause::Switch,
    /// Sockets bound before the first start (`serve` binds an ephemeral `internal_listen` to
    /// learn its port before telling the components); that start uses them instead of binding,
    /// so no other process can take the port in between.
    reserved: Mutex<Vec<std::net::TcpListener>>,
    /// This host's services by address, when calls between them go in process.
    local: Option<Arc<Directory>>,
}

struct Running {
    shutdown: watch::Sender<bool>,
    /// One accept loop per listener.
    listeners: Vec<JoinHandle<()>>,
    supervisor: JoinHandle<()>,
    /// The thread of a public listener's connections beyond the first few ([`listener::Spill`]);
    /// a service without a public listener has none.
    _helper: Option<ServiceThread>,
    /// Dropped last: it ends the thread and whatever still runs on it.
    _thread: ServiceThread,
}

impl Service {
    pub fn new(spec: ServiceSpec, runtime: Arc<Runtime>, instance: InstanceSpec, local: Option<Arc<Directory>>) -> Arc<Self> {
        metrics::register_service(&spec.name);
        Arc::new(Self {
            spec,
            runtime,
            instance: Arc::new(instance),
            status: Arc::new(ServiceStatus::new()),
            jobs: Mutex::new(None),
            control: tokio::sync::Mutex::new(None),
            tick_busy: AtomicBool::new(false),
            pause: pause::Switch::new(false),
            reserved: Mutex::new(Vec::new()),
            local,
        })
    }

    /// Serve the listener at `listener`'s address from this already bound socket on the next
    /// start.
    pub fn reserve(&self, listener: std::net::TcpListener) {
        self.reserved.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(listener);
    }

    /// The reserved socket for `addr`, else a fresh one bound to it.
    fn bind(&self, addr: SocketAddr) -> Result<std::net::TcpListener, ServiceError> {
        let mut reserved = self.reserved.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(i) = reserved.iter().position(|l| l.local_addr().is_ok_and(|a| a == addr)) {
            return Ok(reserved.swap_remove(i));
        }
        listener::bind_std(addr).map_err(|error| ServiceError::Bind { service: self.spec.name.clone(), addr, error })
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
        ServiceReport {
            name: self.spec.name.clone(),
            address: format!("http://{}", self.spec.listen),
            internal_address: self.spec.internal_listen.map(|addr| format!("http://{addr}")),
            status: self.status.snapshot(),
        }
    }

    /// Bind the listener and start the first instance. Does nothing if already running.
    pub async fn start(&self) -> Result<(), ServiceError> {
        let mut control = self.control.lock().await;
        if control.is_some() {
            return Ok(());
        }
        // Bound here so that a taken port is reported before anything starts; registered with
        // the service thread's runtime once there.
        let mut bound = Vec::new();
        for (listener, addr) in self.spec.listeners() {
            let door = Door {
                listener,
                authority: addr.to_string().parse().map_err(|e: http::uri::InvalidUri| ServiceError::Bind {
                    service: self.spec.name.clone(),
                    addr,
                    error: std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()),
                })?,
            };
            bound.push((Arc::new(door), addr, self.bind(addr)?));
        }
        let thread = ServiceThread::start(&self.spec.name)
            .map_err(|error| ServiceError::Thread { service: self.spec.name.clone(), error })?;
        let has_public = bound.iter().any(|(door, ..)| matches!(door.listener, Listener::Public));
        let helper = if has_public {
            let helper = ServiceThread::start(&format!("{}-io", self.spec.name))
                .map_err(|error| ServiceError::Thread { service: self.spec.name.clone(), error })?;
            Some(helper)
        } else {
            None
        };
        let name: Arc<str> = Arc::from(self.spec.name.as_str());
        let (jobs, queue) = mpsc::channel(MAX_IN_FLIGHT + MAX_PROBES_IN_FLIGHT + QUEUE_SLACK);
        let gate = Arc::new(Gate {
            name: name.clone(),
            jobs: jobs.clone(),
            permits: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            probe_permits: Arc::new(Semaphore::new(MAX_PROBES_IN_FLIGHT)),
            status: self.status.clone(),
        });
        let (shutdown, shutdown_rx) = watch::channel(false);

        self.status.set(State::Starting);
        let supervisor = Supervisor {
            name: name.clone(),
            internal: self.spec.internal_addr(),
            runtime: self.runtime.clone(),
            instance: self.instance.clone(),
            seed: self.spec.seed.clone(),
            status: self.status.clone(),
        };
        let supervisor = thread.spawn(pause::gated(supervisor.run(queue), self.pause.subscribe()));
        let mut listeners = Vec::new();
        for (door, addr, listener) in bound {
            let kind = door.listener;
            let entry = Arc::new(Entrance { gate: gate.clone(), door, paused: self.pause.subscribe() });
            let handler: Handler = {
                let entry = entry.clone();
                Arc::new(move |request| Box::pin(entry.clone().handle(request)))
            };
            // With `local_calls = "direct"`, the other services' calls to this address arrive
            // here too: the door's in-process twin, paused, stopped and killed with it.
            let (inbox, calls) = self.local.as_ref().map(|_| mpsc::channel::<directory::Call>(directory::BACKLOG)).unzip();
            let (name, shutdown_rx, paused) = (name.clone(), shutdown_rx.clone(), self.pause.subscribe());
            let spill = match (kind, &helper) {
                (Listener::Public, Some(helper)) => Some(listener::Spill { in_thread: IN_THREAD_CONNECTIONS, helper: helper.handle() }),
                _ => None,
            };
            listeners.push(thread.spawn(async move {
                let listen = async {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => listener::accept_loop(name.clone(), listener, handler, shutdown_rx.clone(), spill).await,
                        Err(e) => tracing::error!(service = %name, error = %e, "cannot register the listener"),
                    }
                };
                let local = async {
                    if let Some(calls) = calls {
                        inbox::serve_calls(entry, calls, shutdown_rx.clone()).await;
                    }
                };
                pause::gated(futures::future::join(listen, local), paused).await;
            }));
            if let (Some(local), Some(inbox)) = (&self.local, inbox) {
                local.open(addr, inbox);
            }
            tracing::info!("{} listening on http://{addr} ({kind})", self.spec.name);
        }
        *self.lock_jobs() = Some(jobs);
        *control = Some(Running { shutdown, listeners, supervisor, _helper: helper, _thread: thread });
        Ok(())
    }

    /// Stop abruptly: close the listener, cut open connections, drop the instance.
    pub async fn kill(&self) {
        let mut control = self.control.lock().await;
        self.lock_jobs().take();
        self.close_local();
        if let Some(running) = control.take() {
            running.listeners.iter().for_each(JoinHandle::abort);
            running.supervisor.abort();
            // Wait until all are really gone, so the ports are closed when we return.
            futures::future::join_all(running.listeners).await;
            let _ = running.supervisor.await;
            metrics::restarted(&self.spec.name, metrics::RestartCause::Kill);
        }
        self.unpause();
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

    /// Freeze the running service like SIGSTOP: no guest code runs, nothing is answered, and
    /// connections wait (in the kernel's backlog or in their handler) until [`Self::resume`].
    pub async fn pause(&self) -> Result<(), PauseError> {
        // The control lock orders this against kill, restart and stop.
        let _control = self.control.lock().await;
        match self.state() {
            State::Running => {}
            State::Paused => return Err(PauseError::AlreadyPaused { service: self.spec.name.clone() }),
            state => return Err(PauseError::NotRunning { service: self.spec.name.clone(), state }),
        }
        self.pause.send_replace(true);
        self.status.set_paused(true);
        metrics::paused(&self.spec.name, true);
        tracing::warn!(service = %self.spec.name, "paused");
        Ok(())
    }

    /// Let a paused service continue where it stopped.
    pub async fn resume(&self) -> Result<(), PauseError> {
        let _control = self.control.lock().await;
        if !*self.pause.borrow() {
            return Err(PauseError::NotPaused { service: self.spec.name.clone(), state: self.state() });
        }
        self.unpause();
        tracing::info!(service = %self.spec.name, "resumed");
        Ok(())
    }

    /// Clear the pause (resume, or a kill or stop of a paused service, whose next start must
    /// not begin frozen).
    fn unpause(&self) {
        self.pause.send_replace(false);
        self.status.set_paused(false);
        metrics::paused(&self.spec.name, false);
    }

    /// Stop accepting, let open connections finish their current request for up to `grace`,
    /// then drop everything.
    pub async fn stop(&self, grace: Duration) {
        let mut control = self.control.lock().await;
        self.lock_jobs().take();
        self.close_local();
        if let Some(mut running) = control.take() {
            // A paused service is let go first, so it can finish its requests like the others.
            self.unpause();
            let _ = running.shutdown.send(true);
            let drained = futures::future::join_all(running.listeners.iter_mut());
            if tokio::time::timeout(grace, drained).await.is_err() {
                tracing::warn!(service = %self.spec.name, "requests still open after {grace:?}; cutting them");
                running.listeners.iter().for_each(JoinHandle::abort);
            }
            running.supervisor.abort();
            let _ = running.supervisor.await;
        }
        self.unpause();
        self.status.set(State::Stopped);
    }

    /// Send the running instance a request from the host itself and read the whole answer.
    pub async fn call(&self, method: Method, path: &str, timeout: Duration) -> Result<(StatusCode, Bytes), ServiceCallError> {
        let jobs = self.lock_jobs().clone().ok_or(ServiceCallError::NotRunning)?;
        let request = instance::host_request(self.spec.internal_addr(), method, path, Bytes::new());
        let (job, receiver) = Job::new(request);
        jobs.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => ServiceCallError::Busy,
            mpsc::error::TrySendError::Closed(_) => ServiceCallError::NotRunning,
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
                Ok((status, body)) if status.is_success() => metrics::restocked(&body),
                Ok((status, body)) => tracing::debug!(
                    service = %service.spec.name, %status, body = %String::from_utf8_lossy(&body), "tick answered with an error"
                ),
                Err(e) => tracing::debug!(service = %service.spec.name, error = %e, "tick failed"),
            }
            service.tick_busy.store(false, Ordering::Release);
        });
    }

    /// Calls from the other services in process are refused from now on, as the closed port
    /// refuses connections.
    fn close_local(&self) {
        if let Some(local) = &self.local {
            for (_, addr) in self.spec.listeners() {
                local.close(addr);
            }
        }
    }

    fn lock_jobs(&self) -> std::sync::MutexGuard<'_, Option<mpsc::Sender<Job>>> {
        self.jobs.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// These run the real host path (listener → job queue → one instance under `run_concurrent`)
/// against the `hello` component, and fail when it has not been built (`just build`, or
/// `cargo build --release --target wasm32-wasip2 -p toystore-hello`): a skipped check would
/// pass without checking anything.
#[cfg(test)]
mod tests {
    use super::*;
    use toystore_manifest::resolve::{OutgoingHttp, ServiceKind};
    use crate::net::outgoing::Outgoing;
    use http_body_util::{BodyExt, Full};
    use hyper_util::client::legacy::{connect::HttpConnector, Client};
    use hyper_util::rt::TokioExecutor;
    use std::path::{Path, PathBuf};

    fn hello_wasm() -> PathBuf {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip2/release/toystore_hello.wasm");
        assert!(
            path.is_file(),
            "{} is not built: run `cargo build --release --target wasm32-wasip2 -p toystore-hello` (or `just build`) first",
            path.display()
        );
        path
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
        let wasm = hello_wasm();
        let data = tempfile::tempdir().unwrap();
        let seed = data.path().join("seed.csv");
        std::fs::write(&seed, "x\n").unwrap();
        let mut runtime = Runtime::new(Outgoing::new(OutgoingHttp::Pooled, None)).unwrap();
        let pre = runtime.load(&wasm).unwrap();
        let listen = free_addr();
        let spec = ServiceSpec {
            kind: ServiceKind::Order { replica: 1 },
            name: "order-1".into(),
            component: wasm,
            listen,
            internal_listen: None,
            data_dir: data.path().join("order-1"),
            seed: vec![seed],
        };
        let instance = InstanceSpec { pre, env: vec![("SERVICE_NAME".into(), "order-1".into())], data_dir: spec.data_dir.clone() };
        let service = Service::new(spec, Arc::new(runtime), instance, None);

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

        // Paused: nothing is answered, neither a client nor the host; resumed: both are.
        service.pause().await.unwrap();
        assert_eq!(service.state(), State::Paused);
        let waiting = tokio::spawn(get(listen, "/while-paused"));
        let call = service.call(Method::POST, "/tick", Duration::from_millis(300)).await;
        assert!(matches!(call, Err(ServiceCallError::Reply(ReplyError::Timeout(_)))), "{call:?}");
        assert!(!waiting.is_finished(), "a paused service answered");
        assert!(matches!(service.pause().await, Err(PauseError::AlreadyPaused { .. })));
        service.resume().await.unwrap();
        assert_eq!(waiting.await.unwrap().unwrap().0, StatusCode::OK, "the waiting request is answered on resume");
        assert!(matches!(service.resume().await, Err(PauseError::NotPaused { .. })));

        service.kill().await;
        assert_eq!(service.state(), State::Killed);
        assert!(matches!(service.pause().await, Err(PauseError::NotRunning { state: State::Killed, .. })));
        assert!(get(listen, "/x").await.is_err(), "connections are refused once killed");
        assert!(matches!(service.call(Method::GET, "/ping", Duration::from_secs(1)).await, Err(ServiceCallError::NotRunning)));

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
