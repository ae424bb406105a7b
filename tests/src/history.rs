//! Client histories and their checker, for tests that put the store through faults.
//!
//! A [`History`] records each client operation as it was seen from outside: what was asked
//! (an order with its idempotency key, or a read of an order number), when it was invoked and
//! when it completed (milliseconds since the history began), and what came back. It is saved
//! as JSON next to the test's data ([`History::save`]) so a failure can be looked at, and
//! judged by [`check`] against the order log the replicas ended with:
//! - every acknowledged order is in the log exactly once, under its number, with its toy and
//!   quantity (and a retried key always got the same number);
//! - no number was given to two keys;
//! - reads agree with the log, and a read never answered 404 for an order acknowledged before
//!   the read was invoked.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};
pub use toystore_order::log::Order;

/// What a client asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Request {
    Order { key: String, toy: String, quantity: i64 },
    Read { number: u64 },
}

/// What came back: an HTTP status with the fields that matter, or no answer at all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum Outcome {
    /// 200 to an order: its number.
    Ordered { number: u64 },
    /// 200 to a read: the order.
    Found { toy: String, quantity: i64 },
    /// 404 to a read.
    NotFound,
    /// Any other status (503, 400 not enough stock, ...): the order may or may not have been
    /// placed; a retry with the same key tells.
    Failed { status: u16, message: String },
    /// No HTTP answer (timeout, connection refused or reset).
    Lost { error: String },
}

/// One operation: invoked at `invoke_ms`, completed at `complete_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    pub client: usize,
    /// The test's phase when it was invoked (`isolate-leader`, `slow-link`, ...).
    pub phase: String,
    pub invoke_ms: u64,
    pub complete_ms: u64,
    #[serde(flatten)]
    pub request: Request,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// Operations from several client threads, in completion order.
#[derive(Debug, Clone)]
pub struct History {
    start: Instant,
    ops: Arc<Mutex<Vec<Op>>>,
}

impl Default for History {
    fn default() -> Self {
        Self::new()
    }
}

impl History {
    pub fn new() -> Self {
        Self { start: Instant::now(), ops: Arc::new(Mutex::new(Vec::new())) }
    }

    /// Milliseconds since the history began.
    pub fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Record an operation invoked at `invoke_ms` that completes now.
    pub fn record(&self, client: usize, phase: &str, invoke_ms: u64, request: Request, outcome: Outcome) {
        let op = Op { client, phase: phase.into(), invoke_ms, complete_ms: self.now_ms(), request, outcome };
        self.ops.lock().unwrap_or_else(|e| e.into_inner()).push(op);
    }

    pub fn ops(&self) -> Vec<Op> {
        self.ops.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Write the history as JSON (an array of operations).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let json = serde_json::to_string_pretty(&self.ops()).map_err(std::io::Error::other)?;
        std::fs::write(path, json)
    }
}

/// What the checker found: the violations, and counts for the test's report.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub violations: Vec<String>,
    pub acknowledged: usize,
    pub reads: usize,
    /// Operations that got no success (failed or lost).
    pub unsuccessful: usize,
}

