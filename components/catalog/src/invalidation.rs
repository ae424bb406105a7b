//! Telling the frontend that toys changed: `POST {FRONTEND_URL}/invalidate` with
//! `{"names": [...]}`, one call for every toy a change (a batch of orders, a restock) touched.
//!
//! A change queues the names it touched ([`Invalidator::queue`]); they are sent after the
//! change is on disk, the data-directory lock is released and the reply has gone out
//! ([`Invalidator::flush`], run by the entry's `after_reply` hook and on every tick). Neither a
//! writer nor its caller ever waits for the frontend: the order leader's `/apply` push and a
//! restock answer as soon as the file is replaced. The change stands whatever the frontend
//! answers: a toy whose invalidation failed stays in the small in-memory set of pending names
//! and is sent again on the next tick or flush. Losing that set (a crash) is covered by the
//! frontend's cache TTL, which bounds how long a stale entry can be served.
//!
//! Names in the set are catalog toys, so the set is bounded by the catalog's size.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::time::Duration;

use http::Method;
use serde_json::json;
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

    /// Send invalidations for `names` now, in one call; if it fails they all become pending.
    /// Returns how many were acknowledged.
    pub async fn send<N: Net>(&self, net: &N, names: &[String]) -> usize {
        let Some(base) = self.frontend_url.as_deref() else { return 0 };
        if names.is_empty() {
            return 0;
        }
        let url = format!("{base}/invalidate");
        let body = json!({ "names": names });
        let ok = matches!(net.call(Method::POST, &url, Some(body), self.timeout).await, Ok(r) if r.is_success());
        // The borrow is taken only after the await has finished.
        let mut pending = self.pending.borrow_mut();
        if ok {
            pending.retain(|name| !names.contains(name));
            names.len()
        } else {
            pending.extend(names.iter().cloned());
            0
        }
    }

    /// Remember `names` to be sent by the next [`flush`](Self::flush) (no frontend: nothing).
    pub fn queue(&self, names: &[String]) {
        if self.frontend_url.is_some() {
            self.pending.borrow_mut().extend(names.iter().cloned());
        }
    }

    /// Is anything waiting to be sent?
    pub fn has_pending(&self) -> bool {
        !self.pending.borrow().is_empty()
    }

    /// Send the pending invalidations, unless a flush is already running. Names queued while
    /// this one runs get their attempt before it returns; a name that fails waits for the next
    /// flush or tick (so a dead frontend costs one timeout per flush, not a loop).
    pub async fn flush<N: Net>(&self, net: &N) {
        if self.retrying.get() {
            return;
        }
        self.retrying.set(true);
        // Reset even if this future is dropped half-way (the request was cancelled).
        let _reset = ResetOnDrop(&self.retrying);
        let mut tried: BTreeSet<String> = BTreeSet::new();
        loop {
            let names: Vec<String> = self.pending().into_iter().filter(|n| !tried.contains(n)).collect();
            if names.is_empty() {
                return;
            }
            self.send(net, &names).await;
            tried.extend(names);
        }
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

    /// A frontend that records invalidations (each call's URL and names), or is down.
    #[derive(Default)]
    struct Frontend {
        up: Cell<bool>,
        seen: RefCell<Vec<(String, Vec<String>)>>,
    }

    impl Net for Frontend {
        async fn call(&self, m: Method, url: &str, body: Option<Value>, t: Duration) -> Result<NetResponse, CallError> {
            if !self.up.get() {
                return Err(CallError::Timeout(t));
            }
            assert_eq!(m, Method::POST);
            let names = serde_json::from_value(body.expect("a body")["names"].clone()).expect("a list of names");
            self.seen.borrow_mut().push((url.to_string(), names));
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
            inv.flush(&fe).await;
            assert!(inv.pending().is_empty());
            assert_eq!(inv.send(&fe, &["Tux Jr".into()]).await, 1);
        });
        // One call per attempt, however many names it carries.
        let names = |v: &[&str]| ("http://fe/invalidate".to_string(), v.iter().map(|n| n.to_string()).collect::<Vec<_>>());
        assert_eq!(*fe.seen.borrow(), [names(&["Fox", "Tux"]), names(&["Tux Jr"])]);
    }

    #[test]
    fn queued_names_are_sent_by_the_next_flush() {
        let inv = Invalidator::new(Some("http://fe".into()), Duration::from_millis(5));
        let fe = Frontend::default();
        inv.queue(&["Tux".into(), "Fox".into()]);
        assert!(inv.has_pending());
        block_on(inv.flush(&fe));
        assert_eq!(inv.pending(), ["Fox", "Tux"], "frontend down: still pending, tried once");
        fe.up.set(true);
        block_on(inv.flush(&fe));
        assert!(!inv.has_pending());
        assert_eq!(fe.seen.borrow().len(), 1, "both names in one call");
    }

    #[test]
    fn no_frontend_means_nothing_to_send() {
        let inv = Invalidator::new(None, Duration::from_millis(5));
        let fe = Frontend::default();
        assert_eq!(block_on(inv.send(&fe, &["Tux".into()])), 0);
        inv.queue(&["Fox".into()]);
        assert!(inv.pending().is_empty());
    }
}
