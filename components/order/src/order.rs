//! `POST /orders` on the leader (ARCHITECTURE.md, "Request paths", "Order path" and "Stock").
//!
//! 1. Validate (400 and nothing happens).
//! 2. Only a ready leader takes orders (409 naming the leader otherwise); one left not ready by
//!    a failed replication first renews with a new epoch (which commits whatever it left).
//! 3. A key already in the log gets its number again once its record is committed, if the
//!    request is the same order (toy and quantity); a different order under a used key is 422
//!    and changes nothing.
//! 4. **Group commit.** The order joins the queue, and whoever takes the order lock next
//!    numbers the whole queue as one batch (the orders that arrived while the previous holder
//!    fsync'd its batch): each order is admitted from the stock view ([`crate::stock`]; the batch's own
//!    earlier orders count as taken), refused ones are answered (400 `not enough stock`, 404
//!    unknown toy; nothing written for them), and the admitted ones are appended in **one
//!    write and one fsync**, keys checked again (a retry may have won meanwhile, even within
//!    the batch).
//! 5. Each order then waits until the commit index passes its record ([`crate::commit`]): the
//!    per-follower replicators carry the batch to the followers, and the first follower to
//!    accept it makes the majority. No order waits for a particular follower.
//! 6. Committed → push the committed orders to the catalog (one call covers every order
//!    committed meanwhile; its outcome never changes the answer) and acknowledge. Not
//!    confirmable → 503 and the leader renews before numbering again; the record stays, and
//!    stock follows the log either way — nothing was taken before the commit. A retry with
//!    the same key gets its number if the record survived.

use std::collections::HashMap;
use std::rc::Rc;

use futures::channel::oneshot;
use futures::future::{select, Either};
use serde_json::json;
use toystore_guest::time::yield_now;
use toystore_guest::{Net, Reply, Request};

use crate::admission::{admit, Admission, Base};
use crate::log::{Record, Order};
use crate::node::{internal, Service};
use crate::protocol::NewOrder;
use crate::queue::{Slot, Ticket};
use crate::replicators::Deferred;

/// A batch's admission, decided under the directory lock.
enum Batch {
    /// Appended (or refused) order by order; the append still to be fsync'd, if any.
    Done(Vec<Slot>, Option<Unsynced>),
    /// Some order was short with a base we did not re-read yet: nothing was written.
    Retry,
}

/// A batch appended without its fsync yet (group commit under the toystore host).
struct Unsynced {
    path: std::path::PathBuf,
    created: bool,
    /// The batch's last record.
    last: i64,
}

