//! The leader's side of replication with one follower ([`Service::push`]): bring it up to record
//! `upto`. Orders use it through the per-follower replicators of `commit.rs`; an election uses
//! [`Service::replicate`], which pushes to every follower and tallies who has its epoch record.
//!
//! For each follower the leader sends the entries after the last one it believes the follower
//! has, with the anchor of the entry before them. A follower that is behind answers `gap`, one
//! whose tail diverges cuts it and answers `mismatch`; either way it reports its `last` and the
//! leader resends from there (batches of at most [`BATCH`] entries). An acceptance proves the
//! follower's log equal to ours only through the end of the batch it accepted (its *match
//! index*, recorded by `note_match`); its `last` proves nothing more.
//!
//! Each follower's final answer is one of: has `upto` (ack), certainly does not have it
//! (our own 409, or the connection was refused — the request never arrived), or *might* have
//! it (timeout, connection lost mid-request, any other error). A record that does not reach a
//! majority stays: it is committed by the leader's renewal or cut by a newer leader, never taken
//! back by hand. The election's tally ([`Outcome`]), the commit rule and the leader's
//! per-follower progress are in `replica.rs`.

use futures::future::join_all;
use http::Method;
use toystore_guest::time::now_millis;
use toystore_guest::{CallError, Net};

use crate::protocol::{refusal, Refusal, Replicate, Status, BATCH};
use crate::replica::{push_step, Outcome, PeerAnswer, PeerResult, PushStep};
use crate::config::Peer;
use crate::node::Service;

/// Round trips spent on one follower for one call (gap and mismatch resends).
const MAX_ROUNDS: usize = 64;
/// Rough upper bound of a batch's JSON size (the follower accepts bodies up to 1 MiB).
const BATCH_BYTES: usize = 600_000;

/// Did this error certainly happen before the request reached the peer? (A refused
/// connection, see [`CallError::never_delivered`].)
pub fn never_delivered(err: &CallError) -> bool {
    err.never_delivered()
}

impl<N: Net + 'static> Service<N> {
    /// Replicate the log up to `upto` (as leader of `epoch`) to every follower and tally the
    /// answers: what an election does with its epoch record.
    ///
    /// Followers marked suspect are contacted only if the others cannot make a majority, so a
    /// hung follower costs one timeout per [`crate::replica::SUSPECT_MS`], not one per order; a skipped
    /// follower certainly lacks `upto` and catches up later through gap resends or its own tick.
    pub(crate) async fn replicate(&self, epoch: u64, upto: u64) -> Outcome {
        let mut out = Outcome::new(self.cfg.majority());
        let now = now_millis();
        let (fresh, suspect): (Vec<Peer>, Vec<Peer>) = {
            let s = self.state.borrow();
            self.cfg.peers().into_iter().partition(|p| !s.suspect(p.id, now))
        };
        for r in join_all(fresh.iter().map(|p| self.push(p, epoch, upto))).await {
            out.add(r);
        }
        if out.needs_suspects() && !suspect.is_empty() {
            for r in join_all(suspect.iter().map(|p| self.push(p, epoch, upto))).await {
                out.add(r);
            }
        }
        out
    }

    /// Bring one follower up to `upto`.
    pub(crate) async fn push(&self, peer: &Peer, epoch: u64, upto: u64) -> PeerResult {
        let url = format!("{}/replicate_order", peer.url);
        let known = self.state.borrow().peer_last(peer.id);
        let mut next = known.map(|l| l + 1).unwrap_or(upto as i64).clamp(0, upto as i64) as u64;
        for _ in 0..MAX_ROUNDS {
            let Some(msg) = self.batch(epoch, next, upto) else { return PeerResult::Without };
            let carries_upto = msg.records.last().is_some_and(|e| e.index == upto);
            // What an acceptance proves: the follower's log equals ours through the batch's end.
            let batch_end = msg.records.last().map(|e| e.index as i64).or(msg.prev.map(|p| p.index as i64)).unwrap_or(-1);
            let body = serde_json::to_value(&msg).unwrap_or_default();
            let reply = self.net.call(Method::POST, &url, Some(body), self.cfg.timeout).await;
            let answer = match reply {
                Ok(resp) if resp.is_success() => match resp.data::<Status>() {
                    Ok(st) => PeerAnswer::Applied { matched: batch_end, last: st.last },
                    Err(_) => PeerAnswer::NoAnswer,
                },
                Ok(resp) => match refusal(&resp) {
                    Some((Refusal::Stale, st)) => PeerAnswer::Stale { epoch: st.epoch },
                    Some((_, st)) => PeerAnswer::Behind { last: st.last },
                    None if (400..500).contains(&resp.status) => PeerAnswer::Rejected,
                    None => PeerAnswer::NoAnswer,
                },
                Err(e) if never_delivered(&e) => PeerAnswer::NeverDelivered,
                Err(e) => {
                    if matches!(e, CallError::Timeout(_)) {
                        self.note_peer(peer.id, -1, true);
                    }
                    PeerAnswer::NoAnswer
                }
            };
            match answer {
                PeerAnswer::Applied { matched, last } => self.note_match(epoch, peer.id, matched, last),
                PeerAnswer::Behind { last } => self.note_peer(peer.id, last, false),
                _ => {}
            }
            match push_step(answer, upto, carries_upto) {
                PushStep::Finish(result) => return result,
                PushStep::ResendFrom(n) => next = n,
            }
        }
        PeerResult::Without
    }

    /// Records `next..=upto` (capped) with the anchor of record `next - 1`.
    fn batch(&self, epoch: u64, next: u64, upto: u64) -> Option<Replicate> {
        self.read_log(|log| {
            if log.last() < upto as i64 {
                return None; // our own log changed under us (a newer leader cut it)
            }
            let prev = if next == 0 { None } else { Some(log.get(next - 1)?.anchor()) };
            let mut records = Vec::new();
            let mut bytes = 0;
            for e in log.after(next as i64 - 1, ((upto - next + 1) as usize).min(BATCH)) {
                bytes += e.order.as_ref().map_or(0, |o| 2 * (o.name.len() + o.key.len() + o.price.len())) + 120;
                if !records.is_empty() && (records.len() >= BATCH || bytes > BATCH_BYTES) {
                    break;
                }
                records.push(e);
            }
            Some(Replicate { leader: self.cfg.id, epoch, prev, records })
        })
        .flatten()
    }

    /// Follower `id` accepted a batch ending at `matched`: count it towards the commit index and
    /// wake whoever waits on replication progress.
    fn note_match(&self, epoch: u64, id: u32, matched: i64, last: i64) {
        let own_last = self.own_durable();
        self.state.borrow_mut().note_match(epoch, id, matched, last, own_last, self.cfg.majority());
        self.progressed();
    }

    fn note_peer(&self, id: u32, last: i64, timed_out: bool) {
        let mut s = self.state.borrow_mut();
        if timed_out {
            s.note_peer_timeout(id, now_millis());
        } else {
            s.note_peer_ack(id, last);
        }
        drop(s);
        self.progressed();
    }
}
