//! `POST /apply`'s body and replies: the order leader pushing committed orders.
//!
//! Body: `{"from": F, "orders": [{"number": F, "name": "Tux", "quantity": 2}, ...]}` with
//! numbers `F, F+1, ...`. Everything is validated before the lock is taken, so a bad body is a
//! 400 that changes nothing. What the batch does to the table is [`Inventory::apply`]'s
//! business; this module only maps its refusals to replies (contract in ARCHITECTURE.md):
//! a gap is a 409 carrying `applied_orders` (the leader resends from there), an unknown toy a
//! 422 (a correct leader never sends one: the toy was in the catalog when it admitted it).
//!
//! [`Inventory::apply`]: crate::inventory::Inventory::apply

use serde_json::Value;
use toystore_guest::api::ErrorBody;
use toystore_guest::item::valid_text;
use toystore_guest::Reply;

use crate::inventory::{ApplyError, OrderLine};

/// A validated `/apply` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyRequest {
    pub from: u64,
    pub orders: Vec<OrderLine>,
}

impl ApplyRequest {
    /// Parse and validate a body, or the 400 reply to send.
    pub fn parse(body: &[u8]) -> Result<Self, Reply> {
        let bad = |message: String| Reply::bad_request(message);
        let v: Value = serde_json::from_slice(body).map_err(|e| bad(format!("invalid JSON body: {e}")))?;
        let obj = v.as_object().ok_or_else(|| bad("request body must be a JSON object".into()))?;
        let from = obj
            .get("from")
            .and_then(Value::as_u64)
            .ok_or_else(|| bad("`from` must be a non-negative integer".into()))?;
        let list = obj
            .get("orders")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("`orders` must be an array".into()))?;
        let mut orders = Vec::with_capacity(list.len());
        for (i, o) in list.iter().enumerate() {
            let field = |k: &str| o.get(k);
            let number = field("number")
                .and_then(Value::as_u64)
                .ok_or_else(|| bad(format!("orders[{i}].number must be a non-negative integer")))?;
            if Some(number) != from.checked_add(i as u64) {
                return Err(bad(format!("orders[{i}].number is {number}: numbers must run from {from} without gaps")));
            }
            let name = match field("name") {
                Some(Value::String(s)) if valid_text(s) => s.clone(),
                _ => return Err(bad(format!("orders[{i}].name must be 1-{} printable characters", toystore_guest::item::MAX_TEXT))),
            };
            // Small enough for the signed stock arithmetic (as every hop of an order checks).
            let quantity = field("quantity")
                .and_then(Value::as_u64)
                .filter(|&q| q > 0 && q <= i64::MAX as u64)
                .ok_or_else(|| bad(format!("orders[{i}].quantity must be a positive integer")))?;
            orders.push(OrderLine { number, name, quantity });
        }
        Ok(Self { from, orders })
    }
}

/// The reply for a batch the table refused (nothing was applied).
pub fn refusal(e: ApplyError) -> Reply {
    match e {
        ApplyError::Gap { applied_orders, .. } => {
            Reply::from_error(ErrorBody::new(409, e.to_string()).with("applied_orders", applied_orders))
        }
        ApplyError::UnknownProduct { .. } | ApplyError::Overflow { .. } => Reply::error(422, e.to_string()),
        // Checked by `ApplyRequest::parse` already; kept total.
        ApplyError::NotContiguous { .. } => Reply::bad_request(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn good_bodies() {
        let r = ApplyRequest::parse(br#"{"from":3,"orders":[{"number":3,"name":"Tux","quantity":2},{"number":4,"name":"Fox","quantity":1}]}"#).unwrap();
        assert_eq!(r.from, 3);
        assert_eq!(r.orders[1], OrderLine { number: 4, name: "Fox".into(), quantity: 1 });
        assert!(ApplyRequest::parse(br#"{"from":0,"orders":[]}"#).unwrap().orders.is_empty());
    }

    #[test]
    fn bad_bodies_are_400() {
        for body in [
            "",
            "{bad",
            "[]",
            r#"{"orders":[]}"#,
            r#"{"from":-1,"orders":[]}"#,
            r#"{"from":1.5,"orders":[]}"#,
            r#"{"from":0}"#,
            r#"{"from":0,"orders":{}}"#,
            r#"{"from":0,"orders":[{"number":1,"name":"Tux","quantity":1}]}"#,
            r#"{"from":0,"orders":[{"number":0,"name":"Tux","quantity":1},{"number":0,"name":"Tux","quantity":1}]}"#,
            r#"{"from":0,"orders":[{"name":"Tux","quantity":1}]}"#,
            r#"{"from":0,"orders":[{"number":0,"name":"","quantity":1}]}"#,
            r#"{"from":0,"orders":[{"number":0,"name":7,"quantity":1}]}"#,
            r#"{"from":0,"orders":[{"number":0,"name":"Tux","quantity":0}]}"#,
            r#"{"from":0,"orders":[{"number":0,"name":"Tux","quantity":"1"}]}"#,
            r#"{"from":0,"orders":[{"number":0,"name":"Tux","quantity":9223372036854775808}]}"#,
            r#"{"from":0,"orders":[7]}"#,
        ] {
            let reply = ApplyRequest::parse(body.as_bytes()).unwrap_err();
            assert_eq!(reply.status, 400, "{body}");
        }
    }

    #[test]
    fn a_gap_carries_where_to_resend_from() {
        let r = refusal(ApplyError::Gap { from: 5, applied_orders: 3 });
        assert_eq!(r.status, 409);
        assert_eq!(r.body["error"]["applied_orders"], json!(3));
        assert_eq!(r.body["error"]["code"], json!(409));
        let r = refusal(ApplyError::UnknownProduct { number: 0, name: "Nope".into() });
        assert_eq!(r.status, 422);
    }
}
