//! The callee's side of calls handed over in process (`local_calls = "direct"`, see
//! [`crate::net::directory`] for the caller's): a service's inbox of such calls, served
//! through the same [`Entrance`] its listeners use, so the head check, limits, pause and metrics
//! are the ones it applies to a request that came over HTTP.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::net::directory::Call;
use crate::net::{head, reply};
use crate::ops::metrics;
use crate::service::entry::Entrance;

/// The callee's side, on the service's own thread: serve every call from `calls` through
/// `entry` until the inbox closes or `shutdown` turns true; then let the calls already taken
/// finish. Each call runs as a task of its own in a set this task owns, so dropping this task
/// (a kill) drops every call in it, as a kill drops the listener's connections.
pub async fn serve_calls(entry: Arc<Entrance>, mut calls: mpsc::Receiver<Call>, mut shutdown: watch::Receiver<bool>) {
    let mut running = JoinSet::new();
    loop {
        tokio::select! {
            call = calls.recv() => match call {
                Some(call) => { running.spawn(serve_one(entry.clone(), call)); }
                None => break,
            },
            _ = shutdown.wait_for(|stop| *stop) => break,
            Some(_) = running.join_next() => {}
        }
    }
    // Calls still waiting in the inbox get a closed channel: refused, as on a closed port.
    drop(calls);
    while running.join_next().await.is_some() {}
}

async fn serve_one(entry: Arc<Entrance>, call: Call) {
    metrics::local_call(&entry.gate.name);
    let (parts, body) = call.request.into_parts();
    let response = match head::check_parts(&parts.method, &parts.uri, &parts.headers) {
        Ok(()) => entry.handle(http::Request::from_parts(parts, body)).await,
        Err(rejection) => reply::error(rejection.status, rejection.message),
    };
    // The caller may have given up (its timeout); then nobody wants the answer.
    let _ = call.reply.send(response);
}

