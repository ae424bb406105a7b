//! A whole `orders.csv` read at once: the records, where each line starts, and — for a damaged
//! file — what is wrong with it and where ([`Damage`]), so that `open` can refuse it with a
//! message an operator can act on and `toystore check` can report it.

use std::path::Path;

use super::record::{Record, Order, HEADER, OLD_HEADER};

/// Result of parsing a file's bytes: the records, where each line starts, and how many bytes
/// they take (anything after is a torn last line, to cut).
#[derive(Debug, Default)]
pub struct Parsed {
    pub entries: Vec<Record>,
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
        match line.and_then(Record::parse) {
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
