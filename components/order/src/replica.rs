//! The replica's protocol state and every decision the protocol takes, as plain Rust with no
//! I/O: the place to start reading the order service.
//!
//! The async files (`follower`, `election`, `replication`, `order`, `sync`) are thin drivers in
//! the shape of raft-rs's `RawNode::ready` or openraft's engine: they gather plain values (the
//! promised epoch, the log's anchors and position, a peer's message), ask this module what to
//! do, perform the file and network I/O it names, and report back through a named transition.
//! Nothing else writes the state, so every change of role can be read here, top to bottom, and
//! every decision is covered by the table tests at the bottom of this file.
//!
//! [`Role`] carries the leader-only data inside its `Leader` variant, so a follower or a
//! candidate cannot have a commit index, per-follower progress or suspects.

use std::collections::HashMap;

use crate::log::{Anchor, Position};

/// How long a follower that timed out is skipped (while a majority is reachable without it).
pub const SUSPECT_MS: u64 = 1_000;

/// What this replica is doing in the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Follower,
    /// Fencing peers for this epoch; takes no orders and appends nothing yet.
    Candidate(u64),
    /// Leads an epoch (see [`Leadership`]).
    Leader(Leadership),
}

/// The data only a leader has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leadership {
    pub epoch: u64,
    /// Numbers orders only when `ready`: its whole log is on a majority and it has not since
    /// failed to replicate (after a failure it must renew with a new epoch).
    pub ready: bool,
    /// Every record up to this index is on a majority.
    pub commit: i64,
    /// Each follower's last record index as it last reported it: where the next batch for it
    /// starts (a hint; the follower's anchor check corrects it).
    peer_last: HashMap<u32, i64>,
    /// Each follower's *verified* match index in this epoch: the end of a batch it accepted,
    /// whose anchor check proved its log equal to ours up to there. Only this counts for
    /// commitment — a follower's `last` may include an older epoch's tail beyond the batch.
    matched: HashMap<u32, i64>,
    /// Followers that timed out recently, skipped while a majority is reachable without them
    /// (so a hung follower does not cost a timeout per order): id → until (ms).
    suspect_until: HashMap<u32, u64>,
}

impl Leadership {
    fn new(epoch: u64, peer_last: HashMap<u32, i64>) -> Leadership {
        Leadership { epoch, ready: false, commit: -1, peer_last, matched: HashMap::new(), suspect_until: HashMap::new() }
    }
}

impl Role {
    /// The role as `/ping` reports it.
    pub fn ping_role(&self) -> toystore_api::ReplicaRole {
        use toystore_api::ReplicaRole;
        match self {
            Role::Follower => ReplicaRole::Follower,
            Role::Candidate(_) => ReplicaRole::Candidate,
            Role::Leader(l) if l.ready => ReplicaRole::Leader,
            Role::Leader(_) => ReplicaRole::Renewing,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Role::Follower => "follower",
            Role::Candidate(_) => "candidate",
            Role::Leader(l) if l.ready => "leader",
            Role::Leader(_) => "leader (renewing)",
        }
    }
}

/// The replica's memory: rebuilt from the files and the peers after a restart. Read through
/// the accessors, changed only through the named transitions.
#[derive(Debug)]
pub struct Replica {
    me: u32,
    role: Role,
    /// The leader this replica believes in, and its epoch (for `/ping` and 409s).
    leader: Option<u32>,
    leader_epoch: u64,
    /// The promised epoch as last read from the `epoch` file.
    promised: u64,
    /// Highest epoch heard of from anyone (a new candidacy goes above it).
    seen_epoch: u64,
    /// Start-up resync done: `/ping` answers 200.
    synced: bool,
    /// The commit index of the leadership a renewal started from (-1: none), so a renewal that
    /// fails still knows which entries are committed (reads of them keep working).
    renewed_commit: i64,
}

impl Replica {
    pub fn new(me: u32) -> Replica {
        Replica {
            me,
            role: Role::Follower,
            leader: None,
            leader_epoch: 0,
            promised: 0,
            seen_epoch: 0,
            synced: false,
            renewed_commit: -1,
        }
    }

    // ---- reading ----

    pub fn role(&self) -> &Role {
        &self.role
    }

    pub fn synced(&self) -> bool {
        self.synced
    }

    pub fn promised(&self) -> u64 {
        self.promised
    }

    pub fn seen_epoch(&self) -> u64 {
        self.seen_epoch
    }

    pub fn leader(&self) -> (Option<u32>, u64) {
        (self.leader, self.leader_epoch)
    }

