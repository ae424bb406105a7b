//! Keeping one service's instance alive.
//!
//! [`Supervisor::run`] owns the service's job queue for as long as the service is up. It builds
//! an instance, serves the queue on it ([`instance::serve`]) and, when the instance fails (a
//! trap, a spin cut by [`crate::wasm::spin`], or it could not even start), logs why, counts the crash
//! with its [`Cause`], waits a [`Backoff`] and builds a fresh one from the same files. Requests
//! that were in flight on the failed instance fail (500, or 503 after a spin); requests still
//! queued are served by the next instance.
//!
//! Every new instance is first sent `POST /tick`, so it loads its files and resyncs at once
//! rather than at the next timer tick.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::wasm::datadir::{self, DataDirError};
use crate::wasm::instance::{self, Job};
use crate::wasm::runtime::{InstanceSpec, Runtime, RuntimeError};

/// An instance that ran this long without failing counts as healthy: the next crash restarts
/// without delay again.
pub const HEALTHY_AFTER: Duration = Duration::from_secs(30);
const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(5);
/// How long the start-up tick may take before the host stops waiting for its answer.
const START_TICK_TIMEOUT: Duration = Duration::from_secs(30);

/// Delay before starting an instance after `consecutive` quick failures: 0, 0, 100 ms, 200 ms,
/// 400 ms, ... up to 5 s. The first restart after a crash is immediate.
#[derive(Debug, Default)]
pub struct Backoff {
    consecutive: u32,
}

impl Backoff {
    pub fn delay(&self) -> Duration {
        match self.consecutive {
            0 | 1 => Duration::ZERO,
            n => FIRST_DELAY.saturating_mul(1u32 << (n - 2).min(16)).min(MAX_DELAY),
        }
    }

    /// Record a failure of an instance that had run for `ran_for`.
    pub fn failed(&mut self, ran_for: Duration) {
        if ran_for >= HEALTHY_AFTER {
            self.consecutive = 0;
        }
        self.consecutive = self.consecutive.saturating_add(1);
    }
}

/// What the admin endpoint reports for a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// The first instance is being built.
    Starting,
    Running,
    /// The instance failed; a new one is on its way (possibly after a backoff).
    Restarting,
    /// Stopped by the admin endpoint; stays down until restarted.
    Killed,
    /// Frozen by the admin endpoint (like SIGSTOP, see [`crate::ops::pause`]) until resumed.
    Paused,
    /// The host is shutting down.
    Stopped,
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = serde_json::to_value(self).ok().and_then(|v| v.as_str().map(str::to_string));
        f.write_str(s.as_deref().unwrap_or("?"))
    }
}

/// Why an instance was replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Cause {
    /// The guest trapped (a panic, an out-of-bounds access, ...).
    Trap,
    /// The spin guard cut a call that ran past `spin::SPIN_LIMIT` without a host call.
    Spin,
    /// The instance could not be built, or failed otherwise.
    Failed,
}

/// Shared between a service's supervisor and whoever reports on it.
#[derive(Debug)]
pub struct ServiceStatus {
    inner: Mutex<StatusInner>,
    /// How many times the spin guard cut this service's instance. Callers whose request was
    /// lost compare it before and after, to answer 503 (cut) rather than 500 (crashed).
    spin_cuts: Arc<AtomicU64>,
    /// How many instances have answered their start-up tick (they have loaded their files and,
    /// for a replica, resynced). Lets the host start the frontend after its backends.
    ticked: tokio::sync::watch::Sender<u64>,
}

#[derive(Debug, Clone)]
struct StatusInner {
    state: State,
    crashes: u64,
    last_crash: Option<String>,
    last_crash_cause: Option<Cause>,
    running_since: Option<Instant>,
    /// Set by the admin endpoint; it overrides what the supervisor last said (which cannot
    /// change while paused, since the supervisor is not polled then) until resumed or killed.
    paused: bool,
}

/// A copy of a [`ServiceStatus`] at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct StatusSnapshot {
    pub state: State,
    /// Instance failures since the host started (traps, failed starts).
    pub crashes: u64,
    pub last_crash: Option<String>,
    pub last_crash_cause: Option<Cause>,
    /// Seconds the current instance has been running.
    pub uptime_secs: Option<f64>,
}

