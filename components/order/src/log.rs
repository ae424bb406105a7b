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
//! The index ([`Log`]) is a cache, bounded whatever the log's length: the byte offset of every
//! 64th line (a record is read from the file by offset), the positions of the epoch records
//! (order numbers are dense between them, so number ↔ index is arithmetic), the last 1024
//! records parsed, key hash → order number for the newest keys with the older ones sealed on disk
//! ([`crate::keys`]), and the per-toy sum of the order records at or after a chosen order
//! number (the stock the catalog has not applied yet, see `stock.rs`). Opening scans the file
//! once in chunks (validating every line, keeping nothing but that index). Before it is used
//! under the directory lock, [`Log::refresh`] compares the file length with what this instance
//! last read or wrote, and re-reads the file only if another instance changed it. Appends never
//! re-read.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::fs::{self, File};
use std::io::{self, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use csv::QuoteStyle;
use serde::{Deserialize, Serialize};
use toystore_guest::durable;

use crate::keys::{bytes_hash, key_hash, Boundary, Recent, Sealed, SEGMENT};

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
        let mut line = String::new();
        self.write_line(&mut line);
        line
    }

    /// Append [`Entry::to_line`] to `out` (a batch or a page is one string of lines). Written
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

    /// Parse one line (without its `\n`). Only a line in exactly the form [`Entry::to_line`]
    /// writes counts: anything else (a stray quote, `01` for `1`) is damage, not a record.
    pub fn parse(line: &str) -> Option<Entry> {
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

/// [`Entry::parse`] through the `csv` crate (any line; needed for quoted fields).
fn parse_csv(line: &str) -> Option<Entry> {
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

/// [`Entry::parse`] for a line without quotes (nearly every line), without the `csv` crate: a
/// scan of a million lines at open must be quick. Accepts exactly what the general path
/// accepts for such a line: every field bare (so no name or key starting or ending with a
/// space), numbers in their canonical form (the unit tests compare both paths).
fn parse_bare(line: &str) -> Option<Entry> {
    let mut f = line.split(',');
    let mut field = || f.next();
    let (index, epoch, kind) = (field()?, field()?, field()?);
    let rest = [field()?, field()?, field()?, field()?, field()?];
    if f.next().is_some() {
        return None;
    }
    let (index, epoch) = (canonical_u64(index)?, canonical_u64(epoch)?);
    match kind {
        "epoch" => rest.iter().all(|s| s.is_empty()).then(|| Entry::epoch_record(index, epoch)),
        "order" => {
            let [number, name, quantity, price, key] = rest;
            let quantity = i64::try_from(canonical_u64(quantity)?).ok()?;
            let bare = |s: &str| valid_text(s) && !s.starts_with(' ') && !s.ends_with(' ');
            if !(bare(name) && bare(key) && quantity > 0 && valid_price(price)) {
                return None;
            }
            let order = Order { number: canonical_u64(number)?, name: name.into(), quantity, price: price.into(), key: key.into() };
            Some(Entry::order_record(index, epoch, order))
        }
        _ => None,
    }
}

/// A decimal as `{}` writes a `u64`: digits, no sign, no leading zero.
fn canonical_u64(s: &str) -> Option<u64> {
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
fn csv_field(s: &str) -> std::borrow::Cow<'_, str> {
    // The common case, bare: what the csv writer writes for a non-empty field with none of the
    // bytes it quotes, without building a writer per field (see `Entry::parse`).
    if !s.is_empty() && !s.starts_with(' ') && !s.ends_with(' ') && !s.contains([',', '"', '\n', '\r']) {
        return s.into();
    }
    csv_written(s).into()
}

/// [`csv_field`] by the csv crate's writer itself.
fn csv_written(s: &str) -> String {
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

/// Records per sparse-index entry: a read by index seeks to the offset of record
/// `index / SPARSE * SPARSE` and skips at most `SPARSE - 1` lines (~3 KiB).
const SPARSE: u64 = 64;
/// Recent records kept parsed in memory: replication, reads, cuts and the pending sums mostly
/// touch the end of the log.
const TAIL: usize = 1024;
/// Bytes a scan reads per call; a point read reads [`SMALL_CHUNK`].
const CHUNK: usize = 64 * 1024;
const SMALL_CHUNK: usize = 4 * 1024;

/// The bounded index over `orders.csv`. Memory does not grow with the log's length beyond a
/// few bytes per record spread over many (see ARCHITECTURE.md, "Where state lives"): one offset
/// per [`SPARSE`] records, one index per epoch record, the last [`TAIL`] records, the keys of
/// the newest unsealed key segment, and per sealed segment a filter of ~1.9 bytes a key.
/// Older records are read from the file by offset, through one open handle.
#[derive(Debug)]
pub struct Log {
    path: PathBuf,
    /// The handle reads go through (opened on the first read, dropped on reload).
    reader: RefCell<Option<File>>,
    /// Number of records.
    count: u64,
    /// Number of order records (the next order's number).
    next_number: u64,
    /// Epoch of the last record, 0 when empty.
    last_epoch: u64,
    /// Byte offset of record `i * SPARSE`, for each `i`.
    sparse: Vec<u64>,
    /// Indexes of the epoch records, ascending. Order records are dense between them, so
    /// order number ↔ record index is arithmetic plus a binary search here.
    epochs: Vec<u64>,
    /// A suffix of the log, parsed, with the offset each record's line starts at.
    tail: VecDeque<(u64, Entry)>,
    /// Key hash → order numbers, for order numbers ≥ `sealed.upto()`.
    keys: Recent,
    /// The keys of older orders, on disk.
    sealed: Sealed,
    /// The record count at the end of each sealed segment.
    boundaries: Vec<u64>,
    /// Per toy, Σ quantity of the order records with number ≥ `pending_from`.
    pending: HashMap<String, i64>,
    pending_from: u64,
    /// File length as this instance last read or wrote it.
    len: u64,
    /// The first record written by [`Log::append_unsynced`] and not yet known to be on disk
    /// (None: every record is): what the leader may not count as its own copy yet.
    unsynced_from: Option<u64>,
    /// The file, open for appending between writes (reopened after a reload or an error).
    file: Option<std::fs::File>,
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

fn changed(path: &Path, what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{}: {what} (the file changed under this instance's index)", path.display()))
}

/// Complete lines of a file from a byte offset, read in chunks: a scan never holds the whole
/// file in memory.
struct Lines<R> {
    src: R,
    buf: Vec<u8>,
    /// Bytes of `buf` already handed out.
    start: usize,
    /// File offset of `buf[0]`.
    offset: u64,
    chunk: usize,
    eof: bool,
}

impl<R: io::Read> Lines<R> {
    fn new(src: R, offset: u64, chunk: usize) -> Self {
        Lines { src, buf: Vec::new(), start: 0, offset, chunk, eof: false }
    }

    /// The next complete line (without its `\n`) and the offset it starts at; None at the end
    /// of the file or before a last line without its `\n` ([`Self::rest`]).
    fn next_line(&mut self) -> io::Result<Option<(u64, &[u8])>> {
        loop {
            let found = self.buf[self.start..].iter().position(|&b| b == b'\n');
            if let Some(nl) = found {
                let at = self.start;
                self.start += nl + 1;
                return Ok(Some((self.offset + at as u64, &self.buf[at..at + nl])));
            }
            if self.eof {
                return Ok(None);
            }
            self.buf.drain(..self.start);
            self.offset += self.start as u64;
            self.start = 0;
            let old = self.buf.len();
            self.buf.resize(old + self.chunk, 0);
            let n = self.src.read(&mut self.buf[old..])?;
            self.buf.truncate(old + n);
            self.eof = n == 0;
        }
    }

    /// What follows the last complete line (a torn append), once [`Self::next_line`] said None.
    fn rest(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

fn parse_line(path: &Path, index: u64, line: &[u8]) -> io::Result<Entry> {
    std::str::from_utf8(line)
        .ok()
        .and_then(Entry::parse)
        .filter(|e| e.index == index)
        .ok_or_else(|| changed(path, format!("record {index} is not where the index has it")))
}

impl Log {
    /// Open (or start) the log in `dir`, cutting a torn last line. A corrupt line elsewhere (or
    /// a file of the old format) is an `InvalidData` error carrying [`Damage`], and the file is
    /// left as it is. Reads the file once, in chunks, keeping only the bounded index.
    pub fn open(dir: &Path) -> io::Result<Log> {
        let mut log = Log {
            path: dir.join(FILE),
            reader: RefCell::new(None),
            count: 0,
            next_number: 0,
            last_epoch: 0,
            sparse: Vec::new(),
            epochs: Vec::new(),
            tail: VecDeque::new(),
            keys: Recent::default(),
            sealed: Sealed::new(dir),
            boundaries: Vec::new(),
            pending: HashMap::new(),
            pending_from: 0,
            len: 0,
            unsynced_from: None,
            file: None,
        };
        log.reload(None)?;
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
            self.reload(Some(self.pending_from))?;
        }
        Ok(())
    }

    /// Scan the file and rebuild the index (and the key segments, see [`crate::keys`]).
    /// `pending_from`: where to recount the pending sums from (None on open: nothing is
    /// counted until [`Self::set_pending_from`] says what the catalog has applied).
    fn reload(&mut self, pending_from: Option<u64>) -> io::Result<()> {
        let dir = self.path.parent().map(Path::to_path_buf).unwrap_or_default();
        *self.reader.get_mut() = None;
        self.count = 0;
        self.next_number = 0;
        self.last_epoch = 0;
        self.sparse.clear();
        self.epochs.clear();
        self.tail.clear();
        self.keys.clear();
        self.sealed = Sealed::new(&dir);
        self.boundaries.clear();
        self.pending.clear();
        self.pending_from = u64::MAX;
        self.len = 0;
        let result = self.load_sealed().and_then(|()| self.scan());
        // Nothing was counted during the scan; count from where the caller wants.
        self.pending_from = self.next_number;
        result?;
        self.sealed.remove_files_from(self.sealed.upto());
        if let Some(from) = pending_from {
            self.set_pending_from(from.min(self.next_number))?;
        }
        Ok(())
    }

    /// Go as far as the sealed key segments' boundaries take the index without reading the
    /// records before them: each boundary is used only if the log's line there is the very line
    /// it was sealed after (and, by the log-matching property, so is everything before it).
    /// The first that does not hold is removed with every later one, and the scan goes on from
    /// the last that held.
    fn load_sealed(&mut self) -> io::Result<()> {
        let file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let file_len = file.metadata()?.len();
        while let Some(b) = self.sealed.load_next() {
            if !self.boundary_holds(&file, file_len, &b)? {
                self.sealed.cut(self.boundaries.len());
                break;
            }
            self.count = b.count;
            self.next_number = self.sealed.upto();
            self.last_epoch = b.last_epoch;
            self.len = b.len;
            self.sparse.extend(b.sparse);
            self.epochs.extend(b.epochs);
            self.boundaries.push(b.count);
        }
        Ok(())
    }

    fn boundary_holds(&self, mut file: &File, file_len: u64, b: &Boundary) -> io::Result<bool> {
        let line_len = b.len.saturating_sub(b.line_at);
        let shape = b.count > self.count
            && b.len <= file_len
            && (2..=64 * 1024).contains(&line_len)
            && b.sparse.len() as u64 == b.count.div_ceil(SPARSE) - self.count.div_ceil(SPARSE)
            && b.epochs.windows(2).all(|w| w[0] < w[1])
            && b.epochs.iter().all(|e| (self.count..b.count).contains(e));
        if !shape {
            return Ok(false);
        }
        let mut line = vec![0u8; line_len as usize];
        file.seek(SeekFrom::Start(b.line_at))?;
        io::Read::read_exact(&mut file, &mut line)?;
        let record = line.strip_suffix(b"\n").and_then(|l| std::str::from_utf8(l).ok()).and_then(Entry::parse);
        let number = self.sealed.upto().checked_sub(1);
        Ok(bytes_hash(&line) == b.line_hash
            && record.is_some_and(|e| e.index + 1 == b.count && e.epoch == b.last_epoch && e.order.map(|o| o.number) == number))
    }

    fn scan(&mut self) -> io::Result<()> {
        let path = self.path.clone();
        let damage = |d: Damage| io::Error::new(io::ErrorKind::InvalidData, d);
        let corrupt = |line: u64, expected: u64| {
            damage(Corrupt { path: path.display().to_string(), line: line as usize, expected }.into())
        };
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut reader = &file;
        let mut lines = Lines::new(reader, self.len, CHUNK);
        // The first line: Some(ours?, old format?), None when there is no complete line. After
        // sealed segments, the scan starts at the last boundary and there is no header to read.
        let header = if self.len > 0 {
            reader.seek(SeekFrom::Start(self.len))?;
            Some((true, false))
        } else {
            lines.next_line()?.map(|(_, h)| (h == HEADER.trim_end().as_bytes(), h == OLD_HEADER.trim_end().as_bytes()))
        };
        let valid_len = match header {
            Some((true, _)) => {
                let mut valid_len = self.len.max(HEADER.len() as u64);
                while let Some((offset, line)) = lines.next_line()? {
                    let expected = self.count;
                    match std::str::from_utf8(line).ok().and_then(Entry::parse) {
                        Some(e) if e.index == expected && e.order.as_ref().is_none_or(|o| o.number == self.next_number) => {
                            valid_len = offset + line.len() as u64 + 1;
                            self.index_one(e, offset);
                        }
                        _ => return Err(corrupt(expected + 2, expected)),
                    }
                }
                valid_len
            }
            Some((_, true)) => return Err(damage(OldFormat { path: path.display().to_string() }.into())),
            Some(_) => return Err(corrupt(1, 0)),
            // Empty, or a header torn while the file was created: nothing was ever acknowledged.
            None if HEADER.as_bytes().starts_with(lines.rest()) => 0,
            None => return Err(corrupt(1, 0)),
        };
        let torn = lines.rest().len();
        drop(lines);
        drop(file);
        if torn > 0 {
            // A torn last line (crash mid-append): it was never acknowledged by this replica,
            // and peers refill whatever it was.
            eprintln!("order: cutting {torn} byte(s) of torn last line from {}", path.display());
            durable::truncate(&path, valid_len)?;
        }
        self.len = valid_len;
        self.unsynced_from = None;
        self.file = None;
        Ok(())
    }

    /// Add one record (already on disk at `offset`, continuing the log) to the index, and to
    /// the tail.
    fn index_one(&mut self, e: Entry, offset: u64) {
        self.count_one(&e, offset);
        self.tail.push_back((offset, e));
        if self.tail.len() > TAIL {
            self.tail.pop_front();
        }
    }

    /// Add one record to the index but not to the tail (the caller keeps the tail a suffix of
    /// the log); seal the key segment it fills, if any.
    fn count_one(&mut self, e: &Entry, offset: u64) {
        if e.index.is_multiple_of(SPARSE) {
            self.sparse.push(offset);
        }
        match &e.order {
            None => self.epochs.push(e.index),
            Some(o) => {
                self.keys.insert(key_hash(&o.key), o.number);
                if o.number >= self.pending_from {
                    *self.pending.entry(o.name.clone()).or_default() += o.quantity;
                }
                self.next_number += 1;
            }
        }
        self.last_epoch = e.epoch;
        self.count += 1;
        if e.order.is_some() {
            self.seal_full_segments(e, offset);
        }
    }

    /// Move the keys of every full segment from memory to a sealed file, with the index at the
    /// segment's end (when this is that end: `last`, at `offset`, the order just indexed, filled
    /// it). A failed write keeps them in memory (tried again at the next order): lookups stay
    /// exact either way.
    fn seal_full_segments(&mut self, last: &Entry, offset: u64) {
        while self.next_number >= self.sealed.upto() + SEGMENT {
            let (from, to) = (self.sealed.upto(), self.sealed.upto() + SEGMENT);
            let pairs = self.keys.take_below(to);
            let boundary = (self.next_number == to).then(|| self.boundary(last, offset));
            if let Err(e) = self.sealed.seal(pairs.clone(), boundary.as_ref()) {
                eprintln!("order: cannot seal the keys of orders {from}..{to} (kept in memory): {e}");
                for (h, n) in pairs {
                    self.keys.insert(h, n);
                }
                return;
            }
            self.boundaries.push(self.count);
        }
    }

    /// The index at `last` (the last record, whose line starts at `line_at`), as a [`Boundary`]
    /// holding what was added since the previous one.
    fn boundary(&self, last: &Entry, line_at: u64) -> Boundary {
        let line = last.to_line();
        let since = self.boundaries.last().copied().unwrap_or(0);
        Boundary {
            count: self.count,
            last_epoch: self.last_epoch,
            line_at,
            len: line_at + line.len() as u64,
            line_hash: bytes_hash(line.as_bytes()),
            sparse: self.sparse.get(since.div_ceil(SPARSE) as usize..).unwrap_or_default().to_vec(),
            epochs: self.epochs.iter().copied().filter(|&e| e >= since).collect(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Index of the last record, -1 when empty.
    pub fn last(&self) -> i64 {
        self.count as i64 - 1
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// How many order records (the next order's number).
    pub fn next_number(&self) -> u64 {
        self.next_number
    }

    /// Epoch of the last record, 0 when empty.
    pub fn last_epoch(&self) -> u64 {
        self.last_epoch
    }

    pub fn position(&self) -> Position {
        Position { last_epoch: self.last_epoch(), last: self.last() }
    }

    /// Index of the first record the tail holds.
    fn tail_start(&self) -> u64 {
        self.count - self.tail.len() as u64
    }

    /// Visit records `from..to` (clamped to the log) in order, with the offset each starts at:
    /// those before the tail are read from the file (one seek to the sparse offset at or
    /// before `from`, then sequential reads). `f` returns false to stop. `f` must not read the
    /// log itself.
    fn visit(&self, from: u64, to: u64, mut f: impl FnMut(u64, Entry) -> bool) -> io::Result<()> {
        let to = to.min(self.count);
        if from >= to {
            return Ok(());
        }
        let tail_start = self.tail_start();
        if from < tail_start {
            let disk_end = to.min(tail_start);
            let block = from / SPARSE;
            let offset = *self.sparse.get(block as usize).ok_or_else(|| changed(&self.path, format!("no offset for record {from}")))?;
            let mut slot = self.reader.borrow_mut();
            let file = match slot.as_mut() {
                Some(f) => f,
                None => slot.insert(File::open(&self.path)?),
            };
            file.seek(SeekFrom::Start(offset))?;
            let chunk = if disk_end - from <= SPARSE { SMALL_CHUNK } else { CHUNK };
            let mut lines = Lines::new(&*file, offset, chunk);
            for index in block * SPARSE..disk_end {
                let Some((at, line)) = lines.next_line()? else {
                    return Err(changed(&self.path, format!("record {index} is past the end")));
                };
                if index >= from && !f(at, parse_line(&self.path, index, line)?) {
                    return Ok(());
                }
            }
        }
        let from = from.max(tail_start);
        for (at, e) in self.tail.iter().skip((from - tail_start) as usize).take(to.saturating_sub(from) as usize) {
            if !f(*at, e.clone()) {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Records `from..from + max` (fewer at the end of the log).
    fn read(&self, from: u64, max: usize) -> io::Result<Vec<Entry>> {
        let mut out = Vec::new();
        self.visit(from, from.saturating_add(max as u64), |_, e| {
            out.push(e);
            true
        })?;
        Ok(out)
    }

    /// For the reads that answer `None` or nothing: a record that cannot be read is reported
    /// and treated as absent (decisions that matter re-read under the lock).
    fn reported<T: Default>(&self, r: io::Result<T>) -> T {
        r.unwrap_or_else(|e| {
            eprintln!("order: cannot read {}: {e}", self.path.display());
            T::default()
        })
    }

    /// The record at `index`.
    pub fn get(&self, index: u64) -> Option<Entry> {
        self.reported(self.read(index, 1)).pop()
    }

    /// The record index of order `number`.
    pub fn index_of(&self, number: u64) -> Option<u64> {
        if number >= self.next_number {
            return None;
        }
        // Epoch record j has `epochs[j] - j` order records before it; order `number` comes
        // after every epoch record with at most `number` orders before it.
        let (mut lo, mut hi) = (0, self.epochs.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.epochs[mid] - mid as u64 <= number {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Some(number + lo as u64)
    }

    /// Order `number` and the record index that holds it.
    pub fn order(&self, number: u64) -> Option<(u64, Order)> {
        self.reported(self.read_order(number))
    }

    fn read_order(&self, number: u64) -> io::Result<Option<(u64, Order)>> {
        let Some(index) = self.index_of(number) else { return Ok(None) };
        Ok(self.read(index, 1)?.pop().and_then(|e| e.order).map(|o| (index, o)))
    }

    /// The anchor of record `index` (None for -1 or past the end).
    pub fn anchor_at(&self, index: i64) -> Option<Anchor> {
        u64::try_from(index).ok().and_then(|n| self.get(n)).map(|e| e.anchor())
    }

    /// The order number logged under `key` (the first, should there be several). Exact for
    /// any order in the log: recent keys are in memory, older ones in the sealed segments
    /// (a candidate from there is checked against its record). A read error is an error, not
    /// a "no": a retried order must never be taken for a new one.
    pub fn number_of(&self, key: &str) -> io::Result<Option<u64>> {
        let hash = key_hash(key);
        let mut candidates = match self.sealed.candidates(hash) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("order: key segment unreadable ({e}); looking {key:?} up in the log itself");
                let mut found = None;
                let end = self.index_of(self.sealed.upto()).unwrap_or(self.count);
                self.visit(0, end, |_, e| {
                    found = e.order.filter(|o| o.key == key).map(|o| o.number);
                    found.is_none()
                })?;
                if found.is_some() {
                    return Ok(found);
                }
                Vec::new()
            }
        };
        candidates.extend(self.keys.candidates(hash));
        candidates.sort_unstable();
        for n in candidates {
            if self.read_order(n)?.is_some_and(|(_, o)| o.key == key) {
                return Ok(Some(n));
            }
        }
        Ok(None)
    }

    /// The order logged under `key`, with its record index ([`Self::number_of`] and
    /// [`Self::order`] in one, with read errors as errors).
    pub fn order_by_key(&self, key: &str) -> io::Result<Option<(u64, Order)>> {
        match self.number_of(key)? {
            Some(n) => self.read_order(n)?.map(Some).ok_or_else(|| changed(&self.path, format!("order {n} is missing"))),
            None => Ok(None),
        }
    }

    /// How many orders are in records up to and including `index` (the committed count when
    /// `index` is the commit index).
    pub fn orders_through(&self, index: i64) -> u64 {
        let Ok(index) = u64::try_from(index) else { return 0 };
        let index = index.min(self.count.saturating_sub(1));
        if self.count == 0 {
            return 0;
        }
        index + 1 - self.epochs.partition_point(|&e| e <= index) as u64
    }

    /// Orders with numbers `from..` whose records are at or before `index`, at most `max`.
    pub fn orders_between(&self, from: u64, index: i64, max: usize) -> Vec<Order> {
        let end = self.orders_through(index).min(from.saturating_add(max as u64));
        let mut out = Vec::new();
        if let Some(start) = self.index_of(from).filter(|_| from < end) {
            let r = self.visit(start, self.count, |_, e| {
                out.extend(e.order);
                (out.len() as u64) < end - from
            });
            self.reported(r);
        }
        out
    }

    /// Σ quantity of `toy` over the order records with number ≥ [`Self::pending_from`].
    pub fn pending(&self, toy: &str) -> i64 {
        self.pending.get(toy).copied().unwrap_or(0)
    }

    pub fn pending_from(&self) -> u64 {
        self.pending_from
    }

    /// Count pending orders from number `from` on (the catalog has applied `0..from`). Moving
    /// forward drops the orders passed; moving back recounts (both read only the orders
    /// between, usually in the tail). On a read error nothing changes.
    pub fn set_pending_from(&mut self, from: u64) -> io::Result<()> {
        let (forward, range) = if from >= self.pending_from {
            (true, self.pending_from..from.min(self.next_number))
        } else {
            (false, from..self.next_number)
        };
        let mut delta: HashMap<String, i64> = HashMap::new();
        if let Some(start) = self.index_of(range.start).filter(|_| !range.is_empty()) {
            let mut left = range.end - range.start;
            self.visit(start, self.count, |_, e| {
                if let Some(o) = e.order {
                    *delta.entry(o.name).or_default() += if forward { -o.quantity } else { o.quantity };
                    left -= 1;
                }
                left > 0
            })?;
        }
        if !forward {
            self.pending.clear();
        }
        for (name, q) in delta {
            *self.pending.entry(name).or_default() += q;
        }
        self.pending.retain(|_, q| *q != 0);
        self.pending_from = from;
        Ok(())
    }

    /// Records with index > `after`, at most `max`.
    pub fn after(&self, after: i64, max: usize) -> Vec<Entry> {
        let start = u64::try_from(after + 1).unwrap_or(0);
        self.reported(self.read(start, max))
    }

    /// Append records that continue the log (`entries[0].index == last + 1`, order numbers
    /// continuing too), all in one write and one fsync: a batch of 10 000 costs one fsync.
    pub fn append(&mut self, entries: &[Entry]) -> io::Result<()> {
        self.write(entries, true).map(|_| ())
    }

    /// Append like [`Log::append`] but without the fsync (one write): the leader's group commit
    /// fsyncs asynchronously afterwards ([`toystore_guest::durable::sync_data`], then
    /// [`Log::mark_synced`]). Until then [`Log::durable_last`] stays below these records.
    /// Returns whether the write created the file.
    pub fn append_unsynced(&mut self, entries: &[Entry]) -> io::Result<bool> {
        let first = entries.first().map(|e| e.index);
        let created = self.write(entries, false)?;
        if self.unsynced_from.is_none() {
            self.unsynced_from = first;
        }
        Ok(created)
    }

    /// The last record known to be on disk (an fsync covered it).
    pub fn durable_last(&self) -> i64 {
        self.unsynced_from.map_or(self.last(), |f| f as i64 - 1)
    }

    /// An fsync that started after record `through` was written has returned.
    pub fn mark_synced(&mut self, through: i64) {
        if let Some(f) = self.unsynced_from {
            if through >= self.last() {
                self.unsynced_from = None;
            } else if through >= f as i64 {
                self.unsynced_from = Some(through as u64 + 1);
            }
        }
    }

    /// Write `entries` in one write, fsync'd if `sync`; returns whether it created the file.
    fn write(&mut self, entries: &[Entry], sync: bool) -> io::Result<bool> {
        if entries.is_empty() {
            return Ok(false);
        }
        let mut buf = String::new();
        if self.len == 0 {
            buf.push_str(HEADER);
        }
        let mut offsets = Vec::with_capacity(entries.len());
        let mut number = self.next_number;
        for (next, e) in (self.count..).zip(entries) {
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
        let when = if sync { durable::Sync::Now } else { durable::Sync::Later };
        let written = durable::append_to(&mut self.file, &self.path, buf.as_bytes(), when);
        let created = match written {
            Ok(created) => created,
            Err(e) => {
                // Part of the write may have landed: put the file back to what we know, or
                // failing that make the next refresh re-read it.
                if durable::truncate(&self.path, self.len).is_err() {
                    self.len = u64::MAX;
                }
                return Err(e);
            }
        };
        self.len += buf.len() as u64;
        // Only the last TAIL records end up in the tail (pushing them evicts every older one): a
        // long batch (a catch-up page) copies just those, not every record only to drop most.
        let tail_from = entries.len().saturating_sub(TAIL);
        for (i, (e, offset)) in entries.iter().zip(offsets).enumerate() {
            if i < tail_from {
                self.count_one(e, offset);
            } else {
                self.index_one(e.clone(), offset);
            }
        }
        if sync {
            // An fsync covers every earlier write to the file too.
            self.unsynced_from = None;
        }
        Ok(created)
    }

    /// Cut the records from `from` on because their fsync failed (they may or may not be on
    /// disk): the file goes back to its durable part.
    pub fn drop_unsynced(&mut self) -> io::Result<()> {
        match self.unsynced_from {
            Some(f) => self.truncate_from(f),
            None => Ok(()),
        }
    }

    /// Cut every record with index ≥ `from` (durably). Only uncommitted records are ever cut:
    /// a replica's divergent tail once a more up-to-date log proves it was never committed.
    pub fn truncate_from(&mut self, from: u64) -> io::Result<()> {
        if from >= self.count {
            return Ok(());
        }
        // What is cut is read first: the keys and pending sums are undone from it.
        let mut new_len = None;
        let mut cut = Vec::new();
        self.visit(from, self.count, |at, e| {
            new_len.get_or_insert(at);
            cut.extend(e.order);
            true
        })?;
        let new_len = new_len.ok_or_else(|| changed(&self.path, format!("record {from} is missing")))?;
        let last_epoch = match from.checked_sub(1) {
            Some(prev) => self.read(prev, 1)?.pop().map_or(0, |e| e.epoch),
            None => 0,
        };
        durable::truncate(&self.path, new_len)?;
        self.unsynced_from = None; // the truncate fsync'd what remains
        self.len = new_len;
        self.count = from;
        self.last_epoch = last_epoch;
        self.next_number -= cut.len() as u64;
        for o in cut {
            self.keys.remove(key_hash(&o.key), o.number);
            if o.number >= self.pending_from {
                *self.pending.entry(o.name).or_default() -= o.quantity;
            }
        }
        self.pending.retain(|_, q| *q != 0);
        self.epochs.retain(|&i| i < from);
        self.sparse.truncate(from.div_ceil(SPARSE) as usize);
        while self.tail.back().is_some_and(|(_, e)| e.index >= from) {
            self.tail.pop_back();
        }
        if self.next_number < self.sealed.upto() {
            // The cut reopened a sealed segment: its remaining keys come back into memory.
            let keep = self.next_number / SEGMENT;
            self.sealed.cut(keep as usize);
            self.boundaries.truncate(keep as usize);
            let first = keep * SEGMENT;
            if let Some(start) = self.index_of(first) {
                let mut keys = Vec::new();
                self.visit(start, self.count, |_, e| {
                    keys.extend(e.order.map(|o| (key_hash(&o.key), o.number)));
                    true
                })?;
                for (h, n) in keys {
                    self.keys.insert(h, n);
                }
            }
        }
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
        let own = self.read(first.index, entries.len())?;
        let same = own.iter().zip(entries).take_while(|(a, b)| a == b).count();
        if same < own.len() {
            self.truncate_from(entries[same].index)?;
        }
        self.append(&entries[same..])?;
        Ok(Merge::Applied)
    }

    /// Bytes of memory the key segments' filters and fences hold (for tests).
    pub fn sealed_memory(&self) -> usize {
        self.sealed.memory()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_fast_paths_write_and_read_what_the_csv_crate_does() {
        let fields = ["Tux", "a", "", " ", " a", "a ", "a,b", "a\"b", "\"", "a\rb", "a\nb", "Ünïcödé", "k-0001", "25.99", "#a", "a b"];
        for f in fields {
            assert_eq!(csv_field(f), csv_written(f), "{f:?}");
        }
        assert_eq!(Entry::epoch_record(10, 18_446_744_073_709_551_615).to_line(), "10,18446744073709551615,epoch,,,,,\n");
        for name in fields {
            let o = Order { number: 3, name: name.to_string(), quantity: 2, price: "1.5".into(), key: "k".into() };
            let e = Entry::order_record(4, 1, o);
            let line = e.to_line();
            // The file format, spelled out: what the field-by-field writer must produce.
            assert_eq!(line, format!("4,1,order,3,{},2,1.5,k\n", csv_written(name)));
            let line = line.strip_suffix('\n').unwrap_or(&line);
            // The csv reader's view of the same line, through the slow path.
            assert_eq!(Entry::parse(line), parse_csv(line), "{line:?}");
        }
    }

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
        assert_eq!(again.number_of("k1").unwrap(), Some(1));
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
            log.set_pending_from(from).unwrap();
            assert_eq!((log.pending("Fox"), log.pending("Tux")), (f, t), "from {from}");
        }
        log.set_pending_from(1).unwrap();
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
        assert_eq!(a.number_of("b").unwrap(), Some(1));
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
        assert_eq!(log.number_of("x").unwrap(), None);
        assert_eq!(log.number_of("c").unwrap(), Some(1));
        let reread = Log::open(dir.path()).unwrap();
        assert_eq!(reread.get(3), Some(order(3, 1, "c", 2)));
        assert_eq!(log.merge(&[order(9, 5, "z", 2)]).unwrap(), Merge::Gap);
        log.truncate_from(1).unwrap();
        assert_eq!(Log::open(dir.path()).unwrap().last(), 0);
        assert_eq!(log.next_number(), 0);
    }

    #[test]
    fn bare_lines_parse_exactly_as_the_csv_path_does() {
        let lines = [
            "0,1,epoch,,,,,", "12,3,epoch,,,,,", "0,1,epoch,0,,,,", "0,1,epoch,,,,,,", "0,1,epoch,,,,", "00,1,epoch,,,,,",
            "+1,1,epoch,,,,,", "1,1,order,0,Tux,1,25.99,k", "1,1,order,0,Tux Jr,3,34.50,a-b", "1,1,order,0,ünïcode,3,34.50,k'1",
            "1,1,order,0, Tux,1,25.99,k", "1,1,order,0,Tux ,1,25.99,k", "1,1,order,0,Tux,1,25.99,k ", "1,1,order,0,Tux,0,25.99,k",
            "1,1,order,0,Tux,-1,25.99,k", "1,1,order,0,Tux,+1,25.99,k", "1,1,order,0,Tux,01,25.99,k", "1,1,order,00,Tux,1,25.99,k",
            "1,1,order,0,Tux,1,2.5e1,k", "1,1,order,0,Tux,1,,k", "1,1,order,0,,1,1,k", "1,1,order,0,Tux,1,1,", "1,1,order,,Tux,1,1,k",
            "1,1,order,0,Tux,1,1,k,", "1,1,order,0,Tux,1,1", "1,1,noop,,,,,", "x,1,epoch,,,,,", "1,1,order,0,T\tx,1,1,k",
            "1,1,order,0,Tux,1,1,k\r", "18446744073709551615,1,epoch,,,,,", "18446744073709551616,1,epoch,,,,,",
            "1,1,order,0,Tux,9223372036854775808,1,k", "", ",,,,,,,",
        ];
        for line in lines {
            assert!(!line.contains('"'));
            assert_eq!(parse_bare(line), parse_csv(line), "{line:?}");
        }
    }

    /// A log of `orders` orders with an epoch record every 1000 records (so number ≠ index).
    fn long_log(dir: &Path, orders: u64) -> (Log, Vec<Entry>) {
        let mut log = Log::open(dir).unwrap();
        let mut all = Vec::new();
        let (mut index, mut number) = (0, 0);
        while number < orders {
            if index % 1000 == 0 {
                all.push(Entry::epoch_record(index, index / 1000 + 1));
            } else {
                all.push(order(index, number, &format!("k{number}"), index / 1000 + 1));
                number += 1;
            }
            index += 1;
        }
        log.append(&all).unwrap();
        (log, all)
    }

    #[test]
    fn keys_are_found_in_every_segment_and_a_deleted_segment_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let orders = 2 * SEGMENT + 500;
        let (log, all) = long_log(dir.path(), orders);
        let seg = |start: u64| dir.path().join(crate::keys::DIR).join(format!("{start:020}.seg"));
        assert!(seg(0).exists() && seg(SEGMENT).exists() && !seg(2 * SEGMENT).exists());
        let samples = [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 4321, 2 * SEGMENT - 1, 2 * SEGMENT, orders - 1];
        for n in samples {
            assert_eq!(log.number_of(&format!("k{n}")).unwrap(), Some(n), "k{n}");
            let (index, o) = log.order(n).unwrap();
            assert_eq!((Some(&all[index as usize]), o.number), (all.iter().find(|e| e.order.as_ref().is_some_and(|o| o.number == n)), n));
        }
        assert_eq!(log.number_of("k-absent").unwrap(), None);
        assert_eq!(log.number_of(&format!("k{orders}")).unwrap(), None);
        // Memory for the sealed keys: a couple of bytes a key, not the keys.
        assert!(log.sealed_memory() < 2 * SEGMENT as usize * 2, "{}", log.sealed_memory());
        // Damaged while open: the lookup falls back to the log and is still exact.
        let first = fs::read(seg(SEGMENT)).unwrap();
        fs::write(seg(SEGMENT), b"garbage").unwrap();
        assert_eq!(log.number_of(&format!("k{}", SEGMENT + 7)).unwrap(), Some(SEGMENT + 7));
        // Deleted or damaged: the next open rebuilds both, byte for byte.
        let zero_before = fs::read(seg(0)).unwrap();
        fs::remove_file(seg(0)).unwrap();
        let zero = {
            let again = Log::open(dir.path()).unwrap();
            for n in samples {
                assert_eq!(again.number_of(&format!("k{n}")).unwrap(), Some(n), "k{n} after rebuild");
            }
            fs::read(seg(0)).unwrap()
        };
        assert_eq!(fs::read(seg(SEGMENT)).unwrap(), first);
        assert_eq!(zero, zero_before);
        // A stale segment of a longer log is removed on open.
        fs::write(seg(5 * SEGMENT), &first).unwrap();
        Log::open(dir.path()).unwrap();
        assert!(!seg(5 * SEGMENT).exists());
    }

    #[test]
    fn reads_by_offset_agree_with_the_file_after_cuts_and_merges() {
        let dir = tempfile::tempdir().unwrap();
        let orders = SEGMENT + 3000;
        let (mut log, mut all) = long_log(dir.path(), orders);
        let check = |log: &Log, all: &[Entry]| {
            assert_eq!(log.last(), all.len() as i64 - 1);
            for i in (0..all.len()).step_by(97).chain([0, all.len() - 1]) {
                assert_eq!(log.get(i as u64).as_ref(), Some(&all[i]), "record {i}");
            }
            assert_eq!(log.after(4, 3), all[5..8].to_vec());
            assert_eq!(log.position(), Position { last_epoch: all.last().unwrap().epoch, last: all.len() as i64 - 1 });
            let orders: Vec<(u64, &Order)> = all.iter().filter_map(|e| e.order.as_ref().map(|o| (e.index, o))).collect();
            assert_eq!(log.next_number(), orders.len() as u64);
            for (index, o) in orders.iter().step_by(331) {
                assert_eq!(log.index_of(o.number), Some(*index), "number {}", o.number);
                assert_eq!(log.orders_through(*index as i64), o.number + 1);
                assert_eq!(log.number_of(&o.key).unwrap(), Some(o.number), "{}", o.key);
            }
        };
        check(&log, &all);
        // Cut below the sealed segment's end: its keys after the cut are gone, before it found.
        let cut_at = SEGMENT - 100; // a record index: order number ≈ SEGMENT - 117
        let cut_number = all[cut_at as usize..].iter().find_map(|e| e.order.as_ref().map(|o| o.number)).unwrap();
        log.truncate_from(cut_at).unwrap();
        all.truncate(cut_at as usize);
        check(&log, &all);
        assert_eq!(log.number_of(&format!("k{cut_number}")).unwrap(), None);
        assert_eq!(log.number_of(&format!("k{}", SEGMENT + 10)).unwrap(), None);
        check(&Log::open(dir.path()).unwrap(), &all);
        // Grow it again past the segment with new keys, then merge a divergent suffix that
        // starts before the tail.
        let epoch = all.last().unwrap().epoch + 1;
        let mut more = vec![Entry::epoch_record(all.len() as u64, epoch)];
        let first = log.next_number();
        for n in first..first + 2000 {
            more.push(order(all.len() as u64 + more.len() as u64, n, &format!("new{n}"), epoch));
        }
        log.append(&more).unwrap();
        all.extend(more);
        assert_eq!(log.number_of(&format!("new{}", first + 1999)).unwrap(), Some(first + 1999));
        let from = all.len() as u64 - 1500;
        let number = all[from as usize..].iter().find_map(|e| e.order.as_ref().map(|o| o.number)).unwrap();
        let mut theirs = all[from as usize - 2..from as usize].to_vec();
        theirs.push(Entry::epoch_record(from, epoch + 1));
        theirs.push(order(from + 1, number, "theirs", epoch + 1));
        assert_eq!(log.merge(&theirs).unwrap(), Merge::Applied);
        all.truncate(from as usize);
        all.extend(theirs[2..].iter().cloned());
        check(&log, &all);
        assert_eq!(log.number_of("theirs").unwrap(), Some(number));
        assert_eq!(log.number_of(&format!("new{}", first + 1999)).unwrap(), None);
        check(&Log::open(dir.path()).unwrap(), &all);
        let file = fs::read_to_string(log.path()).unwrap();
        let want: String = std::iter::once(H.to_string()).chain(all.iter().map(Entry::to_line)).collect();
        assert!(file == want, "the file is the records, in order");
    }

    #[test]
    fn open_resumes_from_the_last_boundary_that_still_holds() {
        let dir = tempfile::tempdir().unwrap();
        let orders = 2 * SEGMENT + 700;
        let (log, all) = long_log(dir.path(), orders);
        let path = log.path().to_path_buf();
        let seg = |start: u64| dir.path().join(crate::keys::DIR).join(format!("{start:020}.seg"));
        let same = |log: &Log, all: &[Entry]| {
            assert_eq!(log.position(), Position { last_epoch: all.last().unwrap().epoch, last: all.len() as i64 - 1 });
            for i in (0..all.len()).step_by(211).chain([all.len() - 1]) {
                assert_eq!(log.get(i as u64).as_ref(), Some(&all[i]), "record {i}");
                if let Some(o) = &all[i].order {
                    assert_eq!(log.index_of(o.number), Some(i as u64));
                    assert_eq!(log.number_of(&o.key).unwrap(), Some(o.number), "{}", o.key);
                }
            }
            assert_eq!(log.orders_through(all.len() as i64), all.iter().filter(|e| e.order.is_some()).count() as u64);
        };
        drop(log);
        let reopened = Log::open(dir.path()).unwrap();
        same(&reopened, &all);
        assert_eq!(reopened.boundaries.len(), 2, "both segments' boundaries were used");
        drop(reopened);
        // Cut while down (as the benchmark does to a stopped replica): the second boundary is past
        // the end, so its segment goes and the scan resumes from the first.
        let keep = all.iter().position(|e| e.order.as_ref().is_some_and(|o| o.number == SEGMENT + 900)).unwrap();
        let file = fs::read(&path).unwrap();
        let cut_at = file.iter().enumerate().filter(|(_, &b)| b == b'\n').nth(keep).unwrap().0 + 1;
        fs::write(&path, &file[..cut_at]).unwrap();
        let cut = Log::open(dir.path()).unwrap();
        same(&cut, &all[..keep]);
        assert_eq!(cut.boundaries.len(), 1);
        assert!(!seg(SEGMENT).exists());
        assert_eq!(cut.number_of(&format!("k{}", SEGMENT + 901)).unwrap(), None);
        drop(cut);
        // The line at the first boundary replaced by another of the same length: no boundary
        // holds, everything is scanned (and resealed) from the start.
        let b = all.iter().position(|e| e.order.as_ref().is_some_and(|o| o.number == SEGMENT - 1)).unwrap();
        let text = String::from_utf8(fs::read(&path).unwrap()).unwrap();
        let line = all[b].to_line();
        let other = line.replace(&format!("k{}", SEGMENT - 1), &format!("x{}", SEGMENT - 1));
        fs::write(&path, text.replacen(&line, &other, 1)).unwrap();
        let mut changed = all[..keep].to_vec();
        if let Some(o) = changed[b].order.as_mut() {
            o.key = format!("x{}", SEGMENT - 1);
        }
        let rescanned = Log::open(dir.path()).unwrap();
        same(&rescanned, &changed);
        assert_eq!(rescanned.number_of(&format!("k{}", SEGMENT - 1)).unwrap(), None);
        assert_eq!(rescanned.number_of(&format!("x{}", SEGMENT - 1)).unwrap(), Some(SEGMENT - 1));
        assert_eq!(rescanned.boundaries.len(), 1, "segment 0 resealed from the log");
    }

    #[test]
    fn a_batch_longer_than_the_tail_reads_back_whole_from_memory_and_disk() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path()).unwrap();
        let first = epoch_then_orders(0, 0, 10, 1);
        let batch: Vec<Entry> = (0..2 * TAIL as u64 + 5).map(|n| order(11 + n, 10 + n, &format!("k{}", 10 + n), 1)).collect();
        log.append(&first).unwrap();
        log.merge(&batch).unwrap();
        let all: Vec<Entry> = first.into_iter().chain(batch).collect();
        assert_eq!(log.tail.len(), TAIL);
        for (reopened, log) in [(false, &log), (true, &Log::open(dir.path()).unwrap())] {
            for e in &all {
                assert_eq!(log.get(e.index).as_ref(), Some(e), "record {} (reopened: {reopened})", e.index);
            }
            assert_eq!(log.after(5, 3000), all[6..].to_vec());
            let last = all.last().and_then(|e| e.order.clone()).unwrap();
            assert_eq!(log.number_of(&last.key).unwrap(), Some(last.number));
        }
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
        assert_eq!(Log::open(dir.path()).unwrap().number_of("k100049").unwrap(), Some(100_049));
    }

    /// The leader's group commit: records appended without an fsync are in the index (numbers,
    /// keys, the next index) but not in `durable_last` until `mark_synced`; a synced append, a
    /// cut or a reload covers everything before it; `drop_unsynced` cuts exactly them.
    #[test]
    fn unsynced_records_count_as_durable_only_once_synced() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path()).unwrap();
        assert!(log.append_unsynced(&epoch_then_orders(0, 0, 2, 1)).unwrap(), "the first write creates the file");
        assert_eq!((log.last(), log.durable_last()), (2, -1));
        assert_eq!(log.number_of("k1").unwrap(), Some(1), "numbered and keyed at once");
        log.mark_synced(1);
        assert_eq!(log.durable_last(), 1);
        log.mark_synced(2);
        assert_eq!(log.durable_last(), 2);

        assert!(!log.append_unsynced(&[order(3, 2, "k2", 1), order(4, 3, "k3", 1)]).unwrap());
        assert_eq!(log.durable_last(), 2);
        log.drop_unsynced().unwrap();
        assert_eq!((log.last(), log.durable_last(), log.number_of("k3").unwrap()), (2, 2, None), "the unsynced batch is cut");
        assert_eq!(Log::open(dir.path()).unwrap().last(), 2, "and gone from the file");

        log.append_unsynced(&[order(3, 2, "k2", 1)]).unwrap();
        log.append(&[order(4, 3, "k3", 1)]).unwrap();
        assert_eq!(log.durable_last(), 4, "an fsync covers the earlier writes too");
        log.append_unsynced(&[order(5, 4, "k4", 1)]).unwrap();
        log.truncate_from(5).unwrap();
        assert_eq!(log.durable_last(), 4);
    }
}
