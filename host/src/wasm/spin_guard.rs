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
//! the store data's views (`runtime::StoreData`), which mark [`Watch::host_called`]. The
//! callback answers `Continue` (not `Yield`): while a guest call runs, nothing else runs in its store, so ticks that pass
//! without a host call all belong to that one call. Legitimate work reads bodies, files and
//! sockets and answers through the host well within the limit; a `loop {}` never does.
//! Other services are unaffected meanwhile: each runs on its own thread.
//!
//! What counts toward the limit is the CPU time the service's thread spent between two ticks
//! (at most one tick's worth each time), not the ticks themselves. On a machine whose cores are
//! shared by more threads than it has (three replicas loading their logs, other builds), a
//! guest gets a fraction of each tick; counting wall-clock ticks cut legitimate work that
//! needed far less than [`SPIN_LIMIT`] of CPU. A real spin gets the CPU whenever its thread
//! runs, so it is still cut after [`SPIN_LIMIT`] of it. A file call that blocks the thread
//! (`allow_blocking_current_thread`, see `runtime`) is a host call like any other and resets
//! the count.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wasmtime::{Engine, Store, UpdateDeadline};


/// How often the epoch advances. Epoch checks in guest code cost the same at any rate; the
/// callback runs at most once per tick per busy store.
pub const TICK: Duration = Duration::from_millis(10);
/// How long guest code may run without a single host call before it is cut.
pub const SPIN_LIMIT: Duration = Duration::from_secs(2);

/// Per-store bookkeeping of the callback.
#[derive(Debug, Default)]
pub struct Watch {
    /// Set by every host call of the guest; cleared by the callback.
    pub host_called: bool,
    /// CPU time the guest ran since its last host call (as counted by [`Watch::tick`]).
    quiet: Duration,
    /// The thread's CPU time at the previous tick; `None` before the first.
    last_cpu: Option<Duration>,
}

impl Watch {
    /// One epoch tick passed while guest code was running, on a thread that has used `cpu` of
    /// CPU time so far (`None`: unknown, count the whole tick): `false` once the guest has run
    /// [`SPIN_LIMIT`] of it without a host call in between.
    fn tick(&mut self, cpu: Option<Duration>) -> bool {
        let ran = match (cpu, self.last_cpu) {
            (Some(now), Some(last)) => now.saturating_sub(last).min(TICK),
            _ => TICK,
        };
        self.last_cpu = cpu;
        if std::mem::take(&mut self.host_called) {
            self.quiet = Duration::ZERO;
        } else {
            self.quiet += ran;
        }
        self.quiet < SPIN_LIMIT
    }
}

/// CPU time used by the calling thread so far (the callback runs on the service's thread, in
/// the guest's call), or `None` if the clock cannot be read.
fn thread_cpu() -> Option<Duration> {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `t` is a valid, writable timespec; the call writes only into it.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    if rc != 0 {
        return None;
    }
    Some(Duration::new(u64::try_from(t.tv_sec).ok()?, u32::try_from(t.tv_nsec).ok()?))
}

/// A store's data that carries a [`Watch`]: what the callback reads. A trait, so that the guard
/// does not depend on the runtime's store type (which depends on it).
pub trait Watched {
    fn watch(&mut self) -> &mut Watch;
}

/// Arm the guard on a fresh store. `cuts` counts the interruptions of this service, so that
/// the callers whose requests were lost can tell a spin from a trap (503 instead of 500).
pub fn watch<T: Watched + 'static>(store: &mut Store<T>, cuts: Arc<AtomicU64>) {
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |mut context| {
        if context.data_mut().watch().tick(thread_cpu()) {
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
    fn only_cpu_time_without_host_calls_counts_toward_the_limit() {
        const LIMIT_TICKS: u32 = (SPIN_LIMIT.as_millis() / TICK.as_millis()) as u32;
        let mut w = Watch::default();
        let mut cpu = Duration::ZERO;
        for _ in 0..LIMIT_TICKS * 3 {
            cpu += TICK;
            w.host_called = true;
            assert!(w.tick(Some(cpu)), "a guest that keeps calling the host is never cut");
        }
        for _ in 1..LIMIT_TICKS {
            cpu += TICK;
            assert!(w.tick(Some(cpu)));
        }
        cpu += TICK;
        assert!(!w.tick(Some(cpu)), "cut after SPIN_LIMIT of quiet CPU time");
    }

    #[test]
    fn a_guest_starved_of_cpu_is_cut_by_the_cpu_it_got_not_by_the_ticks() {
        const LIMIT_TICKS: u32 = (SPIN_LIMIT.as_millis() / TICK.as_millis()) as u32;
        let mut w = Watch::default();
        let mut cpu = Duration::from_secs(7);
        w.host_called = true;
        assert!(w.tick(Some(cpu)));
        // A quarter of each tick: four times as many ticks before the cut.
        for _ in 1..LIMIT_TICKS * 4 {
            cpu += TICK / 4;
            assert!(w.tick(Some(cpu)), "only {:?} of CPU so far", w.quiet);
        }
        cpu += TICK / 4;
        assert!(!w.tick(Some(cpu)));
        // A thread that ran other work for long between two ticks counts one tick at most,
        // and an unreadable clock counts whole ticks.
        let mut w = Watch::default();
        assert!(w.tick(Some(Duration::ZERO)));
        assert!(w.tick(Some(Duration::from_secs(60))));
        assert_eq!(w.quiet, TICK * 2);
        assert!(w.tick(None));
        assert_eq!(w.quiet, TICK * 3);
    }
}