impl ServiceStatus {
    pub fn new() -> Self {
        Self {
            inner: Mutex::new(StatusInner {
                state: State::Starting,
                crashes: 0,
                last_crash: None,
                last_crash_cause: None,
                running_since: None,
                paused: false,
            }),
            spin_cuts: Arc::new(AtomicU64::new(0)),
            ticked: tokio::sync::watch::Sender::new(0),
        }
    }

    fn start_tick_answered(&self) {
        self.ticked.send_modify(|n| *n += 1);
    }

    /// Wait (at most `limit`) until some instance of this service has answered its start-up
    /// tick; `false` if it has not by then.
    pub async fn wait_started(&self, limit: Duration) -> bool {
        let mut ticked = self.ticked.subscribe();
        tokio::time::timeout(limit, ticked.wait_for(|n| *n > 0)).await.is_ok_and(|r| r.is_ok())
    }

    pub fn set(&self, state: State) {
        let mut s = self.lock();
        s.state = state;
        s.running_since = (state == State::Running).then(Instant::now);
    }

    /// The counter the spin guard of this service's stores increments.
    pub fn spin_cuts(&self) -> u64 {
        self.spin_cuts.load(Ordering::SeqCst)
    }

    fn crashed(&self, cause: Cause, why: String) {
        let mut s = self.lock();
        s.state = State::Restarting;
        s.crashes += 1;
        s.last_crash = Some(why);
        s.last_crash_cause = Some(cause);
        s.running_since = None;
    }

    pub fn state(&self) -> State {
        self.lock().reported()
    }

    /// Mark the service paused or not (the admin endpoint's pause and resume).
    pub fn set_paused(&self, paused: bool) {
        self.lock().paused = paused;
    }

