//! Serialising writers to a data directory, within one instance and across instances.
//!
//! Inside one instance, tasks queue on a fair (FIFO) async mutex, no spinning. Across instances —
//! the stock `wasmtime serve` may run several instances of one component at once, all sharing
//! the same preopened directory — the holder also owns a lock *file* created with
//! `create_new` (O_EXCL), which only one instance can create. A waiter polls for it with an
//! async sleep, so other requests on the same instance keep running.
//!
//! An instance that traps while holding the lock file leaves it behind; a lock file older than
//! [`STALE_AFTER`] is treated as abandoned and removed. Writers hold the lock for milliseconds,
//! so the lease is generous. (The toystore host, which knows when it dropped an instance,
//! removes such a file before it starts the next one, so its instances never wait the lease.)
//!
//! Under the toystore host the file is not needed at all: the host runs one instance per data
//! directory and says so (`EXCLUSIVE_DATA_DIR=true`, [`DirAccess::Exclusive`]). Then the lock is
//! the in-memory mutex alone, and a write no longer pays a file create and an unlink (two
//! directory updates, each a blocking WASI call) around it.

use std::fs::{self, OpenOptions};
use std::io;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::sync::{Mutex, MutexGuard};

use crate::time::sleep;

/// A lock file older than this is considered abandoned by a crashed holder.
pub const STALE_AFTER: Duration = Duration::from_secs(5);
/// How long a writer waits for the lock before giving up with an error.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(1);

/// Who may write a data directory besides this instance: decides what the lock must exclude.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DirAccess {
    /// Other instances may share it (the stock `wasmtime serve`): the lock takes the lock file.
    #[default]
    Shared,
    /// This instance alone (the toystore host guarantees it): the lock is memory only, and what
    /// the instance wrote is what the files hold.
    Exclusive,
}

impl DirAccess {
    /// From the `EXCLUSIVE_DATA_DIR` flag of the service environment.
    pub fn from_exclusive(exclusive: bool) -> Self {
        if exclusive {
            DirAccess::Exclusive
        } else {
            DirAccess::Shared
        }
    }
}

/// The lock over one data directory. Keep one per instance (e.g. in the service state).
#[derive(Debug)]
pub struct DirLock {
    path: PathBuf,
    access: DirAccess,
    local: Mutex<()>,
}

/// Held while writing; dropping it removes the lock file (if one was taken) and wakes the next
/// local waiter.
#[must_use = "the lock is released when the guard is dropped"]
pub struct DirGuard<'a> {
    /// The lock file this guard created; `None` under [`DirAccess::Exclusive`].
    file: Option<PathBuf>,
    _local: MutexGuard<'a, ()>,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("timed out after {0:?} waiting for the lock file {1}")]
    Timeout(Duration, PathBuf),
    #[error("cannot create the lock file {0}: {1}")]
    Io(PathBuf, io::Error),
}

impl DirLock {
    /// A lock for a directory other instances may share: its lock file is `dir/LOCK`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self::with_access(dir, DirAccess::Shared)
    }

    /// A lock for `dir` as `access` says it is used (only [`DirAccess::Shared`] takes a file).
    pub fn with_access(dir: impl Into<PathBuf>, access: DirAccess) -> Self {
        Self { path: dir.into().join("LOCK"), access, local: Mutex::new(()) }
    }

    pub fn access(&self) -> DirAccess {
        self.access
    }

    pub async fn lock(&self) -> Result<DirGuard<'_>, LockError> {
        let local = self.local.lock().await;
        if self.access == DirAccess::Exclusive {
            return Ok(DirGuard { file: None, _local: local });
        }
        let mut waited = Duration::ZERO;
        loop {
            match OpenOptions::new().write(true).create_new(true).open(&self.path) {
                Ok(_) => return Ok(DirGuard { file: Some(self.path.clone()), _local: local }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if self.is_stale() {
                        let _ = fs::remove_file(&self.path);
                        continue;
                    }
                }
                Err(e) => return Err(LockError::Io(self.path.clone(), e)),
            }
            if waited >= ACQUIRE_TIMEOUT {
                return Err(LockError::Timeout(waited, self.path.clone()));
            }
            sleep(POLL).await;
            waited += POLL;
        }
    }

    fn is_stale(&self) -> bool {
        let modified = fs::metadata(&self.path).and_then(|m| m.modified());
        match modified {
            Ok(t) => SystemTime::now().duration_since(t).map(|age| age > STALE_AFTER).unwrap_or(false),
            Err(_) => false,
        }
    }
}

impl Drop for DirGuard<'_> {
    fn drop(&mut self) {
        if let Some(file) = &self.file {
            let _ = fs::remove_file(file);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;

    #[test]
    fn excludes_and_releases() {
        let dir = tempfile::tempdir().unwrap();
        let a = DirLock::new(dir.path());
        let b = DirLock::new(dir.path()); // a second "instance" on the same directory
        block_on(async {
            let g = a.lock().await.unwrap();
            assert!(dir.path().join("LOCK").exists());
            // b cannot take it while a holds it: the file exists and is fresh.
            assert!(OpenOptions::new().write(true).create_new(true).open(dir.path().join("LOCK")).is_err());
            drop(g);
            assert!(!dir.path().join("LOCK").exists());
            let _g = b.lock().await.unwrap();
        });
    }

    #[test]
    fn exclusive_access_excludes_in_memory_without_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let lock = DirLock::with_access(dir.path(), DirAccess::Exclusive);
        block_on(async {
            let g = lock.lock().await.unwrap();
            assert!(!dir.path().join("LOCK").exists(), "no lock file under exclusive access");
            // A second local writer waits for the first.
            assert!(lock.local.try_lock().is_err());
            drop(g);
            assert!(lock.local.try_lock().is_ok());
            drop(lock.lock().await.unwrap());
        });
        assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none(), "nothing was created in the directory");
        assert_eq!(DirAccess::from_exclusive(true), DirAccess::Exclusive);
        assert_eq!(DirAccess::from_exclusive(false), DirAccess::Shared);
    }

    #[test]
    fn stale_lock_file_is_broken() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("LOCK");
        fs::write(&path, b"").unwrap();
        let old = SystemTime::now() - STALE_AFTER - Duration::from_secs(1);
        fs::File::options().write(true).open(&path).unwrap().set_modified(old).unwrap();
        let lock = DirLock::new(dir.path());
        block_on(async { drop(lock.lock().await.unwrap()) });
    }
}
