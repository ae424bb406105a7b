//! Reading one replica's `orders.csv` for `toystore check`, in the record format of issue 9:
//!
//! ```text
//! index,epoch,kind,number,name,quantity,price,key
//! 0,1,epoch,,,,,
//! 1,1,order,0,Tux,2,25.99,k-7f3a
//! ```
//!
//! Written against the format's contract, independently of the order service's own reader
//! (`toystore_order::log`), which it should be switched to once that lands: the record and
//! line rules are the same. Only whole lines count; a last line without its `\n` is a torn
//! append (a crash mid-write, never acknowledged) and is reported as such, not as damage.

use std::path::Path;

/// The header of the record format.
pub const HEADER: &str = "index,epoch,kind,number,name,quantity,price,key";
/// The header of the format before issue 9 (no longer read by the replicas).
pub const OLD_HEADER: &str = "number,name,quantity,key,epoch";

/// The order an order record carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub number: u64,
    pub name: String,
    pub quantity: u64,
    /// The unit price text, as the catalog spelt it when the order was admitted.
    pub price: String,
    pub key: String,
}

/// One record: its position, the epoch of the leader that wrote it, and its order (`None`: an
/// epoch record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub index: u64,
    pub epoch: u64,
    pub order: Option<Order>,
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

/// Parse one line (without its `\n`), or say what is wrong with it.
pub fn parse_line(line: &str) -> Result<Record, String> {
    let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(line.as_bytes());
    let f = match reader.records().next() {
        Some(Ok(f)) => f,
        Some(Err(e)) => return Err(format!("not CSV: {e}")),
        None => return Err("empty line".into()),
    };
    if f.len() != 8 {
        return Err(format!("{} fields, expected 8", f.len()));
    }
    let num = |i: usize, what: &str| -> Result<u64, String> {
        let s = &f[i];
        // Canonical digits only, as the log writes them (`01` is damage).
        if s.is_empty() || (s.len() > 1 && s.starts_with('0')) || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("{what} `{s}` is not a number"));
        }
        s.parse().map_err(|_| format!("{what} `{s}` is out of range"))
    };
    let index = num(0, "index")?;
    let epoch = num(1, "epoch")?;
    let order = match &f[2] {
        "epoch" => {
            if (3..8).any(|i| !f[i].is_empty()) {
                return Err("an epoch record carries no order fields".into());
            }
            None
        }
        "order" => {
            let number = num(3, "number")?;
            let quantity = num(5, "quantity")?;
            if quantity == 0 {
                return Err("quantity 0".into());
            }
            let (name, price, key) = (&f[4], &f[6], &f[7]);
            if name.is_empty() {
                return Err("empty name".into());
            }
            if !price.parse::<f64>().is_ok_and(|p| p.is_finite() && p >= 0.0) {
                return Err(format!("price `{price}` is not a non-negative number"));
            }
            if key.is_empty() {
                return Err("empty key".into());
            }
            Some(Order { number, name: name.into(), quantity, price: price.into(), key: key.into() })
        }
        other => return Err(format!("kind `{other}` is neither `epoch` nor `order`")),
    };
    Ok(Record { index, epoch, order })
}
