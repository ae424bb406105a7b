//! The read-back: every order the store acknowledged is fetched with `GET /orders/<n>` and
//! compared with what the client ordered. An acknowledged order that is missing, reads back
//! differently, or shares its number with another acknowledged order is a lost or corrupted
//! order, and the run fails.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use http::Method;
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::load::conn::{Conn, Target};
use crate::load::call::{call, Call, RetryPolicy};
use crate::load::stats::{Class, Kind, Stats};

/// An order the store acknowledged with a number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacedOrder {
    pub number: u64,
    pub name: String,
    pub quantity: u64,
    /// The idempotency key it was sent with.
    pub key: String,
}

/// What the store returned for an order number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadBack {
    pub number: Option<u64>,
    pub name: Option<String>,
    pub quantity: Option<u64>,
}

/// Why an acknowledged order did not verify.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum Problem {
    /// `GET /orders/<n>` said 404: the store has no such order.
    Missing { expected: PlacedOrder, detail: String },
    /// The store has order `n`, but not the one that was acknowledged.
    Mismatch { expected: PlacedOrder, got: ReadBack },
    /// No answer even after retries (or an unexpected status): the order could not be checked.
    Unreadable { expected: PlacedOrder, detail: String },
    /// Two different acknowledged orders got the same number: one of them was lost.
    DuplicateNumber { number: u64, first: PlacedOrder, second: PlacedOrder },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |o: &PlacedOrder| format!("#{} {} x{}", o.number, o.name, o.quantity);
        match self {
            Problem::Missing { expected, detail } => write!(f, "MISSING  {} ({detail})", show(expected)),
            Problem::Mismatch { expected, got } => write!(
                f,
                "MISMATCH {} read back as #{} {} x{}",
                show(expected),
                got.number.map_or("?".into(), |n| n.to_string()),
                got.name.as_deref().unwrap_or("?"),
                got.quantity.map_or("?".into(), |n| n.to_string()),
            ),
            Problem::Unreadable { expected, detail } => write!(f, "UNREADABLE {} ({detail})", show(expected)),
            Problem::DuplicateNumber { number, first, second } => {
                write!(f, "DUPLICATE number {number}: {} and {}", show(first), show(second))
            }
        }
    }
}

/// The result of the read-back.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    /// Whether the read-back ran at all (`--no-verify` skips it).
    pub ran: bool,
    /// Acknowledged orders checked.
    pub checked: usize,
    /// Orders that read back exactly as ordered.
    pub verified: usize,
    pub problems: Vec<Problem>,
}

impl Verification {
    /// Every acknowledged order read back exactly as ordered (vacuously true when skipped).
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Compare one read-back with the order it should be (pure: unit-tested without a store).
pub fn judge(expected: &PlacedOrder, answer: &Call) -> Option<Problem> {
    match answer.class {
        Class::Ok => {
            let got = ReadBack {
                number: answer.data["number"].as_u64(),
                name: answer.data["name"].as_str().map(str::to_string),
                quantity: answer.data["quantity"].as_u64(),
            };
            let same = got.number == Some(expected.number)
                && got.name.as_deref() == Some(expected.name.as_str())
                && got.quantity == Some(expected.quantity);
            (!same).then(|| Problem::Mismatch { expected: expected.clone(), got })
        }
        Class::Rejected if answer.status == Some(404) => {
            Some(Problem::Missing { expected: expected.clone(), detail: answer.message.clone() })
        }
        Class::Rejected | Class::Error => {
            Some(Problem::Unreadable { expected: expected.clone(), detail: answer.message.clone() })
        }
    }
}

/// Acknowledged orders that share a number (each pair reported once, against the first).
pub fn duplicate_numbers(orders: &[PlacedOrder]) -> Vec<Problem> {
    let mut first: HashMap<u64, &PlacedOrder> = HashMap::new();
    let mut problems = Vec::new();
    for o in orders {
        match first.get(&o.number) {
            Some(f) if f.key != o.key => {
                problems.push(Problem::DuplicateNumber { number: o.number, first: (*f).clone(), second: o.clone() })
            }
            Some(_) => {}
            None => {
                first.insert(o.number, o);
            }
        }
    }
    problems
}

/// Read back every order over `concurrency` keep-alive connections; order-query latencies go
/// into the returned [`Stats`] (as [`Kind::OrderQuery`]).
pub async fn read_back(
    target: &Target,
    orders: &[PlacedOrder],
    concurrency: usize,
    policy: RetryPolicy,
    timeout: Duration,
    progress: ProgressBar,
) -> (Verification, Stats) {
    let mut problems = duplicate_numbers(orders);
    let orders: Arc<Vec<PlacedOrder>> = Arc::new(orders.to_vec());
    let workers = concurrency.clamp(1, orders.len().max(1));
    let mut tasks = Vec::with_capacity(workers);
    for w in 0..workers {
        let orders = Arc::clone(&orders);
        let target = target.clone();
        let progress = progress.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::new(target, timeout);
            let mut stats = Stats::default();
            let mut problems = Vec::new();
            for o in orders.iter().skip(w).step_by(workers) {
                let answer = call(&mut conn, &policy, Method::GET, &format!("/orders/{}", o.number), None, &[]).await;
                stats.record(Kind::OrderQuery, answer.class, answer.latency, answer.retries);
                problems.extend(judge(o, &answer));
                progress.inc(1);
            }
            (stats, problems)
        }));
    }
    let mut stats = Stats::default();
    let mut failed_workers = 0;
    for t in tasks {
        match t.await {
            Ok((s, p)) => {
                stats.merge(&s);
                problems.extend(p);
            }
            Err(_) => failed_workers += 1,
        }
    }
    let unchecked_problems = problems.iter().filter(|p| !matches!(p, Problem::DuplicateNumber { .. })).count();
    let mut v = Verification {
        ran: true,
        checked: orders.len(),
        verified: orders.len().saturating_sub(unchecked_problems),
        problems,
    };
    if failed_workers > 0 {
        // A panicked worker leaves orders unchecked: never report those as verified.
        v.verified = 0;
        v.problems.push(Problem::Unreadable {
            expected: PlacedOrder { number: 0, name: String::new(), quantity: 0, key: String::new() },
            detail: format!("{failed_workers} read-back worker(s) failed"),
        });
    }
    v.problems.sort_by_key(|p| match p {
        Problem::Missing { expected, .. } | Problem::Mismatch { expected, .. } | Problem::Unreadable { expected, .. } => {
            expected.number
        }
        Problem::DuplicateNumber { number, .. } => *number,
    });
    (v, stats)
}

