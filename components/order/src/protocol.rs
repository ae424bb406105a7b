//! The messages replicas exchange (JSON bodies of the peer routes), in one place so both ends
//! of every exchange read the same definition.

use serde::{Deserialize, Serialize};
use toystore_guest::api::ErrorBody;
use toystore_guest::{ItemRequest, NetResponse, Reply};

use crate::log::{Anchor, Record, Order, Position};

/// Largest page (records) `GET /get_missed_orders/<n>` returns. Small enough that a page in
/// flight (its lines, then its parsed records, on both sides) does not raise the replicas'
/// peak memory much; large enough that a round trip is a small part of its cost.
pub const PAGE: usize = 2_000;
/// Largest batch (records) a leader sends in one `/replicate_order` (the follower's request
/// body limit is 1 MiB; records are under ~500 bytes with names and keys of at most 200).
pub const BATCH: usize = 2_000;

/// `POST /fence` and `POST /inform_replica`: `{leader, epoch}`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Claim {
    pub leader: u32,
    pub epoch: u64,
}

/// Where a replica's log stands and what it has promised: the data of `/get_last_order_number`,
/// `/fence` and `/replicate_order` (also inside their 409s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub last: i64,
    pub last_epoch: u64,
    /// The promised epoch.
    pub epoch: u64,
}

impl Status {
    pub fn position(&self) -> Position {
        Position { last_epoch: self.last_epoch, last: self.last }
    }
}

/// `POST /replicate_order`: records (contiguous) that follow the record `prev` (None when they
/// start at index 0). The follower appends only if its own record at `prev.index` has the same
/// epoch — Raft's log-matching check, which is what lets a follower trust that
/// everything before the batch already agrees with the leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Replicate {
    pub leader: u32,
    pub epoch: u64,
    #[serde(default)]
    pub prev: Option<Anchor>,
    #[serde(with = "lines")]
    pub records: Vec<Record>,
}

/// `GET /get_missed_orders/<i>`: records after index `i`, the anchor of the sender's record `i`
/// (so the reader can check that its own log agrees up to there), and the sender's status.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Page {
    #[serde(with = "lines")]
    pub records: Vec<Record>,
    pub more: bool,
    pub prev: Option<Anchor>,
    pub last: i64,
    pub last_epoch: u64,
    pub epoch: u64,
}

/// Records on the wire: one JSON string holding their exact `orders.csv` lines
/// ([`Record::to_line`], each with its `\n`), e.g. `"7,2,order,5,Tux,1,25.99,k5\n"`.
///
/// Why not a JSON object per record: a catch-up page of 2 000 records was then a value tree on
/// each side, ~10× its size in memory and most of a page's cost (serialising 100 000 records
/// took 171 ms natively and parsing them 82 ms; as lines, 15 and 2 ms). A line is also
/// what the receiver writes, and it is read back the way the log's own file is: only a line
/// in exactly the canonical form counts ([`Record::parse`]), so a record a peer sends is checked
/// as strictly as one read from disk. Lines cannot contain a newline (names and keys have no
/// control characters: `valid_text`), so splitting at `\n` is exact.
pub mod lines {
    use serde::de::{self, Deserializer, Visitor};
    use serde::Serializer;

    use crate::log::Record;

    pub fn serialize<S: Serializer>(records: &[Record], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&to_text(records))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Record>, D::Error> {
        d.deserialize_str(Lines)
    }

    /// The lines of `records`, concatenated.
    pub fn to_text(records: &[Record]) -> String {
        let mut text = String::with_capacity(records.len() * 64);
        for e in records {
            e.write_line(&mut text);
        }
        text
    }

    /// The records of `text`: every line complete and canonical, or an error naming the first
    /// that is not.
    pub fn from_text(text: &str) -> Result<Vec<Record>, String> {
        if !(text.is_empty() || text.ends_with('\n')) {
            return Err("records: the last orders.csv line has no newline".into());
        }
        text.split_terminator('\n')
            .enumerate()
            .map(|(i, line)| Record::parse(line).ok_or_else(|| format!("records: line {i} is not an orders.csv line: {line:?}")))
            .collect()
    }

    struct Lines;

    impl Visitor<'_> for Lines {
        type Value = Vec<Record>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("records as one string of orders.csv lines")
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
            from_text(text).map_err(E::custom)
        }
    }
}

/// Why a peer answered 409.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// The message's epoch is older than the promise: its sender is no longer leader.
    Stale,
    /// The batch starts after the follower's last entry; resend from `last + 1`.
    Gap,
    /// The follower's entry at `prev` differs; it cut its tail to `last`; resend from there.
    Mismatch,
}

/// A 409 carrying the reason and the refusing replica's status in the error object.
pub fn refused(reason: Refusal, message: &str, status: Status) -> Reply {
    Reply::from_error(
        ErrorBody::new(409, message)
            .with("reason", serde_json::to_value(reason).unwrap_or_default())
            .with("last", status.last)
            .with("last_epoch", status.last_epoch)
            .with("epoch", status.epoch),
    )
}

/// Read a peer's 409 back (None if the reply is not one of ours).
pub fn refusal(resp: &NetResponse) -> Option<(Refusal, Status)> {
    if resp.status != 409 {
        return None;
    }
    let e = resp.error()?.extra;
    let reason: Refusal = serde_json::from_value(e.get("reason")?.clone()).ok()?;
    let status = Status {
        last: e.get("last")?.as_i64()?,
        last_epoch: e.get("last_epoch")?.as_u64()?,
        epoch: e.get("epoch")?.as_u64()?,
    };
    Some((reason, status))
}

