//! The quarantine records a running host keeps in its state directory, one file per
//! quarantined plugin (`<state>/quarantine/<plugin-name>.json`), so that `plughost plugins
//! list`, a separate process, can say which plugins the host has quarantined and why.
//!
//! A record is written when a plugin is quarantined and removed when the quarantine is lifted,
//! when the plugin leaves the running set, and when a host starts (a record left by a host that
//! was killed describes nothing running).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What `plugins list` shows of a quarantined plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The content hash of the quarantined file: a changed file is not quarantined.
    pub sha256: String,
    /// `crashed 5 times in 60 s (SIGSEGV)`.
    pub reason: String,
}

fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("quarantine")
}

/// Where the record of `plugin` lives.
pub fn path(state_dir: &Path, plugin: &str) -> PathBuf {
    dir(state_dir).join(format!("{plugin}.json"))
}

/// Writes a record (atomically: a reader sees the old file or the new one). Best effort: the
/// record only informs `plugins list`, so a failure is logged, never fatal.
pub fn write(file: &Path, record: &Record) {
    let written = (|| -> std::io::Result<()> {
        let parent = file.parent().ok_or_else(|| std::io::Error::other("no parent directory"))?;
        std::fs::create_dir_all(parent)?;
        let mut temp = tempfile::NamedTempFile::new_in(parent)?;
        serde_json::to_writer(&mut temp, record)?;
        temp.persist(file).map_err(|err| err.error)?;
        Ok(())
    })();
    if let Err(err) = written {
        tracing::warn!(path = %file.display(), "cannot write the quarantine record: {err}");
    }
}

pub fn remove(file: &Path) {
    match std::fs::remove_file(file) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => tracing::warn!(path = %file.display(), "cannot remove the quarantine record: {err}"),
    }
}

/// Removes every record (a host starting).
pub fn clear(state_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir(state_dir)) else { return };
    for entry in entries.flatten() {
        remove(&entry.path());
    }
}

/// The records of the host running on `state_dir`, by plugin name; unreadable ones are skipped.
pub fn read_all(state_dir: &Path) -> BTreeMap<String, Record> {
    let Ok(entries) = std::fs::read_dir(dir(state_dir)) else { return BTreeMap::new() };
    entries
        .flatten()
        .filter_map(|entry| {
            let path = entry.path();
            let name = path.file_name()?.to_str()?.strip_suffix(".json")?.to_owned();
            let record = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
            Some((name, record))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_clear() {
        let state = tempfile::tempdir().unwrap();
        let record = Record { sha256: "ab".repeat(32), reason: "crashed 5 times in 60 s (SIGSEGV)".into() };
        write(&path(state.path(), "vendor"), &record);
        assert_eq!(read_all(state.path()), BTreeMap::from([("vendor".to_owned(), record)]));
        clear(state.path());
        assert!(read_all(state.path()).is_empty());
    }
}
