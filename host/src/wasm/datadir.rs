//! A service's data directory: created if missing, and seeded with its seed files the first
//! time (a seed file is copied only when the directory has no file of that name yet, so the
//! service's own later writes are never overwritten).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("cannot create the data directory {0}: {1}")]
    Create(PathBuf, io::Error),
    #[error("seed file {0} has no file name")]
    SeedName(PathBuf),
    #[error("cannot copy seed file {from} to {to}: {error}")]
    Copy { from: PathBuf, to: PathBuf, error: io::Error },
}

/// Make sure `dir` exists and holds every seed file; returns the files copied now.
pub fn prepare(dir: &Path, seeds: &[PathBuf]) -> Result<Vec<PathBuf>, DataDirError> {
    fs::create_dir_all(dir).map_err(|e| DataDirError::Create(dir.to_path_buf(), e))?;
    let mut copied = Vec::new();
    for seed in seeds {
        let name = seed.file_name().ok_or_else(|| DataDirError::SeedName(seed.clone()))?;
        let target = dir.join(name);
        if target.exists() {
            continue;
        }
        copy_new(seed, &target)
            .map_err(|error| DataDirError::Copy { from: seed.clone(), to: target.clone(), error })?;
        copied.push(target);
    }
    Ok(copied)
}

/// The lock file the components create (O_EXCL) in their data directory while they write; see
/// `components/guest/src/lock.rs`.
pub const LOCK_FILE: &str = "LOCK";

/// Remove a lock file left behind by an instance that trapped or was killed mid-write.
///
/// Called just before a new instance of the service is built: this host runs one instance per
/// data directory and has already dropped the previous one, so any lock file now is abandoned.
/// Without this the new instance would wait out the guest's stale-lock lease (seconds) before
/// its first write. Returns whether there was one.
pub fn clear_abandoned_lock(dir: &Path) -> io::Result<bool> {
    match fs::remove_file(dir.join(LOCK_FILE)) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Copy `from` to a new file `to` (never replacing one), durably: a crash mid-copy leaves no
/// half-written seed behind under the real name.
fn copy_new(from: &Path, to: &Path) -> io::Result<()> {
    let tmp = to.with_extension("seed-tmp");
    fs::copy(from, &tmp)?;
    fs::File::open(&tmp)?.sync_all()?;
    // hard_link fails if `to` appeared meanwhile, unlike rename: the existing file wins.
    let linked = fs::hard_link(&tmp, to);
    let _ = fs::remove_file(&tmp);
    match linked {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_and_seeds_once_without_overwriting() {
        let tmp = tempfile::tempdir().unwrap();
        let seed = tmp.path().join("catalog.csv");
        fs::write(&seed, "name,price,quantity\n").unwrap();
        let dir = tmp.path().join("run/catalog");

        let copied = prepare(&dir, std::slice::from_ref(&seed)).unwrap();
        assert_eq!(copied, vec![dir.join("catalog.csv")]);
        assert_eq!(fs::read_to_string(dir.join("catalog.csv")).unwrap(), "name,price,quantity\n");
        assert!(!dir.join("catalog.seed-tmp").exists());

        fs::write(dir.join("catalog.csv"), "changed by the service\n").unwrap();
        assert!(prepare(&dir, &[seed]).unwrap().is_empty());
        assert_eq!(fs::read_to_string(dir.join("catalog.csv")).unwrap(), "changed by the service\n");
    }

    #[test]
    fn an_abandoned_lock_is_cleared() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(!clear_abandoned_lock(tmp.path()).unwrap());
        fs::write(tmp.path().join(LOCK_FILE), "").unwrap();
        assert!(clear_abandoned_lock(tmp.path()).unwrap());
        assert!(!tmp.path().join(LOCK_FILE).exists());
    }

    #[test]
    fn missing_seed_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let err = prepare(&tmp.path().join("d"), &[tmp.path().join("nope.csv")]).unwrap_err();
        assert!(err.to_string().contains("nope.csv"), "{err}");
    }
}
