//! Which files and directories the host trusts, and reading a file as the file it checked.
//!
//! Whoever can write a plugin file, its configuration, the plugin directory, the state directory
//! or the plugin cache can run code inside the host. The rules:
//!
//! 1. A trusted path is owned by the host's user or root, and is not writable by group or others.
//! 2. Directories are checked where they point (a state directory may be a symbolic link to a
//!    volume). Files are not: a plugin file, its `<stem>.toml` and its `.minisig` must be regular
//!    files in the plugin directory. A symbolic link is refused, since the owner and mode that
//!    matter would be its target's, somewhere nobody checked.
//! 3. A file is opened once, with `O_NOFOLLOW|O_NONBLOCK` (a FIFO neither blocks the open nor the
//!    scan), checked through that descriptor (`fstat`: regular file, owner, mode) and read from
//!    it: no second lookup of the path can swap the file in between. A device or FIFO is refused
//!    before it is read.
//! 4. Reads are capped: a file larger than its limit is refused without being read.
//! 5. Every refusal is one line naming what was checked ([`Subject`]) and what is wrong with it.

use std::fmt;
use std::fs::{File, Metadata};
use std::io::{self, Read as _};
use std::os::unix::fs::{DirBuilderExt as _, FileTypeExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

/// What a checked path is, as messages name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    PluginDir,
    PluginFile,
    PluginConfig,
    PluginSignature,
    StateDir(PathBuf),
    PluginCache(PathBuf),
    CachedCopy,
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::PluginDir => f.write_str("the plugin directory"),
            Subject::PluginFile => f.write_str("the plugin file"),
            Subject::PluginConfig => f.write_str("the plugin's configuration file"),
            Subject::PluginSignature => f.write_str("the plugin's signature file"),
            Subject::StateDir(path) => write!(f, "the state directory {}", path.display()),
            Subject::PluginCache(path) => write!(f, "the plugin cache {}", path.display()),
            Subject::CachedCopy => f.write_str("the cached copy"),
        }
    }
}

/// Who, besides the owner, may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writers {
    Group,
    Others,
}

impl fmt::Display for Writers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Writers::Group => "group",
            Writers::Others => "others",
        })
    }
}

/// The type of a file, with its article: `a FIFO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Regular,
    Directory,
    Symlink,
    Fifo,
    CharDevice,
    BlockDevice,
    Socket,
}

impl FileKind {
    pub fn of(meta: &Metadata) -> FileKind {
        let kind = meta.file_type();
        if kind.is_file() {
            FileKind::Regular
        } else if kind.is_dir() {
            FileKind::Directory
        } else if kind.is_symlink() {
            FileKind::Symlink
        } else if kind.is_fifo() {
            FileKind::Fifo
        } else if kind.is_char_device() {
            FileKind::CharDevice
        } else if kind.is_block_device() {
            FileKind::BlockDevice
        } else {
            FileKind::Socket
        }
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileKind::Regular => "a regular file",
            FileKind::Directory => "a directory",
            FileKind::Symlink => "a symbolic link",
            FileKind::Fifo => "a FIFO",
            FileKind::CharDevice => "a character device",
            FileKind::BlockDevice => "a block device",
            FileKind::Socket => "a socket",
        })
    }
}

/// A path the host refuses to trust, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Untrusted {
    #[error("{what} is writable by {by} (mode {mode:o}); run chmod go-w")]
    Writable { what: Subject, by: Writers, mode: u32 },
    #[error("{what} is owned by uid {uid}, not by this host's user (uid {euid}) or root")]
    Owner { what: Subject, uid: u32, euid: u32 },
    #[error("{what} is a symbolic link; put the file itself in its directory")]
    Symlink { what: Subject },
    #[error("{what} is {found}, not {expected}")]
    Kind { what: Subject, found: FileKind, expected: FileKind },
}

/// The cap a read was held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// A setting of the host config file, by key.
    Setting { key: &'static str, bytes: u64 },
    /// A fixed limit of the host.
    Fixed { bytes: u64 },
}

impl Limit {
    pub fn bytes(self) -> u64 {
        match self {
            Limit::Setting { bytes, .. } | Limit::Fixed { bytes } => bytes,
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::Setting { key, bytes } => write!(f, "{key} ({bytes})"),
            Limit::Fixed { bytes } => write!(f, "the limit of {bytes}"),
        }
    }
}

/// Why a path could not be used. Displays as one line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    #[error("insecure: {0}")]
    Untrusted(#[from] Untrusted),
    #[error("too large: {what} has {size} bytes, more than {limit}")]
    TooLarge { what: Subject, size: u64, limit: Limit },
    #[error("cannot read {what}: {err}")]
    Io { what: Subject, err: io::Error },
}

impl TrustError {
    /// The path does not exist (a missing optional file such as a sidecar).
    pub fn is_not_found(&self) -> bool {
        matches!(self, TrustError::Io { err, .. } if err.kind() == io::ErrorKind::NotFound)
    }
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Rule 1, on metadata already read.
pub fn check_owner_and_mode(meta: &Metadata, what: &Subject) -> Result<(), Untrusted> {
    let mode = meta.mode();
    if mode & 0o022 != 0 {
        let by = if mode & 0o002 != 0 { Writers::Others } else { Writers::Group };
        return Err(Untrusted::Writable { what: what.clone(), by, mode: mode & 0o7777 });
    }
    let euid = euid();
    if meta.uid() != euid && meta.uid() != 0 {
        return Err(Untrusted::Owner { what: what.clone(), uid: meta.uid(), euid });
    }
    Ok(())
}

/// Checks a directory where it points (rule 2): a directory, owned by us or root, not writable
/// by group or others.
pub fn check_dir(path: &Path, what: Subject) -> Result<Metadata, TrustError> {
    let meta = std::fs::metadata(path).map_err(|err| TrustError::Io { what: what.clone(), err })?;
    if !meta.is_dir() {
        return Err(Untrusted::Kind { what, found: FileKind::of(&meta), expected: FileKind::Directory }.into());
    }
    check_owner_and_mode(&meta, &what)?;
    Ok(meta)
}

/// Creates `path` (and missing parents) with mode 0700 unless it exists, then checks it like
/// [`check_dir`]. A directory that exists keeps its mode: an insecure one is refused, not fixed.
pub fn private_dir(path: &Path, what: Subject) -> Result<Metadata, TrustError> {
    if !path.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .map_err(|err| TrustError::Io { what: what.clone(), err })?;
    }
    check_dir(path, what)
}

