//! Which order replica leads, and getting a request to it despite failures.
//!
//! ## Selection (ARCHITECTURE.md, "Replication protocol" step 1)
//! When no leader is known: ping the replicas from the highest id down (`GET /ping`, 200 =
//! healthy); the first healthy one is asked `POST /leaderselection`; on 200 it is the leader,
//! and every other replica gets `POST /inform_replica {"leader":id,"epoch":e}` (best effort,
//! `e` from the selection reply). If a healthy replica refuses (e.g. 503: no majority), the
//! next healthy one is tried. Only one selection runs at a time: concurrent requests wait on
//! an async mutex and then use the leader the first one chose.
//!
//! Election attempts are paced ([`ElectionBackoff`]): the first `/leaderselection` after a quiet
//! spell goes out at once (a fail-over is not slowed down), each further one within the quiet
//! spell waits a jittered, doubling delay (~100 ms, 200 ms, ... 2 s). Every attempt may make a
//! replica fence a new epoch, deposing whoever led; two frontends that disagree, or a replica
//! that keeps flapping, would otherwise depose each other's leaders in a tight loop. The jitter
//! keeps two frontends from retrying in step.
//!
//! ## Failover
//! [`Leader::forward`] sends a request to the leader only. A failure that says the leader is
//! gone or not leading — connection refused, timeout, 5xx, 409 "not the leader" — forgets it,
//! selects again and resends the *same* request (same body, so the same idempotency key:
//! the order replicas answer a repeated key with the order already numbered, never a second
//! one). Attempts back off (100 ms, doubling) and stop after [`RetryPolicy::attempts`] or
//! [`RetryPolicy::budget`] (~10 s), whichever is first; then the client gets 503. Any other
//! 4xx (400, 404) is the answer and is passed through unchanged. The replica just forgotten is
//! tried last by the next selection and not told the new leader ([`selection_order`]): if it
//! is frozen rather than down, each call to it costs a whole timeout of the retry budget.
//!
//! ## Active health check: a busy leader is not a dead one
//! [`Leader::health_check`] (run from `POST /tick` every `HEALTH_CHECK_INTERVAL_MS`) pings the
//! leader ([`classify`]). A leader that answers that someone else (or no one) leads — e.g. it
//! restarted and lost its role — or whose port refuses connections (nothing runs there) is
//! dropped at once. A ping that times out or fails otherwise is only a *miss*: a leader busy
//! with a burst of orders (or paused for a moment) answers late, and dropping it would start a
//! fail-over — a new epoch, a fence round, resent entries — exactly when the store is most
//! loaded, which makes it slower still. The leader is dropped after `LEADER_MISS_LIMIT`
//! consecutive misses ([`Misses`]); any good answer resets the count. With no leader known it
//! selects one, so the first order after a failure usually finds a leader ready. (An order
//! that fails at the leader still fails over at once, below: that client is waiting.)

use std::cell::{Cell, RefCell};
use std::time::Duration;

use futures::future::join_all;
use toystore_guest::sync::Mutex;
use http::Method;
use serde_json::{json, Value};
use toystore_guest::api::data_of;
use toystore_guest::settings::{OrderReplicas, Settings};
use toystore_guest::{time, CallError, Net, NetResponse, Reply};

/// The shortest timeout an attempt gets, however little of the budget is left.
const MIN_ATTEMPT_TIMEOUT: Duration = Duration::from_millis(500);

/// One order replica: its id and base URL (no trailing slash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    pub id: u32,
    pub url: String,
}

/// How hard [`Leader::forward`] tries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub attempts: u32,
    /// Total time after which no new attempt starts.
    pub budget: Duration,
    /// Wait before the second attempt; doubles after each failure.
    pub first_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { attempts: 6, budget: Duration::from_secs(10), first_backoff: Duration::from_millis(100) }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Current {
    id: u32,
    url: String,
    /// As the leader reported it in its `/leaderselection` reply.
    epoch: Value,
    /// Health checks of this leader missed in a row.
    misses: Misses,
}

