//! One record of `orders.csv`: what an order and an epoch record hold, and the exact bytes of
//! their line (every replica writes the same bytes for the same record).

use csv::QuoteStyle;
use serde::{Deserialize, Serialize};

pub const FILE: &str = "orders.csv";
pub const HEADER: &str = "index,epoch,kind,number,name,quantity,price,key\n";
/// The header of the format before epoch records (refused with a clear error, see [`OldFormat`]).
pub const OLD_HEADER: &str = "number,name,quantity,key,epoch\n";

/// The order an order record carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// The order number (what clients see): contiguous over order records only.
    pub number: u64,
    pub name: String,
    pub quantity: i64,
    /// The unit price as the catalog file spells it (`25.99`, `34.50`) when the order was
    /// admitted: kept as text so every replica writes the same bytes.
    pub price: String,
    pub key: String,
}

impl Order {
    /// Fields that round-trip through one CSV line; orders from peers are checked too.
    pub fn is_valid(&self) -> bool {
        valid_text(&self.name) && valid_text(&self.key) && self.quantity > 0 && valid_price(&self.price)
    }

    /// The price as a JSON number (validated to parse).
    pub fn price_number(&self) -> Option<serde_json::Number> {
        self.price.parse::<f64>().ok().and_then(serde_json::Number::from_f64)
    }
}

/// A price as the catalog writes it: a finite, non-negative decimal with no CSV specials.
pub fn valid_price(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && s.parse::<f64>().is_ok_and(|p| p.is_finite() && p >= 0.0)
}

/// One record as stored and replicated: its position, the epoch of the leader that wrote it,
/// and the order it carries (None: an epoch record). `(index, epoch)` identifies a record (a
/// leader writes at most one record per index in its epoch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub index: u64,
    pub epoch: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<Order>,
}

impl Record {
    /// The record a new leader of `epoch` appends at `index` (Raft's no-op entry).
    pub fn epoch_record(index: u64, epoch: u64) -> Record {
        Record { index, epoch, order: None }
    }

    pub fn order_record(index: u64, epoch: u64, order: Order) -> Record {
        Record { index, epoch, order: Some(order) }
    }

    /// The exact bytes of this record's line (with its `\n`).
    pub fn to_line(&self) -> String {
        let mut line = String::new();
        self.write_line(&mut line);
        line
    }

    /// Append [`Record::to_line`] to `out` (a batch or a page is one string of lines). Written
    /// field by field rather than through `format!`: every record is encoded on the leader and
    /// on each follower, and a catch-up encodes a whole page at a time (the formatting
    /// machinery took ~0.5 µs a record in wasm).
    pub fn write_line(&self, out: &mut String) {
        let mut n = itoa::Buffer::new();
        out.push_str(n.format(self.index));
        out.push(',');
        out.push_str(n.format(self.epoch));
        let Some(o) = &self.order else {
            out.push_str(",epoch,,,,,\n");
            return;
        };
        out.push_str(",order,");
        out.push_str(n.format(o.number));
        out.push(',');
        out.push_str(&csv_field(&o.name));
        out.push(',');
        out.push_str(n.format(o.quantity));
        out.push(',');
        out.push_str(&csv_field(&o.price));
        out.push(',');
        out.push_str(&csv_field(&o.key));
        out.push('\n');
    }

    /// Parse one line (without its `\n`). Only a line in exactly the form [`Record::to_line`]
    /// writes counts: anything else (a stray quote, `01` for `1`) is damage, not a record.
    pub fn parse(line: &str) -> Option<Record> {
        if line.contains('"') {
            parse_csv(line)
        } else {
            parse_bare(line)
        }
    }

    /// What may be written to the log. Records from peers are checked too, never trusted blindly.
    pub fn is_valid(&self) -> bool {
        self.order.as_ref().is_none_or(Order::is_valid)
    }

    /// Identity of a record for log matching: (index, epoch).
    pub fn anchor(&self) -> Anchor {
        Anchor { index: self.index, epoch: self.epoch }
    }
}

