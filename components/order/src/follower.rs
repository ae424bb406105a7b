//! The routes peers call: promises (`/fence`), applying the leader's entries
//! (`/replicate_order`), and reading the local log (`/get_last_order_number`,
//! `/get_missed_orders`). All of them are served from the local files even before this
//! replica's own start-up resync is done — otherwise replicas starting together would each wait
//! for the others forever.

use serde_json::json;
use toystore_guest::{Net, Reply, Request};

use crate::log::Merge;
use crate::protocol::{refused, Claim, Page, Refusal, Replicate, PAGE};
use crate::replica::{decide_fence, decide_replicate, FenceDecision, LogStep, ReplicateCheck, ReplicateDecision};
use crate::node::{internal, Service};

impl<N: Net + 'static> Service<N> {
    /// `POST /fence {leader, epoch}`: promise to ignore every epoch below `epoch`, durably,
    /// and report where this log stands. Refused (409) unless `epoch` is newer than any
    /// promise already made — so two candidates can never both fence a majority for one epoch.
    pub(crate) async fn fence(&self, req: &Request) -> Reply {
        let claim: Claim = match req.json() {
            Ok(c) => c,
            Err(r) => return r,
        };
        let me = self.cfg.id;
        let done = self
            .on_disk(|disk, state| match decide_fence(disk.promised, claim.epoch) {
                FenceDecision::RefuseStale => {
                    let msg = format!("replica {me} already promised epoch {}", disk.promised);
                    refused(Refusal::Stale, &msg, disk.status())
                }
                FenceDecision::Promise => {
                    if let Err(e) = disk.promise(claim.epoch) {
                        return internal(e);
                    }
                    state.promised_to_candidate(claim.epoch);
                    Reply::ok(disk.status())
                }
            })
            .await;
        done.unwrap_or_else(|r| r)
    }

    /// `POST /replicate_order {leader, epoch, prev, records}`: a follower applies the leader's
    /// records in index order.
    ///
    /// - epoch older than the promise → 409 `stale` (the sender is no longer leader);
    /// - our record at `prev` missing → 409 `gap` with our `last` (resend from `last + 1`);
    /// - our record at `prev` has another epoch → our tail from there was never committed (the
    ///   leader's log holds every committed entry): cut it, 409 `mismatch` with the new `last`;
    /// - otherwise records we already hold are skipped, a differing one and everything after it
    ///   is replaced, the rest appended — one write, one fsync — and we answer our `last`.
    pub(crate) async fn replicate_order(&self, req: &Request) -> Reply {
        let msg: Replicate = match req.json() {
            Ok(m) => m,
            Err(r) => return r,
        };
        let start = msg.prev.map(|p| p.index + 1).unwrap_or(0);
        if msg.records.iter().enumerate().any(|(i, e)| e.index != start + i as u64 || !e.is_valid()) {
            return Reply::bad_request("records must be valid and indexed contiguously after prev");
        }
        let me = self.cfg.id;
        let done = self
            .on_disk(|disk, state| {
                let check = ReplicateCheck {
                    me,
                    promised: disk.promised,
                    own_epoch: state.own_epoch(),
                    sender: msg.leader,
                    epoch: msg.epoch,
                    prev: msg.prev,
                    ours_at_prev: msg.prev.and_then(|p| disk.log.anchor_at(p.index as i64)),
                };
                let ReplicateDecision::Accept { promise, step } = decide_replicate(check) else {
                    let text = format!("epoch {} is stale; replica {me} promised {}", msg.epoch, disk.promised);
                    return refused(Refusal::Stale, &text, disk.status());
                };
                if promise {
                    if let Err(e) = disk.promise(msg.epoch) {
                        return internal(e);
                    }
                    state.observe_promise(msg.epoch);
                }
                state.follow(msg.leader, msg.epoch);
                match step {
                    LogStep::Gap => refused(Refusal::Gap, "missing entries before this batch", disk.status()),
                    LogStep::CutFrom(n) => match disk.log.truncate_from(n) {
                        Ok(()) => refused(Refusal::Mismatch, "divergent tail cut", disk.status()),
                        Err(e) => internal(e),
                    },
                    LogStep::Merge => match disk.log.merge(&msg.records) {
                        Ok(Merge::Applied) => Reply::ok(disk.status()),
                        Ok(Merge::Gap) => refused(Refusal::Gap, "missing entries before this batch", disk.status()),
                        Err(e) => internal(e),
                    },
                }
            })
            .await;
        done.unwrap_or_else(|r| r)
    }

    /// `POST /inform_replica {leader, epoch}`: who leads now (memory only). A replica that
    /// thought it led an older epoch steps down.
    pub(crate) fn inform_replica(&self, req: &Request) -> Reply {
        let claim: Claim = match req.json() {
            Ok(c) => c,
            Err(r) => return r,
        };
        let mut s = self.state.borrow_mut();
        s.inform(claim.leader, claim.epoch);
        let (leader, epoch) = s.leader();
        Reply::ok(json!({ "leader": leader, "epoch": epoch }))
    }

    /// `GET /get_last_order_number` → `{last, last_epoch, epoch, last_order}`: `last` is the
    /// index of the last record (what the protocol compares), `last_order` the number of the
    /// last order in the local log (-1: none), which the route's name promises.
    pub(crate) async fn last_order_number(&self) -> Reply {
        self.on_disk(|disk, _| {
            let mut v = serde_json::to_value(disk.status()).unwrap_or_default();
            v["last_order"] = json!(disk.log.next_number() as i64 - 1);
            Reply::ok(v)
        })
        .await
        .unwrap_or_else(|r| r)
    }

    /// `GET /get_missed_orders/<i>`: records after index `i` (a page of at most [`PAGE`]), the
    /// anchor of our record `i` so the reader can check it agrees with us up to there, and our
    /// status.
    pub(crate) async fn missed_orders(&self, n: &str) -> Reply {
        let Ok(after) = n.parse::<i64>() else { return Reply::bad_request(format!("not a record index: {n:?}")) };
        if after < -1 {
            return Reply::bad_request("record index must be -1 or more");
        }
        self.on_disk(|disk, _| {
            let records = disk.log.after(after, PAGE);
            let more = records.last().is_some_and(|e| (e.index as i64) < disk.log.last());
            let st = disk.status();
            Reply::ok(Page { records, more, prev: disk.log.anchor_at(after), last: st.last, last_epoch: st.last_epoch, epoch: st.epoch })
        })
        .await
        .unwrap_or_else(|r| r)
    }
}