/// What one health-check ping says about the leader we know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// 200, and it still leads (or does not say otherwise).
    Leading,
    /// It answered 200 but names another leader, or none: it lost its role.
    NotLeading,
    /// The connection was refused: nothing listens on its port.
    Down,
    /// No answer in time, or an error status: it may be busy or it may be dead.
    Missed,
}

/// Judge one ping of leader `id`.
pub fn classify(ping: &Result<NetResponse, CallError>, id: u32) -> Check {
    match ping {
        Ok(r) if r.status == 200 && still_leading(r, id) => Check::Leading,
        Ok(r) if r.status == 200 => Check::NotLeading,
        Ok(_) => Check::Missed,
        Err(e) if e.never_delivered() => Check::Down,
        Err(_) => Check::Missed,
    }
}

/// Consecutive missed health checks of one leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Misses(u32);

impl Misses {
    pub fn count(self) -> u32 {
        self.0
    }

    /// Count one check; true when the leader must be dropped: at once for [`Check::NotLeading`]
    /// and [`Check::Down`], after `limit` [`Check::Missed`] in a row (a limit of 0 counts as 1).
    pub fn record(&mut self, check: Check, limit: u32) -> bool {
        match check {
            Check::Leading => {
                self.0 = 0;
                false
            }
            Check::NotLeading | Check::Down => true,
            Check::Missed => {
                self.0 = self.0.saturating_add(1);
                self.0 >= limit.max(1)
            }
        }
    }
}

/// Paces `/leaderselection` calls (see the module docs). Pure: the caller passes the clock and
/// the jitter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ElectionBackoff {
    /// The delay before the second attempt of a streak (before jitter); doubles after that.
    pub first: Duration,
    /// The longest delay (before jitter).
    pub max: Duration,
    /// An attempt this long after the previous one starts a new streak, without delay.
    pub quiet: Duration,
    /// Attempts in the current streak.
    streak: u32,
    /// When the last attempt started (ms, the caller's clock).
    last_ms: Option<u64>,
}

impl Default for ElectionBackoff {
    fn default() -> Self {
        Self::new(Duration::from_millis(100), Duration::from_secs(2), Duration::from_secs(10))
    }
}

impl ElectionBackoff {
    pub fn new(first: Duration, max: Duration, quiet: Duration) -> Self {
        Self { first, max, quiet, streak: 0, last_ms: None }
    }

    fn in_streak(&self, now_ms: u64) -> Option<u64> {
        let quiet_ms = u64::try_from(self.quiet.as_millis()).unwrap_or(u64::MAX);
        self.last_ms.map(|last| now_ms.saturating_sub(last)).filter(|since| *since < quiet_ms)
    }

    /// How long to wait at `now_ms` before the next attempt; `jitter` in `[0, 1)` scales the
    /// delay into `[d/2, d)` ("equal jitter": never much shorter, never in step).
    pub fn delay(&self, now_ms: u64, jitter: f64) -> Duration {
        let Some(since_ms) = self.in_streak(now_ms) else { return Duration::ZERO };
        let doublings = self.streak.saturating_sub(1).min(20);
        let full = self.first.saturating_mul(1 << doublings).min(self.max);
        let jittered = full.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0));
        jittered.saturating_sub(Duration::from_millis(since_ms))
    }

    /// An attempt starts at `now_ms`.
    pub fn attempted(&mut self, now_ms: u64) {
        self.streak = if self.in_streak(now_ms).is_some() { self.streak.saturating_add(1) } else { 1 };
        self.last_ms = Some(now_ms);
    }
}

/// The frontend's view of the order replicas. Memory only: after a restart the frontend simply
/// selects again (replicas keep the epochs that make that safe).
#[derive(Debug)]
pub struct Leader {
    /// Highest id first: the selection order.
    replicas: Vec<Replica>,
    /// Timeout of pings and inform calls.
    call_timeout: Duration,
    /// Timeout of `/leaderselection` (the replica fences and catches up first).
    selection_timeout: Duration,
    retry: RetryPolicy,
    /// Consecutive missed health checks after which the leader is dropped.
    miss_limit: u32,
    backoff: Cell<ElectionBackoff>,
    /// The leader last dropped for a failure, until a selection succeeds.
    failed: Cell<Option<u32>>,
    current: RefCell<Option<Current>>,
    selecting: Mutex<()>,
}

