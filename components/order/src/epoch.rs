//! The `epoch` file: the highest epoch this replica has promised.
//!
//! A promise is what makes fencing work: once a replica has promised epoch `e` (to a candidate
//! in `/fence`, or by accepting a `/replicate_order` from a leader of epoch `e`) it rejects
//! every message from an older epoch, and it must keep that promise across a crash — so the
//! file is written by atomic replace (tmp, fsync, rename) before the promise is announced.

use std::io;
use std::path::Path;

use toystore_guest::durable;

pub const FILE: &str = "epoch";

/// The promised epoch; 0 when nothing was ever promised (no file yet).
pub fn read(dir: &Path) -> io::Result<u64> {
    let bytes = durable::read_or_empty(&dir.join(FILE))?;
    let text = String::from_utf8_lossy(&bytes);
    let text = text.trim();
    if text.is_empty() {
        return Ok(0);
    }
    text.parse()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("epoch file holds {text:?}")))
}

/// Persist a new promise.
pub fn write(dir: &Path, epoch: u64) -> io::Result<()> {
    durable::atomic_replace(&dir.join(FILE), format!("{epoch}\n").as_bytes())
}

#[cfg(test)]
mod tests {
    #[test]
    fn missing_is_zero_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(super::read(dir.path()).unwrap(), 0);
        super::write(dir.path(), 7).unwrap();
        assert_eq!(super::read(dir.path()).unwrap(), 7);
        std::fs::write(dir.path().join(super::FILE), "junk").unwrap();
        assert!(super::read(dir.path()).is_err());
    }
}