    pub fn is_follower(&self) -> bool {
        self.role == Role::Follower
    }

    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader(_))
    }

    /// The epoch this replica may number orders in right now.
    pub fn ready_epoch(&self) -> Option<u64> {
        match &self.role {
            Role::Leader(l) if l.ready => Some(l.epoch),
            _ => None,
        }
    }

    /// Is the record at `index` known to be on a majority (so its order may be acknowledged)?
    pub fn committed(&self, index: u64) -> bool {
        matches!(&self.role, Role::Leader(l) if l.ready && (index as i64) <= l.commit)
    }

    /// The commit index of the leadership this replica holds (ready or renewing), if any: what
    /// may be pushed to the catalog.
    pub fn commit_index(&self) -> Option<i64> {
        match &self.role {
            Role::Leader(l) => Some(l.commit),
            _ => None,
        }
    }

    /// What `GET /orders/<n>` needs to know: the leadership this replica holds, if any.
    pub fn read_view(&self) -> Option<ReadView> {
        match &self.role {
            Role::Leader(l) => Some(ReadView { epoch: l.epoch, ready: l.ready, commit: l.commit }),
            _ => None,
        }
    }

    /// The epoch this replica itself claims (as candidate or leader), if any.
    pub fn own_epoch(&self) -> Option<u64> {
        match &self.role {
            Role::Candidate(e) | Role::Leader(Leadership { epoch: e, .. }) => Some(*e),
            Role::Follower => None,
        }
    }

    /// `/ping`'s leader: never ourselves unless we lead (a stepped-down leader must look like one).
    pub fn named_leader(&self) -> Option<u32> {
        self.leader.filter(|&l| l != self.me || self.is_leader())
    }

    /// The leader a 409 "not leader" points to (never ourselves).
    pub fn other_leader(&self) -> Option<u32> {
        self.leader.filter(|&l| l != self.me)
    }

    /// Where the leader believes follower `id`'s log ends (None: unknown).
    pub fn peer_last(&self, id: u32) -> Option<i64> {
        match &self.role {
            Role::Leader(l) => l.peer_last.get(&id).copied(),
            _ => None,
        }
    }

    /// Is follower `id` to be skipped at time `now` (while the others can make a majority)?
    pub fn suspect(&self, id: u32, now: u64) -> bool {
        match &self.role {
            Role::Leader(l) => l.suspect_until.get(&id).is_some_and(|&t| t > now),
            _ => false,
        }
    }

    /// May a log catch-up replace our entries? A follower's by its own catch-up, a candidate's
    /// by the adoption step of its election; never a leader's.
    pub fn may_take_log(&self, as_candidate: bool) -> bool {
        match self.role {
            Role::Follower => !as_candidate,
            Role::Candidate(_) => as_candidate,
            Role::Leader(_) => false,
        }
    }

    /// A catch-up page arrived from a peer that has promised `peer_promise` and whose log's
    /// last record is of `page_last_epoch`: may its records replace ours now? Its promise is
    /// observed first. A candidate whose epoch it passed is over: had it adopted the page, it
    /// would append its own, older epoch record after records of a newer epoch (a log whose
    /// epochs decrease, which no leader may ever write).
    pub fn may_adopt(&mut self, as_candidate: bool, peer_promise: u64, page_last_epoch: u64) -> bool {
        self.observe_promise(peer_promise.max(page_last_epoch));
        self.may_take_log(as_candidate)
    }

    // ---- transitions ----

    pub fn step_down(&mut self) {
        if self.role != Role::Follower {
            eprintln!("order: stepping down ({})", self.role.name());
        }
        self.role = Role::Follower;
    }

    /// A promise to `epoch` was made or seen: anything this replica led before it is over.
    pub fn observe_promise(&mut self, epoch: u64) {
        self.promised = self.promised.max(epoch);
        self.hear_epoch(epoch);
        if self.own_epoch().is_some_and(|own| own < epoch) {
            self.step_down();
        }
    }

    /// Some replica mentioned `epoch` (a new candidacy must go above it).
    pub fn hear_epoch(&mut self, epoch: u64) {
        self.seen_epoch = self.seen_epoch.max(epoch);
    }

    /// We promised `epoch` to a candidate in `/fence`: whoever led before is fenced off, and
    /// the candidate is not leader yet.
    pub fn promised_to_candidate(&mut self, epoch: u64) {
        self.observe_promise(epoch);
        self.leader = None;
    }

    /// A `/replicate_order` from `leader` of `epoch` was accepted.
    pub fn follow(&mut self, leader: u32, epoch: u64) {
        if leader != self.me {
            self.leader = Some(leader);
            self.leader_epoch = epoch;
        }
    }

    /// `/inform_replica {leader, epoch}`: who leads now (memory only). A replica that thought
    /// it led an older epoch steps down.
    pub fn inform(&mut self, leader: u32, epoch: u64) {
        self.hear_epoch(epoch);
        if epoch >= self.leader_epoch {
            self.leader = Some(leader);
            self.leader_epoch = epoch;
        }
        if leader != self.me && self.own_epoch().is_some_and(|own| own < epoch) {
            self.step_down();
        }
        if self.own_epoch() == Some(epoch) && self.is_leader() && leader == self.me {
            self.leader = Some(self.me);
        }
    }

    /// Election step 1, the decision: the epoch to stand for. Above the promise on disk, every
    /// epoch heard of (so no replica has promised it already, as far as we know), and `floor` (a
    /// newer epoch a peer refused our previous try with). The driver promises it durably, then
    /// calls [`Self::start_candidacy`].
    pub fn candidacy_epoch(&self, promised_on_disk: u64, floor: u64) -> u64 {
        promised_on_disk.max(self.seen_epoch()).max(floor) + 1
    }

    /// Election step 1: we promised ourselves `epoch` and now fence the peers with it.
    pub fn start_candidacy(&mut self, epoch: u64) {
        self.renewed_commit = match &self.role {
            Role::Leader(l) => l.commit,
            _ => -1,
        };
        self.role = Role::Candidate(epoch);
        self.observe_promise(epoch);
        self.leader = None;
    }

    /// Election step 4: a majority is fenced for `epoch` and our log is the most up to date;
    /// lead (not ready until the log is on a majority). False when `epoch` was superseded.
    pub fn become_leader(&mut self, epoch: u64, peer_last: HashMap<u32, i64>) -> bool {
        if self.promised != epoch || self.role != Role::Candidate(epoch) {
            return false;
        }
        // A renewing leader keeps what it knew to be committed: every record up to there is on
        // a majority for good (and in the log it adopted, which holds every committed record),
        // so reads of those orders go on working even if this renewal fails at its last step.
        let mut leadership = Leadership::new(epoch, peer_last);
        leadership.commit = self.renewed_commit;
        self.role = Role::Leader(leadership);
        true
    }

    /// Election done: the whole log up to `last` (our epoch record) is on a majority; take orders. False when
    /// `epoch` was superseded meanwhile.
    pub fn become_ready(&mut self, epoch: u64, last: i64) -> bool {
        match &mut self.role {
            Role::Leader(l) if l.epoch == epoch && !l.ready => {
                l.ready = true;
                l.commit = last;
            }
            _ => return false,
        }
        self.leader = Some(self.me);
        self.leader_epoch = epoch;
        self.synced = true;
        true
    }

    /// An election failed. A renewing leader that merely lacks a majority stays (not ready)
    /// leader and renews again on the next order; anyone else goes back to following.
    pub fn lose_election(&mut self, was_leader: bool) {
        let e = self.promised;
        if was_leader && self.own_epoch() == Some(e) {
            match &mut self.role {
                Role::Leader(l) => l.ready = false,
                _ => {
                    let mut l = Leadership::new(e, HashMap::new());
                    l.commit = self.renewed_commit;
                    self.role = Role::Leader(l);
                }
            }
        } else {
            self.role = Role::Follower;
        }
    }

    /// The election future was dropped midway (its caller went away): do not stay a candidate.
    pub fn abandon_candidacy(&mut self) {
        if matches!(self.role, Role::Candidate(_)) {
            self.role = Role::Follower;
        }
    }

    /// Before a batch is appended as leader of `epoch`: may it be? Only while the promise on
    /// disk is still `epoch` (no newer candidate got it from us) and we are that epoch's ready
    /// leader. Checked under the directory lock, with the append that follows.
    pub fn may_append_batch(&self, epoch: u64, promised_on_disk: u64) -> bool {
        promised_on_disk == epoch && self.ready_epoch() == Some(epoch)
    }

    /// A batch append of ours in `epoch` returned: `Ok(durable_last)`, our log is on our disk up
    /// to that record (which may make a majority on its own); `Err(())`, part of the batch may
    /// be on disk, so no other record may ever be written at those indexes in this epoch:
    /// number nothing more until renewed with a new epoch.
    pub fn batch_appended(&mut self, epoch: u64, result: Result<i64, ()>, majority: usize) {
        match result {
            Ok(durable_last) => self.note_own(epoch, durable_last, majority),
            Err(()) => self.lose_readiness(epoch),
        }
    }

    /// Replication in `epoch` failed: number nothing more until renewed with a new epoch.
    pub fn lose_readiness(&mut self, epoch: u64) {
        if let Role::Leader(l) = &mut self.role {
            if l.epoch == epoch {
                l.ready = false;
            }
        }
    }

    /// Apply the tally of replicating up to record `n` in `epoch`.
    pub fn replicated(&mut self, epoch: u64, n: u64, out: &Outcome) {
        if let Some(e) = out.stale {
            self.observe_promise(e);
        }
        if out.committed() {
            if let Role::Leader(l) = &mut self.role {
                l.commit = l.commit.max(n as i64);
            }
        } else if self.ready_epoch() == Some(epoch) {
            self.lose_readiness(epoch);
        }
    }

    /// Follower `id` accepted a batch of `epoch` ending at record `matched` (its log equals ours
    /// up to there) and reported its log ends at `last`. As ready leader of `epoch`, with our own
    /// log durable up to `own_last`, advance the commit index to the highest record on a
    /// `majority` (see [`majority_index`]). Returns the commit index after the step.
    pub fn note_match(&mut self, epoch: u64, id: u32, matched: i64, last: i64, own_last: i64, majority: usize) -> Option<i64> {
        let Role::Leader(l) = &mut self.role else { return None };
        if l.epoch != epoch {
            return None;
        }
        l.suspect_until.remove(&id);
        l.peer_last.insert(id, last.max(matched));
        let m = l.matched.entry(id).or_insert(-1);
        *m = (*m).max(matched);
        if l.ready {
            l.commit = l.commit.max(majority_index(own_last, l.matched.values().copied(), majority));
        }
        Some(l.commit)
    }

    /// Our own log is durable up to `own_last` (an append of `epoch` just returned): with few
    /// enough replicas (one) that alone may be a majority.
    pub fn note_own(&mut self, epoch: u64, own_last: i64, majority: usize) {
        if let Role::Leader(l) = &mut self.role {
            if l.epoch == epoch && l.ready {
                l.commit = l.commit.max(majority_index(own_last, l.matched.values().copied(), majority));
            }
        }
    }

    /// Follower `id`'s verified match index in the current leadership (-1: none yet).
    pub fn matched(&self, id: u32) -> i64 {
        match &self.role {
            Role::Leader(l) => l.matched.get(&id).copied().unwrap_or(-1),
            _ => -1,
        }
    }

    /// Follower `id` reported its log ends at `last`.
    pub fn note_peer_ack(&mut self, id: u32, last: i64) {
        if let Role::Leader(l) = &mut self.role {
            l.suspect_until.remove(&id);
            l.peer_last.insert(id, last);
        }
    }

    /// Follower `id` timed out at `now`: skip it for [`SUSPECT_MS`], forget its progress.
    pub fn note_peer_timeout(&mut self, id: u32, now: u64) {
        if let Role::Leader(l) = &mut self.role {
            l.suspect_until.insert(id, now + SUSPECT_MS);
            l.peer_last.remove(&id);
        }
    }

    /// The start-up resync is done.
    pub fn mark_synced(&mut self) {
        self.synced = true;
    }
}