/// Judge `ops` against the order records of the final, agreed log `log` (numbered 0, 1, 2, ...).
pub fn check(ops: &[Op], log: &[Order]) -> Verdict {
    let mut v = Verdict::default();
    let by_number: BTreeMap<u64, &Order> = log.iter().map(|e| (e.number, e)).collect();
    let mut numbers_of_key: HashMap<&str, Vec<u64>> = HashMap::new();
    for e in log {
        numbers_of_key.entry(e.key.as_str()).or_default().push(e.number);
    }
    for (key, numbers) in &numbers_of_key {
        if numbers.len() > 1 {
            v.violations.push(format!("key {key} is in the log {} times (numbers {numbers:?})", numbers.len()));
        }
    }
    for (i, e) in log.iter().enumerate() {
        if e.number != i as u64 {
            v.violations.push(format!("log entry {i} has number {}", e.number));
        }
    }
    // Acknowledged orders: number -> (key, completion time).
    let mut acked: HashMap<u64, (&str, u64)> = HashMap::new();
    let mut acked_key: HashMap<&str, u64> = HashMap::new();
    for op in ops {
        match (&op.request, &op.outcome) {
            (Request::Order { key, toy, quantity }, Outcome::Ordered { number }) => {
                v.acknowledged += 1;
                match by_number.get(number) {
                    None => v.violations.push(format!("order {key} was acknowledged as {number}, which the log does not have")),
                    Some(e) if e.key != *key || e.name != *toy || e.quantity != *quantity => v.violations.push(format!(
                        "order {key} ({quantity} {toy}) was acknowledged as {number}, but the log has {} {} under key {} there",
                        e.quantity, e.name, e.key
                    )),
                    Some(_) => {}
                }
                if let Some((other, _)) = acked.get(number).filter(|(k, _)| *k != key.as_str()) {
                    v.violations.push(format!("number {number} was given to two keys, {other} and {key}"));
                }
                if let Some(earlier) = acked_key.get(key.as_str()).filter(|n| *n != number) {
                    v.violations.push(format!("key {key} was acknowledged as {earlier} and as {number}"));
                }
                let first_ack = acked.get(number).map_or(op.complete_ms, |(_, t)| (*t).min(op.complete_ms));
                acked.insert(*number, (key, first_ack));
                acked_key.insert(key, *number);
            }
            (Request::Order { .. }, _) => v.unsuccessful += 1,
            (Request::Read { .. }, Outcome::Failed { .. } | Outcome::Lost { .. }) => v.unsuccessful += 1,
            (Request::Read { .. }, _) => v.reads += 1,
        }
    }
    for op in ops {
        let Request::Read { number } = &op.request else { continue };
        match &op.outcome {
            Outcome::Found { toy, quantity } => match by_number.get(number) {
                Some(e) if e.name == *toy && e.quantity == *quantity => {}
                Some(e) => v.violations.push(format!(
                    "read of {number} at {} ms answered {quantity} {toy}; the log has {} {}",
                    op.complete_ms, e.quantity, e.name
                )),
                None => v.violations.push(format!("read of {number} answered an order the log does not have")),
            },
            Outcome::NotFound => {
                if let Some((key, acked_at)) = acked.get(number).filter(|(_, t)| *t < op.invoke_ms) {
                    v.violations.push(format!(
                        "read of {number} invoked at {} ms answered 404, but order {key} was acknowledged as {number} at {acked_at} ms",
                        op.invoke_ms
                    ));
                }
            }
            _ => {}
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(number: u64, key: &str, toy: &str, quantity: i64) -> Order {
        Order { number, name: toy.into(), quantity, price: "25.99".into(), key: key.into() }
    }

    fn op(invoke_ms: u64, complete_ms: u64, request: Request, outcome: Outcome) -> Op {
        Op { client: 0, phase: "p".into(), invoke_ms, complete_ms, request, outcome }
    }

    fn order(key: &str, toy: &str, quantity: i64) -> Request {
        Request::Order { key: key.into(), toy: toy.into(), quantity }
    }

    #[test]
    fn a_consistent_history_passes() {
        let log = [entry(0, "a", "Tux", 1), entry(1, "b", "Fox", 2), entry(2, "c", "Tux", 1)];
        let ops = [
            op(0, 10, order("a", "Tux", 1), Outcome::Ordered { number: 0 }),
            op(5, 20, order("b", "Fox", 2), Outcome::Failed { status: 503, message: "no majority".into() }),
            op(21, 30, order("b", "Fox", 2), Outcome::Ordered { number: 1 }),
            // c was placed but its answer was lost: fine.
            op(22, 40, order("c", "Tux", 1), Outcome::Lost { error: "timeout".into() }),
            op(31, 35, Request::Read { number: 1 }, Outcome::Found { toy: "Fox".into(), quantity: 2 }),
            // 404 for an order acknowledged only after the read began: allowed.
            op(25, 28, Request::Read { number: 1 }, Outcome::NotFound),
        ];
        let v = check(&ops, &log);
        assert!(v.violations.is_empty(), "{:?}", v.violations);
        assert_eq!((v.acknowledged, v.reads, v.unsuccessful), (2, 2, 2));
    }

    #[test]
    fn lost_reused_and_misread_orders_are_violations() {
        let log = [entry(0, "a", "Tux", 1), entry(1, "b", "Fox", 2)];
        let ops = [
            op(0, 10, order("a", "Tux", 1), Outcome::Ordered { number: 0 }),
            op(0, 11, order("x", "Tux", 1), Outcome::Ordered { number: 0 }),
            op(0, 12, order("z", "Lego", 1), Outcome::Ordered { number: 7 }),
            op(0, 13, order("b", "Fox", 3), Outcome::Ordered { number: 1 }),
            op(20, 25, Request::Read { number: 0 }, Outcome::NotFound),
            op(20, 26, Request::Read { number: 1 }, Outcome::Found { toy: "Fox".into(), quantity: 9 }),
        ];
        let v = check(&ops, &log);
        let all = v.violations.join("\n");
        assert!(all.contains("number 0 was given to two keys, a and x"), "{all}");
        assert!(all.contains("order z was acknowledged as 7"), "{all}");
        assert!(all.contains("order b (3 Fox)"), "{all}");
        assert!(all.contains("read of 0 invoked at 20 ms answered 404"), "{all}");
        assert!(all.contains("read of 1 at 26 ms answered 9 Fox"), "{all}");
        let dup = [entry(0, "a", "Tux", 1), entry(1, "a", "Tux", 1)];
        assert!(check(&[], &dup).violations[0].contains("key a is in the log 2 times"));
    }

    #[test]
    fn saved_histories_are_json_with_the_fields_named() {
        let h = History::new();
        h.record(1, "slow-link", 3, order("k", "Tux", 2), Outcome::Ordered { number: 4 });
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.json");
        h.save(&path).unwrap();
        let back: Vec<Op> = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(back, h.ops());
        let text = std::fs::read_to_string(&path).unwrap();
        for field in ["\"kind\": \"order\"", "\"outcome\": \"ordered\"", "\"invoke_ms\": 3", "\"phase\": \"slow-link\""] {
            assert!(text.contains(field), "{field}: {text}");
        }
    }
}
