//! `POST /orders` on the leader (ARCHITECTURE.md §3).
//!
//! 1. Validate (400 and nothing happens).
//! 2. Only a ready leader takes orders (409 naming the leader otherwise); one left not ready by
//!    a failed replication first renews with a new epoch.
//! 3. A key already in the log gets its number again — no stock taken twice — if the request
//!    is the same order (toy and quantity); a different order under a used key is 422 and
//!    changes nothing.
//! 4. Take the stock at the catalog (`/buy` with the key) *before* the order lock, so catalog
//!    latency does not serialise orders; its 400/404 go back unchanged.
//! 5. Under the order lock: check the key again (a retry may have won meanwhile: give the stock
//!    back and answer the existing number, or 422), number = last + 1, append + fsync, replicate.
//! 6. A majority has it → acknowledge. Otherwise 503, and the leader must renew before the
//!    next order (a leader never writes two different entries at one number in one epoch).
//!    If no follower can possibly hold the entry it is cut and the stock released; if one
//!    might (it timed out mid-request), cutting it could let a later leader resurrect an order
//!    whose stock was given back, so the entry stays: the renewal commits it, and the client's
//!    retry with the same key gets its number.

use http::Method;
use serde_json::json;
use toystore_guest::api::ErrorBody;
use toystore_guest::{Net, Reply, Request};

use crate::log::Entry;
use crate::protocol::NewOrder;
use crate::replica::{order_fate, OrderFate};
use crate::service::{internal, Service};

/// What happened when the leader tried to append under the lock.
enum Appended {
    New(u64),
    /// The key is already in the log, for this entry.
    Existing(Entry),
}

impl<N: Net> Service<N> {
    pub(crate) async fn place_order(&self, req: &Request) -> Reply {
        let order = match NewOrder::parse(&req.body) {
            Ok(o) => o,
            Err(r) => return r,
        };
        if self.state.borrow().ready_epoch().is_none() {
            let _lock = self.order_lock.lock().await;
            if let Err(r) = self.ready_or_renew().await {
                return r;
            }
        }
        match self.existing(&order).await {
            Ok(Some(n)) => return accepted(n),
            Ok(None) => {}
            Err(r) => return r,
        }
        if let Err(r) = self.buy(&order).await {
            return r;
        }

        let _lock = self.order_lock.lock().await;
        let epoch = match self.ready_or_renew().await {
            Ok(e) => e,
            Err(r) => {
                self.release(&order).await;
                return r;
            }
        };
        let appended = self
            .on_disk(|disk, state| {
                if disk.promised != epoch || state.ready_epoch() != Some(epoch) {
                    return Err(Reply::unavailable("leadership changed; retry"));
                }
                if let Some(e) = disk.log.number_of(&order.key).and_then(|n| disk.log.get(n)) {
                    return Ok(Appended::Existing(e.clone()));
                }
                let n = (disk.log.last() + 1) as u64;
                let entry = Entry { number: n, name: order.name.clone(), quantity: order.quantity, key: order.key.clone(), epoch };
                disk.log.append(&[entry]).map_err(internal)?;
                Ok(Appended::New(n))
            })
            .await
            .and_then(|r| r);
        let n = match appended {
            Ok(Appended::New(n)) => n,
            Ok(Appended::Existing(e)) => {
                // Under the lock a ready leader's whole log is committed.
                self.release(&order).await;
                return if order.is_same_order_as(&e) { accepted(e.number) } else { order.key_reused(&e) };
            }
            Err(r) => {
                self.release(&order).await;
                return r;
            }
        };

        let out = self.replicate(epoch, n).await;
        self.state.borrow_mut().replicated(epoch, n, &out);
        match order_fate(&out) {
            OrderFate::Acknowledge => return accepted(n),
            OrderFate::KeepAndRetry => {
                return Reply::unavailable(format!(
                    "order {n} could not be confirmed on a majority of replicas; retry with the same key"
                ))
            }
            OrderFate::TakeBack => {}
        }
        // Nobody else has it: take it back.
        let cut = self
            .on_disk(|disk, _| match disk.log.get(n) {
                Some(e) if e.key == order.key && e.epoch == epoch => disk.log.truncate_from(n).map_err(internal),
                _ => Ok(()),
            })
            .await
            .and_then(|r| r);
        if cut.is_ok() {
            self.release(&order).await;
        }
        Reply::unavailable("the order could not be replicated to a majority of replicas; retry")
    }

    /// The number of `order.key` if it is in the log and committed (or 422 if it names another
    /// order). An entry that is there but not (yet) committed — another request for the same
    /// key is replicating it, or a failed replication left it — is waited for under the order
    /// lock (renewing if needed).
    async fn existing(&self, order: &NewOrder) -> Result<Option<u64>, Reply> {
        let logged = || self.read_log(|log| log.number_of(&order.key).and_then(|n| log.get(n).cloned())).flatten();
        let answer = |e: Entry| if order.is_same_order_as(&e) { Ok(Some(e.number)) } else { Err(order.key_reused(&e)) };
        for _ in 0..2 {
            let Some(e) = logged() else { return Ok(None) };
            if self.state.borrow().committed(e.number) {
                return answer(e);
            }
            let _lock = self.order_lock.lock().await;
            self.ready_or_renew().await?;
        }
        match logged() {
            Some(e) if self.state.borrow().committed(e.number) => answer(e),
            Some(_) => Err(Reply::unavailable("the order is not yet on a majority of replicas; retry")),
            None => Ok(None),
        }
    }

    /// Take the stock. The catalog's 400 (not enough) and 404 (unknown toy) go back unchanged.
    async fn buy(&self, order: &NewOrder) -> Result<(), Reply> {
        let url = format!("{}/buy", self.cfg.catalog_url);
        match self.net.call(Method::POST, &url, Some(order.catalog_body()), self.cfg.timeout).await {
            Ok(r) if r.is_success() => Ok(()),
            Ok(r) if r.status == 400 || r.status == 404 => {
                let error = r.error().unwrap_or_else(|| ErrorBody::new(r.status, r.error_message()));
                Err(Reply::from_error(ErrorBody { code: r.status, ..error }))
            }
            Ok(r) => Err(Reply::unavailable(format!("catalog answered {}: {}", r.status, r.error_message()))),
            Err(e) => Err(Reply::unavailable(format!("catalog unavailable: {e}"))),
        }
    }

    /// Give the stock of an order that did not commit back (best effort: if this fails the
    /// stock stays taken, which never oversells).
    async fn release(&self, order: &NewOrder) {
        let url = format!("{}/release", self.cfg.catalog_url);
        match self.net.call(Method::POST, &url, Some(order.catalog_body()), self.cfg.timeout).await {
            Ok(r) if r.is_success() => {}
            Ok(r) => eprintln!("order: release of {} failed: {} {}", order.key, r.status, r.error_message()),
            Err(e) => eprintln!("order: release of {} failed: {e}", order.key),
        }
    }
}

fn accepted(n: u64) -> Reply {
    Reply::ok(json!({ "order_number": n }))
}