// ---- decisions (pure functions of plain values) ----

/// The highest record index held by a `majority` of replicas, from the leader's own durable
/// `own_last` and the followers' verified match indexes (-1: none). Raft's commit rule: sort
/// descending, take the majority-th. Safe to commit in the current epoch only: a ready leader's
/// log starts its epoch with its epoch record, already on a majority.
pub fn majority_index(own_last: i64, matched: impl IntoIterator<Item = i64>, majority: usize) -> i64 {
    let mut all: Vec<i64> = std::iter::once(own_last).chain(matched).collect();
    all.sort_unstable_by(|a, b| b.cmp(a));
    majority.checked_sub(1).and_then(|i| all.get(i)).copied().unwrap_or(-1)
}

/// What a follower does with `/fence {epoch}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FenceDecision {
    /// The epoch is not newer than our promise: 409 `stale`.
    RefuseStale,
    /// Promise it durably, then report our status.
    Promise,
}

/// `/fence`: only an epoch newer than every promise already made is promised — so two
/// candidates can never both fence a majority for one epoch.
pub fn decide_fence(promised: u64, epoch: u64) -> FenceDecision {
    if epoch <= promised {
        FenceDecision::RefuseStale
    } else {
        FenceDecision::Promise
    }
}

/// The follower's view when a `/replicate_order` arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicateCheck {
    pub me: u32,
    pub promised: u64,
    /// The epoch we claim ourselves (candidate or leader).
    pub own_epoch: Option<u64>,
    pub sender: u32,
    pub epoch: u64,
    /// The anchor the batch follows (None: it starts at record 0).
    pub prev: Option<Anchor>,
    /// Our own anchor at `prev.index` (None: we do not have that record).
    pub ours_at_prev: Option<Anchor>,
}