    pub fn snapshot(&self) -> StatusSnapshot {
        let s = self.lock().clone();
        StatusSnapshot {
            state: s.reported(),
            crashes: s.crashes,
            last_crash: s.last_crash,
            last_crash_cause: s.last_crash_cause,
            uptime_secs: s.running_since.map(|t| (t.elapsed().as_secs_f64() * 10.0).round() / 10.0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StatusInner> {
        // The lock guards plain data and is never held across a panic point that matters.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl StatusInner {
    fn reported(&self) -> State {
        match self.state {
            State::Killed | State::Stopped => self.state,
            _ if self.paused => State::Paused,
            state => state,
        }
    }
}

impl Default for ServiceStatus {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Debug, thiserror::Error)]
enum InstanceFailure {
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("instantiation failed: {0}")]
    Instantiate(String),
    #[error("trapped: {0}")]
    Trap(String),
    #[error("cut off: a call ran guest code for over {limit:?} without a host call (spinning)", limit = crate::wasm::spin_guard::SPIN_LIMIT)]
    Spin,
    #[error("failed: {0}")]
    Other(String),
}

impl InstanceFailure {
    /// Classify what ended `run_concurrent`. A trap's full message carries the guest's wasm
    /// backtrace: that goes to the debug log, the summary to the error log and the admin API.
    fn from_run(name: &str, e: wasmtime::Error) -> Self {
        tracing::debug!(service = %name, "instance failure in full: {e:?}");
        match e.downcast_ref::<wasmtime::Trap>() {
            // Only the spin guard interrupts guests (see `spin::watch`).
            Some(wasmtime::Trap::Interrupt) => InstanceFailure::Spin,
            Some(trap) => InstanceFailure::Trap(trap.to_string()),
            None => InstanceFailure::Other(format!("{e:#}")),
        }
    }

    fn cause(&self) -> Cause {
        match self {
            InstanceFailure::Trap(_) => Cause::Trap,
            InstanceFailure::Spin => Cause::Spin,
            _ => Cause::Failed,
        }
    }
}

/// Everything needed to (re)build one service's instance.
pub struct Supervisor {
    pub name: Arc<str>,
    /// The service's internal listener, which the host's own requests are addressed to.
    pub internal: SocketAddr,
    pub runtime: Arc<Runtime>,
    pub instance: Arc<InstanceSpec>,
    pub seed: Vec<PathBuf>,
    pub status: Arc<ServiceStatus>,
}

impl Supervisor {
    /// Serve `jobs` with one instance at a time until the queue closes.
    pub async fn run(self, mut jobs: mpsc::Receiver<Job>) {
        let mut backoff = Backoff::default();
        loop {
            let delay = backoff.delay();
            if !delay.is_zero() {
                tracing::info!(service = %self.name, ?delay, "waiting before the next restart");
                tokio::time::sleep(delay).await;
            }
            let started = Instant::now();
            match self.run_instance(&mut jobs).await {
                Ok(()) => {
                    self.status.set(State::Stopped);
                    return;
                }
                Err(failure) => {
                    tracing::error!(service = %self.name, error = %failure, "instance failed; starting a fresh one");
                    self.status.crashed(failure.cause(), failure.to_string());
                    crate::ops::metrics::restarted(&self.name, match failure.cause() {
                        Cause::Trap => crate::ops::metrics::RestartCause::Trap,
                        Cause::Spin => crate::ops::metrics::RestartCause::Spin,
                        Cause::Failed => crate::ops::metrics::RestartCause::Other,
                    });
                    backoff.failed(started.elapsed());
                }
            }
        }
    }

    async fn run_instance(&self, jobs: &mut mpsc::Receiver<Job>) -> Result<(), InstanceFailure> {
        for file in datadir::prepare(&self.instance.data_dir, &self.seed)? {
            tracing::info!(service = %self.name, file = %file.display(), "seeded");
        }
        match datadir::clear_abandoned_lock(&self.instance.data_dir) {
            Ok(true) => tracing::info!(service = %self.name, "removed the lock file its previous instance left"),
            Ok(false) => {}
            Err(e) => tracing::warn!(service = %self.name, "cannot remove an abandoned lock file: {e}"),
        }
        let mut store = self.runtime.new_store(&self.instance, self.status.spin_cuts.clone())?;
        let proxy = self
            .instance
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| InstanceFailure::Instantiate(format!("{e:#}")))?;
        self.status.set(State::Running);
        tracing::debug!(service = %self.name, "instance started");
        let tick = self.start_tick();
        instance::serve(&mut store, &proxy, jobs, Some(tick)).await.map_err(|e| InstanceFailure::from_run(&self.name, e))
    }

    /// The `POST /tick` every new instance gets first; its answer is only logged.
    fn start_tick(&self) -> Job {
        let request = instance::host_request(self.internal, Method::POST, "/tick", Bytes::new());
        let (job, receiver) = Job::new(request);
        let name = self.name.clone();
        let service_status = self.status.clone();
        tokio::spawn(async move {
            match instance::read_reply(receiver, START_TICK_TIMEOUT).await {
                Ok((status, _)) => {
                    tracing::debug!(service = %name, %status, "start-up tick answered");
                    service_status.start_tick_answered();
                }
                Err(e) => tracing::debug!(service = %name, error = %e, "start-up tick failed"),
            }
        });
        job
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_resets_after_a_healthy_run() {
        let mut b = Backoff::default();
        let quick = Duration::from_millis(10);
        let mut delays = vec![b.delay()];
        for _ in 0..9 {
            b.failed(quick);
            delays.push(b.delay());
        }
        let ms: Vec<u128> = delays.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [0, 0, 100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        b.failed(HEALTHY_AFTER);
        assert_eq!(b.delay(), Duration::ZERO, "a crash after a healthy run restarts at once");
        for _ in 0..100 {
            b.failed(quick);
        }
        assert_eq!(b.delay(), MAX_DELAY);
    }

    #[test]
    fn status_counts_crashes_and_reports_uptime_only_while_running() {
        let s = ServiceStatus::new();
        assert_eq!(s.state(), State::Starting);
        s.set(State::Running);
        assert!(s.snapshot().uptime_secs.is_some());
        s.crashed(Cause::Trap, "trapped: boom".into());
        let snap = s.snapshot();
        assert_eq!((snap.state, snap.crashes), (State::Restarting, 1));
        assert_eq!(snap.last_crash.as_deref(), Some("trapped: boom"));
        assert_eq!(snap.last_crash_cause, Some(Cause::Trap));
        assert!(snap.uptime_secs.is_none());
        assert_eq!(State::Restarting.to_string(), "restarting");
    }

    #[test]
    fn a_pause_is_reported_until_resumed_or_killed() {
        let s = ServiceStatus::new();
        s.set(State::Running);
        s.set_paused(true);
        assert_eq!((s.state(), s.snapshot().state), (State::Paused, State::Paused));
        s.set_paused(false);
        assert_eq!(s.state(), State::Running);
        s.set_paused(true);
        s.set(State::Killed);
        assert_eq!(s.state(), State::Killed, "a kill wins over a pause");
        assert_eq!(State::Paused.to_string(), "paused");
    }
}
