//! Pushing committed orders to the catalog (`POST /apply`), so its quantities follow the log.
//!
//! After a commit (and on every leader `/tick`, which retries failures) the leader sends, in
//! one call, every committed order the catalog has not applied: numbers `from..` where `from`
//! is the catalog's `applied_orders` as last known, up to the last order at or before the
//! commit index. Only committed order records are ever sent (epoch records carry no stock).
//! The catalog skips orders it already applied (idempotent) and answers with its new stock,
//! which becomes the leader's base; a gap (`from` past what it applied: our base was wrong)
//! is a 409, and the leader re-reads `/stock` and resends from there. A failure changes
//! nothing: the next tick or commit sends the same orders again.
//!
//! The order's answer never depends on this push: an order is acknowledged once committed.

use http::Method;
use serde::Serialize;
use toystore_guest::Net;

use crate::replica::Confirmation;
use crate::admission::{Base, StockAnswer};
use crate::node::Service;

/// Orders per `/apply` call (the catalog's request body limit is 1 MiB).
const APPLY_MAX: usize = 2_000;
/// Calls per push (a gap re-read, then more batches).
const ROUNDS: usize = 4;

#[derive(Debug, Serialize)]
struct ApplyOrder {
    number: u64,
    name: String,
    quantity: i64,
}

#[derive(Debug, Serialize)]
struct Apply {
    from: u64,
    orders: Vec<ApplyOrder>,
}

impl<N: Net + 'static> Service<N> {
    /// `/tick` on a leader: a leader deposed while cut off from the election (nobody told it)
    /// learns it here from the peers' promises and steps down — otherwise it would keep
    /// calling itself leader, and keep its stale log, until an order happened to reach it.
    /// Then push what the catalog lacks.
    pub(crate) async fn leader_tick(&self) {
        let own = self.state.borrow().own_epoch();
        if let Some(epoch) = own {
            if let Confirmation::Superseded(newer) = self.confirm_leadership(epoch).await {
                self.state.borrow_mut().observe_promise(newer);
                return;
            }
        }
        self.push_applied(None).await;
    }

    /// Push the committed orders the catalog has not applied (one at a time per instance).
    /// With `through`, the caller only needs order `through` applied: once a push that was in
    /// flight when it arrived has covered it, it does not push again for orders committed
    /// since (their own requests do, one push for a whole batch).
    pub(crate) async fn push_applied(&self, through: Option<u64>) {
        let _one_at_a_time = self.push_lock.lock().await;
        for _ in 0..ROUNDS {
            if through.is_some_and(|n| self.applied_orders().is_some_and(|a| a > n)) {
                return;
            }
            let Some(commit) = self.state.borrow().commit_index() else { return };
            if self.base().is_none() {
                if let Err(e) = self.refresh_base().await {
                    eprintln!("order: cannot push orders to the catalog: {e}");
                    return;
                }
            }
            let from = self.base().map(|b| b.applied_orders).unwrap_or(0);
            let orders: Vec<ApplyOrder> = self
                .read_log(|log| {
                    log.orders_between(from, commit, APPLY_MAX)
                        .into_iter()
                        .map(|o| ApplyOrder { number: o.number, name: o.name, quantity: o.quantity })
                        .collect()
                })
                .unwrap_or_default();
            if orders.is_empty() {
                return;
            }
            let full = orders.len() == APPLY_MAX;
            let body = serde_json::to_value(Apply { from, orders }).unwrap_or_default();
            let url = format!("{}/apply", self.cfg.catalog_url);
            match self.net.call(Method::POST, &url, Some(body), self.cfg.timeout).await {
                Ok(r) if r.is_success() => match r.data::<StockAnswer>() {
                    Ok(a) => self.offer_base(Base::from(a), false),
                    Err(e) => {
                        eprintln!("order: catalog /apply answered an unreadable body: {e}");
                        return;
                    }
                },
                Ok(r) if r.status == 409 => {
                    // A gap: the catalog applied fewer orders than our base says. Re-read the
                    // base as it is (even if older) and resend from there.
                    let applied = r.error().and_then(|e| e.extra.get("applied_orders").and_then(|a| a.as_u64()));
                    eprintln!("order: catalog applied only {applied:?} orders, not {from}; re-reading /stock");
                    match self.fetch_stock().await {
                        Ok(b) => self.offer_base(b, true),
                        Err(e) => {
                            eprintln!("order: cannot push orders to the catalog: {e}");
                            return;
                        }
                    }
                    continue;
                }
                Ok(r) => {
                    eprintln!("order: catalog /apply answered {}: {}", r.status, r.error_message());
                    return;
                }
                Err(e) => {
                    eprintln!("order: catalog /apply failed: {e}");
                    return;
                }
            }
            if !full {
                return;
            }
        }
    }
}