/// What a follower does with a `/replicate_order`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicateDecision {
    /// 409 `stale`: the sender is no longer (or never was) leader of this epoch.
    Stale,
    /// The sender leads `epoch`: promise it first if `promise`, then do `step` on the log.
    Accept { promise: bool, step: LogStep },
}

/// The log part of an accepted `/replicate_order`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStep {
    /// We lack the entry at `prev`: 409 `gap` with our `last`.
    Gap,
    /// Our record at `prev` has another epoch, so our tail from there was never committed: cut
    /// it from this index and answer 409 `mismatch` with the new `last`.
    CutFrom(u64),
    /// Merge the entries (skip what we hold, replace a differing tail, append the rest).
    Merge,
}

pub fn decide_replicate(c: ReplicateCheck) -> ReplicateDecision {
    // Each epoch has one leader: the same epoch from someone else cannot be ours to take.
    let collision = c.epoch == c.promised && c.own_epoch == Some(c.epoch) && c.sender != c.me;
    if c.epoch < c.promised || collision {
        return ReplicateDecision::Stale;
    }
    let step = match c.prev {
        None => LogStep::Merge,
        Some(prev) => match c.ours_at_prev {
            None => LogStep::Gap,
            Some(own) if own != prev => LogStep::CutFrom(prev.index),
            Some(_) => LogStep::Merge,
        },
    };
    ReplicateDecision::Accept { promise: c.epoch > c.promised, step }
}

/// A follower's final answer for one replication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerResult {
    /// It has every entry up to `upto` on disk.
    Acked,
    /// It certainly does not have `upto`.
    Without,
    /// It may or may not have `upto` (no definite answer came back).
    Unknown,
    /// It has promised a newer epoch: we are no longer leader.
    Stale(u64),
}

/// The leader's tally over its followers' results.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    pub acks: usize,
    /// Follower acks needed (the leader's own copy already counts).
    pub needed: usize,
    pub stale: Option<u64>,
    /// Some follower might hold `upto` although it did not acknowledge it.
    pub unknown: bool,
}

impl Outcome {
    pub fn new(majority: usize) -> Outcome {
        Outcome { needed: majority.saturating_sub(1), ..Outcome::default() }
    }

    /// On a majority's disks.
    pub fn committed(&self) -> bool {
        self.acks >= self.needed
    }

    pub fn add(&mut self, r: PeerResult) {
        match r {
            PeerResult::Acked => self.acks += 1,
            PeerResult::Without => {}
            PeerResult::Unknown => self.unknown = true,
            PeerResult::Stale(e) => self.stale = Some(self.stale.unwrap_or(0).max(e)),
        }
    }

    /// Ask the suspect followers too? Only if the others could not make a majority and no one
    /// told us we are stale.
    pub fn needs_suspects(&self) -> bool {
        !self.committed() && self.stale.is_none()
    }
}

/// A follower's answer to one `/replicate_order`, as the leader's push loop sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerAnswer {
    /// 200: it accepted a batch ending at record `matched` (so its log equals ours up to
    /// there: the anchor check passed and every record was merged) and its log ends at `last`.
    /// Only `matched` proves anything: `last` may be an older epoch's tail past the batch.
    Applied { matched: i64, last: i64 },
    /// 409 `gap` or `mismatch`: its log ends at `last` (after any cut).
    Behind { last: i64 },
    /// 409 `stale`: it promised `epoch`, newer than ours.
    Stale { epoch: u64 },
    /// Any other 4xx: it refused the batch, so it does not have it.
    Rejected,
    /// The request certainly never arrived (connection refused).
    NeverDelivered,
    /// No definite answer: timeout, connection lost, 5xx, an unreadable body.
    NoAnswer,
}

/// What the push loop does next with one follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushStep {
    /// Its final result for this replication.
    Finish(PeerResult),
    /// Send again, from entry `next`.
    ResendFrom(u64),
}

/// The push loop's decision after a follower answered a batch that ends at `upto` (or before
/// it, `carries_upto` false: then a lost answer still means it certainly lacks `upto`).
pub fn push_step(answer: PeerAnswer, upto: u64, carries_upto: bool) -> PushStep {
    let unsure = if carries_upto { PeerResult::Unknown } else { PeerResult::Without };
    match answer {
        PeerAnswer::Applied { matched, .. } if matched >= upto as i64 => PushStep::Finish(PeerResult::Acked),
        PeerAnswer::Applied { matched: last, .. } | PeerAnswer::Behind { last } => {
            PushStep::ResendFrom((last + 1).clamp(0, upto as i64) as u64)
        }
        PeerAnswer::Stale { epoch } => PushStep::Finish(PeerResult::Stale(epoch)),
        PeerAnswer::Rejected | PeerAnswer::NeverDelivered => PushStep::Finish(PeerResult::Without),
        PeerAnswer::NoAnswer => PushStep::Finish(unsure),
    }
}

/// How a candidate's `/fence` round went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FenceTally {
    /// Some peer promised a newer epoch: start again above it.
    Newer(u64),
    /// Too few promises (we count ourselves).
    NoMajority { promised: usize },
    /// A majority promised.
    Fenced,
}

/// `answers`: per peer, Ok (it promised), Err(Some(e)) (it had promised newer `e`), Err(None)
/// (no answer).
pub fn tally_fence<T>(answers: &[Result<T, Option<u64>>], majority: usize) -> FenceTally {
    if let Some(e) = answers.iter().filter_map(|a| a.as_ref().err().copied().flatten()).max() {
        return FenceTally::Newer(e);
    }
    let promised = 1 + answers.iter().filter(|a| a.is_ok()).count();
    if promised < majority {
        FenceTally::NoMajority { promised }
    } else {
        FenceTally::Fenced
    }
}

