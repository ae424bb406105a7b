//! One logical request to the store: send it, retry transport errors and retryable statuses
//! with jittered exponential backoff, and read the answer's envelope. Sessions (placing orders)
//! and verification (reading them back) both build on it.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use rand::RngExt;
use serde_json::Value;

use crate::load::conn::Conn;
use crate::load::stats::Class;

/// Exponential backoff between attempts of one request.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 = never retry).
    pub max_retries: u32,
    /// Delay before the first retry; doubles per retry.
    pub base: Duration,
    /// Largest delay.
    pub cap: Duration,
}

impl RetryPolicy {
    /// Delay before retry number `retry` (0-based), scaled by `jitter` in `[0.5, 1]` so that
    /// sessions that failed together do not all come back in the same millisecond.
    pub fn delay(&self, retry: u32, jitter: f64) -> Duration {
        let factor = 2u32.saturating_pow(retry.min(20));
        let d = self.base.saturating_mul(factor).min(self.cap);
        d.mul_f64(jitter.clamp(0.5, 1.0))
    }
}

/// Is an answer with this status worth another attempt? Server-side failures (5xx: no leader
/// yet, a replica crashed mid-order), 408 and 429 are; the store's "no" (other 4xx) is final.
pub fn retryable(status: u16) -> bool {
    status >= 500 || status == 408 || status == 429
}

/// The end of one logical request (all attempts).
#[derive(Debug, Clone)]
pub struct Call {
    pub class: Class,
    /// Status of the last answer, if there was one.
    pub status: Option<u16>,
    /// The `data` member of a 2xx answer (`Null` otherwise).
    pub data: Value,
    /// The error message of the last failed attempt.
    pub message: String,
    pub retries: u32,
    pub latency: Duration,
}

/// Send one request, retrying transport errors and retryable statuses with backoff.
pub async fn call(
    conn: &mut Conn,
    policy: &RetryPolicy,
    method: Method,
    path: &str,
    body: Option<Bytes>,
    headers: &[(&str, &str)],
) -> Call {
    let start = Instant::now();
    let mut retries = 0;
    loop {
        let (class, status, data, message) = match conn.send(method.clone(), path, body.clone(), headers).await {
            Ok(r) if r.status.is_success() => {
                let data = toystore_api::data_of(&r.json()).cloned().unwrap_or(Value::Null);
                (Class::Ok, Some(r.status.as_u16()), data, String::new())
            }
            Ok(r) => {
                let msg = toystore_api::error_of(&r.json())
                    .map(|e| e.message)
                    .unwrap_or_else(|| String::from_utf8_lossy(&r.body).chars().take(200).collect());
                let class = if retryable(r.status.as_u16()) { Class::Error } else { Class::Rejected };
                (class, Some(r.status.as_u16()), Value::Null, format!("{}: {msg}", r.status.as_u16()))
            }
            Err(e) => (Class::Error, None, Value::Null, format!("{e:#}")),
        };
        if class != Class::Error || retries >= policy.max_retries {
            return Call { class, status, data, message, retries, latency: start.elapsed() };
        }
        let jitter = rand::rng().random_range(0.5..=1.0);
        tokio::time::sleep(policy.delay(retries, jitter)).await;
        retries += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy { max_retries: 8, base: Duration::from_millis(50), cap: Duration::from_secs(2) };
        assert_eq!(p.delay(0, 1.0), Duration::from_millis(50));
        assert_eq!(p.delay(1, 1.0), Duration::from_millis(100));
        assert_eq!(p.delay(3, 1.0), Duration::from_millis(400));
        assert_eq!(p.delay(10, 1.0), Duration::from_secs(2));
        assert_eq!(p.delay(1000, 1.0), Duration::from_secs(2));
        assert_eq!(p.delay(1, 0.5), Duration::from_millis(50));
        assert_eq!(p.delay(1, 0.0), Duration::from_millis(50), "jitter is clamped");
    }

    #[test]
    fn what_is_retried() {
        assert!(retryable(503) && retryable(500) && retryable(429) && retryable(408));
        assert!(!retryable(400) && !retryable(404) && !retryable(409));
    }
}
