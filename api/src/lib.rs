//! toystore's JSON envelope, the one shape of every HTTP body the system writes:
//! `{"data": ...}` on success and `{"error": {"code": 404, "message": "product not found"}}` on
//! failure. The components, the host's own replies, the admin CLI, the client and the tests all
//! build and read it through this crate, so the shape is defined once. A replica's `/ping`
//! answer is typed here too ([`ReplicaPing`]): the host reads what the order service writes.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

mod ping;
pub use ping::{ReplicaPing, ReplicaRole};

/// A whole body: either `{"data": T}` or `{"error": ErrorBody}`.
///
/// Serde's externally tagged enum is exactly the wire shape, so both directions come for free.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Envelope<T = Value> {
    Data(T),
    Error(ErrorBody),
}

/// The `error` member: the HTTP status again, a readable message, and any extra members a
/// reply carries (the order service's 409 adds `reason`, `leader`, `epoch`, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: u16,
    pub message: String,
    /// Members beyond `code` and `message`, kept as they are.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ErrorBody {
    pub fn new(code: u16, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), extra: Map::new() }
    }

    /// Adds an extra member (e.g. `leader`) next to `code` and `message`.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_string(), value.into());
        self
    }
}

impl<T> Envelope<T> {
    /// `{"error": {"code": code, "message": message}}`.
    pub fn error(code: u16, message: impl Into<String>) -> Self {
        Envelope::Error(ErrorBody::new(code, message))
    }

    pub fn into_result(self) -> Result<T, ErrorBody> {
        match self {
            Envelope::Data(d) => Ok(d),
            Envelope::Error(e) => Err(e),
        }
    }
}

impl<T: Serialize> Envelope<T> {
    /// The envelope as a JSON value. Serialising plain data cannot fail; should a `T` refuse
    /// (a map with non-string keys), the data becomes `null` rather than a panic.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or_else(|_| data_value(Value::Null))
    }
}

/// `{"data": data}` as a JSON value. Built directly rather than through [`Envelope::to_value`],
/// which would copy the data's value tree a second time (every reply of every component goes
/// through here; a cache hit is little more than this).
pub fn data_value(data: impl Serialize) -> Value {
    data_envelope(serde_json::to_value(data).unwrap_or(Value::Null))
}

/// `{"data": data}` around a value the caller already holds, moved in, not copied.
pub fn data_envelope(data: Value) -> Value {
    let mut body = Map::new();
    body.insert("data".to_string(), data);
    Value::Object(body)
}

/// The `data` of an order query (`GET /orders/<n>` and every other spelling of that route, at
/// the frontend and at the order leader): the store's own fields, and beside them the seed
/// implementation's spellings of the first three (`"Order number"`, `"Toy name"`,
/// `"Quantity"`), which the seed's client compares with what it ordered in its final check.
/// Defined once here so the two spellings cannot drift apart. `price` is `null` when unknown.
pub fn order_data(number: u64, name: &str, quantity: i64, price: Option<serde_json::Number>) -> Value {
    let mut data = Map::new();
    data.insert("number".to_string(), number.into());
    data.insert("name".to_string(), name.into());
    data.insert("quantity".to_string(), quantity.into());
    data.insert("price".to_string(), price.map_or(Value::Null, Value::Number));
    data.insert(SEED_ORDER_NUMBER.to_string(), number.into());
    data.insert(SEED_TOY_NAME.to_string(), name.into());
    data.insert(SEED_QUANTITY.to_string(), quantity.into());
    Value::Object(data)
}

/// The seed implementation's member names in an order query's `data` (see [`order_data`]).
pub const SEED_ORDER_NUMBER: &str = "Order number";
pub const SEED_TOY_NAME: &str = "Toy name";
pub const SEED_QUANTITY: &str = "Quantity";

/// `{"error": {"code": code, "message": message}}` as a JSON value.
pub fn error_value(code: u16, message: impl Into<String>) -> Value {
    Envelope::<Value>::error(code, message).to_value()
}

/// The `error` member of a body, if it is an error envelope (extra top-level members, which
/// some test doubles add, are ignored).
pub fn error_of(body: &Value) -> Option<ErrorBody> {
    serde_json::from_value(body.get("error")?.clone()).ok()
}

/// The `data` member of a body, if it is a success envelope.
pub fn data_of(body: &Value) -> Option<&Value> {
    body.get("data")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wire_shape_both_ways() {
        assert_eq!(data_value(json!({"n": 3})), json!({"data": {"n": 3}}));
        let e = error_value(404, "product not found");
        assert_eq!(e, json!({"error": {"code": 404, "message": "product not found"}}));
        let parsed: Envelope = serde_json::from_value(e).unwrap();
        assert_eq!(parsed.into_result().unwrap_err().message, "product not found");
        let parsed: Envelope<Vec<u32>> = serde_json::from_value(json!({"data": [1, 2]})).unwrap();
        assert_eq!(parsed, Envelope::Data(vec![1, 2]));
    }

    #[test]
    fn an_order_answer_carries_both_spellings() {
        let price = serde_json::Number::from_f64(25.99);
        assert_eq!(
            order_data(7, "Tux", 2, price),
            json!({"number": 7, "name": "Tux", "quantity": 2, "price": 25.99,
                   "Order number": 7, "Toy name": "Tux", "Quantity": 2})
        );
        assert_eq!(order_data(0, "Fox", 1, None)["price"], Value::Null);
    }

    #[test]
    fn extra_error_members_survive() {
        let e = Envelope::<Value>::Error(ErrorBody::new(409, "stale").with("reason", "stale").with("epoch", 2));
        let v = e.to_value();
        assert_eq!(v, json!({"error": {"code": 409, "message": "stale", "reason": "stale", "epoch": 2}}));
        let back = error_of(&v).unwrap();
        assert_eq!(back.extra["reason"], "stale");
        assert_eq!(error_of(&json!({"data": 1})), None);
    }
}