/// A leader's view for answering `GET /orders/<n>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadView {
    pub epoch: u64,
    pub ready: bool,
    /// Every entry up to here is on a majority (kept while renewing).
    pub commit: i64,
}

/// What a replica does with `GET /orders/<n>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadDecision {
    /// `n` is committed here: 200 with the entry. A committed entry never changes, so this is
    /// right even at a leader that was deposed without knowing it yet.
    Answer,
    /// 409 naming the leader we know: only a leader knows what is committed.
    NotLeader,
    /// `n` is past our commit index. A newer leader we have not heard of may have committed it,
    /// so first ask the peers whether anyone promised a newer epoch than ours.
    ConfirmLeadership(u64),
    /// A majority confirmed (during this read) that nobody promised a newer epoch than ours:
    /// `n` is not committed anywhere, 404.
    Absent,
}

/// `GET /orders/<n>` on a replica with leadership `view` (None: follower or candidate), where
/// `index` is the record holding order `n` in the local log (one past the log's end when the
/// log does not hold it), after a majority confirmed our epoch `confirmed` (None: not asked
/// yet). See ARCHITECTURE.md, "Reads".
pub fn decide_read(view: Option<ReadView>, index: u64, confirmed: Option<u64>) -> ReadDecision {
    match view {
        Some(v) if index as i64 <= v.commit => ReadDecision::Answer,
        Some(v) if v.ready && confirmed == Some(v.epoch) => ReadDecision::Absent,
        Some(v) if v.ready => ReadDecision::ConfirmLeadership(v.epoch),
        _ => ReadDecision::NotLeader,
    }
}

/// How a leader's confirmation round (each peer's promised epoch, None: no answer) went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmation {
    /// A majority (us included) had promised nothing newer than `epoch` when it answered.
    Leading,
    /// Some peer promised a newer epoch: we are deposed.
    Superseded(u64),
    /// Too few answers to tell.
    Unsure,
}

pub fn tally_confirm(epoch: u64, promised: &[Option<u64>], majority: usize) -> Confirmation {
    if let Some(newer) = promised.iter().flatten().copied().filter(|&p| p > epoch).max() {
        return Confirmation::Superseded(newer);
    }
    if 1 + promised.iter().flatten().count() >= majority {
        Confirmation::Leading
    } else {
        Confirmation::Unsure
    }
}

/// The most up-to-date log among `peers` (Raft's order, ties to the higher id), if it is ahead
/// of `ours` — the one an election adopts and a catch-up takes.
pub fn most_up_to_date(ours: Position, peers: impl IntoIterator<Item = (u32, Position)>) -> Option<(u32, Position)> {
    peers.into_iter().max_by_key(|&(id, pos)| (pos, id)).filter(|&(_, pos)| pos > ours)
}

// Each table row is a tuple (input state, message, expected decision), read left to right.
#[cfg(test)]
#[allow(clippy::type_complexity)]
mod tests {
    use super::*;

    fn pos(last_epoch: u64, last: i64) -> Position {
        Position { last_epoch, last }
    }

    fn anchor(index: u64, epoch: u64) -> Anchor {
        Anchor { index, epoch }
    }

    /// A replica that leads `epoch` (ready) with the log `last` on a majority.
    fn ready_leader(epoch: u64, last: i64) -> Replica {
        let mut r = Replica::new(1);
        r.observe_promise(epoch - 1);
        r.start_candidacy(epoch);
        assert!(r.become_leader(epoch, HashMap::from([(2, last), (3, last)])));
        assert!(r.become_ready(epoch, last));
        r
    }

    #[test]
    fn a_renewal_that_fails_at_its_last_step_keeps_committed_orders_readable() {
        let mut r = ready_leader(4, 10);
        r.lose_readiness(4);
        r.start_candidacy(5);
        assert!(r.become_leader(5, HashMap::from([(2, 10), (3, 10)])));
        assert_eq!(r.commit_index(), Some(10), "what was committed stays committed");
        // Replicating the new epoch record to a majority fails: no become_ready.
        r.lose_election(true);
        assert_eq!(decide_read(r.read_view(), 10, None), ReadDecision::Answer);
        assert_eq!(decide_read(r.read_view(), 3, None), ReadDecision::Answer);
        // A first election (no earlier leadership) starts from nothing committed.
        let mut fresh = Replica::new(2);
        fresh.start_candidacy(1);
        assert!(fresh.become_leader(1, HashMap::new()));
        assert_eq!(fresh.commit_index(), Some(-1));
    }

    #[test]
    fn a_candidate_does_not_adopt_a_log_from_a_newer_epoch() {
        // (our role, adopting as candidate, peer's promise, page's last epoch) → adopt?, role after
        let candidate = |e: u64| {
            let mut r = Replica::new(1);
            r.observe_promise(e - 1);
            r.start_candidacy(e);
            r
        };
        let mut r = candidate(5);
        assert!(r.may_adopt(true, 5, 4), "the peer promised our epoch: its log is older");
        assert_eq!(r.role(), &Role::Candidate(5));
        let mut r = candidate(5);
        assert!(!r.may_adopt(true, 6, 4), "the peer promised a newer candidate meanwhile");
        assert_eq!((r.role(), r.promised()), (&Role::Follower, 6));
        let mut r = candidate(5);
        assert!(!r.may_adopt(true, 5, 6), "the page holds records of a newer epoch");
        assert_eq!(r.role(), &Role::Follower);
        // A follower's own catch-up takes any newer log.
        let mut f = Replica::new(1);
        assert!(f.may_adopt(false, 9, 9));
        assert_eq!(f.promised(), 9);
    }

    #[test]
    fn a_candidacy_stands_above_every_epoch_known() {
        // (promised on disk, heard of, floor) → epoch to stand for
        let cases = [((0, 0, 0), 1), ((3, 0, 0), 4), ((3, 7, 0), 8), ((3, 7, 9), 10), ((9, 2, 4), 10)];
        for ((promised, heard, floor), want) in cases {
            let mut r = Replica::new(1);
            r.hear_epoch(heard);
            assert_eq!(r.candidacy_epoch(promised, floor), want, "promised {promised}, heard {heard}, floor {floor}");
        }
    }

