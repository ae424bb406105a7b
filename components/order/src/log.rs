//! `orders.csv`: the replicated order log, and the in-memory index over it.
//!
//! The file is the truth. It is a header line followed by one line per *record*, with
//! positions (`index`) 0,1,2,… without gaps. A record is either
//! - an **epoch record** (`kind=epoch`): the first thing a new leader writes (Raft's no-op
//!   entry); it carries no order and no number, or
//! - an **order record** (`kind=order`): an order with its number (0,1,2,… contiguous over the
//!   order records alone), toy, quantity, the unit price as the catalog spelt it when the
//!   leader admitted the order, and the idempotency key.
//!
//! ```text
//! index,epoch,kind,number,name,quantity,price,key
//! 0,1,epoch,,,,,
//! 1,1,order,0,Tux,2,25.99,k-7f3a
//! ```
//!
//! The file only ever changes in two ways, both durable before anyone is told: whole lines
//! appended and fsync'd ([`durable::append`]), or a suffix cut off ([`durable::truncate`]) when
//! a replica learns that its tail was never committed. Nothing is ever rewritten in place.
//!
//! Every replica serialises a record to exactly the same bytes, so replicas that agree on the
//! records end with byte-identical files (the tests compare them).
//!
//! The index ([`Log`]) is a cache: the records, the byte offset at which each line starts (so a
//! suffix can be cut in O(1)), order number → record index, key → order number for
//! idempotency, and the per-toy sum of the order records at or after a chosen order number
//! (the stock the catalog has not applied yet, see `stock.rs`). Before it is used under the
//! directory lock, [`Log::refresh`] compares the file length with what this instance last read
//! or wrote, and re-reads the file only if another instance changed it. Appends never re-read.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use csv::QuoteStyle;
use serde::{Deserialize, Serialize};
use toystore_guest::durable;

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
pub struct Entry {
    pub index: u64,
    pub epoch: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<Order>,
}

impl Entry {
    /// The record a new leader of `epoch` appends at `index` (Raft's no-op entry).
    pub fn epoch_record(index: u64, epoch: u64) -> Entry {
        Entry { index, epoch, order: None }
    }

    pub fn order_record(index: u64, epoch: u64, order: Order) -> Entry {
        Entry { index, epoch, order: Some(order) }
    }

    /// The exact bytes of this record's line (with its `\n`).
    pub fn to_line(&self) -> String {
        match &self.order {
            None => format!("{},{},epoch,,,,,\n", self.index, self.epoch),
            Some(o) => format!(
                "{},{},order,{},{},{},{},{}\n",
                self.index,
                self.epoch,
                o.number,
                csv_field(&o.name),
                o.quantity,
                csv_field(&o.price),
                csv_field(&o.key)
            ),
        }
    }