impl Leader {
    pub fn new(mut replicas: Vec<Replica>, call_timeout: Duration, retry: RetryPolicy) -> Self {
        replicas.sort_by_key(|r| std::cmp::Reverse(r.id));
        replicas.dedup_by_key(|r| r.id);
        Self {
            replicas,
            call_timeout,
            selection_timeout: call_timeout * 3,
            retry,
            miss_limit: Settings::default().leader_miss_limit,
            backoff: Cell::new(ElectionBackoff::default()),
            failed: Cell::new(None),
            current: RefCell::new(None),
            selecting: Mutex::new(()),
        }
    }

    /// Drop the leader after `limit` consecutive missed health checks (`LEADER_MISS_LIMIT`).
    pub fn with_miss_limit(mut self, limit: u32) -> Self {
        self.miss_limit = limit;
        self
    }

    /// Pace election attempts with `backoff` instead of the default.
    pub fn with_election_backoff(self, backoff: ElectionBackoff) -> Self {
        self.backoff.set(backoff);
        self
    }

    /// Health checks the current leader has missed in a row (0 with no leader).
    pub fn misses(&self) -> u32 {
        self.current.borrow().as_ref().map_or(0, |c| c.misses.count())
    }

    pub fn replicas(&self) -> &[Replica] {
        &self.replicas
    }

    /// The leader's id and URL, if one is known.
    pub fn current(&self) -> Option<(u32, String)> {
        self.current.borrow().as_ref().map(|c| (c.id, c.url.clone()))
    }

    /// The `GET /leader` document: `{"leader": id or null, "epoch": e or null}`.
    pub fn describe(&self) -> Value {
        match &*self.current.borrow() {
            Some(c) => json!({ "leader": c.id, "epoch": c.epoch }),
            None => json!({ "leader": null, "epoch": null }),
        }
    }

    /// Stop using `id` as the leader. Does nothing if the leader is already someone else: a
    /// late failure report about an old leader must not discard a newly selected one. The next
    /// selection tries `id` last ([`selection_order`]).
    pub fn forget(&self, id: u32) {
        let mut current = self.current.borrow_mut();
        if current.as_ref().is_some_and(|c| c.id == id) {
            *current = None;
            self.failed.set(Some(id));
        }
    }

    /// The known leader, or the outcome of a selection.
    pub async fn get_or_select<N: Net>(&self, net: &N) -> Option<(u32, String)> {
        if let Some(c) = self.current() {
            return Some(c);
        }
        self.select(net).await
    }

    /// Select a leader unless one became known while waiting for the selection mutex.
    pub async fn select<N: Net>(&self, net: &N) -> Option<(u32, String)> {
        let one_at_a_time = self.selecting.lock().await;
        if let Some(c) = self.current() {
            return Some(c);
        }
        for candidate in selection_order(&self.replicas, self.failed.get()) {
            let ping = net.call(Method::GET, &format!("{}/ping", candidate.url), None, self.call_timeout).await;
            if !matches!(ping, Ok(ref r) if r.status == 200) {
                continue;
            }
            let wait = self.backoff.get().delay(time::now_millis(), time::random_unit());
            if !wait.is_zero() {
                time::sleep(wait).await;
            }
            let mut backoff = self.backoff.get();
            backoff.attempted(time::now_millis());
            self.backoff.set(backoff);
            let url = format!("{}/leaderselection", candidate.url);
            let reply = match net.call(Method::POST, &url, None, self.selection_timeout).await {
                Ok(r) if r.status == 200 => r,
                _ => continue,
            };
            let epoch = data_of(reply.json()).and_then(|d| d.get("epoch")).cloned().unwrap_or(Value::Null);
            *self.current.borrow_mut() = Some(Current {
                id: candidate.id,
                url: candidate.url.clone(),
                epoch: epoch.clone(),
                misses: Misses::default(),
            });
            let failed = self.failed.take().filter(|id| *id != candidate.id);
            // Waiting requests can use the new leader while the others are being told.
            drop(one_at_a_time);
            self.inform_others(net, candidate.id, epoch, failed).await;
            return Some((candidate.id, candidate.url.clone()));
        }
        None
    }

