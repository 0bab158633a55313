//! The content-addressed copy of every plugin file the host loads.
//!
//! The host never maps the operator's file itself: it copies it to
//! `<state>/plugin-cache/<sha256>.so` and loads that. Overwriting a mapped `.so` in place can
//! crash the process, and `dlopen` deduplicates by path, so a new version must get a new path:
//! hashing the contents gives both.
//!
//! Rules:
//! 1. The cache directory is private: created 0700, and refused (not fixed) when it is not owned
//!    by the host's user or root or is writable by group or others ([`crate::trust`]).
//! 2. A copy already there is trusted only after a byte-for-byte comparison with the bytes just
//!    read from the plugin file (whose hash names it), before every load: a copy edited, torn or
//!    swapped since it was written is replaced, and the event logged.
//! 3. A copy is written to a temporary file of a unique name created with `O_EXCL` (never
//!    through a name someone else may have planted), synced, renamed over the final name, and
//!    the directory synced: after a crash the copy is either whole or absent.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::LoadError;
use crate::trust::{self, CheckedFile, Limit, Subject};

/// The cache directory inside the state directory.
pub const CACHE_DIR: &str = "plugin-cache";

pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The cache directory of `state_dir`, created if missing and checked (rule 1).
pub fn dir(state_dir: &Path) -> Result<PathBuf, LoadError> {
    let dir = state_dir.join(CACHE_DIR);
    trust::private_dir(&dir, Subject::PluginCache(dir.clone()))?;
    Ok(dir)
}

/// Makes sure `<cache_dir>/<sha256>.so` holds exactly `bytes` (rules 2 and 3); returns its path.
pub fn store(cache_dir: &Path, sha256: &str, bytes: &[u8]) -> Result<PathBuf, LoadError> {
    let path = cache_dir.join(format!("{sha256}.so"));
    match matches(&path, bytes) {
        Copy::Same => return Ok(path),
        Copy::Missing => {}
        Copy::Differs(why) => {
            tracing::warn!(path = %path.display(), %why, "cached copy differs from the plugin file; replaced");
        }
    }
    write_atomically(cache_dir, &path, bytes).map_err(|err| LoadError::Io { action: "copy into plugin cache", err })?;
    Ok(path)
}

/// What is at a copy's path.
enum Copy {
    Same,
    Missing,
    /// Something else, and what.
    Differs(String),
}

fn matches(path: &Path, bytes: &[u8]) -> Copy {
    let limit = Limit::Fixed { bytes: bytes.len() as u64 };
    match CheckedFile::open(path, Subject::CachedCopy).and_then(|copy| copy.read(limit)) {
        Ok(copy) if copy == bytes => Copy::Same,
        Ok(_) => Copy::Differs("other bytes of the same length".to_owned()),
        Err(err) if err.is_not_found() => Copy::Missing,
        Err(err) => Copy::Differs(err.to_string()),
    }
}

fn write_atomically(cache_dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    // A random name, created with O_EXCL, mode 0600; removed on any error below.
    let mut tmp = tempfile::Builder::new().prefix(".copy-").suffix(".tmp").tempfile_in(cache_dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().set_permissions(fs::Permissions::from_mode(0o500))?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|err| err.error)?;
    fs::File::open(cache_dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_with_other_bytes_is_replaced_and_planted_temporary_names_are_never_followed() {
        let state = tempfile::tempdir().unwrap();
        let cache = dir(state.path()).unwrap();
        let bytes = b"the plugin's bytes".to_vec();
        let sha = sha256_hex(&bytes);
        // The old temporary name was predictable: a link planted there must not be written through.
        let victim = state.path().join("victim");
        std::fs::write(&victim, b"untouched").unwrap();
        std::os::unix::fs::symlink(&victim, cache.join(format!(".{sha}.{}.tmp", std::process::id()))).unwrap();

        let path = store(&cache, &sha, &bytes).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
        assert_eq!(std::fs::read(&victim).unwrap(), b"untouched");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o500);

        // Edited in place, same length: replaced by the bytes just read.
        std::fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, b"THE PLUGIN'S BYTES").unwrap();
        assert_eq!(store(&cache, &sha, &bytes).unwrap(), path);
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
        // Only the copy and the planted link are left: no temporary file.
        assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 2);
    }
}