    #[test]
    fn only_the_ready_leader_of_the_promised_epoch_appends_a_batch() {
        let r = ready_leader(4, 10);
        assert!(r.may_append_batch(4, 4));
        assert!(!r.may_append_batch(4, 5), "a newer candidate got our promise");
        assert!(!r.may_append_batch(3, 4), "a batch numbered in an older leadership");
        let mut not_ready = ready_leader(4, 10);
        not_ready.lose_readiness(4);
        assert!(!not_ready.may_append_batch(4, 4));
        let mut follower = Replica::new(1);
        follower.observe_promise(4);
        assert!(!follower.may_append_batch(4, 4));
    }

    #[test]
    fn a_failed_batch_append_stops_numbering_until_renewed() {
        let mut r = ready_leader(4, 10);
        r.batch_appended(4, Ok(12), 2);
        assert!(r.may_append_batch(4, 4));
        r.batch_appended(4, Err(()), 2);
        assert!(!r.may_append_batch(4, 4), "part of the batch may be on disk: renew first");
        assert_eq!(r.ready_epoch(), None);
        // Another leadership's failure changes nothing of ours.
        let mut other = ready_leader(6, 10);
        other.batch_appended(5, Err(()), 2);
        assert_eq!(other.ready_epoch(), Some(6));
    }

    #[test]
    fn fence_promises_only_newer_epochs() {
        use FenceDecision::*;
        let cases = [(0, 1, Promise), (3, 4, Promise), (3, 9, Promise), (3, 3, RefuseStale), (3, 2, RefuseStale), (5, 0, RefuseStale)];
        for (promised, epoch, want) in cases {
            assert_eq!(decide_fence(promised, epoch), want, "promised {promised}, fence {epoch}");
        }
    }

    #[test]
    fn replicate_check() {
        use LogStep::*;
        use ReplicateDecision::*;
        let base = ReplicateCheck { me: 1, promised: 3, own_epoch: None, sender: 2, epoch: 3, prev: None, ours_at_prev: None };
        let acc = |promise, step| Accept { promise, step };
        let cases: Vec<(&str, ReplicateCheck, ReplicateDecision)> = vec![
            ("older epoch", ReplicateCheck { epoch: 2, ..base }, Stale),
            ("older epoch, even with matching prev", ReplicateCheck { epoch: 2, prev: Some(anchor(4, 2)), ours_at_prev: Some(anchor(4, 2)), ..base }, Stale),
            ("our own epoch from another sender", ReplicateCheck { own_epoch: Some(3), ..base }, Stale),
            ("our own epoch from ourselves", ReplicateCheck { own_epoch: Some(3), sender: 1, ..base }, acc(false, Merge)),
            ("older own epoch, sender has the promised one", ReplicateCheck { own_epoch: Some(2), ..base }, acc(false, Merge)),
            ("promised epoch, from the start", base, acc(false, Merge)),
            ("newer epoch is promised first", ReplicateCheck { epoch: 4, ..base }, acc(true, Merge)),
            ("newer epoch beats our candidacy", ReplicateCheck { epoch: 4, own_epoch: Some(3), ..base }, acc(true, Merge)),
            ("prev matches", ReplicateCheck { prev: Some(anchor(4, 2)), ours_at_prev: Some(anchor(4, 2)), ..base }, acc(false, Merge)),
            ("prev missing", ReplicateCheck { prev: Some(anchor(4, 2)), ours_at_prev: None, ..base }, acc(false, Gap)),
            ("prev missing, newer epoch", ReplicateCheck { epoch: 5, prev: Some(anchor(4, 2)), ..base }, acc(true, Gap)),
            ("prev of another epoch", ReplicateCheck { prev: Some(anchor(4, 3)), ours_at_prev: Some(anchor(4, 2)), ..base }, acc(false, CutFrom(4))),
            ("prev of another epoch, newer", ReplicateCheck { epoch: 6, prev: Some(anchor(0, 3)), ours_at_prev: Some(anchor(0, 1)), ..base }, acc(true, CutFrom(0))),
        ];
        for (name, check, want) in cases {
            assert_eq!(decide_replicate(check), want, "{name}");
        }
    }

    #[test]
    fn tally() {
        use PeerResult::*;
        // (majority of the cluster, follower results) → (committed, stale, unknown)
        let cases: Vec<(usize, Vec<PeerResult>, bool, Option<u64>, bool)> = vec![
            (2, vec![Acked, Without], true, None, false),
            (2, vec![Unknown, Acked], true, None, true),
            (2, vec![Without, Without], false, None, false),
            (2, vec![Without, Unknown], false, None, true),
            (2, vec![Stale(7), Stale(5)], false, Some(7), false),
            (2, vec![Stale(4), Unknown], false, Some(4), true),
            (3, vec![Acked, Without, Acked, Without], true, None, false),
            (3, vec![Acked, Without, Unknown, Without], false, None, true),
            (1, vec![], true, None, false),
        ];
        for (majority, results, committed, stale, unknown) in cases {
            let mut out = Outcome::new(majority);
            for r in &results {
                out.add(*r);
            }
            assert_eq!((out.committed(), out.stale, out.unknown), (committed, stale, unknown), "{results:?}");
            assert_eq!(out.needs_suspects(), !committed && stale.is_none(), "{results:?}");
        }
    }