impl<N: Net + 'static> Service<N> {
    pub(crate) async fn place_order(self: &Rc<Self>, req: &Request, deferred: &Deferred) -> Reply {
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
        match self.existing(&order, deferred).await {
            Ok(Some(n)) => return accepted(n),
            Ok(None) => {}
            Err(r) => return r,
        }

        let (slot, wait) = oneshot::channel();
        self.queue.borrow_mut().push(Ticket { order: order.clone(), slot });
        // Whoever holds the order lock numbers the queue: either our slot arrives from that
        // batch (no need to wait for the lock, which its holder keeps through the fsync), or we
        // get the lock and number what is queued, ours included. Batches form while a holder
        // fsyncs: the orders that arrive meanwhile queue up and the next holder takes them all.
        // No explicit yield here to gather the requests ready to run: it would cost every
        // order a trip through the scheduler, and the fsync already gathers them.
        let mut wait = wait;
        let lock = std::pin::pin!(self.order_lock.lock());
        let slot = match select(&mut wait, lock).await {
            Either::Left((slot, _)) => slot,
            Either::Right((guard, _)) => {
                self.number_queue().await;
                drop(guard);
                wait.await
            }
        };
        let slot = match slot {
            Ok(Ok(slot)) => slot,
            Ok(Err(reply)) => return reply,
            Err(_) => return Reply::unavailable("the order's batch was abandoned; retry with the same key"),
        };
        match slot {
            Slot::Refused(a) => refusal(a),
            Slot::Existing { epoch, index, order: stored } => {
                if let Err(r) = self.await_commit(epoch, index, deferred).await {
                    return r;
                }
                if order.is_same_order_as(&stored) { accepted(stored.number) } else { order.key_reused(&stored) }
            }
            Slot::New { epoch, index, number } => {
                if let Err(r) = self.await_commit(epoch, index, deferred).await {
                    return r;
                }
                // Committed: acknowledged whatever the catalog says.
                self.push_applied(Some(number)).await;
                accepted(number)
            }
        }
    }

    /// Under the order lock: number every order in the queue as one batch and send each its
    /// slot (or the reply that ends it).
    async fn number_queue(&self) {
        let tickets = std::mem::take(&mut *self.queue.borrow_mut());
        if tickets.is_empty() {
            return; // an earlier holder of the lock took ours with its batch
        }
        let orders: Vec<&NewOrder> = tickets.iter().map(|t| &t.order).collect();
        let epoch = self.ready_or_renew().await;
        let slots = match epoch {
            Ok(epoch) => self.admit_and_append(&orders, epoch).await.map(|(slots, unsynced)| (epoch, slots, unsynced)),
            Err(r) => Err(r),
        };
        match slots {
            Ok((epoch, slots, unsynced)) => {
                // The orders can start their replicators now: followers write the batch while
                // we fsync it (it counts as ours only once our fsync returns).
                for (t, s) in tickets.into_iter().zip(slots) {
                    let _ = t.slot.send(Ok(s));
                }
                if let Some(batch) = unsynced {
                    self.sync_batch(epoch, batch).await;
                }
            }
            Err(reply) => {
                for t in tickets {
                    let _ = t.slot.send(Err(reply.clone()));
                }
            }
        }
    }

    /// Under the order lock, as ready leader of `epoch`: each order's existing record, the
    /// stock view's verdict, or a new record — the new ones appended in one write. The base is
    /// read at most twice (once if we have none, once more when some order is short).
    async fn admit_and_append(&self, orders: &[&NewOrder], epoch: u64) -> Result<(Vec<Slot>, Option<Unsynced>), Reply> {
        let mut refreshed = false;
        if self.base().is_none() {
            self.refresh_base().await.map_err(|e| Reply::unavailable(format!("{e}; retry")))?;
            refreshed = true;
        }
        loop {
            let Some(base) = self.base() else { return Err(Reply::unavailable("no stock view; retry")) };
            match self.append_batch(orders, epoch, &base, refreshed).await? {
                Batch::Done(slots, unsynced) => return Ok((slots, unsynced)),
                Batch::Retry => {
                    refreshed = true;
                    if let Err(e) = self.refresh_base().await {
                        // The view we have stands: the next round refuses from it (never oversells).
                        eprintln!("order: re-reading the stock failed: {e}");
                    }
                }
            }
        }
    }

    /// Number `orders` against the log and `base` under the directory lock, and append the
    /// admitted ones in one write (one fsync).
    async fn append_batch(&self, orders: &[&NewOrder], epoch: u64, base: &Base, refreshed: bool) -> Result<Batch, Reply> {
        let majority = self.cfg.majority();
        let exclusive = self.cfg.dir_access == toystore_guest::lock::DirAccess::Exclusive;
        self.on_disk(|disk, state| {
            if !state.may_append_batch(epoch, disk.promised) {
                return Err(Reply::unavailable("leadership changed; retry"));
            }
            disk.log.set_pending_from(base.applied_orders.min(disk.log.next_number())).map_err(internal)?;
            let (slots, records) = number_batch(disk.log, base, orders, epoch, refreshed).map_err(internal)?;
            let Some(slots) = slots else { return Ok(Batch::Retry) };
            let written = match exclusive {
                // The only writer of this directory: fsync after the lock, asynchronously.
                true => disk.log.append_unsynced(&records).map(|created| {
                    (!records.is_empty()).then(|| Unsynced { path: disk.log.path().to_path_buf(), created, last: disk.log.last() })
                }),
                // Other instances may append once we let go of the lock: fsync under it.
                false => disk.log.append(&records).map(|()| None),
            };
            state.batch_appended(epoch, written.as_ref().map(|_| disk.log.durable_last()).map_err(|_| ()), majority);
            match written {
                Ok(unsynced) => Ok(Batch::Done(slots, unsynced)),
                Err(e) => Err(internal(e)),
            }
        })
        .await?
    }

    /// fsync a batch appended by [`Log::append_unsynced`] (other requests run meanwhile and
    /// queue up for the next batch, since we still hold the order lock). Then it counts as our
    /// copy; if the fsync failed, the batch is cut (it may or may not be on disk) and the leader
    /// renews before numbering again, so its orders fail and keep their keys for a retry.
    async fn sync_batch(&self, epoch: u64, batch: Unsynced) {
        let syncing = self.replicators.syncing();
        // The batch's orders start their replicators first, so the followers' writes are under
        // way even where the host runs the fsync on this instance's own thread.
        yield_now().await;
        match toystore_guest::durable::sync_data(&batch.path, batch.created).await {
            Ok(()) => {
                self.log_mut(|log| log.mark_synced(batch.last));
                let own = self.own_durable();
                self.state.borrow_mut().note_own(epoch, own, self.cfg.majority());
            }
            Err(e) => {
                eprintln!("order: fsync of a batch of orders failed: {e}");
                if let Ok(Err(e)) = self.on_disk(|disk, _| disk.log.drop_unsynced()).await {
                    eprintln!("order: cutting the unsynced batch failed too: {e}");
                }
                self.state.borrow_mut().lose_readiness(epoch);
            }
        }
        drop(syncing); // wakes the orders waiting on the commit index
    }

    /// The number of `order.key` if it is in the log and committed (or 422 if it names another
    /// order). A record that is there but not committed yet — another request for the same key
    /// is replicating it, or a failed replication left it — is waited for (renewing first if
    /// this leader is not ready).
    async fn existing(self: &Rc<Self>, order: &NewOrder, deferred: &Deferred) -> Result<Option<u64>, Reply> {
        let logged = self
            .read_log(|log| log.order_by_key(&order.key))
            .transpose()
            .map_err(internal)?
            .flatten();
        let Some((index, stored)) = logged else { return Ok(None) };
        if !self.state.borrow().committed(index) {
            // Not `match self.state.borrow()...`: the borrow would live through the renewal's
            // awaits, and the renewal (or any other task meanwhile) borrows the state mutably.
            let ready = self.state.borrow().ready_epoch();
            let epoch = match ready {
                Some(e) => e,
                None => {
                    let _lock = self.order_lock.lock().await;
                    self.ready_or_renew().await?
                }
            };
            self.await_commit(epoch, index, deferred).await?;
        }
        if order.is_same_order_as(&stored) { Ok(Some(stored.number)) } else { Err(order.key_reused(&stored)) }
    }
}

