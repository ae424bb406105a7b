//! The catalog's table of toys: parsing and writing `catalog.csv`, and the stock arithmetic.
//!
//! Everything here is pure (bytes in, bytes out) so it unit-tests without a file system; the
//! service decides when to read and when to write durably.
//!
//! ## The file
//! `name,price,quantity,seeded,restocked,applied_orders`, one row per toy. Stock changes in
//! exactly two ways, each one rewrite of the whole file (ARCHITECTURE.md, "Stock"):
//! - [`Inventory::apply`]: committed orders, in order-number order, each exactly once;
//!   `applied_orders` counts the orders (numbers `0..applied_orders`) reflected in `quantity`.
//! - [`Inventory::restock`]: adds its delta to `quantity` and to `restocked` together.
//!
//! So for every toy, by construction, `seeded + restocked - quantity` is the quantity of the
//! applied orders for it: the conservation invariant `toystore check` verifies.
//! `applied_orders` is one number for the whole file; it is written in every row (so the file
//! stays plain CSV) and every row must agree.
//!
//! The seed form `name,price,quantity` (what `data/catalog.csv` ships) reads as
//! `seeded = quantity, restocked = 0, applied_orders = 0`; the first change writes the full form.
//!
//! Row order is kept exactly, and the price is kept as the text it was written with (`34.50`
//! stays `34.50` in the file and in the order log) while it is served as a JSON number (`34.5`).
//!
//! `quantity` is signed on purpose: the log is the authority for stock, so a committed order is
//! applied even if it takes a toy below zero. That can only happen through a bug (the order
//! leader admits only what its stock view says is there); writing the negative number keeps
//! the evidence for `toystore check` instead of clipping it away.

use serde_json::{json, Value};

/// The header every catalog file is written with.
pub const HEADER: [&str; 6] = ["name", "price", "quantity", "seeded", "restocked", "applied_orders"];

/// The seed's header (read, never written).
pub const SEED_HEADER: [&str; 3] = ["name", "price", "quantity"];

/// One toy.
#[derive(Debug, Clone, PartialEq)]
pub struct Product {
    /// Exact, case-sensitive name.
    pub name: String,
    /// The price as written in the file (validated to be a finite, non-negative number).
    pub price: String,
    /// What is left: `seeded + restocked - Σ applied orders`. Negative only after an oversell.
    pub quantity: i64,
    /// The quantity the toy started with (never changes).
    pub seeded: i64,
    /// The sum of every restock's delta.
    pub restocked: i64,
}

impl Product {
    /// The price as a JSON number (validated at parse time; a price that somehow does not
    /// parse is served as null rather than taking the service down).
    fn price_json(&self) -> Value {
        self.price
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }

    /// The JSON lookups answer: `{"name":"Tux","price":25.99,"quantity":100}`.
    pub fn to_json(&self) -> Value {
        json!({ "name": self.name, "price": self.price_json(), "quantity": self.quantity })
    }

    /// The JSON of `GET /stock`: the lookup's, plus the exact price text for the order log.
    pub fn to_stock_json(&self) -> Value {
        json!({ "name": self.name, "price": self.price_json(), "price_text": self.price, "quantity": self.quantity })
    }

    /// How much of this toy the applied orders took: `seeded + restocked - quantity`.
    pub fn taken(&self) -> i128 {
        i128::from(self.seeded) + i128::from(self.restocked) - i128::from(self.quantity)
    }
}

/// Why a catalog file could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InventoryError {
    #[error("catalog.csv: header must be `name,price,quantity,seeded,restocked,applied_orders` (or the seed's `name,price,quantity`), found `{0}`")]
    BadHeader(String),
    #[error("catalog.csv line {line}: {reason}")]
    BadRow { line: u64, reason: String },
}

/// One committed order as the catalog applies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLine {
    pub number: u64,
    pub name: String,
    pub quantity: u64,
}

