//! The catalog's table of toys: parsing and writing `catalog.csv`, and the stock arithmetic.
//!
//! Everything here is pure (bytes in, bytes out) so it unit-tests without a file system; the
//! service decides when to read and when to write durably.
//!
//! The file is `name,price,quantity` with one row per toy. Row order is kept exactly, and the
//! price is kept as the text it was written with (`34.50` stays `34.50` in the file) while it is
//! served as a JSON number (`34.5`): rewriting the file after a buy changes only the quantity.

use serde_json::{json, Value};

/// The header every catalog file starts with.
pub const HEADER: [&str; 3] = ["name", "price", "quantity"];

/// One toy.
#[derive(Debug, Clone, PartialEq)]
pub struct Product {
    /// Exact, case-sensitive name.
    pub name: String,
    /// The price as written in the file (validated to be a finite, non-negative number).
    pub price: String,
    pub quantity: u64,
}

impl Product {
    /// The JSON the services exchange: `{"name":"Tux","price":25.99,"quantity":100}`.
    pub fn to_json(&self) -> Value {
        // Validated at parse time; a price that somehow does not parse is served as null
        // rather than taking the service down.
        let price = self
            .price
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or(Value::Null);
        json!({ "name": self.name, "price": price, "quantity": self.quantity })
    }
}

/// Why a catalog file could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InventoryError {
    #[error("catalog.csv: header must be `name,price,quantity`, found `{0}`")]
    BadHeader(String),
    #[error("catalog.csv line {line}: {reason}")]
    BadRow { line: u64, reason: String },
}

/// Why a stock change was refused. Each maps to one client-facing reply.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StockError {
    #[error("product not found")]
    UnknownProduct,
    #[error("not enough stock: only {left} left")]
    NotEnough { left: u64 },
    #[error("quantity must be a positive integer")]
    InvalidQuantity,
    #[error("quantity too large: stock would overflow")]
    Overflow,
}

/// All toys, in file order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Inventory {
    rows: Vec<Product>,
}

impl Inventory {
    pub fn new(rows: Vec<Product>) -> Self {
        Self { rows }
    }

