//! Periodic restocking: every `RESTOCK_INTERVAL_SECS`, each toy with
//! `quantity <= RESTOCK_THRESHOLD` is set to `RESTOCK_AMOUNT`, durably, and the frontend is
//! told (see [`crate::invalidation`]).
//!
//! ## What drives it
//! A WASI component has no timer of its own, so restocking is checked on two paths:
//! - **`POST /tick`**: the toystore host calls it on every component every `TICK_INTERVAL_MS`
//!   (and once right after an instance starts). The catalog restocks if the interval has
//!   elapsed since the last restock.
//! - **catch-up on any request**: every request first makes the same check, so restocking also
//!   happens under the stock `wasmtime serve` (no host timer), as long as requests arrive.
//!   The check is a comparison against memory almost always; only when a restock may be due
//!   does it take the lock and read the stamp file.
//!
//! ## Where "last restock" lives
//! In the file `restock.stamp` (wall-clock milliseconds) in the data directory, written under
//! the data-directory lock. Several instances sharing the directory therefore agree on the
//! schedule, and a restarted instance neither restocks early nor forgets one. Memory keeps the
//! last stamp this instance saw: the stamp only moves forward, so "not due by memory" is
//! always "not due by the file" and the file need not be read on every request.
//! A missing stamp counts as due (the first check after a fresh start writes one).
//! `RESTOCK_INTERVAL_SECS=0` turns periodic restocking off (`POST /restock` still works).

use std::io;
use std::path::Path;

use toystore_guest::durable;

/// The stamp file's name inside the data directory.
pub const STAMP_FILE: &str = "restock.stamp";

/// When and how much to restock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RestockPolicy {
    /// 0 = never by the clock.
    pub interval_ms: u64,
    pub threshold: u64,
    pub amount: u64,
}

impl Default for RestockPolicy {
    fn default() -> Self {
        Self { interval_ms: 10_000, threshold: 10, amount: 100 }
    }
}

impl RestockPolicy {
    /// Is a restock due at `now`, given the last one at `last` (both wall-clock ms)?
    ///
    /// A `last` more than one interval in the future means the wall clock was set back; it
    /// counts as due so a clock change cannot stop restocking for a long time.
    pub fn is_due(&self, last: Option<u64>, now: u64) -> bool {
        if self.interval_ms == 0 {
            return false;
        }
        match last {
            None => true,
            Some(last) if now >= last => now - last >= self.interval_ms,
            Some(last) => last - now > self.interval_ms,
        }
    }
}

/// The last restock time recorded in `dir`, if any (an unreadable stamp counts as none).
pub fn read_stamp(dir: &Path) -> Option<u64> {
    let bytes = durable::read_or_empty(&dir.join(STAMP_FILE)).ok()?;
    std::str::from_utf8(&bytes).ok()?.trim().parse().ok()
}

/// Record a restock at `now` (atomic replace; callers hold the data-directory lock).
pub fn write_stamp(dir: &Path, now: u64) -> io::Result<()> {
    durable::atomic_replace(&dir.join(STAMP_FILE), format!("{now}\n").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_after_the_interval() {
        let p = RestockPolicy { interval_ms: 10_000, threshold: 10, amount: 100 };
        assert!(p.is_due(None, 5));
        assert!(!p.is_due(Some(1_000), 1_000));
        assert!(!p.is_due(Some(1_000), 10_999));
        assert!(p.is_due(Some(1_000), 11_000));
        assert!(p.is_due(Some(1_000), 99_000));
    }

    #[test]
    fn clock_set_back_does_not_stop_restocking() {
        let p = RestockPolicy::default();
        assert!(!p.is_due(Some(20_000), 15_000), "a small step back waits");
        assert!(p.is_due(Some(50_000), 15_000), "more than an interval back is due");
    }

    #[test]
    fn zero_interval_disables_the_clock() {
        let p = RestockPolicy { interval_ms: 0, ..RestockPolicy::default() };
        assert!(!p.is_due(None, 1_000_000));
    }

    #[test]
    fn stamp_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_stamp(dir.path()), None);
        write_stamp(dir.path(), 1234).unwrap();
        assert_eq!(read_stamp(dir.path()), Some(1234));
        std::fs::write(dir.path().join(STAMP_FILE), b"garbage").unwrap();
        assert_eq!(read_stamp(dir.path()), None);
    }
}