/// Why a batch of orders was refused. Nothing is applied when any of these is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// The batch starts after the first order not applied yet: the sender must resend from
    /// `applied_orders`.
    #[error("gap: orders from {from} sent, but only {applied_orders} applied (resend from {applied_orders})")]
    Gap { from: u64, applied_orders: u64 },
    /// Order numbers must be `from, from + 1, ...`.
    #[error("order numbers must be contiguous from {from}: position {position} has number {number}")]
    NotContiguous { from: u64, position: usize, number: u64 },
    /// A committed order names a toy the catalog does not have (a correct leader never sends one).
    #[error("order {number} names unknown toy `{name}`")]
    UnknownProduct { number: u64, name: String },
    #[error("order {number}: quantity {quantity} is out of range")]
    Overflow { number: u64, quantity: u64 },
}

/// What [`Inventory::apply`] did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Applied {
    /// Toys whose quantity changed, in file order (empty: nothing to write).
    pub changed: Vec<String>,
    /// Toys left below zero (a bug upstream: see the module doc), with their quantity.
    pub oversold: Vec<(String, i64)>,
}

/// All toys, in file order, and how many committed orders they reflect.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Inventory {
    rows: Vec<Product>,
    applied_orders: u64,
}

impl Inventory {
    /// A fresh table (nothing applied yet).
    pub fn new(rows: Vec<Product>) -> Self {
        Self { rows, applied_orders: 0 }
    }

