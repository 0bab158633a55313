//! The content-addressed copy of every plugin file the host loads.
//!
//! The host never maps the operator's file itself: it copies it to
//! `<state>/plugin-cache/<sha256>.so` and loads that. Overwriting a mapped `.so` in place can
//! crash the process, and `dlopen` deduplicates by path, so a new version must get a new path:
//! hashing the contents gives both.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::LoadError;

pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `bytes` (whose hash is `sha256`) into the cache unless already there; returns its path.
pub fn store(cache_dir: &Path, sha256: &str, bytes: &[u8]) -> Result<PathBuf, LoadError> {
    let path = cache_dir.join(format!("{sha256}.so"));
    // Written whole by rename into the host's private directory, and named by its hash: a copy
    // of the right size is the right copy. One of another size (a crash cut it short) is
    // replaced; it is not mapped, since a mapped copy would be complete.
    if fs::metadata(&path).is_ok_and(|meta| meta.len() == bytes.len() as u64) {
        return Ok(path);
    }
    fs::create_dir_all(cache_dir).map_err(|err| LoadError::Io { action: "create plugin cache", err })?;
    let _ = fs::set_permissions(cache_dir, fs::Permissions::from_mode(0o700));
    let tmp = cache_dir.join(format!(".{sha256}.{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut file = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o500).open(&tmp)?;
        file.write_all(bytes)?;
        // No fsync: a copy torn by a crash fails the hash check on its next use and is rewritten.
        fs::rename(&tmp, &path)
    };
    write().map_err(|err| {
        let _ = fs::remove_file(&tmp);
        LoadError::Io { action: "copy into plugin cache", err }
    })?;
    Ok(path)
}
