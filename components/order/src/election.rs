//! Becoming leader (ARCHITECTURE.md §2).
//!
//! 1. Pick an epoch above every epoch heard of and promise it to ourselves (durably).
//! 2. `/fence` every peer with it; a majority (us included) must promise it. From then on no
//!    older leader can get anything onto a majority: every majority contains a replica that
//!    refuses its epoch.
//! 3. Adopt the most up-to-date log among the fenced replicas (Raft's order: epoch of the last
//!    record, then length). It holds every committed order, because every committed order is on
//!    a majority and that majority overlaps ours.
//! 4. Append one **epoch record** of the new epoch (one append, one fsync; it takes no order
//!    number) and replicate the log up to it to a majority. Only then is the whole log
//!    committed and do we take orders. This is Raft's "no-op entry at the start of a term":
//!    without a current-epoch record on a majority, old-epoch records copied to a majority can
//!    still be overwritten by a replica holding a later-epoch tail (Raft paper, figure 8), and
//!    an order acknowledged on a retry would be lost. Nothing is rewritten: the old
//!    "truncate the last entry, re-append it re-stamped" took two writes, and a crash between
//!    them could lose a committed order.

use futures::future::join_all;
use http::Method;
use serde_json::json;
use toystore_guest::{Net, Reply};

use crate::log::Record;
use crate::protocol::{refusal, Claim, Refusal, Status};
use crate::replica::{most_up_to_date, tally_fence, FenceTally};
use crate::config::Peer;
use crate::node::{internal, Service};

impl<N: Net + 'static> Service<N> {
    /// `POST /leaderselection`.
    pub(crate) async fn leader_selection(&self) -> Reply {
        let _order_lock = self.order_lock.lock().await;
        let epoch = match self.state.borrow().ready_epoch() {
            Some(e) => Ok(e),
            None => Err(()),
        };
        let epoch = match epoch {
            Ok(e) => e,
            Err(()) => match self.become_leader().await {
                Ok(e) => e,
                Err(r) => return r,
            },
        };
        Reply::ok(json!({ "leader": self.cfg.id, "epoch": epoch }))
    }

    /// Become (or, after a failed replication, renew as) leader. Caller holds the order lock.
    pub(crate) async fn become_leader(&self) -> Result<u64, Reply> {
        let was_leader = self.state.borrow().is_leader();
        // If this future is dropped midway (the caller went away), do not stay a candidate.
        let _abandoned = NotCandidate(self);
        let result = self.try_become_leader().await;
        match &result {
            Ok(e) => eprintln!("order: replica {} leads epoch {e}", self.cfg.id),
            Err(_) => self.state.borrow_mut().lose_election(was_leader),
        }
        result
    }

    async fn try_become_leader(&self) -> Result<u64, Reply> {
        let majority = self.cfg.majority();
        let mut floor = 0;
        for _ in 0..3 {
            // 1. A fresh epoch, promised to ourselves first.
            let epoch = self
                .on_disk(|disk, state| {
                    let e = state.candidacy_epoch(disk.promised, floor);
                    disk.promise(e).map_err(internal)?;
                    state.start_candidacy(e);
                    Ok::<u64, Reply>(e)
                })
                .await??;

            // 2. Fence the peers.
            let peers = self.cfg.peers();
            let answers = join_all(peers.iter().map(|p| self.fence_peer(p, epoch))).await;
            match tally_fence(&answers, majority) {
                FenceTally::Fenced => {}
                FenceTally::Newer(e) => {
                    // Someone promised a newer epoch: it would refuse us later. Start again
                    // above it (the peers we did fence simply promise once more).
                    floor = e;
                    continue;
                }
                FenceTally::NoMajority { promised } => {
                    return Err(Reply::unavailable(format!(
                        "no majority: {promised} of {} replicas accepted epoch {epoch}",
                        peers.len() + 1
                    )));
                }
            }
            let fenced: Vec<(Peer, Status)> =
                peers.into_iter().zip(answers).filter_map(|(p, a)| a.ok().map(|st| (p, st))).collect();

            // 3. Adopt the most up-to-date log among the fenced.
            let best = most_up_to_date(self.position(), fenced.iter().map(|(p, st)| (p.id, st.position())));
            if let Some((id, pos)) = best {
                let peer = fenced.iter().map(|(p, _)| p).find(|p| p.id == id).cloned();
                if let Some(peer) = peer {
                    self.sync_from(&peer, true)
                        .await
                        .map_err(|e| Reply::unavailable(format!("catching up from replica {}: {e}", peer.id)))?;
                    if self.position() < pos {
                        return Err(Reply::unavailable(format!("could not catch up from replica {}", peer.id)));
                    }
                }
            }

            // 4. Append our epoch record, then get the log up to it onto a majority.
            let last = self
                .on_disk(|disk, state| {
                    let peer_last = fenced.iter().map(|(p, st)| (p.id, st.last)).collect();
                    if disk.promised != epoch || !state.become_leader(epoch, peer_last) {
                        return Err(Reply::unavailable(format!("epoch {epoch} was superseded during the election")));
                    }
                    let index = (disk.log.last() + 1) as u64;
                    disk.log.append(&[Record::epoch_record(index, epoch)]).map_err(internal)?;
                    Ok(index)
                })
                .await??;
            let out = self.replicate(epoch, last).await;
            self.state.borrow_mut().replicated(epoch, last, &out);
            if !out.committed() {
                return Err(Reply::unavailable(format!("could not replicate the log to a majority in epoch {epoch}")));
            }
            if !self.state.borrow_mut().become_ready(epoch, last as i64) {
                return Err(Reply::unavailable(format!("epoch {epoch} was superseded during the election")));
            }
            return Ok(epoch);
        }
        Err(Reply::unavailable("no majority: newer epochs kept appearing"))
    }

    /// Fence one peer: Ok(its status), Err(Some(newer epoch it promised)), Err(None) no answer.
    async fn fence_peer(&self, peer: &Peer, epoch: u64) -> Result<Status, Option<u64>> {
        let body = serde_json::to_value(Claim { leader: self.cfg.id, epoch }).unwrap_or_default();
        let url = format!("{}/fence", peer.url);
        match self.net.call(Method::POST, &url, Some(body), self.cfg.timeout).await {
            Ok(r) if r.is_success() => r.data::<Status>().map_err(|_| None),
            Ok(r) => match refusal(&r) {
                Some((Refusal::Stale, st)) => Err(Some(st.epoch)),
                _ => Err(None),
            },
            Err(_) => Err(None),
        }
    }

    /// The leader has this epoch ready, renewing it (new epoch, same procedure) if a failed
    /// replication left it not ready. Caller holds the order lock.
    pub(crate) async fn ready_or_renew(&self) -> Result<u64, Reply> {
        let (ready, leader) = {
            let s = self.state.borrow();
            (s.ready_epoch(), s.is_leader())
        };
        match ready {
            Some(epoch) => Ok(epoch),
            None if leader => self.become_leader().await,
            None => Err(self.not_leader()),
        }
    }

    pub(crate) fn not_leader(&self) -> Reply {
        let s = self.state.borrow();
        crate::protocol::not_leader(s.other_leader(), s.leader().1)
    }
}

/// Turns a candidate that was abandoned mid-election back into a follower.
struct NotCandidate<'a, N: Net + 'static>(&'a Service<N>);

impl<N: Net + 'static> Drop for NotCandidate<'_, N> {
    fn drop(&mut self) {
        if let Ok(mut s) = self.0.state.try_borrow_mut() {
            s.abandon_candidacy();
        }
    }
}
