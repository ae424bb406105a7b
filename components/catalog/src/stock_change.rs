//! The body of `POST /buy` and `POST /release`: `{"name": "Tux", "quantity": 2, "key": "..."}`.
//!
//! Validated field by field so a caller learns exactly what is wrong (a 400 that changes
//! nothing) instead of a generic decode error.
//!
//! `key` is the order's idempotency key. The catalog accepts it (a string, when present) and
//! names it in error messages, but does not deduplicate on it: the order leader already
//! answers a repeated key with the order it numbered, and a catalog that remembered keys would
//! need a second durable file updated atomically with `catalog.csv`. See ARCHITECTURE.md
//! ("Guarantees") for the one window where stock can stay taken.

use serde_json::Value;
use toystore_guest::Reply;

/// A validated request to take or give back stock.
#[derive(Debug, Clone, PartialEq)]
pub struct StockChange {
    pub name: String,
    pub quantity: u64,
    pub key: Option<String>,
}

impl StockChange {
    /// Parse and validate a request body, or the 400 reply to send.
    pub fn parse(body: &[u8]) -> Result<Self, Reply> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(Reply::bad_request("request body must be a JSON object"));
        }
        let v: Value =
            serde_json::from_slice(body).map_err(|e| Reply::bad_request(format!("invalid JSON body: {e}")))?;
        let obj = v.as_object().ok_or_else(|| Reply::bad_request("request body must be a JSON object"))?;
        let name = match obj.get("name") {
            None | Some(Value::Null) => return Err(Reply::bad_request("missing field `name`")),
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(_) => return Err(Reply::bad_request("`name` must be a non-empty string")),
        };
        let quantity = parse_quantity(obj.get("quantity"))?;
        let key = match obj.get("key") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(Reply::bad_request("`key` must be a string")),
        };
        Ok(Self { name, quantity, key })
    }
}

/// A quantity must be a JSON integer ≥ 1: not a string, not `2.5`, not `0` or negative.
pub fn parse_quantity(v: Option<&Value>) -> Result<u64, Reply> {
    let bad = || Reply::bad_request("`quantity` must be a positive integer");
    match v {
        None | Some(Value::Null) => Err(Reply::bad_request("missing field `quantity`")),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(q) if q > 0 => Ok(q),
            _ => Err(bad()),
        },
        Some(_) => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_bodies() {
        let c = StockChange::parse(br#"{"name":"Tux","quantity":2,"key":"k1"}"#).unwrap();
        assert_eq!(c, StockChange { name: "Tux".into(), quantity: 2, key: Some("k1".into()) });
        let c = StockChange::parse(br#" {"quantity":1,"name":"Fox","extra":true} "#).unwrap();
        assert_eq!((c.name.as_str(), c.quantity, c.key), ("Fox", 1, None));
    }

    #[test]
    fn every_bad_body_is_a_clear_400() {
        let cases: &[(&str, &str)] = &[
            ("", "must be a JSON object"),
            ("   ", "must be a JSON object"),
            ("{nope", "invalid JSON"),
            ("[1,2]", "must be a JSON object"),
            ("\"Tux\"", "must be a JSON object"),
            (r#"{"quantity":1}"#, "missing field `name`"),
            (r#"{"name":null,"quantity":1}"#, "missing field `name`"),
            (r#"{"name":"","quantity":1}"#, "non-empty string"),
            (r#"{"name":7,"quantity":1}"#, "non-empty string"),
            (r#"{"name":"Tux"}"#, "missing field `quantity`"),
            (r#"{"name":"Tux","quantity":0}"#, "positive integer"),
            (r#"{"name":"Tux","quantity":-3}"#, "positive integer"),
            (r#"{"name":"Tux","quantity":2.5}"#, "positive integer"),
            (r#"{"name":"Tux","quantity":2.0}"#, "positive integer"),
            (r#"{"name":"Tux","quantity":"2"}"#, "positive integer"),
            (r#"{"name":"Tux","quantity":true}"#, "positive integer"),
            (r#"{"name":"Tux","quantity":1e400}"#, "invalid JSON"),
            (r#"{"name":"Tux","quantity":1,"key":5}"#, "`key` must be a string"),
        ];
        for (body, want) in cases {
            let err = StockChange::parse(body.as_bytes()).unwrap_err();
            assert_eq!(err.status, 400, "{body}");
            let msg = err.error_message().unwrap_or_default();
            assert!(msg.contains(want), "{body}: {msg}");
        }
    }
}