/// Number a batch against `log` and the stock view `base`: each order's slot, and the records
/// to append. `None` slots: some order was short or unknown and `refreshed` is false, so the
/// caller should re-read the base first (nothing is to be written then). Err: the log could
/// not be read (a key lookup must never mistake a read error for a new key).
fn number_batch(
    log: &crate::log::Log,
    base: &Base,
    orders: &[&NewOrder],
    epoch: u64,
    refreshed: bool,
) -> std::io::Result<(Option<Vec<Slot>>, Vec<Record>)> {
    let logged = log.next_number();
    let mut taken: HashMap<&str, i64> = HashMap::new();
    let mut in_batch: HashMap<&str, (u64, Order)> = HashMap::new();
    let mut records: Vec<Record> = Vec::new();
    let mut slots = Vec::with_capacity(orders.len());
    let mut index = (log.last() + 1) as u64;
    let mut number = logged;
    for o in orders {
        if let Some((i, stored)) = log.order_by_key(&o.key)? {
            slots.push(Slot::Existing { epoch, index: i, order: stored });
            continue;
        }
        if let Some((i, stored)) = in_batch.get(o.key.as_str()) {
            slots.push(Slot::Existing { epoch, index: *i, order: stored.clone() });
            continue;
        }
        let pending = log.pending(&o.name) + taken.get(o.name.as_str()).copied().unwrap_or(0);
        match admit(base, &o.name, o.quantity, pending, logged) {
            Admission::Admit { price } => {
                let record = Order { number, name: o.name.clone(), quantity: o.quantity, price, key: o.key.clone() };
                in_batch.insert(o.key.as_str(), (index, record.clone()));
                records.push(Record::order_record(index, epoch, record));
                *taken.entry(o.name.as_str()).or_default() += o.quantity;
                slots.push(Slot::New { epoch, index, number });
                index += 1;
                number += 1;
            }
            Admission::Short { .. } | Admission::Unknown if !refreshed => return Ok((None, Vec::new())),
            refused => slots.push(Slot::Refused(refused)),
        }
    }
    Ok((Some(slots), records))
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
