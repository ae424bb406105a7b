//! Waiting without blocking the instance.
//!
//! In a guest, `std::thread::sleep` would stall every request the instance is serving; the
//! WASI 0.3 monotonic clock's `wait-for` suspends only the calling task. Natively (unit tests)
//! a plain thread sleep is fine.

use std::time::Duration;

pub async fn sleep(d: Duration) {
    #[cfg(target_arch = "wasm32")]
    {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        wasip3::clocks::monotonic_clock::wait_for(nanos).await;
    }
    #[cfg(not(target_arch = "wasm32"))]
    std::thread::sleep(d);
}

/// Milliseconds since the Unix epoch (wall clock; used for ages and staleness, never ordering).
pub fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