    #[test]
    fn push_steps() {
        use PeerAnswer::*;
        use PushStep::*;
        // (answer, upto, batch carries upto) → next step
        let cases = [
            (Applied { matched: 9, last: 9 }, 9, true, Finish(PeerResult::Acked)),
            (Applied { matched: 9, last: 12 }, 9, true, Finish(PeerResult::Acked)),
            (Applied { matched: 5, last: 5 }, 9, false, ResendFrom(6)),
            // A partial batch (capped before `upto`) to a follower whose log runs past `upto`
            // with another epoch's tail: its `last` proves nothing, only the batch end does.
            (Applied { matched: 5, last: 12 }, 9, false, ResendFrom(6)),
            (Behind { last: 3 }, 9, true, ResendFrom(4)),
            (Behind { last: -1 }, 9, true, ResendFrom(0)),
            (Behind { last: 20 }, 9, true, ResendFrom(9)),
            (Stale { epoch: 8 }, 9, true, Finish(PeerResult::Stale(8))),
            (Rejected, 9, true, Finish(PeerResult::Without)),
            (NeverDelivered, 9, true, Finish(PeerResult::Without)),
            (NoAnswer, 9, true, Finish(PeerResult::Unknown)),
            (NoAnswer, 9, false, Finish(PeerResult::Without)),
        ];
        for (answer, upto, carries, want) in cases {
            assert_eq!(push_step(answer, upto, carries), want, "{answer:?} upto {upto} carries {carries}");
        }
    }

    #[test]
    fn fence_tally() {
        let ok = |_: ()| Ok::<(), Option<u64>>(());
        let cases: Vec<(Vec<Result<(), Option<u64>>>, usize, FenceTally)> = vec![
            (vec![ok(()), ok(())], 2, FenceTally::Fenced),
            (vec![ok(()), Err(None)], 2, FenceTally::Fenced),
            (vec![Err(None), Err(None)], 2, FenceTally::NoMajority { promised: 1 }),
            (vec![ok(()), Err(Some(9))], 2, FenceTally::Newer(9)),
            (vec![Err(Some(4)), Err(Some(9))], 2, FenceTally::Newer(9)),
            (vec![ok(()), Err(None), Err(None), Err(None)], 3, FenceTally::NoMajority { promised: 2 }),
        ];
        for (answers, majority, want) in cases {
            assert_eq!(tally_fence(&answers, majority), want, "{answers:?}");
        }
    }

    #[test]
    fn reads() {
        use ReadDecision::*;
        let ready = |epoch, commit| Some(ReadView { epoch, ready: true, commit });
        let renewing = |epoch, commit| Some(ReadView { epoch, ready: false, commit });
        // (leadership, n, epoch a majority confirmed) → decision
        let cases: Vec<(&str, Option<ReadView>, u64, Option<u64>, ReadDecision)> = vec![
            ("follower", None, 0, None, NotLeader),
            ("follower, even once 'confirmed'", None, 0, Some(3), NotLeader),
            ("ready leader, committed", ready(3, 5), 5, None, Answer),
            ("ready leader, older committed", ready(3, 5), 0, None, Answer),
            ("ready leader, past commit: confirm first", ready(3, 5), 6, None, ConfirmLeadership(3)),
            ("ready leader, uncommitted entry", ready(3, 5), 6, None, ConfirmLeadership(3)),
            ("ready leader, empty log", ready(1, -1), 0, None, ConfirmLeadership(1)),
            ("confirmed: absent", ready(3, 5), 6, Some(3), Absent),
            ("confirmed an older epoch (renewed meanwhile)", ready(4, 5), 6, Some(3), ConfirmLeadership(4)),
            ("committed before confirmation came back", ready(3, 7), 6, Some(3), Answer),
            ("renewing leader, committed", renewing(3, 5), 2, None, Answer),
            ("renewing leader, past commit", renewing(3, 5), 6, None, NotLeader),
            ("renewing leader, past commit, confirmed", renewing(3, 5), 6, Some(3), NotLeader),
        ];
        for (name, view, n, confirmed, want) in cases {
            assert_eq!(decide_read(view, n, confirmed), want, "{name}");
        }
    }

    #[test]
    fn confirmation_tally() {
        use Confirmation::*;
        // (our epoch, peers' promised epochs, majority) → outcome
        let cases: Vec<(u64, Vec<Option<u64>>, usize, Confirmation)> = vec![
            (3, vec![Some(3), Some(3)], 2, Leading),
            (3, vec![Some(3), None], 2, Leading),
            (3, vec![Some(2), None], 2, Leading), // an older promise cannot elect anyone newer
            (3, vec![None, None], 2, Unsure),
            (3, vec![Some(4), Some(3)], 2, Superseded(4)),
            (3, vec![None, Some(5)], 2, Superseded(5)),
            (3, vec![Some(3), None, None, None], 3, Unsure),
            (1, vec![], 1, Leading),
        ];
        for (epoch, promised, majority, want) in cases {
            assert_eq!(tally_confirm(epoch, &promised, majority), want, "{epoch} {promised:?}");
        }
    }

    #[test]
    fn most_up_to_date_log() {
        let cases: Vec<(Position, Vec<(u32, Position)>, Option<u32>)> = vec![
            (pos(1, 5), vec![], None),
            (pos(1, 5), vec![(2, pos(1, 5)), (3, pos(1, 4))], None),
            (pos(1, 5), vec![(2, pos(1, 6)), (3, pos(1, 4))], Some(2)),
            // A later epoch of the last entry wins over length.
            (pos(1, 5), vec![(2, pos(1, 9)), (3, pos(2, 3))], Some(3)),
            (pos(3, 0), vec![(2, pos(2, 9))], None),
            // Equal logs: the higher id.
            (pos(0, -1), vec![(3, pos(1, 2)), (2, pos(1, 2))], Some(3)),
        ];
        for (ours, peers, want) in cases {
            assert_eq!(most_up_to_date(ours, peers.clone()).map(|(id, _)| id), want, "{ours:?} {peers:?}");
        }
    }