    /// Parse a whole `catalog.csv`. An empty file is an empty catalog; anything malformed is
    /// an error rather than a guess, because the next write would otherwise persist the guess.
    pub fn parse(bytes: &[u8]) -> Result<Self, InventoryError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::default());
        }
        let mut reader = csv::ReaderBuilder::new().has_headers(true).trim(csv::Trim::All).from_reader(bytes);
        let header = reader.headers().map_err(|e| InventoryError::BadHeader(e.to_string()))?.clone();
        let header: Vec<&str> = header.iter().collect();
        let seed_form = if header == HEADER {
            false
        } else if header == SEED_HEADER {
            true
        } else {
            return Err(InventoryError::BadHeader(header.join(",")));
        };
        let mut rows: Vec<Product> = Vec::new();
        let mut applied: Option<u64> = None;
        for record in reader.records() {
            let record = record.map_err(|e| InventoryError::BadRow {
                line: e.position().map(|p| p.line()).unwrap_or(0),
                reason: e.to_string(),
            })?;
            let line = record.position().map(|p| p.line()).unwrap_or(0);
            let bad = |reason: String| InventoryError::BadRow { line, reason };
            if record.iter().all(str::is_empty) {
                continue; // a blank line, e.g. a trailing one
            }
            let field = |i: usize| record.get(i).unwrap_or("");
            let (name, price) = (field(0), field(1));
            if name.is_empty() {
                return Err(bad("empty name".into()));
            }
            if rows.iter().any(|p| p.name == name) {
                return Err(bad(format!("duplicate name `{name}`")));
            }
            match price.parse::<f64>() {
                Ok(p) if p.is_finite() && p >= 0.0 => {}
                _ => return Err(bad(format!("price `{price}` is not a non-negative number"))),
            }
            let count = |column: &str, text: &str| {
                text.parse::<i64>()
                    .ok()
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| bad(format!("{column} `{text}` is not a non-negative integer")))
            };
            let product = if seed_form {
                let quantity = count("quantity", field(2))?;
                Product { name: name.into(), price: price.into(), quantity, seeded: quantity, restocked: 0 }
            } else {
                let quantity = field(2)
                    .parse::<i64>()
                    .map_err(|_| bad(format!("quantity `{}` is not an integer", field(2))))?;
                let seeded = count("seeded", field(3))?;
                let restocked = count("restocked", field(4))?;
                let row_applied = field(5)
                    .parse::<u64>()
                    .map_err(|_| bad(format!("applied_orders `{}` is not a non-negative integer", field(5))))?;
                match applied {
                    Some(a) if a != row_applied => {
                        return Err(bad(format!("applied_orders {row_applied} differs from the rows above ({a})")))
                    }
                    _ => applied = Some(row_applied),
                }
                Product { name: name.into(), price: price.into(), quantity, seeded, restocked }
            };
            rows.push(product);
        }
        Ok(Self { rows, applied_orders: applied.unwrap_or(0) })
    }

    /// The file contents in the full form: header, then the rows in their original order.
    pub fn to_csv(&self) -> Vec<u8> {
        let mut writer = csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).from_writer(Vec::new());
        let applied = self.applied_orders.to_string();
        // Writing to a Vec cannot fail; errors would only come from the sink.
        let _ = writer.write_record(HEADER);
        for p in &self.rows {
            let [quantity, seeded, restocked] = [p.quantity, p.seeded, p.restocked].map(|n| n.to_string());
            let _ = writer.write_record([&p.name, &p.price, &quantity, &seeded, &restocked, &applied]);
        }
        writer.into_inner().unwrap_or_default()
    }

    pub fn products(&self) -> &[Product] {
        &self.rows
    }

    /// How many committed orders (numbers `0..applied_orders`) the quantities reflect.
    pub fn applied_orders(&self) -> u64 {
        self.applied_orders
    }

    /// Exact, case-sensitive lookup.
    pub fn get(&self, name: &str) -> Option<&Product> {
        self.rows.iter().find(|p| p.name == name)
    }

    /// `GET /stock`'s data: the quantities and `applied_orders` as one consistent pair.
    pub fn stock_json(&self) -> Value {
        let toys: Vec<Value> = self.rows.iter().map(Product::to_stock_json).collect();
        json!({ "applied_orders": self.applied_orders, "toys": toys })
    }

    /// Apply committed orders `from, from + 1, ...`: those below `applied_orders` are skipped
    /// (already applied: a resend is harmless), the rest are taken in number order. All or
    /// nothing: on any error the table is unchanged.
    ///
    /// Never refuses for lack of stock: the order is committed, so the log says the stock is
    /// gone. A toy left below zero is reported in [`Applied::oversold`].
    pub fn apply(&mut self, from: u64, orders: &[OrderLine]) -> Result<Applied, ApplyError> {
        if from > self.applied_orders {
            return Err(ApplyError::Gap { from, applied_orders: self.applied_orders });
        }
        for (position, o) in orders.iter().enumerate() {
            if Some(o.number) != from.checked_add(position as u64) {
                return Err(ApplyError::NotContiguous { from, position, number: o.number });
            }
        }
        let fresh: Vec<&OrderLine> = orders.iter().filter(|o| o.number >= self.applied_orders).collect();
        let mut next = self.rows.clone();
        for o in &fresh {
            let row = next
                .iter_mut()
                .find(|p| p.name == o.name)
                .ok_or_else(|| ApplyError::UnknownProduct { number: o.number, name: o.name.clone() })?;
            let overflow = || ApplyError::Overflow { number: o.number, quantity: o.quantity };
            let q = i64::try_from(o.quantity).map_err(|_| overflow())?;
            row.quantity = row.quantity.checked_sub(q).ok_or_else(overflow)?;
        }
        let Some(last) = fresh.last() else { return Ok(Applied::default()) };
        let mut applied = Applied::default();
        for (before, after) in self.rows.iter().zip(&next) {
            if before.quantity != after.quantity {
                applied.changed.push(after.name.clone());
            }
            if after.quantity < 0 {
                applied.oversold.push((after.name.clone(), after.quantity));
            }
        }
        self.rows = next;
        self.applied_orders = last.number + 1;
        Ok(applied)
    }

    /// Raise every toy with `quantity <= threshold` to `amount`, recording the delta in
    /// `restocked` in the same row. Returns the names that changed, in file order.
    ///
    /// Restocking only ever adds: a toy at or above `amount` is left alone (with a threshold
    /// above the amount, lowering it could take stock the order leader has already admitted).
    pub fn restock(&mut self, threshold: u64, amount: u64) -> Vec<String> {
        let threshold = i64::try_from(threshold).unwrap_or(i64::MAX);
        let amount = i64::try_from(amount).unwrap_or(i64::MAX);
        let mut changed = Vec::new();
        for p in &mut self.rows {
            if p.quantity > threshold || p.quantity >= amount {
                continue;
            }
            // amount > quantity, so the delta is positive; it fits unless quantity is absurdly
            // negative, and then the toy is left for a person (and `toystore check`) to see.
            let Some(delta) = amount.checked_sub(p.quantity) else { continue };
            let Some(restocked) = p.restocked.checked_add(delta) else { continue };
            p.quantity = amount;
            p.restocked = restocked;
            changed.push(p.name.clone());
        }
        changed
    }
}

#[cfg(test)]
mod tests;