/// [`Record::parse`] through the `csv` crate (any line; needed for quoted fields).
pub(super) fn parse_csv(line: &str) -> Option<Record> {
        let mut reader =
            csv::ReaderBuilder::new().has_headers(false).buffer_capacity(line.len() + 1).from_reader(line.as_bytes());
        let f = reader.records().next()?.ok()?;
        if f.len() != 8 {
            return None;
        }
        let (index, epoch) = (f[0].parse().ok()?, f[1].parse().ok()?);
        let e = match &f[2] {
            "epoch" => Record::epoch_record(index, epoch),
            "order" => Record::order_record(
                index,
                epoch,
                Order {
                    number: f[3].parse().ok()?,
                    name: f[4].to_string(),
                    quantity: f[5].parse().ok()?,
                    price: f[6].to_string(),
                    key: f[7].to_string(),
                },
            ),
            _ => return None,
        };
        let canonical = e.to_line();
        (e.is_valid() && canonical.strip_suffix('\n') == Some(line)).then_some(e)
}

/// [`Record::parse`] for a line without quotes (nearly every line), without the `csv` crate: a
/// scan of a million lines at open must be quick. Accepts exactly what the general path
/// accepts for such a line: every field bare (so no name or key starting or ending with a
/// space), numbers in their canonical form (the unit tests compare both paths).
pub(super) fn parse_bare(line: &str) -> Option<Record> {
    let mut f = line.split(',');
    let mut field = || f.next();
    let (index, epoch, kind) = (field()?, field()?, field()?);
    let rest = [field()?, field()?, field()?, field()?, field()?];
    if f.next().is_some() {
        return None;
    }
    let (index, epoch) = (canonical_u64(index)?, canonical_u64(epoch)?);
    match kind {
        "epoch" => rest.iter().all(|s| s.is_empty()).then(|| Record::epoch_record(index, epoch)),
        "order" => {
            let [number, name, quantity, price, key] = rest;
            let quantity = i64::try_from(canonical_u64(quantity)?).ok()?;
            let bare = |s: &str| valid_text(s) && !s.starts_with(' ') && !s.ends_with(' ');
            if !(bare(name) && bare(key) && quantity > 0 && valid_price(price)) {
                return None;
            }
            let order = Order { number: canonical_u64(number)?, name: name.into(), quantity, price: price.into(), key: key.into() };
            Some(Record::order_record(index, epoch, order))
        }
        _ => None,
    }
}

/// A decimal as `{}` writes a `u64`: digits, no sign, no leading zero.
pub(super) fn canonical_u64(s: &str) -> Option<u64> {
    let digits = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    digits.then(|| s.parse().ok()).flatten()
}

/// `(index, epoch)` of a record: enough to tell whether two logs agree up to and including it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    pub index: u64,
    pub epoch: u64,
}

pub use toystore_guest::item::valid_text;

/// One text field as the log writes it: quoted (by the `csv` crate, quotes doubled) when it
/// holds a comma or a quote, or starts or ends with a space (so no reader that trims can change
/// it); bare otherwise. Names and keys hold no control characters ([`valid_text`]), so a line
/// never spans two.
pub(super) fn csv_field(s: &str) -> std::borrow::Cow<'_, str> {
    // The common case, bare: what the csv writer writes for a non-empty field with none of the
    // bytes it quotes, without building a writer per field (see `Record::parse`).
    if !s.is_empty() && !s.starts_with(' ') && !s.ends_with(' ') && !s.contains([',', '"', '\n', '\r']) {
        return s.into();
    }
    csv_written(s).into()
}

/// [`csv_field`] by the csv crate's writer itself.
pub(super) fn csv_written(s: &str) -> String {
    let quote = if s.starts_with(' ') || s.ends_with(' ') { QuoteStyle::Always } else { QuoteStyle::Necessary };
    let mut w = csv::WriterBuilder::new()
        .quote_style(quote)
        .terminator(csv::Terminator::Any(b'\n'))
        .buffer_capacity(s.len() * 2 + 3)
        .from_writer(Vec::new());
    // A one-field record (the writer closes quotes only at the record's end). Writing to
    // memory cannot fail, and the bytes are the UTF-8 of `s` plus ASCII quotes and `\n`.
    let bytes = w.write_record([s]).ok().and_then(|()| w.into_inner().ok()).unwrap_or_default();
    let field = String::from_utf8(bytes).unwrap_or_default();
    field.strip_suffix('\n').unwrap_or(&field).to_string()
}
