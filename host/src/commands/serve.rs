//! `toystore serve`: the whole store in one process, or the part of it `--only` / `--host`
//! selects (the rest runs on other machines, at its manifest addresses).
//!
//! 1. read and validate the manifest; warn about internal listeners on non-loopback addresses
//!    (unless `expose_internal = true`); bind an ephemeral `internal_listen` to learn its port;
//! 2. compile each distinct component this process runs once;
//! 3. bind the admin port, then start every local service (listener + supervised instance);
//! 4. run the tick timer and the admin endpoint;
//! 5. on Ctrl-C / SIGTERM stop accepting, give open requests a moment, exit 0.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures::future::join_all;
use tokio::sync::watch;

use crate::ops::admin::Admin;
use crate::net::directory::Directory;
use toystore_manifest::resolve::{LocalCalls, Manifest, Selection, ServiceKind};
use crate::net::outgoing::Outgoing;
use crate::wasm::runtime::{InstanceSpec, Runtime};
use crate::net::listener::{self, Handler};
use crate::service::Service;
use crate::ops::ticker;

/// How long the frontend's start waits for the backends' first tick.
const BACKEND_START_WAIT: Duration = Duration::from_secs(10);
/// How long requests in flight may take to finish once shutdown starts.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

pub async fn serve(manifest_path: &Path, selection: &Selection) -> anyhow::Result<()> {
    let mut manifest = Manifest::load(manifest_path, selection)?;
    let local: Vec<String> = manifest.local_services().map(|s| s.name.clone()).collect();
    tracing::info!(
        manifest = %manifest.path.display(),
        outgoing_http = %manifest.outgoing_http,
        local_calls = %manifest.local_calls,
        tick_interval_ms = manifest.tick_interval_ms(),
        services = %local.join(","),
        "starting toystore"
    );
    for remote in manifest.services.iter().filter(|s| !manifest.local.contains(&s.name)) {
        tracing::info!(service = %remote.name, "not run here; reached at {}", remote.url());
    }
    for (service, address) in manifest.unprotected_internal_listeners() {
        tracing::warn!(
            service,
            %address,
            "internal listener on a non-loopback address: whoever reaches it can change stock, orders \
             and caches; bind it to 127.0.0.1, or set expose_internal = true if this is a private network"
        );
    }
    // Before any component is told where the others are.
    let reserved = bind_ephemeral(&mut manifest)?;

    // With `local_calls = "direct"`, a call to one of these addresses is handed over in process.
    // Only this process's services, and every listener of each (the frontend's internal one is
    // where the catalog's invalidations go).
    let directory = (manifest.local_calls == LocalCalls::Direct).then(|| {
        Arc::new(Directory::new(manifest.local_services().flat_map(|s| s.listeners()).map(|(_, addr)| addr)))
    });
    let mut runtime = Runtime::new(Outgoing::new(manifest.outgoing_http, directory.clone()))?;
    let mut instances = Vec::new();
    for spec in manifest.local_services() {
        let started = std::time::Instant::now();
        let pre = runtime.load(&spec.component)?;
        tracing::debug!(service = %spec.name, elapsed = ?started.elapsed(), "component ready");
        let instance = InstanceSpec { pre, env: manifest.env_for(spec), data_dir: spec.data_dir.clone() };
        instances.push((spec.clone(), instance));
    }
    let runtime = Arc::new(runtime);
    let services: Vec<Arc<Service>> =
        instances.into_iter().map(|(spec, instance)| Service::new(spec, runtime.clone(), instance, directory.clone())).collect();
    for (name, listener) in reserved {
        if let Some(service) = services.iter().find(|s| s.name() == name) {
            service.reserve(listener);
        }
    }

    // Bind the admin port first: if another host is running, this fails before anything starts.
    let admin_listener = listener::bind(manifest.admin)
        .with_context(|| format!("cannot listen on the admin address {} (is another toystore running?)", manifest.admin))?;
    // Backends first: the frontend chooses the order leader on its first tick, so it starts
    // once the local replicas have loaded and resynced (or after a while, if one cannot).
    // Remote ones are not waited for: the frontend's ticks keep pinging whatever answers.
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
    let admin_task = tokio::spawn(listener::accept_loop(Arc::from("admin"), admin_listener, handler, admin_stopped, None));
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

/// Bind every internal listener given with port 0 (the frontend's default `internal_listen`),
/// write the port it got into the manifest, and return the bound sockets by service name for
/// the services' first start: components are told that address, so it must be fixed before
/// they start, and held so that nothing else takes it meanwhile.
fn bind_ephemeral(manifest: &mut Manifest) -> anyhow::Result<Vec<(String, std::net::TcpListener)>> {
    let mut reserved = Vec::new();
    let local = manifest.local.clone();
    // Only this process's own: another machine's port 0 could not be learnt here (a manifest
    // for several machines names every `internal_listen` it uses).
    for spec in manifest.services.iter_mut().filter(|s| local.contains(&s.name)) {
        let Some(addr) = spec.internal_listen.filter(|a| a.port() == 0) else { continue };
        let listener = listener::bind_std(addr)
            .with_context(|| format!("cannot listen on {addr} for {}'s internal listener", spec.name))?;
        let bound = listener.local_addr().context("the address of a bound listener")?;
        spec.internal_listen = Some(bound);
        reserved.push((spec.name.clone(), listener));
    }
    Ok(reserved)
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
