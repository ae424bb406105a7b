//! Pausing a service like a SIGSTOPped process (`POST /replicas/<id>/pause`, `.../resume`):
//! a fault the drills, tests and the benchmark can drive.
//!
//! **Where the gate sits, and why.** A running service is the tasks on its thread (see
//! [`crate::service`]); [`gated`] wraps three of them in the same switch:
//! - the **supervisor** task, which drives the instance's `Store::run_concurrent`. Every guest
//!   call, timer wake-up and finished outgoing call of the instance is delivered by polling that
//!   one future, so not polling it stops *all* guest code at once, in-flight calls included, and
//!   leaves the store exactly where it was: resuming polls it again and everything continues
//!   where it stopped. (A gate inside the `run_concurrent` closure would only stop new jobs;
//!   the calls already in flight would keep running.)
//! - the **accept loop**: new connections stay in the kernel's backlog (the listener socket stays
//!   bound, so a client's `connect` succeeds, as with a stopped process) and are accepted on resume;
//! - each **request's handler**, before it takes a permit or a queue slot: requests on already
//!   open keep-alive connections wait instead of being queued, so a paused service never answers
//!   anything, not even the 503 a full queue would give; they go on when resumed.
//!
//! The host's own requests (ticks, the admin's `/ping`, metrics scrapes) are not sent to a
//! paused service: they see its state and skip it.

use std::future::Future;

use tokio::sync::watch;

/// The switch of one service: `true` while paused. It belongs to the service, not to one
/// running instance: killing the service clears it.
pub type Switch = watch::Sender<bool>;

/// Run `future`, but poll it only while `paused` is `false`. While paused the future is not
/// polled at all (its wake-ups are ignored, nothing it owns makes progress) and it is not
/// dropped: resuming continues it where it stopped.
pub async fn gated<F: Future>(future: F, mut paused: watch::Receiver<bool>) -> F::Output {
    tokio::pin!(future);
    loop {
        if *paused.borrow_and_update() {
            if paused.changed().await.is_err() {
                // The switch is gone (the service is being dropped): nobody can resume it.
                return std::future::pending().await;
            }
            continue;
        }
        tokio::select! {
            // The switch first: a pause takes effect before the future's next poll.
            biased;
            changed = paused.changed() => {
                if changed.is_err() {
                    return future.await;
                }
            }
            output = &mut future => return output,
        }
    }
}

/// Wait until `paused` is `false` (at once if it is).
pub async fn wait_resumed(paused: &mut watch::Receiver<bool>) {
    // An error means the switch is gone; then nothing will pause this again.
    let _ = paused.wait_for(|paused| !paused).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn a_paused_future_makes_no_progress_and_resumes_where_it_stopped() {
        let switch = Switch::new(false);
        let steps = Arc::new(AtomicU32::new(0));
        let counter = steps.clone();
        let task = tokio::spawn(gated(
            async move {
                for _ in 0..10 {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                "done"
            },
            switch.subscribe(),
        ));
        tokio::time::sleep(Duration::from_millis(35)).await;
        switch.send_replace(true);
        // Let the future notice the switch (it may finish the step it was woken for).
        tokio::time::sleep(Duration::from_millis(20)).await;
        let at_pause = steps.load(Ordering::SeqCst);
        assert!(at_pause < 10, "paused before the end: {at_pause}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(steps.load(Ordering::SeqCst), at_pause, "no progress while paused");
        assert!(!task.is_finished());
        switch.send_replace(false);
        assert_eq!(task.await.unwrap(), "done");
        assert_eq!(steps.load(Ordering::SeqCst), 10, "every step ran exactly once");
    }
}
