//! `POST /orders` on the leader (ARCHITECTURE.md, "Request paths" and "Stock").
//!
//! 1. Validate (400 and nothing happens).
//! 2. Only a ready leader takes orders (409 naming the leader otherwise); one left not ready by
//!    a failed replication first renews with a new epoch (which commits whatever it left).
//! 3. A key already in the log gets its number again if the request is the same order (toy and
//!    quantity); a different order under a used key is 422 and changes nothing.
//! 4. Under the order lock: check the key again (a retry may have won meanwhile), then admit
//!    the order from the stock view ([`crate::stock`]): the catalog's base minus our own orders
//!    it has not applied. Short → re-read the base once, still short → 400 `not enough stock:
//!    only N left`; unknown toy → 404; no base and no catalog → 503. Nothing is written then.
//! 5. Number = the next order number, one record appended + fsync'd with the catalog's price,
//!    then replicated.
//! 6. A majority has it → acknowledge (and push the committed orders to the catalog, whose
//!    outcome never changes the answer). Otherwise 503, and the leader must renew before the
//!    next order (a leader never writes two different records at one index in one epoch). The
//!    record stays: the renewal commits it, or a newer leader that never saw it cuts it, and
//!    stock follows the log either way — no stock was taken before the commit, so there is
//!    nothing to give back. A retry with the same key gets its number if it survived.

use serde_json::json;
use toystore_guest::{Net, Reply};

use crate::log::{Entry, Order};
use crate::protocol::NewOrder;
use crate::service::{internal, Service};
use crate::stock::{admit, Admission};
use toystore_guest::Request;

/// What happened when the leader tried to append under the lock.
enum Appended {
    /// A new order record at `index` with `number`.
    New { index: u64, number: u64 },
    /// The key is already in the log, for this order.
    Existing(Order),
    /// The stock view said no (or could not tell).
    Refused(Admission),
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

        let (index, n) = {
            let _lock = self.order_lock.lock().await;
            let epoch = match self.ready_or_renew().await {
                Ok(e) => e,
                Err(r) => return r,
            };
            let (index, n) = match self.admit_and_append(&order, epoch).await {
                Ok(Appended::New { index, number }) => (index, number),
                // Under the lock a ready leader's whole log is committed.
                Ok(Appended::Existing(o)) => {
                    return if order.is_same_order_as(&o) { accepted(o.number) } else { order.key_reused(&o) }
                }
                Ok(Appended::Refused(a)) => return refusal(a),
                Err(r) => return r,
            };
            let out = self.replicate(epoch, index).await;
            self.state.borrow_mut().replicated(epoch, index, &out);
            if !out.committed() {
                let doubt = if out.unknown { "; some replica may hold it: retry with the same key" } else { "; retry" };
                return Reply::unavailable(format!("order {n} could not be confirmed on a majority of replicas{doubt}"));
            }
            (index, n)
        };
        // Committed: acknowledged whatever the catalog says.
        debug_assert!(self.state.borrow().commit_index().is_some_and(|c| c >= index as i64));
        self.push_applied().await;
        accepted(n)
    }

    /// Under the order lock, as ready leader of `epoch`: the existing order for the key, or the
    /// stock view's verdict, or a new record appended. The base is read at most twice (once
    /// if we have none, once more when short).
    async fn admit_and_append(&self, order: &NewOrder, epoch: u64) -> Result<Appended, Reply> {
        let mut refreshed = false;
        if self.base().is_none() {
            self.refresh_base().await.map_err(|e| Reply::unavailable(format!("{e}; retry")))?;
            refreshed = true;
        }
        loop {
            let Some(base) = self.base() else { return Err(Reply::unavailable("no stock view; retry")) };
            let appended = self
                .on_disk(|disk, state| {
                    if disk.promised != epoch || state.ready_epoch() != Some(epoch) {
                        return Err(Reply::unavailable("leadership changed; retry"));
                    }
                    if let Some((_, o)) = disk.log.order_by_key(&order.key).map_err(internal)? {
                        return Ok(Appended::Existing(o));
                    }
                    let logged = disk.log.next_number();
                    disk.log.set_pending_from(base.applied_orders.min(logged)).map_err(internal)?;
                    let pending = disk.log.pending(&order.name);
                    let price = match admit(&base, &order.name, order.quantity, pending, logged) {
                        Admission::Admit { price } => price,
                        refused => return Ok(Appended::Refused(refused)),
                    };
                    let index = (disk.log.last() + 1) as u64;
                    let record = Order {
                        number: logged,
                        name: order.name.clone(),
                        quantity: order.quantity,
                        price,
                        key: order.key.clone(),
                    };
                    disk.log.append(&[Entry::order_record(index, epoch, record)]).map_err(internal)?;
                    Ok(Appended::New { index, number: logged })
                })
                .await??;
            match appended {
                Appended::Refused(Admission::Short { .. } | Admission::Unknown) if !refreshed => {
                    refreshed = true;
                    if let Err(e) = self.refresh_base().await {
                        // The view we have said no; that answer stands (never oversells).
                        eprintln!("order: re-reading the stock failed: {e}");
                        return Ok(appended);
                    }
                }
                other => return Ok(other),
            }
        }
    }

    /// The number of `order.key` if it is in the log and committed (or 422 if it names another
    /// order). A record that is there but not (yet) committed — another request for the same
    /// key is replicating it, or a failed replication left it — is waited for under the order
    /// lock (renewing if needed).
    async fn existing(&self, order: &NewOrder) -> Result<Option<u64>, Reply> {
        let logged = || {
            self.read_log(|log| log.order_by_key(&order.key).ok().flatten())
                .flatten()
        };
        let answer = |o: Order| if order.is_same_order_as(&o) { Ok(Some(o.number)) } else { Err(order.key_reused(&o)) };
        for _ in 0..2 {
            let Some((index, o)) = logged() else { return Ok(None) };
            if self.state.borrow().committed(index) {
                return answer(o);
            }
            let _lock = self.order_lock.lock().await;
            self.ready_or_renew().await?;
        }
        match logged() {
            Some((index, o)) if self.state.borrow().committed(index) => answer(o),
            Some(_) => Err(Reply::unavailable("the order is not yet on a majority of replicas; retry")),
            None => Ok(None),
        }
    }
}

/// The answer for an order the stock view refused: nothing was written.
fn refusal(a: Admission) -> Reply {
    match a {
        Admission::Short { left } => Reply::bad_request(format!("not enough stock: only {left} left")),
        Admission::Unknown => Reply::not_found("product not found"),
        Admission::BaseAhead => Reply::unavailable("the catalog has applied orders this leader does not hold; retry"),
        Admission::Admit { .. } => Reply::internal("an admitted order was not appended"),
    }
}

fn accepted(n: u64) -> Reply {
    Reply::ok(json!({ "order_number": n }))
}