    /// Tell every other replica who leads now (best effort, in parallel), except the leader
    /// just dropped for a failure: if it is frozen the call would hold the caller (a waiting
    /// order) for a whole timeout, and if it is alive the new leader's fence and replication
    /// tell it anyway.
    async fn inform_others<N: Net>(&self, net: &N, leader: u32, epoch: Value, failed: Option<u32>) {
        let body = json!({ "leader": leader, "epoch": epoch });
        let calls = self.replicas.iter().filter(|r| r.id != leader && Some(r.id) != failed).map(|r| {
            let url = format!("{}/inform_replica", r.url);
            let body = body.clone();
            async move { net.call(Method::POST, &url, Some(body), self.call_timeout).await }
        });
        join_all(calls).await;
    }

    /// Ping the leader; reselect if it is down or no longer leading, or has missed
    /// `miss_limit` checks in a row (module docs). With no leader known, select one.
    pub async fn health_check<N: Net>(&self, net: &N) {
        if let Some((id, url)) = self.current() {
            let ping = net.call(Method::GET, &format!("{url}/ping"), None, self.call_timeout).await;
            let check = classify(&ping, id);
            let drop = {
                let mut current = self.current.borrow_mut();
                // The leader may have changed while we waited: the answer is about `id` only.
                match current.as_mut().filter(|c| c.id == id) {
                    Some(c) => {
                        let drop = c.misses.record(check, self.miss_limit);
                        if check == Check::Missed {
                            eprintln!(
                                "frontend: order leader {id} missed a health check ({}/{}){}",
                                c.misses.count(),
                                self.miss_limit.max(1),
                                if drop { ": selecting again" } else { ": kept" }
                            );
                        }
                        drop
                    }
                    None => false,
                }
            };
            if !drop {
                return;
            }
            self.forget(id);
        }
        self.select(net).await;
    }

    /// Send `method path` (with `body`) to the leader, failing over as described in the
    /// module docs. `timeout` applies to each attempt.
    pub async fn forward<N: Net>(
        &self,
        net: &N,
        method: Method,
        path: &str,
        body: Option<Value>,
        timeout: Duration,
    ) -> Reply {
        let started = time::now_millis();
        let budget_ms = u64::try_from(self.retry.budget.as_millis()).unwrap_or(u64::MAX);
        let mut backoff = self.retry.first_backoff;
        let mut last_error = String::from("no order replica is configured");
        for attempt in 0..self.retry.attempts.max(1) {
            if attempt > 0 {
                let elapsed = time::now_millis().saturating_sub(started);
                let wait_ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX);
                if elapsed.saturating_add(wait_ms) >= budget_ms {
                    break;
                }
                time::sleep(backoff).await;
                backoff = backoff.saturating_mul(2);
            }
            let Some((id, url)) = self.get_or_select(net).await else {
                if !self.replicas.is_empty() {
                    last_error = "no order replica could become leader".into();
                }
                continue;
            };
            // Keep the whole exchange near the budget: a late attempt gets what is left (but
            // enough for a normal answer).
            let left_ms = budget_ms.saturating_sub(time::now_millis().saturating_sub(started));
            let attempt_timeout = timeout.min(Duration::from_millis(left_ms).max(MIN_ATTEMPT_TIMEOUT));
            match net.call(method.clone(), &format!("{url}{path}"), body.clone(), attempt_timeout).await {
                Ok(r) if r.status < 500 && r.status != 409 => return pass_through(r),
                Ok(r) => {
                    last_error = format!("order leader {id} answered {}: {}", r.status, r.error_message());
                    self.forget(id);
                }
                Err(e) => {
                    last_error = format!("order leader {id}: {e}");
                    self.forget(id);
                }
            }
        }
        Reply::unavailable(format!("order service unavailable: {last_error}"))
    }
}

