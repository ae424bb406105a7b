//! Durable file writes. Every acknowledged write in toystore goes through one of these two
//! functions, so "on disk before the reply" is decided in one place.
//!
//! - [`atomic_replace`] for small files rewritten whole (the catalog): write a temporary file,
//!   fsync it, rename it over the old one, fsync the directory. A crash leaves the old file or
//!   the new one, never a torn mix.
//! - [`append`] for logs (orders): append whole lines, then fsync. A crash can leave at most a
//!   torn last line, which readers drop (a line counts only once its `\n` is on disk). The
//!   append that creates the file also fsyncs the directory, or a power cut could lose the
//!   file's name — and with it every acknowledged line in it. The leader's group commit splits
//!   it in two, [`append_to`] with [`Sync::Later`] then the asynchronous [`sync_data`], so the
//!   instance serves other requests during the fsync. Logs keep their file open between
//!   appends ([`append_to`]).
//!
//! Directory fsyncs are not best effort: a failure is returned like any other write error.
//! Measured under wasmtime 48 (the `toystore` host and `wasmtime serve`, data directory
//! preopened read-write): `File::open(dir)` on a directory inside the preopen and `sync_all`
//! on it both succeed (WASI `open-at` with the directory flag, then `descriptor.sync`), so
//! there is no host here on which the exception is needed.

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
    crash::at(path, crash::Point::ReplaceBeforeRename);
    fs::rename(&tmp, path)?;
    sync_parent(path)
}

/// Append `bytes` (whole lines) to `path`, creating it, and fsync before returning. When this
/// call created the file, the directory is fsync'd too (the new name must survive a crash).
pub fn append(path: &Path, bytes: &[u8]) -> io::Result<()> {
    append_to(&mut None, path, bytes, Sync::Now).map(|_| ())
}

/// Whether [`append_to`] fsyncs before returning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sync {
    /// fsync (and the directory's, when the file was created) before returning.
    Now,
    /// The first half of a group commit: no fsync yet. Nothing written this way may be
    /// acknowledged before [`sync_data`] of the same path returns.
    Later,
}

/// [`append`] through a handle the caller keeps open between appends (`open`: `None` at first
/// and after an error; one open per log, not one per write). Returns whether this call created
/// the file (with [`Sync::Later`], `sync_data` must then make the name durable too).
pub fn append_to(open: &mut Option<File>, path: &Path, bytes: &[u8], sync: Sync) -> io::Result<bool> {
    let result = write_appending(open, path, bytes).and_then(|created| {
        if sync == Sync::Now {
            crash::at(path, crash::Point::AppendBeforeSync);
            if let Some(f) = open.as_ref() {
                f.sync_data()?;
            }
            if created {
                sync_parent(path)?;
            }
        }
        Ok(created)
    });
    if result.is_err() {
        *open = None;
    }
    result
}

/// The second half: fsync what was appended to `path` (and, when the append `created` it, the
/// directory). In a guest this is WASI 0.3's asynchronous `sync-data`: the instance keeps
/// serving other requests while the disk works — a WASI 0.2 fsync (Rust std) would stall every
/// request of the instance for its whole duration, and the leader's group commit depends on
/// orders arriving *during* the fsync. Natively it is a plain fsync.
pub async fn sync_data(path: &Path, created: bool) -> io::Result<()> {
    // Natively (simulated clusters) an fsync that takes a while: everything else ready to run
    // goes first, as it does in a guest during the real one.
    #[cfg(not(target_arch = "wasm32"))]
    for _ in 0..4 {
        crate::time::yield_now().await;
    }
    crash::at(path, crash::Point::AppendBeforeSync);
    #[cfg(target_arch = "wasm32")]
    p3::sync_data(path).await?;
    #[cfg(not(target_arch = "wasm32"))]
    OpenOptions::new().append(true).open(path)?.sync_data()?;
    if created {
        sync_parent(path)?;
    }
    Ok(())
}

fn write_appending(open: &mut Option<File>, path: &Path, bytes: &[u8]) -> io::Result<bool> {
    let mut created = false;
    let f = match open {
        Some(f) => f,
        // The file exists on every append but the first: try that first (one open, not two).
        None => open.insert(match OpenOptions::new().append(true).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => match OpenOptions::new().append(true).create_new(true).open(path) {
                Ok(f) => {
                    created = true;
                    f
                }
                // Created meanwhile by someone else (another instance under `wasmtime serve`).
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => OpenOptions::new().append(true).open(path)?,
                Err(e) => return Err(e),
            },
            Err(e) => return Err(e),
        }),
    };
    if let Some(keep) = crash::torn(path, bytes.len()) {
        f.write_all(&bytes[..keep])?;
        crash::now();
    }
    f.write_all(bytes)?;
    Ok(created)
}

/// fsync through WASI 0.3's filesystem, whose calls suspend only the calling task.
#[cfg(target_arch = "wasm32")]
mod p3 {
    use std::io;
    use std::path::Path;

    use wasip3::filesystem::preopens::get_directories;
    use wasip3::filesystem::types::{Descriptor, DescriptorFlags, ErrorCode, OpenFlags, PathFlags};