/// 409 for `POST /orders` on a replica that is not the leader, naming the leader it knows.
pub fn not_leader(leader: Option<u32>, epoch: u64) -> Reply {
    let message = match leader {
        Some(l) => format!("not the leader; the leader is replica {l}"),
        None => "not the leader; no leader known".to_string(),
    };
    Reply::from_error(ErrorBody::new(409, message).with("leader", leader).with("epoch", epoch))
}

/// A validated `POST /orders` body.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOrder {
    pub name: String,
    pub quantity: i64,
    pub key: String,
}

impl NewOrder {
    /// Validate `{name, quantity, key}` with the rules every hop shares ([`ItemRequest`]); a
    /// missing key is generated, which gives up idempotency for that call.
    pub fn parse(body: &[u8]) -> Result<NewOrder, Reply> {
        let item = ItemRequest::parse(body)?;
        Ok(NewOrder {
            name: item.name,
            // ItemRequest bounds quantities to i64.
            quantity: item.quantity as i64,
            key: item.key.unwrap_or_else(toystore_guest::time::random_key),
        })
    }

    /// Is `stored` (the order already logged under this key) the order this request asks for?
    /// A key names one order: the same key with another toy or quantity is a client error.
    pub fn is_same_order_as(&self, stored: &Order) -> bool {
        stored.key == self.key && stored.name == self.name && stored.quantity == self.quantity
    }

    /// 422 for a key already used by `stored`, a different order. Nothing was changed.
    pub fn key_reused(&self, stored: &Order) -> Reply {
        Reply::error(
            422,
            format!(
                "idempotency key {:?} was used for a different order (order {}: {} x {}; this request: {} x {})",
                self.key, stored.number, stored.quantity, stored.name, self.quantity, self.name
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn order_validation() {
        let ok = NewOrder::parse(br#"{"name":"Tux","quantity":2,"key":"k1"}"#).unwrap();
        assert_eq!(ok, NewOrder { name: "Tux".into(), quantity: 2, key: "k1".into() });
        assert!(!NewOrder::parse(br#"{"name":"Tux","quantity":1}"#).unwrap().key.is_empty());
        for bad in [
            "", "nope", "[]", r#"{"quantity":1}"#, r#"{"name":"Tux"}"#, r#"{"name":"","quantity":1}"#,
            r#"{"name":"Tux","quantity":0}"#, r#"{"name":"Tux","quantity":-3}"#, r#"{"name":"Tux","quantity":1.5}"#,
            r#"{"name":"Tux","quantity":"2"}"#, r#"{"name":5,"quantity":1}"#, r#"{"name":"a\nb","quantity":1}"#,
            r#"{"name":"Tux","quantity":1,"key":7}"#,
        ] {
            assert_eq!(NewOrder::parse(bad.as_bytes()).unwrap_err().status, 400, "{bad}");
        }
    }

    #[test]
    fn a_key_names_one_order() {
        let order = NewOrder { name: "Tux".into(), quantity: 2, key: "k".into() };
        let stored = |name: &str, quantity| Order { number: 4, name: name.into(), quantity, price: "1.50".into(), key: "k".into() };
        // (stored entry, same order?)
        let cases = [(stored("Tux", 2), true), (stored("Tux", 1), false), (stored("Lego", 2), false)];
        for (e, same) in cases {
            assert_eq!(order.is_same_order_as(&e), same, "{e:?}");
        }
        let r = order.key_reused(&stored("Lego", 1));
        assert_eq!(r.status, 422);
        assert_eq!(
            r.error_message(),
            Some(r#"idempotency key "k" was used for a different order (order 4: 1 x Lego; this request: 2 x Tux)"#)
        );
    }

    #[test]
    fn refusals_round_trip() {
        let s = Status { last: 4, last_epoch: 2, epoch: 3 };
        let r = refused(Refusal::Gap, "gap", s);
        let resp = NetResponse { status: r.status, body: r.body.clone() };
        assert_eq!(refusal(&resp), Some((Refusal::Gap, s)));
        assert_eq!(refusal(&NetResponse { status: 409, body: json!({}) }), None);
    }

    #[test]
    fn records_travel_as_their_log_lines() {
        let order = |number, name: &str, key: &str| Order { number, name: name.into(), quantity: 2, price: "1.50".into(), key: key.into() };
        let records = vec![
            Record::epoch_record(0, 1),
            Record::order_record(1, 1, order(0, "Tux", "k0")),
            // Fields the CSV quotes travel quoted, as in the file.
            Record::order_record(2, 1, order(1, "Lego, \"big\"", " k1 ")),
        ];
        let msg = Replicate { leader: 1, epoch: 1, prev: None, records: records.clone() };
        let wire = serde_json::to_value(&msg).unwrap();
        let text: String = records.iter().map(Record::to_line).collect();
        assert_eq!(wire["records"], text.as_str());
        let back: Replicate = serde_json::from_value(wire).unwrap();
        assert_eq!(back.records, records);
        assert_eq!(lines::from_text(""), Ok(vec![]));
        // Each line must be whole and canonical, as when the log itself is read.
        for bad in ["0,1,epoch,,,,,", "0,1,epoch,,,,,\n\n", "0,01,epoch,,,,,\n", "0,1,epoch,,,,,\r\n", "0,1,order,0,,2,1.50,k\n"] {
            assert!(lines::from_text(bad).is_err(), "{bad:?}");
        }
    }
}
