//! Getting the leader's records onto a majority: per-follower replicators and the wait for the
//! commit index (ARCHITECTURE.md, "Order path" and "Replication protocol").
//!
//! Each follower has at most one **replicator** at a time: a loop that sends it everything in
//! the leader's log it has not verifiably accepted, one `/replicate_order` in flight, a batch
//! per round trip, until it has caught up with the log's end. Every acceptance records the
//! follower's *verified* match index (the end of the batch it accepted) and advances the
//! commit index to the highest record on a majority ([`crate::replica::majority_index`]).
//! Nothing waits for a particular follower: an order waits for the commit index to pass its
//! record, and the fastest follower gets it there. A paused, slow or far-behind follower keeps
//! its own replicator busy (until its call times out and it is skipped as a suspect for a
//! while) and holds no order.
//!
//! Replicators run inside the order requests that started them (a guest has no threads of its
//! own). A request that got its answer while a replicator it started is still running hands
//! the replicator over ([`Deferred`]) to [`Service::after_reply`], which keeps driving it after
//! the response has gone out, in the same component-model task: the hand-over happens as the
//! request's handler returns, with no await between it and the export asking for the work.
//!
//! An order gives up — 503, and the leader stops numbering until it renews with a new epoch,
//! exactly as before — only when no replicator is running and every follower has been tried
//! once for it (suspects last) without the commit index reaching its record. The record stays
//! either way: the renewal commits it, or a newer leader that never saw it cuts it.

use std::collections::HashSet;
use std::rc::Rc;

use futures::future::{select, LocalBoxFuture};
use futures::stream::{FuturesUnordered, StreamExt};
use toystore_guest::time::now_millis;
use toystore_guest::{AfterReply, Net, Reply};

use crate::config::Peer;
use crate::node::Service;
use crate::replica::PeerResult;
use crate::replicators::Deferred;

/// Marks follower `id`'s replicator as running for as long as it lives.
struct Running<N: Net + 'static> {
    service: Rc<Service<N>>,
    id: u32,
}

impl<N: Net + 'static> Drop for Running<N> {
    fn drop(&mut self) {
        self.service.replicators.running.borrow_mut().remove(&self.id);
        self.service.replicators.progressed();
    }
}

impl<N: Net + 'static> Service<N> {
    /// Wake everyone waiting on replication progress.
    pub(crate) fn progressed(&self) {
        self.replicators.progressed();
    }

    /// The replicator for `peer` in `epoch`, unless one is running already.
    fn replicator(self: &Rc<Self>, peer: Peer, epoch: u64) -> Option<LocalBoxFuture<'static, ()>> {
        if !self.replicators.running.borrow_mut().insert(peer.id) {
            return None;
        }
        let running = Running { service: Rc::clone(self), id: peer.id };
        Some(Box::pin(async move {
            let service = Rc::clone(&running.service);
            service.replicate_to(&peer, epoch).await;
            drop(running);
        }))
    }

    /// Send `peer` what it lacks until it has caught up with our log, while we lead `epoch`.
    async fn replicate_to(&self, peer: &Peer, epoch: u64) {
        loop {
            let last = self.position().last;
            {
                let s = self.state.borrow();
                if s.ready_epoch() != Some(epoch) || s.matched(peer.id) >= last {
                    return;
                }
            }
            match self.push(peer, epoch, last as u64).await {
                PeerResult::Acked => {}
                PeerResult::Stale(newer) => {
                    self.state.borrow_mut().observe_promise(newer);
                    self.progressed();
                    return;
                }
                PeerResult::Without | PeerResult::Unknown => return,
            }
        }
    }

    /// Wait until record `index` (ours, as ready leader of `epoch`) is on a majority. Err: 503,
    /// the order's fate is unknown to the client (it keeps its key for a retry).
    pub(crate) async fn await_commit(self: &Rc<Self>, epoch: u64, index: u64, deferred: &Deferred) -> Result<(), Reply> {
        let mut progress = self.replicators.progress.subscribe();
        let mut mine: FuturesUnordered<LocalBoxFuture<'static, ()>> = FuturesUnordered::new();
        let mut tried: HashSet<u32> = HashSet::new();
        // Every follower without a replicator gets one now, even if another follower's already
        // carried our record to a majority: otherwise the slower follower would only ever be
        // sent records when an order found its own still uncommitted, and could trail forever.
        self.start_replicators(epoch, &mut tried, &mut mine);
        let result = loop {
            progress.borrow_and_update();
            {
                let s = self.state.borrow();
                if s.ready_epoch() != Some(epoch) {
                    break Err(Reply::unavailable(
                        "the leader changed while the order was replicating; retry with the same key",
                    ));
                }
                if s.committed(index) {
                    break Ok(());
                }
            }
            if !self.start_replicators(epoch, &mut tried, &mut mine) {
                self.state.borrow_mut().lose_readiness(epoch);
                self.progressed();
                break Err(Reply::unavailable(
                    "the order could not be confirmed on a majority of replicas; retry with the same key",
                ));
            }
            if mine.is_empty() {
                let _ = progress.changed().await;
            } else {
                // Either one of ours finished, or anyone's progress moved the commit index.
                let _ = select(mine.next(), Box::pin(progress.changed())).await;
            }
        };
        if !mine.is_empty() {
            deferred.borrow_mut().push(Box::pin(async move { while mine.next().await.is_some() {} }));
        }
        result
    }

    /// Start replicators for the followers that have none, each at most once per order:
    /// suspects only when nothing else is running. False when there is nothing left to try and
    /// nothing running — no replicator and no fsync of our own — so the commit index cannot
    /// move for this order.
    fn start_replicators(
        self: &Rc<Self>,
        epoch: u64,
        tried: &mut HashSet<u32>,
        mine: &mut FuturesUnordered<LocalBoxFuture<'static, ()>>,
    ) -> bool {
        let now = now_millis();
        let peers = self.cfg.peers();
        let untried = |suspects: bool| -> Vec<Peer> {
            let s = self.state.borrow();
            let running = self.replicators.running.borrow();
            peers
                .iter()
                .filter(|p| !tried.contains(&p.id) && !running.contains(&p.id) && s.suspect(p.id, now) == suspects)
                .cloned()
                .collect()
        };
        let mut start = untried(false);
        if start.is_empty() && self.replicators.running.borrow().is_empty() && !self.replicators.syncing.get() {
            start = untried(true);
        }
        for p in start {
            tried.insert(p.id);
            if let Some(r) = self.replicator(p, epoch) {
                mine.push(r);
            }
        }
        !self.replicators.running.borrow().is_empty() || self.replicators.syncing.get()
    }

    /// The request whose handler is returning leaves `deferred` for [`Self::after_reply`].
    pub(crate) fn defer(&self, deferred: Deferred) {
        self.replicators.leftover.borrow_mut().extend(deferred.into_inner());
    }

    /// What the export asks once a reply is ready: keep driving the replicators that request
    /// started (see the module docs).
    pub fn after_reply(self: Rc<Self>) -> Option<AfterReply> {
        let leftover = std::mem::take(&mut *self.replicators.leftover.borrow_mut());
        if leftover.is_empty() {
            return None;
        }
        Some(Box::pin(async move {
            futures::future::join_all(leftover).await;
        }))
    }
}
