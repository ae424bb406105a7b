//! The body every hop of an order carries — client → frontend → order leader → catalog:
//! `{"name": "Tux", "quantity": 2, "key": "..."}`.
//!
//! One validation for all three services, field by field, so a caller learns exactly what is
//! wrong (a 400 that changes nothing) and no hop accepts what another would refuse.

use serde_json::Value;

use crate::Reply;

/// Longest name or key accepted (bytes).
pub const MAX_TEXT: usize = 200;

/// A validated order line: which toy, how many, and the optional idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemRequest {
    pub name: String,
    pub quantity: u64,
    pub key: Option<String>,
}

impl ItemRequest {
    /// Parse and validate a request body, or the 400 reply to send.
    pub fn parse(body: &[u8]) -> Result<Self, Reply> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(Reply::bad_request("request body must be a JSON object"));
        }
        let v: Value =
            serde_json::from_slice(body).map_err(|e| Reply::bad_request(format!("invalid JSON body: {e}")))?;
        let obj = v.as_object().ok_or_else(|| Reply::bad_request("request body must be a JSON object"))?;
        // `name` (the handout's spelling) or `toy` (the seed document's): one of them, or both alike.
        let field = |k: &str| obj.get(k).filter(|v| !v.is_null());
        let named = match (field("name"), field("toy")) {
            (Some(a), Some(b)) if a != b => {
                return Err(Reply::bad_request("`name` and `toy` name different toys; send one of them"))
            }
            (a, b) => a.or(b),
        };
        let name = match named {
            None => return Err(Reply::bad_request("missing field `name` (or `toy`)")),
            Some(Value::String(s)) if valid_text(s) => s.clone(),
            Some(_) => return Err(Reply::bad_request(format!("`name` must be 1-{MAX_TEXT} printable characters"))),
        };
        let quantity = match obj.get("quantity") {
            None | Some(Value::Null) => return Err(Reply::bad_request("missing field `quantity`")),
            // Not a string, not 2.5, not 0 or negative, and small enough for every hop's i64.
            Some(Value::Number(n)) => n.as_u64().filter(|&q| q > 0 && q <= i64::MAX as u64),
            Some(_) => None,
        }
        .ok_or_else(|| Reply::bad_request("`quantity` must be a positive integer"))?;
        let key = match obj.get("key") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if valid_text(s) => Some(s.clone()),
            Some(_) => return Err(Reply::bad_request(format!("`key` must be 1-{MAX_TEXT} printable characters"))),
        };
        Ok(Self { name, quantity, key })
    }
}

/// Names and keys: non-empty, bounded, no control characters (so a CSV line never holds a raw
/// newline and splitting a file on `\n` stays exact).
pub fn valid_text(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_TEXT && !s.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_bodies() {
        let c = ItemRequest::parse(br#"{"name":"Tux","quantity":2,"key":"k1"}"#).unwrap();
        assert_eq!(c, ItemRequest { name: "Tux".into(), quantity: 2, key: Some("k1".into()) });
        let c = ItemRequest::parse(br#" {"quantity":1,"name":"Fox","extra":true} "#).unwrap();
        assert_eq!((c.name.as_str(), c.quantity, c.key), ("Fox", 1, None));
        // The seed document's spelling, alone or agreeing with `name`.
        assert_eq!(ItemRequest::parse(br#"{"toy":"Fox","quantity":2}"#).unwrap().name, "Fox");
        assert_eq!(ItemRequest::parse(br#"{"toy":"Fox","name":"Fox","quantity":2}"#).unwrap().name, "Fox");
    }

    #[test]
    fn every_bad_body_is_a_clear_400() {
        let long = format!(r#"{{"name":"{}","quantity":1}}"#, "x".repeat(MAX_TEXT + 1));
        let cases: &[(&str, &str)] = &[
            ("", "must be a JSON object"),
            ("  ", "must be a JSON object"),
            ("{nope", "invalid JSON body"),
            ("[1,2]", "must be a JSON object"),
            (r#"{"quantity":1}"#, "missing field `name`"),
            (r#"{"name":null,"quantity":1}"#, "missing field `name`"),
            (r#"{"name":"","quantity":1}"#, "`name` must be"),
            (r#"{"name":7,"quantity":1}"#, "`name` must be"),
            (r#"{"name":"a\nb","quantity":1}"#, "`name` must be"),
            (&long, "`name` must be"),
            (r#"{"name":"Tux"}"#, "missing field `quantity`"),
            (r#"{"toy":"Tux","name":"Fox","quantity":1}"#, "name different toys"),
            (r#"{"toy":7,"quantity":1}"#, "`name` must be"),
            (r#"{"name":"Tux","quantity":0}"#, "positive integer"),
            (r#"{"name":"Tux","quantity":-3}"#, "positive integer"),
            (r#"{"name":"Tux","quantity":1.5}"#, "positive integer"),
            (r#"{"name":"Tux","quantity":"2"}"#, "positive integer"),
            (r#"{"name":"Tux","quantity":18446744073709551615}"#, "positive integer"),
            (r#"{"name":"Tux","quantity":1,"key":7}"#, "`key` must be"),
        ];
        for (body, message) in cases {
            let err = ItemRequest::parse(body.as_bytes()).unwrap_err();
            assert_eq!(err.status, 400, "{body}");
            assert!(err.error_message().unwrap_or("").contains(message), "{body}: {:?}", err.body);
        }
    }
}