/// The order in which a selection tries the replicas: highest id first, except that the
/// leader just dropped for a failure (`failed`) goes last. It may be frozen rather than down,
/// and then its ping alone would cost a whole call timeout before anyone else is tried —
/// time the waiting order's retry budget does not have. It is still tried if no one else can
/// lead.
pub fn selection_order(replicas: &[Replica], failed: Option<u32>) -> impl Iterator<Item = &Replica> {
    let others = replicas.iter().filter(move |r| Some(r.id) != failed);
    others.chain(replicas.iter().filter(move |r| Some(r.id) == failed))
}

/// A ping reply from the replica we think leads: 200, and not naming another (or no) leader.
/// A reply without a `leader` field, or with one that is not a number or null, is trusted.
fn still_leading(r: &NetResponse, id: u32) -> bool {
    if r.status != 200 {
        return false;
    }
    let v = r.json();
    let data = data_of(v).unwrap_or(v);
    match data.get("leader") {
        Some(Value::Null) => false,
        Some(Value::Number(n)) => n.as_u64() == Some(u64::from(id)),
        _ => true,
    }
}

/// A downstream reply as ours: same status, same JSON body (a bare `null` gets our envelope).
pub fn pass_through(r: NetResponse) -> Reply {
    match r.body {
        Value::Null if r.is_success() => Reply::with_status(r.status, Value::Null),
        Value::Null => Reply::error(r.status, format!("downstream answered {} with no body", r.status)),
        body => Reply::raw(r.status, body),
    }
}