    /// Parse a whole `catalog.csv`. An empty file is an empty catalog; anything malformed is
    /// an error rather than a guess, because the next write would otherwise persist the guess.
    pub fn parse(bytes: &[u8]) -> Result<Self, InventoryError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::default());
        }
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .trim(csv::Trim::All)
            .from_reader(bytes);
        let header = reader
            .headers()
            .map_err(|e| InventoryError::BadHeader(e.to_string()))?
            .clone();
        if header.iter().collect::<Vec<_>>() != HEADER {
            return Err(InventoryError::BadHeader(header.iter().collect::<Vec<_>>().join(",")));
        }
        let mut rows: Vec<Product> = Vec::new();
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
            let [name, price, quantity] = [0, 1, 2].map(|i| record.get(i).unwrap_or(""));
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
            let quantity = quantity
                .parse::<u64>()
                .map_err(|_| bad(format!("quantity `{quantity}` is not a non-negative integer")))?;
            rows.push(Product { name: name.to_string(), price: price.to_string(), quantity });
        }
        Ok(Self { rows })
    }

    /// The file contents: header, then the rows in their original order.
    pub fn to_csv(&self) -> Vec<u8> {
        let mut writer = csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).from_writer(Vec::new());
        // Writing to a Vec cannot fail; errors would only come from the sink.
        let _ = writer.write_record(HEADER);
        for p in &self.rows {
            let quantity = p.quantity.to_string();
            let _ = writer.write_record([p.name.as_str(), p.price.as_str(), quantity.as_str()]);
        }
        writer.into_inner().unwrap_or_default()
    }

    pub fn products(&self) -> &[Product] {
        &self.rows
    }

    /// Exact, case-sensitive lookup.
    pub fn get(&self, name: &str) -> Option<&Product> {
        self.rows.iter().find(|p| p.name == name)
    }

    fn get_mut(&mut self, name: &str) -> Result<&mut Product, StockError> {
        self.rows.iter_mut().find(|p| p.name == name).ok_or(StockError::UnknownProduct)
    }

    /// Take `quantity` of a toy. All or nothing: never takes more than is left.
    /// Returns the toy as it is afterwards.
    pub fn take(&mut self, name: &str, quantity: u64) -> Result<Product, StockError> {
        if quantity == 0 {
            return Err(StockError::InvalidQuantity);
        }
        let p = self.get_mut(name)?;
        if p.quantity < quantity {
            return Err(StockError::NotEnough { left: p.quantity });
        }
        p.quantity -= quantity;
        Ok(p.clone())
    }

    /// Give back `quantity` of a toy (an order that took it did not commit).
    pub fn give_back(&mut self, name: &str, quantity: u64) -> Result<Product, StockError> {
        if quantity == 0 {
            return Err(StockError::InvalidQuantity);
        }
        let p = self.get_mut(name)?;
        p.quantity = p.quantity.checked_add(quantity).ok_or(StockError::Overflow)?;
        Ok(p.clone())
    }

    /// Set every toy with `quantity <= threshold` to `amount`. Returns the names that changed,
    /// in file order (a toy already at `amount` is not a change).
    pub fn restock(&mut self, threshold: u64, amount: u64) -> Vec<String> {
        let mut changed = Vec::new();
        for p in &mut self.rows {
            if p.quantity <= threshold && p.quantity != amount {
                p.quantity = amount;
                changed.push(p.name.clone());
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = "name,price,quantity\nTux,25.99,100\nFox,19.99,100\nWhale,34.50,100\n";

    #[test]
    fn round_trip_keeps_header_order_and_price_text() {
        let inv = Inventory::parse(SEED.as_bytes()).unwrap();
        let names: Vec<_> = inv.products().iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["Tux", "Fox", "Whale"]);
        assert_eq!(String::from_utf8(inv.to_csv()).unwrap(), SEED);
        assert_eq!(Inventory::parse(&inv.to_csv()).unwrap(), inv);
    }

    #[test]
    fn the_real_seed_parses_and_round_trips() {
        let seed = include_str!("../../../data/catalog.csv");
        let inv = Inventory::parse(seed.as_bytes()).unwrap();
        assert_eq!(inv.products().len(), 10);
        assert!(inv.products().iter().all(|p| p.quantity == 100));
        assert_eq!(String::from_utf8(inv.to_csv()).unwrap(), seed);
    }

    #[test]
    fn json_has_numeric_price() {
        let inv = Inventory::parse(SEED.as_bytes()).unwrap();
        assert_eq!(inv.get("Tux").unwrap().to_json(), json!({"name":"Tux","price":25.99,"quantity":100}));
        assert_eq!(inv.get("Whale").unwrap().to_json()["price"], json!(34.5));
    }

    #[test]
    fn names_with_commas_and_quotes_survive() {
        let mut inv = Inventory::new(vec![Product { name: "Rock, \"Paper\"".into(), price: "1".into(), quantity: 3 }]);
        inv.take("Rock, \"Paper\"", 1).unwrap();
        let back = Inventory::parse(&inv.to_csv()).unwrap();
        assert_eq!(back, inv);
    }

    #[test]
    fn tolerant_of_whitespace_crlf_and_blank_lines() {
        let inv = Inventory::parse(b"name, price ,quantity\r\nTux , 25.99, 7\r\n\r\n").unwrap();
        assert_eq!(inv.get("Tux").unwrap().quantity, 7);
        assert!(Inventory::parse(b"").unwrap().products().is_empty());
        assert!(Inventory::parse(b"name,price,quantity\n").unwrap().products().is_empty());
    }

    #[test]
    fn malformed_files_are_errors() {
        for bad in [
            "name,cost,quantity\nTux,1,1\n",
            "name,price\nTux,1\n",
            "name,price,quantity\nTux,abc,1\n",
            "name,price,quantity\nTux,-1,1\n",
            "name,price,quantity\nTux,NaN,1\n",
            "name,price,quantity\nTux,1,-1\n",
            "name,price,quantity\nTux,1,1.5\n",
            "name,price,quantity\n,1,1\n",
            "name,price,quantity\nTux,1,1\nTux,2,2\n",
            "name,price,quantity\nTux,1,1,extra\n",
            "name,price,quantity\nTux,1\n",
        ] {
            assert!(Inventory::parse(bad.as_bytes()).is_err(), "accepted: {bad:?}");
        }
    }

    #[test]
    fn take_is_all_or_nothing() {
        let mut inv = Inventory::parse(SEED.as_bytes()).unwrap();
        assert_eq!(inv.take("Tux", 40).unwrap().quantity, 60);
        assert_eq!(inv.take("Tux", 61), Err(StockError::NotEnough { left: 60 }));
        assert_eq!(inv.get("Tux").unwrap().quantity, 60, "a refused take changes nothing");
        assert_eq!(inv.take("Tux", 60).unwrap().quantity, 0);
        assert_eq!(inv.take("Tux", 1), Err(StockError::NotEnough { left: 0 }));
        assert_eq!(inv.take("tux", 1), Err(StockError::UnknownProduct), "names are case-sensitive");
        assert_eq!(inv.take("Fox", 0), Err(StockError::InvalidQuantity));
        assert_eq!(StockError::NotEnough { left: 3 }.to_string(), "not enough stock: only 3 left");
    }

    #[test]
    fn give_back_adds_and_checks_overflow() {
        let mut inv = Inventory::parse(SEED.as_bytes()).unwrap();
        inv.take("Fox", 30).unwrap();
        assert_eq!(inv.give_back("Fox", 30).unwrap().quantity, 100);
        assert_eq!(inv.give_back("Fox", u64::MAX), Err(StockError::Overflow));
        assert_eq!(inv.get("Fox").unwrap().quantity, 100);
        assert_eq!(inv.give_back("Nope", 1), Err(StockError::UnknownProduct));
        assert_eq!(inv.give_back("Fox", 0), Err(StockError::InvalidQuantity));
    }

    #[test]
    fn restock_only_at_or_below_threshold() {
        let mut inv = Inventory::parse(SEED.as_bytes()).unwrap();
        inv.take("Tux", 90).unwrap(); // 10: at the threshold
        inv.take("Fox", 89).unwrap(); // 11: above it
        inv.take("Whale", 100).unwrap(); // 0
        assert_eq!(inv.restock(10, 100), ["Tux", "Whale"]);
        let q: Vec<_> = inv.products().iter().map(|p| p.quantity).collect();
        assert_eq!(q, [100, 11, 100]);
        assert!(inv.restock(10, 100).is_empty(), "nothing left to restock");
    }
}
