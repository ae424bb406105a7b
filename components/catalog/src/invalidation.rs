//! Telling the frontend that a toy changed: `POST {FRONTEND_URL}/invalidate/<name>`.
//!
//! Sent after the change is on disk and the data-directory lock is released (a slow frontend
//! must never hold up other writers). The change stands whatever the frontend answers: a toy
//! whose invalidation failed is kept in a small in-memory set of pending names and sent again
//! on the next tick or write. Losing that set (a crash) is covered by the frontend's cache TTL,
//! which bounds how long a stale entry can be served.
//!
//! Names in the set are catalog toys, so the set is bounded by the catalog's size.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::time::Duration;

use futures::future::join_all;
use http::Method;
use toystore_guest::request::encode_segment;
use toystore_guest::Net;

/// Where and how to send invalidations.
#[derive(Debug, Clone)]
pub struct Invalidator {
    /// `None`: no frontend configured, nothing is sent.
    frontend_url: Option<String>,
    timeout: Duration,
    pending: RefCell<BTreeSet<String>>,
    /// A retry of the pending set is running; others skip rather than queue behind a dead
    /// frontend's timeouts.
    retrying: Cell<bool>,
}

impl Invalidator {
    pub fn new(frontend_url: Option<String>, timeout: Duration) -> Self {
        let frontend_url = frontend_url.map(|u| u.trim_end_matches('/').to_string()).filter(|u| !u.is_empty());
        Self { frontend_url, timeout, pending: RefCell::default(), retrying: Cell::new(false) }
    }

    /// Names whose invalidation has not been acknowledged yet.
    pub fn pending(&self) -> Vec<String> {
        self.pending.borrow().iter().cloned().collect()
    }

    /// Send invalidations for `names` now (in parallel); the ones that fail become pending.
    /// Returns how many were acknowledged.
    pub async fn send<N: Net>(&self, net: &N, names: &[String]) -> usize {
        let Some(base) = self.frontend_url.as_deref() else { return 0 };
        if names.is_empty() {
            return 0;
        }
        let calls = names.iter().map(|name| async move {
            let url = format!("{base}/invalidate/{}", encode_segment(name));
            let ok = matches!(net.call(Method::POST, &url, None, self.timeout).await, Ok(r) if r.is_success());
            (name, ok)
        });
        let results = join_all(calls).await;
        // The borrow is taken only after every await has finished.
        let mut pending = self.pending.borrow_mut();
        let mut acked = 0;
        for (name, ok) in results {
            if ok {
                pending.remove(name);
                acked += 1;
            } else {
                pending.insert(name.clone());
            }
        }
        acked
    }

    /// Send the pending invalidations again, unless a retry is already running.
    pub async fn retry_pending<N: Net>(&self, net: &N) {
        if self.retrying.get() {
            return;
        }
        let names = self.pending();
        if names.is_empty() {
            return;
        }
        self.retrying.set(true);
        // Reset even if this future is dropped half-way (the request was cancelled).
        let _reset = ResetOnDrop(&self.retrying);
        self.send(net, &names).await;
    }
}

struct ResetOnDrop<'a>(&'a Cell<bool>);

impl Drop for ResetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use serde_json::Value;
    use toystore_guest::{CallError, NetResponse};

    /// A frontend that records invalidations, or is down.
    #[derive(Default)]
    struct Frontend {
        up: Cell<bool>,
        seen: RefCell<Vec<String>>,
    }

    impl Net for Frontend {
        async fn call(&self, _m: Method, url: &str, _b: Option<Value>, t: Duration) -> Result<NetResponse, CallError> {
            if !self.up.get() {
                return Err(CallError::Timeout(t));
            }
            self.seen.borrow_mut().push(url.to_string());
            Ok(NetResponse { status: 200, body: serde_json::json!({"data": {}}) })
        }
    }

    #[test]
    fn failed_invalidations_are_retried_later() {
        let inv = Invalidator::new(Some("http://fe/".into()), Duration::from_millis(5));
        let fe = Frontend::default();
        block_on(async {
            assert_eq!(inv.send(&fe, &["Tux".into(), "Fox".into()]).await, 0);
            assert_eq!(inv.pending(), ["Fox", "Tux"]);
            fe.up.set(true);
            inv.retry_pending(&fe).await;
            assert!(inv.pending().is_empty());
            assert_eq!(inv.send(&fe, &["Tux Jr".into()]).await, 1);
        });
        let mut seen = fe.seen.borrow().clone();
        seen.sort();
        assert_eq!(seen, ["http://fe/invalidate/Fox", "http://fe/invalidate/Tux", "http://fe/invalidate/Tux%20Jr"]);
    }

    #[test]
    fn no_frontend_means_nothing_to_send() {
        let inv = Invalidator::new(None, Duration::from_millis(5));
        let fe = Frontend::default();
        assert_eq!(block_on(inv.send(&fe, &["Tux".into()])), 0);
        assert!(inv.pending().is_empty());
    }
}