/// The replicas `ORDER_REPLICAS` names (already parsed by `toystore-manifest`).
pub fn replicas_from(replicas: &OrderReplicas) -> Vec<Replica> {
    replicas.0.iter().map(|(id, url)| Replica { id: *id, url: url.clone() }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::World;
    use futures::executor::block_on;

    fn leader(world: &World) -> Leader {
        let policy = RetryPolicy { attempts: 6, budget: Duration::from_secs(10), first_backoff: Duration::from_millis(1) };
        Leader::new(replicas_from(&world.replica_list()), Duration::from_millis(50), policy)
            .with_election_backoff(ElectionBackoff::new(Duration::from_millis(1), Duration::from_millis(4), Duration::from_secs(10)))
    }

    #[test]
    fn replicas_sorted_highest_first() {
        let l = Leader::new(replicas_from(&"1=http://a,3=http://c/,2=http://b".parse().expect("a replica list")), Duration::from_secs(1), RetryPolicy::default());
        let ids: Vec<_> = l.replicas().iter().map(|r| r.id).collect();
        assert_eq!(ids, [3, 2, 1]);
        assert_eq!(l.replicas()[0].url, "http://c");
    }

    #[test]
    fn selects_the_highest_healthy_and_informs_the_others() {
        let world = World::new(3);
        let l = leader(&world);
        assert_eq!(block_on(l.select(&world)).map(|c| c.0), Some(3));
        assert_eq!(l.describe(), json!({"leader": 3, "epoch": 1}));
        assert_eq!(world.informed(1), [json!({"leader": 3, "epoch": 1})]);
        assert_eq!(world.informed(2), [json!({"leader": 3, "epoch": 1})]);
        assert!(world.informed(3).is_empty());
        // Known now: no second selection.
        assert_eq!(block_on(l.get_or_select(&world)).map(|c| c.0), Some(3));
        assert_eq!(world.selections(), 1);
    }

    #[test]
    fn skips_down_unsynced_and_refusing_replicas() {
        let world = World::new(3);
        world.set_up(3, false);
        world.set_ping_status(2, 503); // still catching up
        let l = leader(&world);
        assert_eq!(block_on(l.select(&world)).map(|c| c.0), Some(1));

        let world = World::new(3);
        world.set_refuses_selection(3, true); // e.g. 503: no majority
        let l = leader(&world);
        assert_eq!(block_on(l.select(&world)).map(|c| c.0), Some(2));

        let world = World::new(3);
        for id in 1..=3 {
            world.set_up(id, false);
        }
        let l = leader(&world);
        assert_eq!(block_on(l.select(&world)), None);
        assert_eq!(l.describe(), json!({"leader": null, "epoch": null}));
    }

    #[test]
    fn concurrent_requests_share_one_selection() {
        let world = World::new(3);
        let l = leader(&world);
        let all = block_on(join_all((0..10).map(|_| l.get_or_select(&world))));
        assert!(all.iter().all(|c| c.as_ref().map(|c| c.0) == Some(3)));
        assert_eq!(world.selections(), 1);
    }

    #[test]
    fn a_failed_leader_is_tried_last_until_a_selection_succeeds() {
        let replicas = replicas_from(&"3=http://c,2=http://b,1=http://a".parse().expect("a replica list"));
        let ids = |failed| selection_order(&replicas, failed).map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(ids(None), [3, 2, 1]);
        assert_eq!(ids(Some(3)), [2, 1, 3]);
        assert_eq!(ids(Some(2)), [3, 1, 2]);

        let world = World::new(3);
        let l = leader(&world);
        block_on(l.select(&world));
        world.set_order_status(3, Some(503)); // failing orders, healthy pings
        let r = block_on(l.forward(&world, Method::GET, "/orders/0", None, Duration::from_millis(50)));
        assert_eq!(r.status, 404, "answered by the next leader");
        assert_eq!(l.current().map(|c| c.0), Some(2), "not 3 again, though its ping is fine");
        assert_eq!(world.informed(1).len(), 2);
        assert!(world.informed(3).is_empty(), "the failed leader is not told: it may be frozen");
        world.demote(2); // its ping names no leader: dropped, to be tried last
        world.set_up(3, false);
        world.set_up(1, false);
        block_on(l.health_check(&world));
        assert_eq!(l.current().map(|c| c.0), Some(2), "the failed one is still a candidate");
    }

    #[test]
    fn forget_ignores_stale_reports() {
        let world = World::new(3);
        let l = leader(&world);
        block_on(l.select(&world));
        l.forget(2);
        assert_eq!(l.current().map(|c| c.0), Some(3));
        l.forget(3);
        assert_eq!(l.current(), None);
    }

    #[test]
    fn forward_fails_over_with_the_same_body() {
        let world = World::new(3);
        let l = leader(&world);
        let body = json!({"name": "Tux", "quantity": 1, "key": "k1"});
        let r = block_on(l.forward(&world, Method::POST, "/orders", Some(body.clone()), Duration::from_millis(50)));
        assert_eq!(r.body, json!({"data": {"order_number": 0}}));
        world.set_up(3, false);
        let body2 = json!({"name": "Tux", "quantity": 1, "key": "k2"});
        let r = block_on(l.forward(&world, Method::POST, "/orders", Some(body2), Duration::from_millis(50)));
        assert_eq!(r.body, json!({"data": {"order_number": 1}}));
        assert_eq!(l.current().map(|c| c.0), Some(2));
        assert_eq!(l.describe()["epoch"], 2);
    }

    #[test]
    fn a_leader_that_committed_but_did_not_answer_is_not_ordered_twice() {
        let world = World::new(3);
        let l = leader(&world);
        block_on(l.select(&world));
        world.crash_after_commit(3); // takes the order, then dies before replying
        let body = json!({"name": "Tux", "quantity": 2, "key": "same"});
        let r = block_on(l.forward(&world, Method::POST, "/orders", Some(body), Duration::from_millis(50)));
        assert_eq!(r.body, json!({"data": {"order_number": 0}}));
        assert_eq!(world.order_count(), 1, "the retry with the same key found the order");
    }

    #[test]
    fn not_the_leader_and_5xx_trigger_reselection() {
        let world = World::new(3);
        let l = leader(&world);
        block_on(l.select(&world));
        world.demote(3); // answers 409 "not the leader"
        world.set_refuses_selection(3, true);
        let r = block_on(l.forward(&world, Method::GET, "/orders/0", None, Duration::from_millis(50)));
        assert_eq!(r.status, 404, "reached the new leader, whose answer passes through");
        assert_eq!(l.current().map(|c| c.0), Some(2));

        world.set_order_status(2, Some(503));
        world.set_refuses_selection(2, true);
        let r = block_on(l.forward(&world, Method::GET, "/orders/0", None, Duration::from_millis(50)));
        assert_eq!(r.status, 404);
        assert_eq!(l.current().map(|c| c.0), Some(1));
    }

    #[test]
    fn client_errors_pass_through_without_failover() {
        let world = World::new(3);
        let l = leader(&world);
        let r = block_on(l.forward(&world, Method::POST, "/orders", Some(json!({"name": "Nope", "quantity": 1, "key": "k"})), Duration::from_millis(50)));
        assert_eq!(r.body, json!({"error": {"code": 404, "message": "product not found"}}));
        assert_eq!(world.selections(), 1);
        assert_eq!(l.current().map(|c| c.0), Some(3));
    }

    #[test]
    fn gives_up_with_503_when_nobody_can_lead() {
        let world = World::new(3);
        for id in 1..=3 {
            world.set_up(id, false);
        }
        let l = leader(&world);
        let r = block_on(l.forward(&world, Method::GET, "/orders/0", None, Duration::from_millis(50)));
        assert_eq!(r.status, 503);
        assert!(r.error_message().unwrap_or("").contains("order service unavailable"));
    }

    #[test]
    fn health_check_reselects_a_dead_or_demoted_leader() {
        let world = World::new(3);
        let l = leader(&world);
        block_on(l.health_check(&world));
        assert_eq!(l.current().map(|c| c.0), Some(3), "no leader known: select one");
        block_on(l.health_check(&world));
        assert_eq!(world.selections(), 1, "a healthy leader is kept");
        world.set_up(3, false);
        block_on(l.health_check(&world));
        assert_eq!(l.current().map(|c| c.0), Some(2));
        world.set_up(3, true);
        world.demote(2); // e.g. restarted: its ping names no leader
        block_on(l.health_check(&world));
        assert_eq!(l.current().map(|c| c.0), Some(3));
    }

    #[test]
    fn a_busy_leader_is_kept_until_it_misses_the_limit_in_a_row() {
        let world = World::new(3);
        let l = leader(&world).with_miss_limit(3);
        block_on(l.health_check(&world));
        assert_eq!(l.current().map(|c| c.0), Some(3));
        world.set_ping_hangs(3, true); // busy: its pings time out
        for missed in 1..=2 {
            block_on(l.health_check(&world));
            assert_eq!((l.current().map(|c| c.0), l.misses()), (Some(3), missed), "kept after {missed} miss(es)");
        }
        world.set_ping_hangs(3, false);
        block_on(l.health_check(&world));
        assert_eq!((l.current().map(|c| c.0), l.misses()), (Some(3), 0), "an answer resets the count");
        world.set_ping_status(3, 503); // an error status is a miss too, not a verdict
        world.set_ping_hangs(3, true);
        block_on(l.health_check(&world));
        block_on(l.health_check(&world));
        assert_eq!(world.selections(), 1, "no election while the leader was only slow");
        world.set_ping_hangs(3, false);
        block_on(l.health_check(&world));
        assert_eq!(l.current().map(|c| c.0), Some(2), "the third miss in a row drops it");
        assert_eq!(world.selections(), 2);
        assert_eq!(l.misses(), 0, "a new leader starts with no misses");
    }

    #[test]
    fn a_refused_connection_or_a_lost_role_drops_the_leader_at_once() {
        let world = World::new(3);
        let l = leader(&world).with_miss_limit(5);
        block_on(l.select(&world));
        world.set_up(3, false);
        block_on(l.health_check(&world));
        assert_eq!(l.current().map(|c| c.0), Some(2), "refused: nothing runs there");
        assert_eq!(world.selections(), 2);
        world.demote(2);
        block_on(l.health_check(&world));
        assert_eq!(world.selections(), 3, "names no leader (it lost its role): selected again");
        assert_eq!(l.current().map(|c| c.0), Some(1), "2 just failed, so it is tried last");
    }

    #[test]
    fn classify_and_count_misses() {
        let ok = |body: Value| Ok(NetResponse { status: 200, body: json!({ "data": body }) });
        let timeout: Result<NetResponse, CallError> = Err(CallError::Timeout(Duration::from_secs(2)));
        let cases = [
            (ok(json!({"leader": 3})), Check::Leading),
            (ok(json!({})), Check::Leading),
            (ok(json!({"leader": 2})), Check::NotLeading),
            (ok(json!({"leader": null})), Check::NotLeading),
            (Ok(NetResponse { status: 503, body: Value::Null }), Check::Missed),
            (timeout, Check::Missed),
            (Err(CallError::Unreachable { url: "u".into(), reason: "reset".into() }), Check::Missed),
            (Err(CallError::Refused { url: "u".into() }), Check::Down),
        ];
        for (ping, want) in cases {
            assert_eq!(classify(&ping, 3), want, "{ping:?}");
        }
        let mut m = Misses::default();
        assert!(!m.record(Check::Missed, 2));
        assert!(m.record(Check::Missed, 2));
        let mut m = Misses::default();
        assert!(!m.record(Check::Missed, 2));
        assert!(!m.record(Check::Leading, 2));
        assert!(!m.record(Check::Missed, 2), "the count restarted");
        assert!(Misses::default().record(Check::Missed, 0), "a limit of 0 means 1");
        assert!(Misses::default().record(Check::Down, 9));
        assert!(Misses::default().record(Check::NotLeading, 9));
    }

    #[test]
    fn election_attempts_back_off_with_jitter_and_reset_after_a_quiet_spell() {
        let ms = Duration::from_millis;
        let mut b = ElectionBackoff::new(ms(100), ms(400), ms(10_000));
        assert_eq!(b.delay(1_000, 0.9), Duration::ZERO, "the first attempt goes out at once");
        b.attempted(1_000);
        assert_eq!(b.delay(1_000, 0.0), ms(50), "half the delay at the least jitter");
        assert_eq!(b.delay(1_000, 0.5), ms(75));
        assert_eq!(b.delay(1_030, 0.0), ms(20), "time already waited counts");
        assert_eq!(b.delay(1_200, 0.9), Duration::ZERO);
        b.attempted(1_100);
        assert_eq!(b.delay(1_100, 0.0), ms(100), "doubled");
        b.attempted(1_300);
        b.attempted(1_700);
        assert_eq!(b.delay(1_700, 0.0), ms(200), "capped at max");
        assert_eq!(b.delay(11_700, 0.0), Duration::ZERO, "after a quiet spell: at once again");
        b.attempted(11_700);
        assert_eq!(b.delay(11_700, 0.0), ms(50), "and a new streak starts small");
    }

    #[test]
    fn selection_waits_between_attempts_when_candidates_refuse() {
        let world = World::new(3);
        world.set_refuses_selection(3, true);
        world.set_refuses_selection(2, true);
        let l = leader(&world)
            .with_election_backoff(ElectionBackoff::new(Duration::from_millis(40), Duration::from_secs(1), Duration::from_secs(10)));
        let started = std::time::Instant::now();
        assert_eq!(block_on(l.select(&world)).map(|c| c.0), Some(1));
        // Three attempts: none before the first, >= 20 ms and >= 40 ms before the others.
        assert!(started.elapsed() >= Duration::from_millis(60), "{:?}", started.elapsed());
    }
}
