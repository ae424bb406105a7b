//! `orders.csv`: the replicated order log, and the in-memory index over it.
//!
//! The file is the truth. It is a header line followed by one line per order, numbered 0,1,2,…
//! without gaps, and it only ever changes in two ways, both durable before anyone is told:
//! whole lines appended and fsync'd ([`durable::append`]), or a suffix cut off
//! ([`durable::truncate`]) when a replica learns that its tail was never committed.
//!
//! Every replica serialises an entry to exactly the same bytes, so replicas that agree on the
//! entries end with byte-identical files (the tests compare them).
//!
//! The index ([`Log`]) is a cache: the entries, the byte offset at which each line starts (so a
//! suffix can be cut in O(1)), and key → number for idempotency. Before it is used under the
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
pub const HEADER: &str = "number,name,quantity,key,epoch\n";

/// One order as stored and replicated. `epoch` is the epoch of the leader that wrote this
/// version of the entry; together with `number` it identifies the entry (a leader writes at
/// most one entry per number in its epoch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub number: u64,
    pub name: String,
    pub quantity: i64,
    pub key: String,
    pub epoch: u64,
}

impl Entry {
    /// The exact bytes of this entry's line (with its `\n`).
    pub fn to_line(&self) -> String {
        format!(
            "{},{},{},{},{}\n",
            self.number,
            csv_field(&self.name),
            self.quantity,
            csv_field(&self.key),
            self.epoch
        )
    }

    /// Parse one line (without its `\n`). Only a line in exactly the form [`Entry::to_line`]
    /// writes counts: anything else (a stray quote, `01` for `1`) is damage, not an entry.
    pub fn parse(line: &str) -> Option<Entry> {
        let mut reader =
            csv::ReaderBuilder::new().has_headers(false).buffer_capacity(line.len() + 1).from_reader(line.as_bytes());
        let f = reader.records().next()?.ok()?;
        if f.len() != 5 {
            return None;
        }
        let e = Entry {
            number: f[0].parse().ok()?,
            name: f[1].to_string(),
            quantity: f[2].parse().ok()?,
            key: f[3].to_string(),
            epoch: f[4].parse().ok()?,
        };
        let canonical = e.to_line();
        (e.is_valid() && canonical.strip_suffix('\n') == Some(line)).then_some(e)
    }

    /// What may be written to the log: fields that round-trip through one CSV line.
    /// Entries from peers are checked too, never trusted blindly.
    pub fn is_valid(&self) -> bool {
        valid_text(&self.name) && valid_text(&self.key) && self.quantity > 0
    }

    /// Identity of an entry for log matching: (number, epoch).
    pub fn anchor(&self) -> Anchor {
        Anchor { number: self.number, epoch: self.epoch }
    }
}

/// `(number, epoch)` of an entry: enough to tell whether two logs agree up to and including it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    pub number: u64,
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

/// Result of parsing a file's bytes: the entries, where each line starts, and how many bytes
/// they take (anything after is a torn last line, to cut).
#[derive(Debug, Default)]
pub struct Parsed {
    pub entries: Vec<Entry>,
    pub offsets: Vec<u64>,
    pub valid_len: u64,
}

/// A complete line of `orders.csv` that is not the next entry. Unlike a torn last line (a crash
/// mid-append, never acknowledged) it cannot be cut: every line after it may be an acknowledged
/// order, so the replica stops and a person looks at the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: line {line} is not a valid order entry (number {expected} expected); refusing to cut the log there — fix or remove the file by hand")]
pub struct Corrupt {
    pub path: String,
    /// 1-based line in the file (the header is line 1, entry 0 is line 2).
    pub line: usize,
    /// The entry number that line should have held.
    pub expected: u64,
}

/// Parse a whole `orders.csv`. Only complete lines count (a line exists once its `\n` is on
/// disk), so a last line without its `\n` — or a torn header — is a torn tail, left out of
/// `valid_len`. Any complete line that is unreadable or out of sequence is [`Corrupt`].
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Parsed, Corrupt> {
    let mut p = Parsed::default();
    let corrupt = |line: usize, expected: u64| Corrupt { path: path.display().to_string(), line, expected };
    if !bytes.starts_with(HEADER.as_bytes()) {
        // Empty, or a header torn while the file was created: nothing was ever acknowledged.
        return if HEADER.as_bytes().starts_with(bytes) { Ok(p) } else { Err(corrupt(1, 0)) };
    }
    let mut pos = HEADER.len();
    p.valid_len = pos as u64;
    while pos < bytes.len() {
        let Some(nl) = bytes[pos..].iter().position(|&b| b == b'\n') else { break };
        let expected = p.entries.len() as u64;
        let line = std::str::from_utf8(&bytes[pos..pos + nl]).ok();
        match line.and_then(Entry::parse) {
            Some(e) if e.number == expected => {
                p.offsets.push(pos as u64);
                p.entries.push(e);
            }
            _ => return Err(corrupt(p.entries.len() + 2, expected)),
        }
        pos += nl + 1;
        p.valid_len = pos as u64;
    }
    Ok(p)
}