/// A regular file opened for reading and checked through its descriptor (rules 2 and 3).
#[derive(Debug)]
pub struct CheckedFile {
    file: File,
    meta: Metadata,
    what: Subject,
}

impl CheckedFile {
    /// Opens `path` without following a symbolic link or blocking, and checks what it opened.
    pub fn open(path: &Path, what: Subject) -> Result<CheckedFile, TrustError> {
        let io = |err| TrustError::Io { what: what.clone(), err };
        // Refuse what is plainly no regular file before opening it: opening a device can have
        // effects of its own. The descriptor's own metadata below is what counts.
        let seen = std::fs::symlink_metadata(path).map_err(io)?;
        refuse_non_regular(&seen, &what)?;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
            .map_err(|err| match err.raw_os_error() {
                // Replaced by a symbolic link between the two looks.
                Some(libc::ELOOP) => TrustError::Untrusted(Untrusted::Symlink { what: what.clone() }),
                _ => io(err),
            })?;
        let meta = file.metadata().map_err(io)?;
        refuse_non_regular(&meta, &what)?;
        check_owner_and_mode(&meta, &what)?;
        Ok(CheckedFile { file, meta, what })
    }

    /// The descriptor's metadata (`fstat`).
    pub fn metadata(&self) -> &Metadata {
        &self.meta
    }

    /// Reads the whole file from the checked descriptor, refusing one larger than `limit`
    /// (rule 4); a file that grows past the limit while being read is refused too.
    pub fn read(self, limit: Limit) -> Result<Vec<u8>, TrustError> {
        let CheckedFile { file, meta, what } = self;
        let max = limit.bytes();
        if meta.len() > max {
            return Err(TrustError::TooLarge { what, size: meta.len(), limit });
        }
        let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
        file.take(max.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|err| TrustError::Io { what: what.clone(), err })?;
        if bytes.len() as u64 > max {
            return Err(TrustError::TooLarge { what, size: bytes.len() as u64, limit });
        }
        Ok(bytes)
    }
}

fn refuse_non_regular(meta: &Metadata, what: &Subject) -> Result<(), Untrusted> {
    match FileKind::of(meta) {
        FileKind::Regular => Ok(()),
        FileKind::Symlink => Err(Untrusted::Symlink { what: what.clone() }),
        found => Err(Untrusted::Kind { what: what.clone(), found, expected: FileKind::Regular }),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn file(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn reads_a_regular_file_through_the_checked_descriptor_within_its_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(dir.path(), "a.so", b"0123456789", 0o644);
        let limit = Limit::Setting { key: "max_plugin_bytes", bytes: 10 };
        assert_eq!(CheckedFile::open(&path, Subject::PluginFile).unwrap().read(limit).unwrap(), b"0123456789");
        let err = CheckedFile::open(&path, Subject::PluginFile).unwrap().read(Limit::Fixed { bytes: 9 }).unwrap_err();
        assert_eq!(err.to_string(), "too large: the plugin file has 10 bytes, more than the limit of 9");
    }

    #[test]
    fn refuses_links_fifos_and_writable_files_with_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let target = file(dir.path(), "target.so", b"x", 0o644);
        let link = dir.path().join("link.so");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = CheckedFile::open(&link, Subject::PluginFile).unwrap_err();
        assert_eq!(
            err.to_string(),
            "insecure: the plugin file is a symbolic link; put the file itself in its directory"
        );
        let writable = file(dir.path(), "w.toml", b"x", 0o646);
        let err = CheckedFile::open(&writable, Subject::PluginConfig).unwrap_err();
        assert_eq!(
            err.to_string(),
            "insecure: the plugin's configuration file is writable by others (mode 646); run chmod go-w"
        );
        let err = CheckedFile::open(dir.path(), Subject::PluginFile).unwrap_err();
        assert_eq!(err.to_string(), "insecure: the plugin file is a directory, not a regular file");
        let missing = CheckedFile::open(&dir.path().join("missing"), Subject::PluginConfig).unwrap_err();
        assert!(missing.is_not_found(), "{missing}");
    }

    #[test]
    fn private_dirs_are_created_0700_and_insecure_ones_refused_not_fixed() {
        let root = tempfile::tempdir().unwrap();
        let state = root.path().join("a/b");
        private_dir(&state, Subject::StateDir(state.clone())).unwrap();
        assert_eq!(std::fs::metadata(&state).unwrap().mode() & 0o777, 0o700);
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o775)).unwrap();
        let err = private_dir(&state, Subject::StateDir(state.clone())).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "insecure: the state directory {} is writable by group (mode 775); run chmod go-w",
                state.display()
            )
        );
        assert_eq!(std::fs::metadata(&state).unwrap().mode() & 0o777, 0o775, "left as it was");
    }
}