/// Parse a `data` value as a read-back (used by tests and reports).
pub fn read_back_of(data: &Value) -> ReadBack {
    ReadBack {
        number: data["number"].as_u64(),
        name: data["name"].as_str().map(str::to_string),
        quantity: data["quantity"].as_u64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn order(number: u64, name: &str, quantity: u64) -> PlacedOrder {
        PlacedOrder { number, name: name.into(), quantity, key: format!("k{number}{name}{quantity}") }
    }

    fn answer(class: Class, status: u16, data: Value) -> Call {
        Call { class, status: Some(status), data, message: format!("{status}: x"), retries: 0, latency: Duration::ZERO }
    }

    #[test]
    fn exact_read_back_verifies() {
        let o = order(7, "Tux", 2);
        assert_eq!(judge(&o, &answer(Class::Ok, 200, json!({"number":7,"name":"Tux","quantity":2}))), None);
    }

    #[test]
    fn every_difference_is_a_mismatch() {
        let o = order(7, "Tux", 2);
        for data in [
            json!({"number":7,"name":"Tux","quantity":3}),
            json!({"number":7,"name":"Fox","quantity":2}),
            json!({"number":8,"name":"Tux","quantity":2}),
            json!({"number":7,"name":"Tux"}),
            json!(null),
        ] {
            match judge(&o, &answer(Class::Ok, 200, data.clone())) {
                Some(Problem::Mismatch { got, .. }) => assert_eq!(got, read_back_of(&data)),
                other => panic!("{data}: {other:?}"),
            }
        }
    }

    #[test]
    fn missing_and_unreadable() {
        let o = order(1, "Lego", 1);
        assert!(matches!(judge(&o, &answer(Class::Rejected, 404, Value::Null)), Some(Problem::Missing { .. })));
        assert!(matches!(judge(&o, &answer(Class::Error, 503, Value::Null)), Some(Problem::Unreadable { .. })));
        assert!(matches!(judge(&o, &answer(Class::Rejected, 400, Value::Null)), Some(Problem::Unreadable { .. })));
    }

    #[test]
    fn duplicate_numbers_are_lost_orders() {
        let a = order(3, "Tux", 1);
        let b = order(3, "Fox", 1);
        let p = duplicate_numbers(&[a.clone(), order(4, "Tux", 1), b.clone()]);
        assert_eq!(p, vec![Problem::DuplicateNumber { number: 3, first: a.clone(), second: b }]);
        // The same order twice (same key) is not a duplicate.
        assert!(duplicate_numbers(&[a.clone(), a]).is_empty());
    }

    #[test]
    fn problems_print_what_went_wrong() {
        let p = Problem::Mismatch {
            expected: order(5, "Whale", 2),
            got: ReadBack { number: Some(5), name: Some("Whale".into()), quantity: Some(9) },
        };
        assert_eq!(p.to_string(), "MISMATCH #5 Whale x2 read back as #5 Whale x9");
    }
}
