//! The bounded index over `orders.csv` ([`Log`]) and every read and write of the file through
//! it: open (one scan), refresh, append, cut, merge, and the lookups by index, number and key.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::fs::{self, File};
use std::io::{self, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toystore_guest::durable;

use super::damage::{Corrupt, Damage, OldFormat};
use super::record::{Anchor, Record, Order, FILE, HEADER, OLD_HEADER};
use crate::keys::{bytes_hash, key_hash, Boundary, Recent, Sealed, SEGMENT};

/// How two logs compare for leadership and catch-up: the one whose last record has the higher
/// epoch is more up to date; with equal epochs, the longer one (Raft's rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Position {
    pub last_epoch: u64,
    pub last: i64,
}

/// Records per sparse-index entry: a read by index seeks to the offset of record
/// `index / SPARSE * SPARSE` and skips at most `SPARSE - 1` lines (~3 KiB).
pub(super) const SPARSE: u64 = 64;
/// Recent records kept parsed in memory: replication, reads, cuts and the pending sums mostly
/// touch the end of the log.
pub(super) const TAIL: usize = 1024;
/// Bytes a scan reads per call; a point read reads [`SMALL_CHUNK`].
pub(super) const CHUNK: usize = 64 * 1024;
pub(super) const SMALL_CHUNK: usize = 4 * 1024;

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
    pub(super) tail: VecDeque<(u64, Record)>,
    /// Key hash → order numbers, for order numbers ≥ `sealed.upto()`.
    keys: Recent,
    /// The keys of older orders, on disk.
    sealed: Sealed,
    /// The record count at the end of each sealed segment.
    pub(super) boundaries: Vec<u64>,
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

pub(super) fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

pub(super) fn changed(path: &Path, what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{}: {what} (the file changed under this instance's index)", path.display()))
}

/// Complete lines of a file from a byte offset, read in chunks: a scan never holds the whole
/// file in memory.
pub(super) struct Lines<R> {
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

pub(super) fn parse_line(path: &Path, index: u64, line: &[u8]) -> io::Result<Record> {
    std::str::from_utf8(line)
        .ok()
        .and_then(Record::parse)
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
        let record = line.strip_suffix(b"\n").and_then(|l| std::str::from_utf8(l).ok()).and_then(Record::parse);
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
                    match std::str::from_utf8(line).ok().and_then(Record::parse) {
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
    fn index_one(&mut self, e: Record, offset: u64) {
        self.count_one(&e, offset);
        self.tail.push_back((offset, e));
        if self.tail.len() > TAIL {
            self.tail.pop_front();
        }
    }

    /// Add one record to the index but not to the tail (the caller keeps the tail a suffix of
    /// the log); seal the key segment it fills, if any.
    fn count_one(&mut self, e: &Record, offset: u64) {
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
    fn seal_full_segments(&mut self, last: &Record, offset: u64) {
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
    fn boundary(&self, last: &Record, line_at: u64) -> Boundary {
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
    fn visit(&self, from: u64, to: u64, mut f: impl FnMut(u64, Record) -> bool) -> io::Result<()> {
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
    fn read(&self, from: u64, max: usize) -> io::Result<Vec<Record>> {
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
    pub fn get(&self, index: u64) -> Option<Record> {
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
    pub fn after(&self, after: i64, max: usize) -> Vec<Record> {
        let start = u64::try_from(after + 1).unwrap_or(0);
        self.reported(self.read(start, max))
    }

    /// Append records that continue the log (`entries[0].index == last + 1`, order numbers
    /// continuing too), all in one write and one fsync: a batch of 10 000 costs one fsync.
    pub fn append(&mut self, entries: &[Record]) -> io::Result<()> {
        self.write(entries, true).map(|_| ())
    }

    /// Append like [`Log::append`] but without the fsync (one write): the leader's group commit
    /// fsyncs asynchronously afterwards ([`toystore_guest::durable::sync_data`], then
    /// [`Log::mark_synced`]). Until then [`Log::durable_last`] stays below these records.
    /// Returns whether the write created the file.
    pub fn append_unsynced(&mut self, entries: &[Record]) -> io::Result<bool> {
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
    fn write(&mut self, entries: &[Record], sync: bool) -> io::Result<bool> {
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
    pub fn merge(&mut self, entries: &[Record]) -> io::Result<Merge> {
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