    /// A replica driven through a sequence of transitions; each row checks the role after it.
    #[test]
    fn transitions() {
        type Step = fn(&mut Replica);
        let leader = |r: &mut Replica| {
            r.start_candidacy(4);
            assert!(r.become_leader(4, HashMap::from([(2, 3)])));
        };
        let cases: Vec<(&str, Vec<Step>, &str, Option<u64>)> = vec![
            ("new", vec![], "follower", None),
            ("candidate", vec![|r| r.start_candidacy(4)], "candidate", Some(4)),
            ("candidate sees newer promise", vec![|r| r.start_candidacy(4), |r| r.observe_promise(5)], "follower", None),
            ("candidate sees its own promise", vec![|r| r.start_candidacy(4), |r| r.observe_promise(4)], "candidate", Some(4)),
            ("leader not ready", vec![leader], "leader (renewing)", Some(4)),
            ("leader ready", vec![leader, |r| assert!(r.become_ready(4, 7))], "leader", Some(4)),
            ("leader loses readiness", vec![leader, |r| assert!(r.become_ready(4, 7)), |r| r.lose_readiness(4)], "leader (renewing)", Some(4)),
            ("lose readiness of another epoch", vec![leader, |r| assert!(r.become_ready(4, 7)), |r| r.lose_readiness(3)], "leader", Some(4)),
            ("informed of a newer leader", vec![leader, |r| r.inform(2, 5)], "follower", None),
            ("informed of an older leader", vec![leader, |r| r.inform(2, 3)], "leader (renewing)", Some(4)),
            ("superseded before leading", vec![|r| r.start_candidacy(4), |r| r.observe_promise(5), |r| assert!(!r.become_leader(4, HashMap::new()))], "follower", None),
            ("superseded before ready", vec![leader, |r| r.observe_promise(6), |r| assert!(!r.become_ready(4, 0))], "follower", None),
            ("failed renewal keeps a leader", vec![leader, |r| r.start_candidacy(5), |r| r.lose_election(true)], "leader (renewing)", Some(5)),
            ("failed election of a follower", vec![|r| r.start_candidacy(5), |r| r.lose_election(false)], "follower", None),
            ("failed renewal, superseded", vec![leader, |r| r.start_candidacy(5), |r| r.observe_promise(6), |r| r.lose_election(true)], "follower", None),
            ("abandoned candidacy", vec![|r| r.start_candidacy(5), |r| r.abandon_candidacy()], "follower", None),
            ("abandon leaves a leader", vec![leader, |r| r.abandon_candidacy()], "leader (renewing)", Some(4)),
        ];
        for (name, steps, role, own) in cases {
            let mut r = Replica::new(1);
            for step in steps {
                step(&mut r);
            }
            assert_eq!((r.role().name(), r.own_epoch()), (role, own), "{name}");
        }
    }

    #[test]
    fn a_failed_renewal_keeps_what_was_committed() {
        let mut r = Replica::new(1);
        r.start_candidacy(4);
        assert!(r.become_leader(4, HashMap::new()) && r.become_ready(4, 7));
        r.lose_readiness(4);
        r.start_candidacy(5);
        r.lose_election(true);
        assert_eq!(r.read_view(), Some(ReadView { epoch: 5, ready: false, commit: 7 }));
        r.start_candidacy(6);
        r.lose_election(true);
        assert_eq!(r.read_view().map(|v| v.commit), Some(7), "and again");
        // A follower's candidacy starts from nothing.
        let mut f = Replica::new(2);
        f.start_candidacy(3);
        assert!(f.become_leader(3, HashMap::new()));
        assert_eq!(f.read_view().map(|v| v.commit), Some(-1));
    }

    #[test]
    fn leadership_data_lives_and_dies_with_the_role() {
        let mut r = Replica::new(1);
        r.start_candidacy(2);
        assert!(r.become_leader(2, HashMap::from([(2, 5), (3, 1)])));
        assert_eq!(r.peer_last(2), Some(5));
        r.note_peer_timeout(3, 100);
        assert!(r.suspect(3, 100 + SUSPECT_MS - 1));
        assert!(!r.suspect(3, 100 + SUSPECT_MS));
        assert_eq!(r.peer_last(3), None);
        r.note_peer_ack(3, 4);
        assert!(!r.suspect(3, 100));
        assert_eq!(r.peer_last(3), Some(4));
        assert!(r.become_ready(2, 5));
        assert!(r.committed(5) && !r.committed(6));
        r.replicated(2, 6, &Outcome { acks: 1, needed: 1, ..Outcome::default() });
        assert!(r.committed(6));
        r.replicated(2, 7, &Outcome { acks: 0, needed: 1, ..Outcome::default() });
        assert_eq!(r.ready_epoch(), None);
        assert!(!r.committed(6), "only a ready leader acknowledges");
        r.replicated(2, 7, &Outcome { stale: Some(3), needed: 1, ..Outcome::default() });
        assert!(r.is_follower() && r.promised() == 3);
        assert_eq!((r.peer_last(2), r.suspect(3, 0)), (None, false));
        // A follower ignores progress reports that arrive after it stepped down.
        r.note_peer_ack(2, 9);
        assert_eq!(r.peer_last(2), None);
    }

    #[test]
    fn leader_naming() {
        // (role setup, believed leader) → (named by /ping, named by a 409)
        let mut r = Replica::new(1);
        r.inform(1, 3);
        assert_eq!((r.named_leader(), r.other_leader()), (None, None), "a follower never names itself");
        r.inform(2, 4);
        assert_eq!((r.named_leader(), r.other_leader()), (Some(2), Some(2)));
        r.start_candidacy(5);
        assert_eq!(r.leader(), (None, 4), "a candidate forgets the old leader");
        assert!(r.become_leader(5, HashMap::new()) && r.become_ready(5, -1));
        assert_eq!((r.named_leader(), r.other_leader(), r.leader()), (Some(1), None, (Some(1), 5)));
        r.promised_to_candidate(6);
        assert_eq!((r.is_follower(), r.named_leader()), (true, None));
        r.follow(3, 6);
        assert_eq!(r.leader(), (Some(3), 6));
    }

    #[test]
    fn who_may_take_a_log() {
        let mut r = Replica::new(1);
        assert!(r.may_take_log(false) && !r.may_take_log(true));
        r.start_candidacy(2);
        assert!(!r.may_take_log(false) && r.may_take_log(true));
        assert!(r.become_leader(2, HashMap::new()));
        assert!(!r.may_take_log(false) && !r.may_take_log(true));
    }
}