    /// Parse one line (without its `\n`). Only a line in exactly the form [`Entry::to_line`]
    /// writes counts: anything else (a stray quote, `01` for `1`) is damage, not a record.
    pub fn parse(line: &str) -> Option<Entry> {
        let mut reader =
            csv::ReaderBuilder::new().has_headers(false).buffer_capacity(line.len() + 1).from_reader(line.as_bytes());
        let f = reader.records().next()?.ok()?;
        if f.len() != 8 {
            return None;
        }
        let (index, epoch) = (f[0].parse().ok()?, f[1].parse().ok()?);
        let e = match &f[2] {
            "epoch" => Entry::epoch_record(index, epoch),
            "order" => Entry::order_record(
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

    /// What may be written to the log. Records from peers are checked too, never trusted blindly.
    pub fn is_valid(&self) -> bool {
        self.order.as_ref().is_none_or(Order::is_valid)
    }

    /// Identity of a record for log matching: (index, epoch).
    pub fn anchor(&self) -> Anchor {
        Anchor { index: self.index, epoch: self.epoch }
    }
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
fn csv_field(s: &str) -> String {
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

/// Result of parsing a file's bytes: the records, where each line starts, and how many bytes
/// they take (anything after is a torn last line, to cut).
#[derive(Debug, Default)]
pub struct Parsed {
    pub entries: Vec<Entry>,
    pub offsets: Vec<u64>,
    pub valid_len: u64,
}

impl Parsed {
    /// The order records, in number order.
    pub fn orders(&self) -> impl Iterator<Item = &Order> {
        self.entries.iter().filter_map(|e| e.order.as_ref())
    }
}

/// A complete line of `orders.csv` that is not the next record. Unlike a torn last line (a
/// crash mid-append, never acknowledged) it cannot be cut: every line after it may be an
/// acknowledged order, so the replica stops and a person looks at the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: line {line} is not a valid record (index {expected} expected); refusing to cut the log there — fix or remove the file by hand")]
pub struct Corrupt {
    pub path: String,
    /// 1-based line in the file (the header is line 1, record 0 is line 2).
    pub line: usize,
    /// The record index that line should have held.
    pub expected: u64,
}

/// An `orders.csv` written by a version before epoch records. Not migrated: a reference
/// store's data directories are disposable (README, "Files").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: an order log in the old format (header `number,name,quantity,key,epoch`); this version writes `index,epoch,kind,number,name,quantity,price,key` — remove the store's data directory (or this file on every replica) and start again")]
pub struct OldFormat {
    pub path: String,
}

/// Why a file is not an order log this version can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Damage {
    #[error(transparent)]
    Corrupt(#[from] Corrupt),
    #[error(transparent)]
    OldFormat(#[from] OldFormat),
}

/// Parse a whole `orders.csv`. Only complete lines count (a line exists once its `\n` is on
/// disk), so a last line without its `\n` — or a torn header — is a torn tail, left out of
/// `valid_len`. Any complete line that is unreadable or out of sequence (record indexes, or
/// order numbers over the order records) is [`Corrupt`].
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Parsed, Damage> {
    let mut p = Parsed::default();
    let corrupt = |line: usize, expected: u64| Corrupt { path: path.display().to_string(), line, expected };
    if !bytes.starts_with(HEADER.as_bytes()) {
        if bytes.starts_with(OLD_HEADER.as_bytes()) {
            return Err(OldFormat { path: path.display().to_string() }.into());
        }
        // Empty, or a header torn while the file was created: nothing was ever acknowledged.
        return if HEADER.as_bytes().starts_with(bytes) { Ok(p) } else { Err(corrupt(1, 0).into()) };
    }
    let mut pos = HEADER.len();
    let mut next_number = 0;
    p.valid_len = pos as u64;
    while pos < bytes.len() {
        let Some(nl) = bytes[pos..].iter().position(|&b| b == b'\n') else { break };
        let expected = p.entries.len() as u64;
        let line = std::str::from_utf8(&bytes[pos..pos + nl]).ok();
        match line.and_then(Entry::parse) {
            Some(e) if e.index == expected && e.order.as_ref().is_none_or(|o| o.number == next_number) => {
                next_number += u64::from(e.order.is_some());
                p.offsets.push(pos as u64);
                p.entries.push(e);
            }
            _ => return Err(corrupt(p.entries.len() + 2, expected).into()),
        }
        pos += nl + 1;
        p.valid_len = pos as u64;
    }
    Ok(p)
}

/// How two logs compare for leadership and catch-up: the one whose last record has the higher
/// epoch is more up to date; with equal epochs, the longer one (Raft's rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Position {
    pub last_epoch: u64,
    pub last: i64,
}

#[derive(Debug)]
pub struct Log {
    path: PathBuf,
    entries: Vec<Entry>,
    offsets: Vec<u64>,
    /// Order number → record index.
    numbers: Vec<u64>,
    keys: HashMap<String, u64>,
    /// Per toy, Σ quantity of the order records with number ≥ `pending_from`.
    pending: HashMap<String, i64>,
    pending_from: u64,
    /// File length as this instance last read or wrote it.
    len: u64,
}

/// What [`Log::merge`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merge {
    /// Records applied (or already present); the log now ends at `last`.
    Applied,
    /// The first record does not follow on from this log (it starts after `last + 1`).
    Gap,
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

impl Log {
    /// Open (or start) the log in `dir`, cutting a torn last line. A corrupt line elsewhere (or
    /// a file of the old format) is an `InvalidData` error carrying [`Damage`], and the file is
    /// left as it is.
    pub fn open(dir: &Path) -> io::Result<Log> {
        let mut log = Log {
            path: dir.join(FILE),
            entries: Vec::new(),
            offsets: Vec::new(),
            numbers: Vec::new(),
            keys: HashMap::new(),
            pending: HashMap::new(),
            pending_from: 0,
            len: 0,
        };
        log.reload()?;
        Ok(log)
    }

    /// Re-read the file if its length is not what this instance last saw (another instance
    /// wrote it). Call under the directory lock before relying on the index.
    pub fn refresh(&mut self) -> io::Result<()> {
        let len = match fs::metadata(&self.path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        if len != self.len {
            self.reload()?;
        }
        Ok(())
    }

    fn reload(&mut self) -> io::Result<()> {
        let bytes = durable::read_or_empty(&self.path)?;
        let p = parse(&self.path, &bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        if p.valid_len < bytes.len() as u64 {
            // A torn last line (crash mid-append): it was never acknowledged by this replica,
            // and peers refill whatever it was.
            eprintln!(
                "order: cutting {} byte(s) of torn last line from {}",
                bytes.len() as u64 - p.valid_len,
                self.path.display()
            );
            durable::truncate(&self.path, p.valid_len)?;
        }
        self.entries = Vec::with_capacity(p.entries.len());
        self.offsets = Vec::with_capacity(p.entries.len());
        self.numbers.clear();
        self.keys.clear();
        self.pending.clear();
        for (e, offset) in p.entries.into_iter().zip(p.offsets) {
            self.index_one(e, offset);
        }
        self.len = p.valid_len;
        Ok(())
    }

    /// Add one record (already on disk at `offset`) to the index.
    fn index_one(&mut self, e: Entry, offset: u64) {
        if let Some(o) = &e.order {
            self.numbers.push(e.index);
            self.keys.entry(o.key.clone()).or_insert(o.number);
            if o.number >= self.pending_from {
                *self.pending.entry(o.name.clone()).or_default() += o.quantity;
            }
        }
        self.offsets.push(offset);
        self.entries.push(e);
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Index of the last record, -1 when empty.
    pub fn last(&self) -> i64 {
        self.entries.len() as i64 - 1
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many order records (the next order's number).
    pub fn next_number(&self) -> u64 {
        self.numbers.len() as u64
    }

    /// Epoch of the last record, 0 when empty.
    pub fn last_epoch(&self) -> u64 {
        self.entries.last().map(|e| e.epoch).unwrap_or(0)
    }

    pub fn position(&self) -> Position {
        Position { last_epoch: self.last_epoch(), last: self.last() }
    }

    /// The record at `index`.
    pub fn get(&self, index: u64) -> Option<Entry> {
        usize::try_from(index).ok().and_then(|i| self.entries.get(i)).cloned()
    }

    /// The record index of order `number`.
    pub fn index_of(&self, number: u64) -> Option<u64> {
        usize::try_from(number).ok().and_then(|n| self.numbers.get(n)).copied()
    }

    /// Order `number` and the record index that holds it.
    pub fn order(&self, number: u64) -> Option<(u64, Order)> {
        let index = self.index_of(number)?;
        self.get(index)?.order.map(|o| (index, o))
    }

    /// The anchor of record `index` (None for -1 or past the end).
    pub fn anchor_at(&self, index: i64) -> Option<Anchor> {
        u64::try_from(index).ok().and_then(|n| self.get(n)).map(|e| e.anchor())
    }

    /// The order number logged under `key`.
    pub fn number_of(&self, key: &str) -> Option<u64> {
        self.keys.get(key).copied()
    }

    /// How many orders are in records up to and including `index` (the committed count when
    /// `index` is the commit index).
    pub fn orders_through(&self, index: i64) -> u64 {
        self.numbers.partition_point(|&i| (i as i64) <= index) as u64
    }

    /// Orders with numbers `from..` whose records are at or before `index`, at most `max`.
    pub fn orders_between(&self, from: u64, index: i64, max: usize) -> Vec<Order> {
        let end = self.orders_through(index);
        (from..end).take(max).filter_map(|n| self.order(n).map(|(_, o)| o)).collect()
    }

    /// Σ quantity of `toy` over the order records with number ≥ [`Self::pending_from`].
    pub fn pending(&self, toy: &str) -> i64 {
        self.pending.get(toy).copied().unwrap_or(0)
    }

    pub fn pending_from(&self) -> u64 {
        self.pending_from
    }

    /// Count pending orders from number `from` on (the catalog has applied `0..from`). Moving
    /// forward drops the orders passed; moving back recounts.
    pub fn set_pending_from(&mut self, from: u64) {
        if from >= self.pending_from {
            for n in self.pending_from..from.min(self.next_number()) {
                if let Some((_, o)) = self.order(n) {
                    let (name, q) = (o.name.clone(), o.quantity);
                    *self.pending.entry(name).or_default() -= q;
                }
            }
        } else {
            self.pending.clear();
            for n in from..self.next_number() {
                if let Some((_, o)) = self.order(n) {
                    let (name, q) = (o.name.clone(), o.quantity);
                    *self.pending.entry(name).or_default() += q;
                }
            }
        }
        self.pending.retain(|_, q| *q != 0);
        self.pending_from = from;
    }

    /// Records with index > `after`, at most `max`.
    pub fn after(&self, after: i64, max: usize) -> Vec<Entry> {
        let start = usize::try_from(after + 1).unwrap_or(0).min(self.entries.len());
        let end = start.saturating_add(max).min(self.entries.len());
        self.entries[start..end].to_vec()
    }

    /// Append records that continue the log (`entries[0].index == last + 1`, order numbers
    /// continuing too), all in one write and one fsync: a batch of 10 000 costs one fsync.
    pub fn append(&mut self, entries: &[Entry]) -> io::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut buf = String::new();
        if self.len == 0 {
            buf.push_str(HEADER);
        }
        let mut offsets = Vec::with_capacity(entries.len());
        let mut number = self.next_number();
        for (next, e) in (self.entries.len() as u64..).zip(entries) {
            if e.index != next || !e.is_valid() {
                return Err(invalid(format!("record {} does not continue the log", e.index)));
            }
            if let Some(o) = &e.order {
                if o.number != number {
                    return Err(invalid(format!("order {} does not continue the numbering at {number}", o.number)));
                }
                number += 1;
            }
            offsets.push(self.len + buf.len() as u64);
            buf.push_str(&e.to_line());
        }
        if let Err(e) = durable::append(&self.path, buf.as_bytes()) {
            // Part of the write may have landed: put the file back to what we know, or failing
            // that make the next refresh re-read it.
            if durable::truncate(&self.path, self.len).is_err() {
                self.len = u64::MAX;
            }
            return Err(e);
        }
        self.len += buf.len() as u64;
        for (e, offset) in entries.iter().zip(offsets) {
            self.index_one(e.clone(), offset);
        }
        Ok(())
    }

    /// Cut every record with index ≥ `from` (durably). Only uncommitted records are ever cut:
    /// a replica's divergent tail once a more up-to-date log proves it was never committed.
    pub fn truncate_from(&mut self, from: u64) -> io::Result<()> {
        let Ok(from) = usize::try_from(from) else { return Ok(()) };
        if from >= self.entries.len() {
            return Ok(());
        }
        let new_len = self.offsets[from];
        durable::truncate(&self.path, new_len)?;
        for e in self.entries.drain(from..) {
            if let Some(o) = e.order {
                self.numbers.pop();
                if self.keys.get(&o.key) == Some(&o.number) {
                    self.keys.remove(&o.key);
                }
                if o.number >= self.pending_from {
                    *self.pending.entry(o.name).or_default() -= o.quantity;
                }
            }
        }
        self.pending.retain(|_, q| *q != 0);
        self.offsets.truncate(from);
        self.len = new_len;
        Ok(())
    }

    /// Make this log agree with a more authoritative one (the leader's, or a more up-to-date
    /// peer's) on `entries`, which must be contiguous and start at most at `last + 1`; the
    /// caller has checked that the record before `entries[0]` matches. Records already present
    /// with the same (index, epoch) are skipped; at the first that differs the local tail is
    /// cut and the rest appended in one write.
    pub fn merge(&mut self, entries: &[Entry]) -> io::Result<Merge> {
        let Some(first) = entries.first() else { return Ok(Merge::Applied) };
        if first.index as i64 > self.last() + 1 {
            return Ok(Merge::Gap);
        }
        for (i, e) in entries.iter().enumerate() {
            if e.index != first.index + i as u64 || !e.is_valid() {
                return Err(invalid("records are not contiguous or not valid".into()));
            }
        }
        let mut i = 0;
        while i < entries.len() {
            match self.get(entries[i].index) {
                Some(own) if own == entries[i] => i += 1,
                Some(_) => {
                    self.truncate_from(entries[i].index)?;
                    break;
                }
                None => break,
            }
        }
        self.append(&entries[i..])?;
        Ok(Merge::Applied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "index,epoch,kind,number,name,quantity,price,key\n";

    fn order(index: u64, number: u64, key: &str, epoch: u64) -> Entry {
        Entry::order_record(index, epoch, Order { number, name: "Tux".into(), quantity: 1, price: "25.99".into(), key: key.into() })
    }

    /// A log of `epoch` records: an epoch record, then orders `numbers` with keys `k<n>`.
    fn epoch_then_orders(start: u64, first_number: u64, count: u64, epoch: u64) -> Vec<Entry> {
        let mut v = vec![Entry::epoch_record(start, epoch)];
        for i in 0..count {
            v.push(order(start + 1 + i, first_number + i, &format!("k{}", first_number + i), epoch));
        }
        v
    }

    #[test]
    fn csv_round_trip_with_awkward_fields() {
        for name in ["Tux", "Lego, big", "say \"hi\"", " padded ", "ünïcode"] {
            let o = Order { number: 7, name: name.into(), quantity: 3, price: "34.50".into(), key: "k,\"1\"".into() };
            let e = Entry::order_record(9, 2, o);
            let line = e.to_line();
            assert!(line.ends_with('\n'));
            assert_eq!(Entry::parse(line.trim_end_matches('\n')), Some(e.clone()), "{line}");
        }
        let epoch = Entry::epoch_record(3, 2);
        assert_eq!(Entry::parse(epoch.to_line().trim_end_matches('\n')), Some(epoch));
        assert_eq!(Entry::parse("0,1,order,0,Tux,1,25.99"), None);
        assert_eq!(Entry::parse("0,1,order,0,Tux,0,25.99,k"), None, "quantity must be positive");
        assert_eq!(Entry::parse("0,1,order,0,Tux,1,-1,k"), None, "price must be a non-negative number");
        assert_eq!(Entry::parse("0,1,order,0,Tux,1,,k"), None, "an order has a price");
        assert_eq!(Entry::parse("0,1,epoch,0,,,,"), None, "an epoch record has no number");
        assert_eq!(Entry::parse("0,1,noop,,,,,"), None);
        assert_eq!(Entry::parse("x,1,epoch,,,,,"), None);
        assert_eq!(Entry::parse("0,1,order,0,\"Tux,1,25.99,k"), None);
    }

    #[test]
    fn records_have_pinned_bytes() {
        let line = |name: &str, key: &str| {
            let o = Order { number: 7, name: name.into(), quantity: 3, price: "34.50".into(), key: key.into() };
            Entry::order_record(12, 2, o).to_line()
        };
        assert_eq!(Entry::epoch_record(0, 1).to_line(), "0,1,epoch,,,,,\n");
        assert_eq!(order(1, 0, "k-7f3a", 1).to_line(), "1,1,order,0,Tux,1,25.99,k-7f3a\n");
        assert_eq!(line("Lego, big", "k"), "12,2,order,7,\"Lego, big\",3,34.50,k\n");
        assert_eq!(line("say \"hi\"", "k"), "12,2,order,7,\"say \"\"hi\"\"\",3,34.50,k\n");
        assert_eq!(line(" padded", "k "), "12,2,order,7,\" padded\",3,34.50,\"k \"\n");
        assert_eq!(line("Tux Jr", "a-b"), "12,2,order,7,Tux Jr,3,34.50,a-b\n");
        assert_eq!(line("ünïcode", "k'1"), "12,2,order,7,ünïcode,3,34.50,k'1\n");
    }

    #[test]
    fn only_lines_in_the_written_form_parse() {
        assert_eq!(Entry::parse("1,1,order,0,Tux,1,25.99,k"), Some(order(1, 0, "k", 1)));
        assert_eq!(Entry::parse("1,1,order,0,Tu\"x,1,25.99,k"), None, "stray quote");
        assert_eq!(Entry::parse("1,1,order,0,\"Tux\"x,1,25.99,k"), None, "text after a closing quote");
        assert_eq!(Entry::parse("1,1,order,0,\"Tux\",1,25.99,k"), None, "quoted although nothing needs quotes");
        assert_eq!(Entry::parse("01,1,order,0,Tux,1,25.99,k"), None);
        assert_eq!(Entry::parse("1,1,order,0,Tux,1,2.5e1,k"), None, "prices are plain decimals");
    }

    #[test]
    fn append_reload_and_index() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path()).unwrap();
        assert_eq!(log.last(), -1);
        log.append(&epoch_then_orders(0, 0, 2, 1)).unwrap();
        log.append(&epoch_then_orders(3, 2, 1, 2)).unwrap();
        let bytes = fs::read(log.path()).unwrap();
        let want = format!("{H}0,1,epoch,,,,,\n1,1,order,0,Tux,1,25.99,k0\n2,1,order,1,Tux,1,25.99,k1\n3,2,epoch,,,,,\n4,2,order,2,Tux,1,25.99,k2\n");
        assert_eq!(String::from_utf8(bytes).unwrap(), want);
        let again = Log::open(dir.path()).unwrap();
        assert_eq!((again.last(), again.next_number()), (4, 3));
        assert_eq!(again.number_of("k1"), Some(1));
        assert_eq!(again.index_of(2), Some(4));
        assert_eq!(again.order(1).map(|(i, o)| (i, o.key)), Some((2, "k1".to_string())));
        assert_eq!(again.position(), Position { last_epoch: 2, last: 4 });
        assert_eq!((again.orders_through(-1), again.orders_through(0), again.orders_through(3), again.orders_through(9)), (0, 0, 2, 3));
        assert_eq!(again.orders_between(1, 4, 10).iter().map(|o| o.number).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(again.orders_between(1, 2, 10).len(), 1);
        assert!(log.append(&[order(9, 3, "z", 2)]).is_err(), "index gaps are refused");
        assert!(log.append(&[order(5, 4, "z", 2)]).is_err(), "number gaps are refused");
        assert!(log.append(&[order(5, 2, "z", 2)]).is_err(), "numbers are not reused");
    }

    #[test]
    fn pending_sums_follow_appends_cuts_and_the_applied_count() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path()).unwrap();
        let fox = |index, number, quantity| {
            Entry::order_record(index, 1, Order { number, name: "Fox".into(), quantity, price: "1".into(), key: format!("f{number}") })
        };
        log.append(&[Entry::epoch_record(0, 1), fox(1, 0, 2), order(2, 1, "t", 1), fox(3, 2, 5)]).unwrap();
        // (applied count, then) → (Fox pending, Tux pending)
        let cases = [(0, 7, 1), (1, 5, 1), (2, 5, 0), (3, 0, 0), (9, 0, 0), (1, 5, 1), (0, 7, 1)];
        for (from, f, t) in cases {
            log.set_pending_from(from);
            assert_eq!((log.pending("Fox"), log.pending("Tux")), (f, t), "from {from}");
        }
        log.set_pending_from(1);
        log.truncate_from(3).unwrap();
        assert_eq!(log.pending("Fox"), 0);
        log.append(&[fox(3, 2, 4)]).unwrap();
        assert_eq!(log.pending("Fox"), 4);
        // A reload (another instance wrote the file) recounts from the same point.
        fs::OpenOptions::new().append(true).open(log.path()).unwrap();
        let mut other = Log::open(dir.path()).unwrap();
        other.append(&[fox(4, 3, 1)]).unwrap();
        log.refresh().unwrap();
        assert_eq!((log.pending("Fox"), log.pending("Tux"), log.pending_from()), (5, 1, 1));
    }

    #[test]
    fn torn_tail_is_ignored_and_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        fs::write(&path, format!("{H}0,1,epoch,,,,,\n1,1,order,0,Tux,1,25.99,a\n2,1,order,1,Tux,1,2")).unwrap();
        let mut log = Log::open(dir.path()).unwrap();
        assert_eq!(log.last(), 1);
        assert_eq!(fs::read_to_string(&path).unwrap(), format!("{H}0,1,epoch,,,,,\n1,1,order,0,Tux,1,25.99,a\n"));
        log.append(&[order(2, 1, "c", 1)]).unwrap();
        assert_eq!(Log::open(dir.path()).unwrap().order(1).unwrap().1.key, "c");
        // A torn header is nothing at all.
        fs::write(&path, "index,epo").unwrap();
        assert_eq!(Log::open(dir.path()).unwrap().last(), -1);
        assert_eq!(fs::read(&path).unwrap(), b"");
    }

    #[test]
    fn a_corrupt_line_before_the_end_stops_the_log_and_cuts_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let e0 = "0,1,epoch,,,,,\n";
        // (file contents, 1-based line reported)
        let cases = [
            (format!("{H}{e0}garbage\n2,1,order,1,Tux,1,1,c\n"), 3),
            (format!("{H}{e0}2,1,order,0,Tux,1,1,c\n"), 3),
            (format!("{H}{e0}1,1,order,1,Tux,1,1,c\n"), 3),
            (format!("{H}{e0}1,1,order,0,Tux,1,1,b\nnope\n3,1,order,2,Tux,1,1,d"), 4),
            // Damaged but complete last line: still not a torn append.
            (format!("{H}{e0}1,1,order,0,Tux,0,1,a\n"), 3),
            ("not our header\n0,1,epoch,,,,,\n".to_string(), 1),
        ];
        for (contents, line) in cases {
            fs::write(&path, &contents).unwrap();
            let err = Log::open(dir.path()).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{contents:?}");
            let damage = err.get_ref().and_then(|e| e.downcast_ref::<Damage>()).cloned();
            assert!(matches!(damage, Some(Damage::Corrupt(Corrupt { line: l, .. })) if l == line), "{contents:?}: {damage:?}");
            assert!(err.to_string().contains(&format!("{}: line {line}", path.display())), "{err}");
            assert_eq!(fs::read_to_string(&path).unwrap(), contents, "nothing is cut");
        }
        // An instance that had the log open sees the damage on refresh, and cuts nothing either.
        fs::write(&path, format!("{H}{e0}")).unwrap();
        let mut log = Log::open(dir.path()).unwrap();
        fs::write(&path, format!("{H}{e0}bad\n2,1,order,0,Tux,1,1,b\n")).unwrap();
        assert!(log.refresh().is_err());
        assert!(fs::read_to_string(&path).unwrap().ends_with("2,1,order,0,Tux,1,1,b\n"));
    }

    #[test]
    fn a_log_of_the_old_format_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let old = "number,name,quantity,key,epoch\n0,Tux,1,a,1\n";
        fs::write(&path, old).unwrap();
        let err = Log::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains(&format!("{}: an order log in the old format", path.display())), "{err}");
        assert_eq!(fs::read_to_string(&path).unwrap(), old);
    }

    #[test]
    fn refresh_sees_another_instances_writes() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = Log::open(dir.path()).unwrap();
        let mut b = Log::open(dir.path()).unwrap();
        a.append(&[order(0, 0, "a", 1)]).unwrap();
        assert_eq!(b.last(), -1);
        b.refresh().unwrap();
        assert_eq!(b.last(), 0);
        b.append(&[order(1, 1, "b", 1)]).unwrap();
        a.refresh().unwrap();
        assert_eq!(a.number_of("b"), Some(1));
    }

    #[test]
    fn merge_skips_same_and_replaces_divergent_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path()).unwrap();
        log.append(&[Entry::epoch_record(0, 1), order(1, 0, "a", 1), order(2, 1, "x", 1)]).unwrap();
        // 0..1 identical, 2 differs (epoch 2's leader wrote its epoch record there), 3 new.
        let m = log.merge(&[order(1, 0, "a", 1), Entry::epoch_record(2, 2), order(3, 1, "c", 2)]).unwrap();
        assert_eq!(m, Merge::Applied);
        assert_eq!((log.last(), log.next_number()), (3, 2));
        assert_eq!(log.number_of("x"), None);
        assert_eq!(log.number_of("c"), Some(1));
        let reread = Log::open(dir.path()).unwrap();
        assert_eq!(reread.get(3), Some(order(3, 1, "c", 2)));
        assert_eq!(log.merge(&[order(9, 5, "z", 2)]).unwrap(), Merge::Gap);
        log.truncate_from(1).unwrap();
        assert_eq!(Log::open(dir.path()).unwrap().last(), 0);
        assert_eq!(log.next_number(), 0);
    }

    #[test]
    fn large_log_appends_stay_cheap() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path()).unwrap();
        let batch: Vec<Entry> = (0..100_000).map(|n| order(n, n, &format!("k{n}"), 1)).collect();
        log.append(&batch).unwrap();
        let t = std::time::Instant::now();
        for n in 100_000..100_050 {
            log.refresh().unwrap();
            log.append(&[order(n, n, &format!("k{n}"), 1)]).unwrap();
        }
        assert!(t.elapsed() < std::time::Duration::from_secs(5), "{:?}", t.elapsed());
        assert_eq!(Log::open(dir.path()).unwrap().number_of("k100049"), Some(100_049));
    }
}