/// How two logs compare for leadership and catch-up: the one whose last entry has the higher
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
    keys: HashMap<String, u64>,
    /// File length as this instance last read or wrote it.
    len: u64,
}

/// What [`Log::merge`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merge {
    /// Entries applied (or already present); the log now ends at `last`.
    Applied,
    /// The first entry does not follow on from this log (it starts after `last + 1`).
    Gap,
}

impl Log {
    /// Open (or start) the log in `dir`, cutting a torn last line. A corrupt line elsewhere is
    /// an `InvalidData` error carrying [`Corrupt`], and the file is left as it is.
    pub fn open(dir: &Path) -> io::Result<Log> {
        let mut log = Log {
            path: dir.join(FILE),
            entries: Vec::new(),
            offsets: Vec::new(),
            keys: HashMap::new(),
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
        self.keys = HashMap::with_capacity(p.entries.len());
        for e in &p.entries {
            self.keys.entry(e.key.clone()).or_insert(e.number);
        }
        self.entries = p.entries;
        self.offsets = p.offsets;
        self.len = p.valid_len;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of the last entry, -1 when empty.
    pub fn last(&self) -> i64 {
        self.entries.len() as i64 - 1
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Epoch of the last entry, 0 when empty.
    pub fn last_epoch(&self) -> u64 {
        self.entries.last().map(|e| e.epoch).unwrap_or(0)
    }

    pub fn position(&self) -> Position {
        Position { last_epoch: self.last_epoch(), last: self.last() }
    }

    pub fn get(&self, number: u64) -> Option<&Entry> {
        usize::try_from(number).ok().and_then(|i| self.entries.get(i))
    }

    /// The anchor of entry `number` (None for -1 or past the end).
    pub fn anchor_at(&self, number: i64) -> Option<Anchor> {
        u64::try_from(number).ok().and_then(|n| self.get(n)).map(Entry::anchor)
    }

    pub fn number_of(&self, key: &str) -> Option<u64> {
        self.keys.get(key).copied()
    }

    /// Entries with number > `after`, at most `max`.
    pub fn after(&self, after: i64, max: usize) -> &[Entry] {
        let start = usize::try_from(after + 1).unwrap_or(0).min(self.entries.len());
        let end = start.saturating_add(max).min(self.entries.len());
        &self.entries[start..end]
    }

    /// Append entries that continue the log (`entries[0].number == last + 1`), all in one
    /// write and one fsync: a batch of 10 000 costs one fsync, not 10 000.
    pub fn append(&mut self, entries: &[Entry]) -> io::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut buf = String::new();
        if self.len == 0 {
            buf.push_str(HEADER);
        }
        let mut offsets = Vec::with_capacity(entries.len());
        for (next, e) in (self.entries.len() as u64..).zip(entries) {
            if e.number != next || !e.is_valid() {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("entry {} does not continue the log", e.number)));
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
        self.offsets.extend(offsets);
        for e in entries {
            self.keys.entry(e.key.clone()).or_insert(e.number);
            self.entries.push(e.clone());
        }
        Ok(())
    }

    /// Cut every entry with number ≥ `from` (durably). Only uncommitted entries are ever cut:
    /// a leader's own failed entry, or a replica's divergent tail once a more up-to-date log
    /// proves it was never committed.
    pub fn truncate_from(&mut self, from: u64) -> io::Result<()> {
        let Ok(from) = usize::try_from(from) else { return Ok(()) };
        if from >= self.entries.len() {
            return Ok(());
        }
        let new_len = self.offsets[from];
        durable::truncate(&self.path, new_len)?;
        for e in self.entries.drain(from..) {
            if self.keys.get(&e.key) == Some(&e.number) {
                self.keys.remove(&e.key);
            }
        }
        self.offsets.truncate(from);
        self.len = new_len;
        Ok(())
    }

    /// Make this log agree with a more authoritative one (the leader's, or a more up-to-date
    /// peer's) on `entries`, which must be contiguous and start at most at `last + 1`; the
    /// caller has checked that the entry before `entries[0]` matches. Entries already present
    /// with the same (number, epoch) are skipped; at the first that differs the local tail is
    /// cut and the rest appended in one write.
    pub fn merge(&mut self, entries: &[Entry]) -> io::Result<Merge> {
        let Some(first) = entries.first() else { return Ok(Merge::Applied) };
        if first.number as i64 > self.last() + 1 {
            return Ok(Merge::Gap);
        }
        for (i, e) in entries.iter().enumerate() {
            if e.number != first.number + i as u64 || !e.is_valid() {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, "entries are not contiguous or not valid"));
            }
        }
        let mut i = 0;
        while i < entries.len() {
            match self.get(entries[i].number) {
                Some(own) if own.anchor() == entries[i].anchor() && own == &entries[i] => i += 1,
                Some(_) => {
                    self.truncate_from(entries[i].number)?;
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

    pub fn entry(number: u64, key: &str, epoch: u64) -> Entry {
        Entry { number, name: "Tux".into(), quantity: 1, key: key.into(), epoch }
    }

    #[test]
    fn csv_round_trip_with_awkward_fields() {
        for name in ["Tux", "Lego, big", "say \"hi\"", " padded ", "ünïcode"] {
            let e = Entry { number: 7, name: name.into(), quantity: 3, key: "k,\"1\"".into(), epoch: 2 };
            let line = e.to_line();
            assert!(line.ends_with('\n'));
            assert_eq!(Entry::parse(line.trim_end_matches('\n')), Some(e.clone()), "{line}");
        }
        assert_eq!(entry(0, "k", 1).to_line(), "0,Tux,1,k,1\n");
        assert_eq!(Entry::parse("0,Tux,1,k"), None);
        assert_eq!(Entry::parse("0,Tux,0,k,1"), None, "quantity must be positive");
        assert_eq!(Entry::parse("x,Tux,1,k,1"), None);
        assert_eq!(Entry::parse("0,\"Tux,1,k,1"), None);
    }

    #[test]
    fn tricky_fields_have_pinned_bytes() {
        let line = |name: &str, key: &str| Entry { number: 7, name: name.into(), quantity: 3, key: key.into(), epoch: 2 }.to_line();
        assert_eq!(line("Lego, big", "k"), "7,\"Lego, big\",3,k,2\n");
        assert_eq!(line("say \"hi\"", "k"), "7,\"say \"\"hi\"\"\",3,k,2\n");
        assert_eq!(line(" padded", "k "), "7,\" padded\",3,\"k \",2\n");
        assert_eq!(line("Tux Jr", "a-b"), "7,Tux Jr,3,a-b,2\n");
        assert_eq!(line("ünïcode", "k'1"), "7,ünïcode,3,k'1,2\n");
    }

    #[test]
    fn only_lines_in_the_written_form_parse() {
        assert_eq!(Entry::parse("0,Tux,1,k,1"), Some(entry(0, "k", 1)));
        assert_eq!(Entry::parse("0,Tu\"x,1,k,1"), None, "stray quote");
        assert_eq!(Entry::parse("0,\"Tux\"x,1,k,1"), None, "text after a closing quote");
        assert_eq!(Entry::parse("0,\"Tux\",1,k,1"), None, "quoted although nothing needs quotes");
        assert_eq!(Entry::parse("00,Tux,1,k,1"), None);
    }

    #[test]
    fn append_reload_and_index() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path()).unwrap();
        assert_eq!(log.last(), -1);
        log.append(&[entry(0, "a", 1), entry(1, "b", 1)]).unwrap();
        log.append(&[entry(2, "c", 2)]).unwrap();
        let bytes = fs::read(log.path()).unwrap();
        assert_eq!(bytes, b"number,name,quantity,key,epoch\n0,Tux,1,a,1\n1,Tux,1,b,1\n2,Tux,1,c,2\n");
        let again = Log::open(dir.path()).unwrap();
        assert_eq!(again.last(), 2);
        assert_eq!(again.number_of("b"), Some(1));
        assert_eq!(again.position(), Position { last_epoch: 2, last: 2 });
        assert!(log.append(&[entry(5, "z", 2)]).is_err(), "gaps are refused");
    }

    #[test]
    fn torn_tail_is_ignored_and_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        fs::write(&path, "number,name,quantity,key,epoch\n0,Tux,1,a,1\n1,Tux,1,b").unwrap();
        let mut log = Log::open(dir.path()).unwrap();
        assert_eq!(log.last(), 0);
        assert_eq!(fs::read(&path).unwrap(), b"number,name,quantity,key,epoch\n0,Tux,1,a,1\n");
        log.append(&[entry(1, "c", 1)]).unwrap();
        assert_eq!(Log::open(dir.path()).unwrap().get(1).unwrap().key, "c");
        // A torn header is nothing at all.
        fs::write(&path, "number,na").unwrap();
        assert_eq!(Log::open(dir.path()).unwrap().last(), -1);
        assert_eq!(fs::read(&path).unwrap(), b"");
    }

    #[test]
    fn a_corrupt_line_before_the_end_stops_the_log_and_cuts_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let header = "number,name,quantity,key,epoch\n";
        // (file contents, 1-based line reported)
        let cases = [
            (format!("{header}0,Tux,1,a,1\ngarbage\n2,Tux,1,c,1\n"), 3),
            (format!("{header}0,Tux,1,a,1\n2,Tux,1,c,1\n"), 3),
            (format!("{header}0,Tux,1,a,1\n1,Tux,1,b,1\nnope\n3,Tux,1,d,1"), 4),
            // Damaged but complete last line: still not a torn append.
            (format!("{header}0,Tux,0,a,1\n"), 2),
            ("not our header\n0,Tux,1,a,1\n".to_string(), 1),
        ];
        for (contents, line) in cases {
            fs::write(&path, &contents).unwrap();
            let err = Log::open(dir.path()).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{contents:?}");
            let corrupt = err.get_ref().and_then(|e| e.downcast_ref::<Corrupt>()).cloned();
            assert_eq!(corrupt.map(|c| c.line), Some(line), "{contents:?}");
            assert!(err.to_string().contains(&format!("{}: line {line}", path.display())), "{err}");
            assert_eq!(fs::read_to_string(&path).unwrap(), contents, "nothing is cut");
        }
        // An instance that had the log open sees the damage on refresh, and cuts nothing either.
        fs::write(&path, format!("{header}0,Tux,1,a,1\n")).unwrap();
        let mut log = Log::open(dir.path()).unwrap();
        fs::write(&path, format!("{header}0,Tux,1,a,1\nbad\n1,Tux,1,b,1\n")).unwrap();
        assert!(log.refresh().is_err());
        assert!(fs::read_to_string(&path).unwrap().ends_with("1,Tux,1,b,1\n"));
    }

