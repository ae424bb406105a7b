//! The leader's stock view: may this order be admitted? (ARCHITECTURE.md, "Stock".) The
//! decision only; reading the catalog is [`crate::stock`]'s.
//!
//! The replicated order log is the only authority for stock. The catalog's quantities change
//! only by applying committed orders in number order (it counts them in `applied_orders`, in
//! the same atomic file as the quantities) and by restocks. So with `base` = one `GET /stock`
//! answer (the quantities and `applied_orders` read as one pair):
//!
//! `available(toy) = base.quantity(toy) − Σ quantity of our log's orders with number ≥ base.applied_orders`
//!
//! The catalog has applied exactly orders `0..applied_orders`, which are committed, hence the
//! same in our log (a ready leader's log holds every committed order); everything after them in
//! our log is counted as taken, committed or not — conservative, never oversells. A stale base
//! only misses restocks (applies and restocks move it forward), so when an order is short the
//! driver reads `/stock` once more before refusing.
//!
//! [`admit`] is the decision, a pure function with table tests; the sums come from
//! [`crate::log::Log::pending`]; `stock` reads the base from the catalog.

use std::collections::HashMap;

use serde::Deserialize;

/// One toy as `GET /stock` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Toy {
    pub name: String,
    pub quantity: i64,
    /// The price exactly as the catalog file spells it (what the order log records).
    pub price_text: String,
}

/// The body of `GET /stock` (and of a successful `POST /apply`).
#[derive(Debug, Clone, Deserialize)]
pub struct StockAnswer {
    pub applied_orders: u64,
    pub toys: Vec<Toy>,
}

/// The catalog's stock as one consistent pair: quantities after applying orders
/// `0..applied_orders` (and every restock so far).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Base {
    pub applied_orders: u64,
    pub toys: HashMap<String, Toy>,
}

impl From<StockAnswer> for Base {
    fn from(a: StockAnswer) -> Base {
        Base { applied_orders: a.applied_orders, toys: a.toys.into_iter().map(|t| (t.name.clone(), t)).collect() }
    }
}

/// What the leader does with an order, given its stock view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// There is enough: number it, at this unit price (the catalog's text).
    Admit { price: String },
    /// Not enough: `left` is what the view says is there (never negative).
    Short { left: i64 },
    /// The catalog does not know this toy.
    Unknown,
    /// The catalog has applied orders this log does not hold. A ready leader's log holds every
    /// committed order, so this is a catalog that is not ours (or a bug): admit nothing.
    BaseAhead,
}

/// May `quantity` of `toy` be admitted? `pending` is Σ quantity of `toy` over our log's orders
/// with number ≥ `base.applied_orders`; `logged` how many orders our log holds.
pub fn admit(base: &Base, toy: &str, quantity: i64, pending: i64, logged: u64) -> Admission {
    if base.applied_orders > logged {
        return Admission::BaseAhead;
    }
    let Some(t) = base.toys.get(toy) else { return Admission::Unknown };
    let available = t.quantity - pending;
    if quantity <= available {
        Admission::Admit { price: t.price_text.clone() }
    } else {
        Admission::Short { left: available.max(0) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(applied_orders: u64, toys: &[(&str, i64)]) -> Base {
        let toys = toys
            .iter()
            .map(|&(name, quantity)| (name.to_string(), Toy { name: name.into(), quantity, price_text: "25.99".into() }))
            .collect();
        Base { applied_orders, toys }
    }

    #[test]
    fn admission() {
        use Admission::*;
        let admit_ = || Admit { price: "25.99".into() };
        // (base, toy, quantity, pending, logged orders) → decision
        let cases: Vec<(&str, Base, &str, i64, i64, u64, Admission)> = vec![
            ("plenty", base(0, &[("Tux", 10)]), "Tux", 3, 0, 0, admit_()),
            ("exactly what is left", base(0, &[("Tux", 10)]), "Tux", 10, 0, 0, admit_()),
            ("one too many", base(0, &[("Tux", 10)]), "Tux", 11, 0, 0, Short { left: 10 }),
            ("pending orders count as taken", base(2, &[("Tux", 10)]), "Tux", 3, 8, 5, Short { left: 2 }),
            ("pending, still enough", base(2, &[("Tux", 10)]), "Tux", 2, 8, 5, admit_()),
            ("applied orders are in the quantity already", base(5, &[("Tux", 2)]), "Tux", 2, 0, 5, admit_()),
            ("an oversold catalog leaves nothing", base(0, &[("Tux", -1)]), "Tux", 1, 0, 0, Short { left: 0 }),
            ("more pending than the base", base(0, &[("Tux", 3)]), "Tux", 1, 5, 2, Short { left: 0 }),
            ("unknown toy", base(0, &[("Tux", 10)]), "Fox", 1, 0, 0, Unknown),
            ("the catalog applied orders we do not hold", base(6, &[("Tux", 10)]), "Tux", 1, 0, 5, BaseAhead),
        ];
        for (name, b, toy, quantity, pending, logged, want) in cases {
            assert_eq!(admit(&b, toy, quantity, pending, logged), want, "{name}");
        }
    }

    #[test]
    fn the_stock_answer_reads_as_one_pair() {
        let v = serde_json::json!({"applied_orders": 3, "toys": [
            {"name": "Tux", "price": 25.99, "price_text": "25.99", "quantity": 7},
            {"name": "Whale", "price": 34.5, "price_text": "34.50", "quantity": 0},
        ]});
        let b = Base::from(serde_json::from_value::<StockAnswer>(v).unwrap());
        assert_eq!(b.applied_orders, 3);
        assert_eq!(b.toys["Whale"].price_text, "34.50");
        assert_eq!(b.toys["Tux"].quantity, 7);
    }
}
