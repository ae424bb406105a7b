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

/// The lock over one data directory. Keep one per instance (e.g. in the service state).
#[derive(Debug)]
pub struct DirLock {
    path: PathBuf,
    local: Mutex<()>,
}

/// Held while writing; dropping it removes the lock file and wakes the next local waiter.
#[must_use = "the lock is released when the guard is dropped"]
pub struct DirGuard<'a> {
    path: PathBuf,
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
    /// A lock whose lock file is `dir/LOCK`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { path: dir.into().join("LOCK"), local: Mutex::new(()) }
    }

    pub async fn lock(&self) -> Result<DirGuard<'_>, LockError> {
        let local = self.local.lock().await;
        let mut waited = Duration::ZERO;
        loop {
            match OpenOptions::new().write(true).create_new(true).open(&self.path) {
                Ok(_) => return Ok(DirGuard { path: self.path.clone(), _local: local }),
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
        let _ = fs::remove_file(&self.path);
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