    #[test]
    fn refresh_sees_another_instances_writes() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = Log::open(dir.path()).unwrap();
        let mut b = Log::open(dir.path()).unwrap();
        a.append(&[entry(0, "a", 1)]).unwrap();
        assert_eq!(b.last(), -1);
        b.refresh().unwrap();
        assert_eq!(b.last(), 0);
        b.append(&[entry(1, "b", 1)]).unwrap();
        a.refresh().unwrap();
        assert_eq!(a.number_of("b"), Some(1));
    }

    #[test]
    fn merge_skips_same_and_replaces_divergent_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path()).unwrap();
        log.append(&[entry(0, "a", 1), entry(1, "b", 1), entry(2, "x", 1)]).unwrap();
        // 0..1 identical, 2 differs (epoch 2 rewrote it), 3 new.
        let m = log.merge(&[entry(1, "b", 1), entry(2, "c", 2), entry(3, "d", 2)]).unwrap();
        assert_eq!(m, Merge::Applied);
        assert_eq!(log.last(), 3);
        assert_eq!(log.number_of("x"), None);
        assert_eq!(log.number_of("c"), Some(2));
        let reread = Log::open(dir.path()).unwrap();
        assert_eq!(reread.get(2), Some(&entry(2, "c", 2)));
        assert_eq!(log.merge(&[entry(9, "z", 2)]).unwrap(), Merge::Gap);
        log.truncate_from(1).unwrap();
        assert_eq!(Log::open(dir.path()).unwrap().last(), 0);
    }

    #[test]
    fn large_log_appends_stay_cheap() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path()).unwrap();
        let batch: Vec<Entry> = (0..100_000).map(|n| entry(n, &format!("k{n}"), 1)).collect();
        log.append(&batch).unwrap();
        let t = std::time::Instant::now();
        for n in 100_000..100_050 {
            log.refresh().unwrap();
            log.append(&[entry(n, &format!("k{n}"), 1)]).unwrap();
        }
        assert!(t.elapsed() < std::time::Duration::from_secs(5), "{:?}", t.elapsed());
        assert_eq!(Log::open(dir.path()).unwrap().number_of("k100049"), Some(100_049));
    }
}
