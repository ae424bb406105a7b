//! Catching up from a peer: at start-up (before `/ping` turns healthy), on `/tick` when a
//! follower finds a peer ahead of it, and when a new leader adopts the most up-to-date log
//! among the peers it fenced.
//!
//! "Ahead" is Raft's order on logs ([`Position`]): the higher epoch of the last entry wins,
//! then the longer log. A log ahead of ours holds every committed entry that ours holds, so
//! where the two differ ours is an uncommitted tail and may be replaced. Taking a peer's log:
//! find the last entry on which both agree (ask for the entries after our last and compare the
//! anchor the peer sends back; on disagreement back off exponentially), then merge page by page
//! (each page one write and one fsync, so 2 000 missed records cost one fsync), asking for
//! the next page while one is written.

use std::future::Future;
use std::pin::Pin;

use futures::future::{join_all, maybe_done, LocalBoxFuture, MaybeDone};
use futures::FutureExt;
use http::Method;
use toystore_guest::{time, CallError, Net, NetResponse};

use crate::log::{Merge, Position};
use crate::protocol::{Page, Status};
use crate::replica::most_up_to_date;
use crate::config::Peer;
use crate::node::Service;

const MAX_STEPS: usize = 10_000;

/// How one page application went.
enum Step {
    Continue,
    Done,
    Retry,
}

impl<N: Net + 'static> Service<N> {
    /// Every peer's status (None for those that did not answer), asked in parallel.
    pub(crate) async fn peer_statuses(&self) -> Vec<(Peer, Option<Status>)> {
        let peers = self.cfg.peers();
        let calls = peers.iter().map(|p| {
            let url = format!("{}/get_last_order_number", p.url);
            async move {
                let r = self.net.call(Method::GET, &url, None, self.cfg.timeout).await;
                r.ok().filter(|r| r.is_success()).and_then(|r| r.data::<Status>().ok())
            }
        });
        let answers = join_all(calls).await;
        let mut s = self.state.borrow_mut();
        for st in answers.iter().flatten() {
            s.hear_epoch(st.epoch);
        }
        peers.into_iter().zip(answers).collect()
    }

    /// Start-up resync: load (already done), ask the peers where they stand, take the missing
    /// entries from the most advanced one, then report healthy. With no peer reachable, what is
    /// on disk is all there is. On failure midway the next `/tick` or `/ping` tries again.
    ///
    /// Concurrent callers (the host's first `/tick` and the frontend's first `/ping` arrive
    /// together) queue on one async lock, so a ping waits for the resync already under way
    /// instead of answering 503 while it runs.
    pub(crate) async fn resync(&self) {
        let _one_at_a_time = self.sync_lock.lock().await;
        if self.state.borrow().synced() {
            return;
        }
        if self.catch_up().await {
            self.state.borrow_mut().mark_synced();
        }
    }

    /// `/tick` on a synced follower: catch up if a peer is ahead (skipped if a catch-up is
    /// already running).
    pub(crate) async fn follower_tick(&self) {
        if let Ok(_one_at_a_time) = self.sync_lock.try_lock() {
            self.catch_up().await;
        }
    }

    /// If a reachable peer is ahead of us, take its log. True when we are as far as any
    /// reachable peer (or none answered).
    pub(crate) async fn catch_up(&self) -> bool {
        let statuses = self.peer_statuses().await;
        let answered = statuses.iter().filter_map(|(p, st)| st.map(|st| (p.id, st.position())));
        let best = most_up_to_date(self.position(), answered);
        match best.and_then(|(id, _)| statuses.iter().find(|(p, _)| p.id == id)) {
            Some((peer, _)) => self.sync_from(peer, false).await.is_ok(),
            None => true,
        }
    }

    /// Make our log equal to `peer`'s (which is ahead of ours). `as_candidate` lets a
    /// candidate do this; otherwise only a follower may have its log replaced.
    ///
    /// While a page is written, the next one is already asked for: the peer reads and encodes
    /// it on its own thread meanwhile, so a long catch-up costs about one side's work per page
    /// instead of both sides' in turn. A prefetched page is used only if it starts where the
    /// written one ended; otherwise it is dropped and the right one asked for.
    pub(crate) async fn sync_from(&self, peer: &Peer, as_candidate: bool) -> Result<(), String> {
        let mut from = self.position().last;
        let mut back = 1i64;
        let mut prefetched: Option<(i64, Prefetch<'_>)> = None;
        for _ in 0..MAX_STEPS {
            let resp = match prefetched.take() {
                Some((after, mut next)) if after == from => {
                    next.as_mut().await;
                    next.as_mut().take_output().ok_or("prefetched page lost")?
                }
                _ => self.page_after(peer, from).await,
            };
            let resp = resp.map_err(|e| e.to_string())?;
            if !resp.is_success() {
                return Err(format!("replica {} answered {}: {}", peer.id, resp.status, resp.error_message()));
            }
            let page: Page = resp.data().map_err(|e| e.to_string())?;
            let ours = self.read_log(|log| log.anchor_at(from)).flatten();
            if from >= 0 && page.prev != ours {
                // We disagree at `from` (or the peer's log is shorter): step back.
                from = if page.prev.is_none() { from.min(page.last) } else { (from - back).max(-1) };
                back = back.saturating_mul(2);
                continue;
            }
            if let Some(last) = page.records.last().filter(|_| page.more) {
                let mut next = Box::pin(maybe_done(self.page_after(peer, last.index as i64).boxed_local()));
                // Start the call (the request leaves at the next turn of the host's loop).
                let _ = futures::poll!(next.as_mut());
                time::yield_now().await;
                prefetched = Some((last.index as i64, next));
            }
            let peer_pos = Position { last_epoch: page.last_epoch, last: page.last };
            let step = self
                .on_disk(|disk, state| {
                    if !state.may_adopt(as_candidate, page.epoch, page.last_epoch) || peer_pos <= disk.log.position() {
                        return Ok(Step::Done);
                    }
                    if from >= 0 && disk.log.anchor_at(from) != page.prev {
                        return Ok(Step::Retry); // our log changed meanwhile
                    }
                    match disk.log.merge(&page.records) {
                        Ok(Merge::Applied) => Ok(Step::Continue),
                        Ok(Merge::Gap) => Ok(Step::Retry),
                        Err(e) => Err(e.to_string()),
                    }
                })
                .await
                .map_err(|r| r.error_message().unwrap_or("log unavailable").to_string())??;
            match step {
                Step::Done => return Ok(()),
                Step::Retry => from = self.position().last,
                Step::Continue => match page.records.last() {
                    Some(last) if page.more => from = last.index as i64,
                    _ => return Ok(()),
                },
            }
        }
        Err(format!("gave up syncing from replica {}", peer.id))
    }

    /// `GET /get_missed_orders/<after>` on `peer`.
    fn page_after<'a>(&'a self, peer: &Peer, after: i64) -> impl Future<Output = Result<NetResponse, CallError>> + 'a {
        let url = format!("{}/get_missed_orders/{after}", peer.url);
        async move { self.net.call(Method::GET, &url, None, self.cfg.timeout).await }
    }
}

/// A page asked for ahead of time (see [`Service::sync_from`]).
type Prefetch<'a> = Pin<Box<MaybeDone<LocalBoxFuture<'a, Result<NetResponse, CallError>>>>>;