    thread_local! {
        /// The preopened directories (they never change during an instance's life).
        static PREOPENS: Vec<(std::rc::Rc<Descriptor>, String)> =
            get_directories().into_iter().map(|(d, name)| (std::rc::Rc::new(d), name)).collect();
    }

    fn err(e: ErrorCode) -> io::Error {
        io::Error::other(format!("wasi filesystem: {e:?}"))
    }

    /// `path` as (preopened directory, path relative to it).
    fn locate(path: &Path) -> io::Result<(std::rc::Rc<Descriptor>, String)> {
        PREOPENS.with(|pre| {
            pre.iter()
                .filter_map(|(d, name)| path.strip_prefix(name).ok().map(|rel| (d, name.len(), rel)))
                .max_by_key(|(_, len, _)| *len)
                .map(|(d, _, rel)| (std::rc::Rc::clone(d), rel.to_string_lossy().into_owned()))
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{} is in no preopened directory", path.display())))
        })
    }

    pub async fn sync_data(path: &Path) -> io::Result<()> {
        let (dir, rel) = locate(path)?;
        let file = dir.open_at(PathFlags::empty(), rel, OpenFlags::empty(), DescriptorFlags::WRITE).await.map_err(err)?;
        file.sync_data().await.map_err(err)
    }
}

/// Shorten `path` to `len` bytes and fsync (used to drop a replica's unacknowledged suffix).
pub fn truncate(path: &Path, len: u64) -> io::Result<()> {
    let f = OpenOptions::new().write(true).open(path)?;
    f.set_len(len)?;
    f.sync_all()?;
    Ok(())
}

/// Make a new name (a created file, a rename) durable by syncing the directory that holds it.
/// An error here means the name may not survive a power cut, so it is the caller's error too.
fn sync_parent(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

/// Read a file that may not exist yet: a missing file reads as empty.
pub fn read_or_empty(path: &Path) -> io::Result<Vec<u8>> {
    match fs::read(path) {
        Ok(b) => Ok(b),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Crash injection for simulated clusters (tests only; nothing arms it in a real store): the
/// next durable operation on a matching path stops at a chosen point by unwinding with an
/// [`crash::InjectedCrash`] payload, which the simulation catches and turns into the death of
/// that replica. On a real file system "written, not yet fsync'd" leaves the bytes in the page
/// cache, which is what a process crash (not a power cut) leaves too.
#[doc(hidden)]
pub mod crash {
    use std::cell::RefCell;
    use std::path::Path;

    /// Where to crash.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Point {
        /// An append writes only its first `keep` bytes (clamped below the whole), then dies.
        AppendTorn { keep: usize },
        /// An append wrote everything, and dies before its fsync.
        AppendBeforeSync,
        /// An atomic replace wrote and synced the temporary file, and dies before the rename.
        ReplaceBeforeRename,
    }

    /// The panic payload of an injected crash.
    #[derive(Debug)]
    pub struct InjectedCrash;

    struct Plan {
        path_contains: String,
        point: Point,
    }

    thread_local! {
        static PLAN: RefCell<Option<Plan>> = const { RefCell::new(None) };
    }

    /// Crash at `point` in the next operation on a path containing `path_contains` (once).
    pub fn arm(path_contains: &str, point: Point) {
        PLAN.with(|p| *p.borrow_mut() = Some(Plan { path_contains: path_contains.to_string(), point }));
    }

    pub fn disarm() {
        PLAN.with(|p| *p.borrow_mut() = None);
    }

    pub fn armed() -> bool {
        PLAN.with(|p| p.borrow().is_some())
    }

    /// Take the plan if it matches `path` and `want`.
    fn take(path: &Path, want: impl Fn(Point) -> bool) -> Option<Point> {
        PLAN.with(|p| {
            let mut p = p.borrow_mut();
            let hit = p.as_ref().is_some_and(|plan| want(plan.point) && path.to_string_lossy().contains(&plan.path_contains));
            if hit {
                p.take().map(|plan| plan.point)
            } else {
                None
            }
        })
    }

    pub(super) fn at(path: &Path, point: Point) {
        if take(path, |p| p == point).is_some() {
            now();
        }
    }

    /// How many bytes of an append of `len` to write before a torn crash, if one is planned.
    pub(super) fn torn(path: &Path, len: usize) -> Option<usize> {
        match take(path, |p| matches!(p, Point::AppendTorn { .. })) {
            Some(Point::AppendTorn { keep }) => Some(keep.min(len.saturating_sub(1))),
            _ => None,
        }
    }

    pub(super) fn now() -> ! {
        std::panic::panic_any(InjectedCrash)
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
        let fresh = dir.path().join("new.csv");
        append(&fresh, b"one\n").unwrap();
        append(&fresh, b"two\n").unwrap();
        assert_eq!(fs::read(&fresh).unwrap(), b"one\ntwo\n");
    }

    #[test]
    fn a_directory_that_cannot_be_synced_is_an_error() {
        // Before, a directory that could not be opened was skipped silently.
        let dir = tempfile::tempdir().unwrap();
        assert!(sync_parent(&dir.path().join("gone").join("a.csv")).is_err());
        assert!(sync_parent(&dir.path().join("a.csv")).is_ok());
        assert!(sync_parent(Path::new("a.csv")).is_ok(), "a bare name is in the current directory");
    }
}
