//! Reading one replica's `orders.csv` for `toystore check`, in the record format of issue 9:
//!
//! ```text
//! index,epoch,kind,number,name,quantity,price,key
//! 0,1,epoch,,,,,
//! 1,1,order,0,Tux,2,25.99,k-7f3a
//! ```
//!
//! Records are parsed by the order service's own reader ([`toystore_order::log::Record::parse`]),
//! so the check accepts exactly what a replica accepts. Only whole lines count; a last line
//! without its `\n` is a torn append (a crash mid-write, never acknowledged) and is reported as
//! such, not as damage. Sequence rules (indexes, numbers, keys, epochs) are judged by the caller,
//! which names every one that breaks rather than stopping at the first.

use std::path::Path;

pub use toystore_order::log::{Record as Record, Order};

/// The header of the record format (without its `\n`).
pub fn header() -> &'static str {
    toystore_order::log::HEADER.trim_end_matches('\n')
}

/// The header of the format before issue 9 (no longer read by the replicas).
pub fn old_header() -> &'static str {
    toystore_order::log::OLD_HEADER.trim_end_matches('\n')
}

/// One complete line of the file (with its 1-based line number and exact text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub number: u64,
    pub text: String,
}

/// A log file split into what can be judged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawLog {
    /// The header line (None: an empty or missing file).
    pub header: Option<String>,
    /// Every complete record line, in order.
    pub lines: Vec<Line>,
    /// The bytes after the last `\n`, if any: a torn append.
    pub torn: Option<String>,
}

/// Split `bytes` into header, complete lines and a torn tail.
pub fn split(bytes: &[u8]) -> RawLog {
    let text = String::from_utf8_lossy(bytes);
    let Some(end) = text.rfind('\n') else {
        // Not even one whole line: empty, or a header torn while being written.
        return RawLog { header: None, lines: Vec::new(), torn: (!text.is_empty()).then(|| text.to_string()) };
    };
    let torn = (end + 1 < text.len()).then(|| text[end + 1..].to_string());
    let mut lines = text[..end].split('\n').enumerate().map(|(i, t)| Line { number: i as u64 + 1, text: t.to_string() });
    let header = lines.next().map(|l| l.text);
    RawLog { header, lines: lines.collect(), torn }
}

/// Read a replica's log; a missing file is an empty log (the replica never wrote one).
pub fn read(path: &Path) -> std::io::Result<RawLog> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(split(&bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RawLog::default()),
        Err(e) => Err(e),
    }
}

/// Parse one line (without its `\n`) exactly as a replica does.
pub fn parse_line(line: &str) -> Result<Record, String> {
    Record::parse(line).ok_or_else(|| format!("`{line}` is not a record in the log's exact form"))
}
