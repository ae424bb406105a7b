//! `toystore serve`: the whole store in one process.
//!
//! 1. read and validate the manifest;
//! 2. compile each distinct component once;
//! 3. bind the admin port, then start every service (listener + supervised instance);
//! 4. run the tick timer and the admin endpoint;
//! 5. on Ctrl-C / SIGTERM stop accepting, give open requests a moment, exit 0.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures::future::join_all;
use tokio::sync::watch;

use crate::admin::Admin;
use crate::local::Directory;
use crate::manifest::{LocalCalls, Manifest, ServiceKind};
use crate::outgoing::Outgoing;
use crate::runtime::{InstanceSpec, Runtime};
use crate::server::{self, Handler};
use crate::service::Service;
use crate::ticker;

/// How long the frontend's start waits for the backends' first tick.
const BACKEND_START_WAIT: Duration = Duration::from_secs(10);
/// How long requests in flight may take to finish once shutdown starts.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

pub async fn serve(manifest_path: &Path) -> anyhow::Result<()> {
    let manifest = Manifest::load(manifest_path)?;
    tracing::info!(
        manifest = %manifest.path.display(),
        outgoing_http = %manifest.outgoing_http,
        local_calls = %manifest.local_calls,
        tick_interval_ms = manifest.tick_interval_ms(),
        "starting toystore"
    );

    // With `local_calls = "direct"`, a call to one of these addresses is handed over in process.
    let local = (manifest.local_calls == LocalCalls::Direct)
        .then(|| Arc::new(Directory::new(manifest.services.iter().map(|s| s.listen))));
    let mut runtime = Runtime::new(Outgoing::new(manifest.outgoing_http, local.clone()))?;
    let mut instances = Vec::new();
    for spec in &manifest.services {
        let started = std::time::Instant::now();
        let pre = runtime.load(&spec.component)?;
        tracing::debug!(service = %spec.name, elapsed = ?started.elapsed(), "component ready");
        let instance = InstanceSpec { pre, env: manifest.env_for(spec), data_dir: spec.data_dir.clone() };
        instances.push((spec.clone(), instance));
    }
    let runtime = Arc::new(runtime);
    let services: Vec<Arc<Service>> =
        instances.into_iter().map(|(spec, instance)| Service::new(spec, runtime.clone(), instance, local.clone())).collect();

    // Bind the admin port first: if another host is running, this fails before anything starts.
    let admin_listener = server::bind(manifest.admin)
        .with_context(|| format!("cannot listen on the admin address {} (is another toystore running?)", manifest.admin))?;
    // Backends first: the frontend chooses the order leader on its first tick, so it starts
    // once the replicas have loaded and resynced (or after a while, if one cannot).
    let (frontends, backends): (Vec<_>, Vec<_>) =
        services.iter().partition(|s| s.spec.kind == ServiceKind::Frontend);
    for service in &backends {
        service.start().await?;
    }
    for service in &backends {
        if !service.wait_started(BACKEND_START_WAIT).await {
            tracing::warn!(service = %service.name(), "not ready after {BACKEND_START_WAIT:?}; starting the frontend anyway");
        }
    }
    for service in &frontends {
        service.start().await?;
    }
    let (stop_admin, admin_stopped) = watch::channel(false);
    let admin = Admin::new(services.clone());
    let handler: Handler = Arc::new(move |request| Box::pin(admin.clone().handle(request)));
    let admin_task = tokio::spawn(server::accept_loop(Arc::from("admin"), admin_listener, handler, admin_stopped));
    tracing::info!("admin listening on http://{}", manifest.admin);

    let ticks = tokio::spawn(ticker::run(services.clone(), Duration::from_millis(manifest.tick_interval_ms())));

    shutdown_signal().await?;
    tracing::info!("shutting down: no new connections; open requests get {SHUTDOWN_GRACE:?}");
    ticks.abort();
    let _ = stop_admin.send(true);
    join_all(services.iter().map(|s| s.stop(SHUTDOWN_GRACE))).await;
    admin_task.abort();
    tracing::info!("stopped");
    Ok(())
}

/// Wait for Ctrl-C or SIGTERM.
async fn shutdown_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.context("cannot listen for Ctrl-C")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await.context("cannot listen for Ctrl-C")?;
    Ok(())
}
