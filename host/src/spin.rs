//! The guard against guests that spin: a request that keeps the CPU inside guest code past
//! [`SPIN_LIMIT`] without ever calling into the host is cut, like a trap.
//!
//! wasmtime's epoch interruption does the cutting. A ticker thread ([`start_ticker`]) advances
//! the engine's epoch every [`TICK`]; compiled guest code checks the epoch at loop heads and
//! function entries, and when it has passed the store's deadline it calls the store's callback
//! ([`watch`]), which either extends the deadline by one tick or interrupts the guest (a
//! `Trap::Interrupt`, which the supervisor reports as cause `spin`).
//!
//! A service's instance is long-lived and serves many calls at once, so "how long has this
//! request run" is not something the store knows. What it can know is whether the guest
//! has made any host call since the previous tick: every WASI and wasi-http call goes through
//! [`Host`]'s views, which mark [`Watch::host_called`]. The callback answers `Continue` (not
//! `Yield`): while a guest call runs, nothing else runs in its store, so ticks that pass
//! without a host call all belong to that one call. Legitimate work reads bodies, files and
//! sockets and answers through the host well within the limit; a `loop {}` never does.
//! Other services are unaffected meanwhile: each runs on its own thread.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wasmtime::{Engine, Store, UpdateDeadline};

use crate::runtime::Host;

/// How often the epoch advances. Epoch checks in guest code cost the same at any rate; the
/// callback runs at most once per tick per busy store.
pub const TICK: Duration = Duration::from_millis(10);
/// How long guest code may run without a single host call before it is cut.
pub const SPIN_LIMIT: Duration = Duration::from_secs(2);
const LIMIT_TICKS: u32 = (SPIN_LIMIT.as_millis() / TICK.as_millis()) as u32;

/// Per-store bookkeeping of the callback.
#[derive(Debug, Default)]
pub struct Watch {
    /// Set by every host call of the guest; cleared by the callback.
    pub host_called: bool,
    /// Consecutive ticks the guest ran through without a host call.
    quiet_ticks: u32,
}

impl Watch {
    /// One epoch tick passed while guest code was running: `false` once that has happened
    /// [`SPIN_LIMIT`] worth of times in a row without a host call in between.
    fn tick(&mut self) -> bool {
        if std::mem::take(&mut self.host_called) {
            self.quiet_ticks = 0;
        } else {
            self.quiet_ticks = self.quiet_ticks.saturating_add(1);
        }
        self.quiet_ticks < LIMIT_TICKS
    }
}

/// Arm the guard on a fresh store. `cuts` counts the interruptions of this service, so that
/// the callers whose requests were lost can tell a spin from a trap (503 instead of 500).
pub fn watch(store: &mut Store<Host>, cuts: Arc<AtomicU64>) {
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |mut context| {
        if context.data_mut().spin.tick() {
            Ok(UpdateDeadline::Continue(1))
        } else {
            cuts.fetch_add(1, Ordering::SeqCst);
            Ok(UpdateDeadline::Interrupt)
        }
    });
}

/// Advance `engine`'s epoch every [`TICK`] on a thread of its own, until the engine is gone.
/// A plain thread, not a task: a spinning guest holds its service's thread, and the tick must
/// come from outside to cut it.
pub fn start_ticker(engine: &Engine) -> std::io::Result<()> {
    let engine = engine.weak();
    std::thread::Builder::new().name("epoch-ticker".into()).spawn(move || {
        while let Some(engine) = engine.upgrade() {
            engine.increment_epoch();
            drop(engine);
            std::thread::sleep(TICK);
        }
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ticks_without_host_calls_count_toward_the_limit() {
        let mut w = Watch::default();
        for _ in 0..LIMIT_TICKS * 3 {
            w.host_called = true;
            assert!(w.tick(), "a guest that keeps calling the host is never cut");
        }
        for _ in 1..LIMIT_TICKS {
            assert!(w.tick());
        }
        assert!(!w.tick(), "cut after SPIN_LIMIT of quiet ticks");
    }
}
