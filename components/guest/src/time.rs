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

/// A random 128-bit key in hex, for idempotency keys. In a guest it comes from
/// `wasi:random`; natively (tests) from the std hasher's random seed and a counter.
pub fn random_key() -> String {
    #[cfg(target_arch = "wasm32")]
    {
        let (a, b) = (wasip3::random::random::get_random_u64(), wasip3::random::random::get_random_u64());
        format!("{a:016x}{b:016x}")
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        use std::hash::{BuildHasher, Hasher};
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_u64(now_millis());
        let a = h.finish();
        h.write_u64(a);
        format!("{a:016x}{:016x}", h.finish())
    }
}
