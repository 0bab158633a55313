//! Private files: created 0600 in 0700 directories, replaced atomically, locked with flock.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fs4::FileExt;

/// An I/O failure on a named path.
#[derive(Debug, thiserror::Error)]
#[error("{action} {path}: {source}")]
pub struct PathError {
    /// What was being done, e.g. "cannot create directory".
    pub action: &'static str,
    /// Where.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: io::Error,
}

impl PathError {
    pub(crate) fn new(action: &'static str, path: &Path, source: io::Error) -> Self {
        Self { action, path: path.to_owned(), source }
    }
}

/// Creates `dir` (and parents) and makes it 0700: tokens live inside.
pub fn private_dir(dir: &Path) -> Result<(), PathError> {
    fs::create_dir_all(dir).map_err(|e| PathError::new("cannot create directory", dir, e))?;
    let mode = fs::metadata(dir).map_err(|e| PathError::new("cannot inspect directory", dir, e))?.permissions().mode();
    if mode & 0o777 != 0o700 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| PathError::new("cannot make directory private (0700)", dir, e))?;
    }
    Ok(())
}

/// Replaces `path` with `contents` atomically: a reader sees the old file or the new one,
/// never a torn one, even if this process dies half-way.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), PathError> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.{}.{:x}.tmp", std::process::id(), crate::random_u64()));
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        // The rename is durable only once the directory entry is flushed too.
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(|e| PathError::new("cannot write", path, e))
}

/// An exclusive flock held until drop (closing the descriptor releases it).
#[derive(Debug)]
pub struct LockGuard {
    file: File,
}

impl LockGuard {
    /// The locked file, e.g. to write a PID into it.
    pub fn file(&self) -> &File {
        &self.file
    }
}

/// Opens (creating 0600) and tries once to lock `path`; `Ok(None)` if another process holds it.
pub fn try_lock(path: &Path) -> Result<Option<LockGuard>, PathError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| PathError::new("cannot open lock file", path, e))?;
    match FileExt::try_lock(&file) {
        Ok(()) => Ok(Some(LockGuard { file })),
        Err(fs4::TryLockError::WouldBlock) => Ok(None),
        Err(fs4::TryLockError::Error(e)) => Err(PathError::new("cannot lock", path, e)),
    }
}

/// Waits up to `timeout` for the lock on `path`; `Ok(None)` if it stayed taken.
///
/// Polling instead of a blocking flock keeps the wait bounded: a stuck process
/// holding the lock must not make git hang.
pub fn lock_with_timeout(path: &Path, timeout: Duration) -> Result<Option<LockGuard>, PathError> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    loop {
        if let Some(guard) = try_lock(path)? {
            return Ok(Some(guard));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(25));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_is_private_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a/b");
        private_dir(&sub).unwrap();
        assert_eq!(fs::metadata(&sub).unwrap().permissions().mode() & 0o777, 0o700);
        let f = sub.join("x.json");
        write_atomic(&f, b"one").unwrap();
        write_atomic(&f, b"two").unwrap();
        assert_eq!(fs::read(&f).unwrap(), b"two");
        assert_eq!(fs::metadata(&f).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read_dir(&sub).unwrap().count(), 1, "no temp files left behind");
    }

    #[test]
    fn lock_is_exclusive_between_descriptors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l.lock");
        let held = try_lock(&p).unwrap().unwrap();
        assert!(try_lock(&p).unwrap().is_none());
        assert!(lock_with_timeout(&p, Duration::from_millis(50)).unwrap().is_none());
        drop(held);
        assert!(lock_with_timeout(&p, Duration::from_millis(50)).unwrap().is_some());
    }
}
