//! The tick timer: every `settings.tick_interval_ms` the host sends `POST /tick` to every
//! running service (in-process, through its job queue). Components use it for periodic work
//! (restocking, leader health checks, retrying invalidations) since a WASI component has no
//! timer of its own that runs between requests.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::MissedTickBehavior;

use crate::service::Service;

/// How long one tick may take before the host stops waiting for it (the next tick to that
/// service is skipped until then).
const TICK_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn run(services: Vec<Arc<Service>>, every: Duration) {
    let mut timer = tokio::time::interval(every);
    timer.set_missed_tick_behavior(MissedTickBehavior::Skip);
    // The first tick fires at once; every new instance already gets a tick when it starts.
    timer.tick().await;
    loop {
        timer.tick().await;
        for service in &services {
            service.tick(TICK_TIMEOUT);
        }
    }
}
