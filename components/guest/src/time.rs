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

/// A random 128-bit key in hex, for idempotency keys.
pub fn random_key() -> String {
    let key = (u128::from(random_u64()) << 64) | u128::from(random_u64());
    format!("{key:032x}")
}

/// A random number in `[0, 1)`, e.g. to jitter a backoff so that several waiters do not retry
/// in step.
pub fn random_unit() -> f64 {
    // The top 53 bits: exactly the precision of an f64 in [0, 1).
    (random_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// In a guest from the world's `wasi:random` import; natively (tests) from the OS through
/// `getrandom`.
fn random_u64() -> u64 {
    #[cfg(target_arch = "wasm32")]
    let n = wasip3::random::random::get_random_u64();
    // An OS without a random source cannot run the tests at all; a fixed key would silently
    // merge distinct orders, so fail loudly instead.
    #[cfg(not(target_arch = "wasm32"))]
    let n = {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).expect("the OS random source is available");
        u64::from_be_bytes(bytes)
    };
    n
}

#[cfg(test)]
mod tests {
    #[test]
    fn random_keys_are_32_hex_digits_and_differ() {
        let (a, b) = (super::random_key(), super::random_key());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn random_units_are_in_range_and_differ() {
        let xs: Vec<f64> = (0..100).map(|_| super::random_unit()).collect();
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)), "{xs:?}");
        assert!(xs.windows(2).any(|w| w[0] != w[1]));
    }
}

/// Let every other task of this instance that is ready to run go first. In a guest this also
/// hands control back to the host, which can start the requests that arrived meanwhile (the
/// leader's group commit relies on it: orders that arrive together are numbered together).
/// Natively, the other futures of the same executor run first.
pub async fn yield_now() {
    struct Yield(bool);
    impl std::future::Future for Yield {
        type Output = ();
        fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
            if self.0 {
                return std::task::Poll::Ready(());
            }
            self.0 = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    }
    Yield(false).await
}
