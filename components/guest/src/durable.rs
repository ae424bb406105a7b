//! Durable file writes. Every acknowledged write in toystore goes through one of these two
//! functions, so "on disk before the reply" is decided in one place.
//!
//! - [`atomic_replace`] for small files rewritten whole (the catalog): write a temporary file,
//!   fsync it, rename it over the old one, fsync the directory. A crash leaves the old file or
//!   the new one, never a torn mix.
//! - [`append`] for logs (orders): append whole lines, then fsync. A crash can leave at most a
//!   torn last line, which readers drop (a line counts only once its `\n` is on disk).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// Replace `path` with `bytes` atomically and durably.
///
/// Callers serialise writers (see [`crate::lock`]); the temporary name is fixed so a crashed
/// writer's leftover is simply overwritten by the next one.
pub fn atomic_replace(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    sync_parent(path);
    Ok(())
}

/// Append `bytes` (whole lines) to `path`, creating it, and fsync before returning.
pub fn append(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new().create(true).append(true).open(path)?;
    f.write_all(bytes)?;
    f.sync_data()?;
    Ok(())
}

/// Shorten `path` to `len` bytes and fsync (used to drop a replica's unacknowledged suffix).
pub fn truncate(path: &Path, len: u64) -> io::Result<()> {
    let f = OpenOptions::new().write(true).open(path)?;
    f.set_len(len)?;
    f.sync_all()?;
    Ok(())
}

/// Make a rename durable by syncing the directory that holds it.
///
/// Best effort: some WASI hosts cannot open a directory as a file. The rename itself is
/// already atomic; only its durability across a power cut depends on this.
fn sync_parent(path: &Path) {
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

/// Read a file that may not exist yet: a missing file reads as empty.
pub fn read_or_empty(path: &Path) -> io::Result<Vec<u8>> {
    match fs::read(path) {
        Ok(b) => Ok(b),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_append_truncate_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.csv");
        assert_eq!(read_or_empty(&p).unwrap(), b"");
        atomic_replace(&p, b"one\n").unwrap();
        atomic_replace(&p, b"two\n").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two\n");
        assert!(!p.with_extension("tmp").exists());
        append(&p, b"three\n").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two\nthree\n");
        truncate(&p, 4).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two\n");
    }
}
