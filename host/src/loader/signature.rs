//! Plugin signatures: minisign, detached, beside the file (`libfoo.so.minisig`).
//!
//! Rules:
//! 1. Without trusted keys (`trusted_keys` unset or empty), signature files are not read at all:
//!    plugins load unsigned, as before signatures existed.
//! 2. With trusted keys, a plugin loads only if its `<file>.minisig` is a minisign signature, by
//!    one of those keys, of the exact bytes the loader read (and then hashes, vets and caches),
//!    with a valid global signature over its trusted comment. This happens in the host's loader,
//!    before any worker or `dlopen` sees the file, for `serve` and `plughost plugins check|list`.
//! 3. The signature file gets the plugin file's checks ([`crate::trust`]): a regular file, not a
//!    symbolic link, owned by the host's user or root, not writable by group or others, small.
//! 4. A key is named by its key id as minisign prints it (16 upper-case hex digits) and a
//!    signature by its key id and trusted comment; both are shown for each loaded plugin.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use minisign_verify::{PublicKey, Signature};

use super::LoadError;
use crate::settings::MAX_SIGNATURE_BYTES;
use crate::trust::{CheckedFile, Limit, Subject};

/// A minisign key id: 8 bytes, shown as minisign shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyId([u8; 8]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016X}", u64::from_le_bytes(self.0))
    }
}

/// A public key plugins may be signed with.
#[derive(Clone)]
pub struct TrustedKey {
    pub id: KeyId,
    key: PublicKey,
}

impl fmt::Debug for TrustedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustedKey").field("id", &self.id.to_string()).finish_non_exhaustive()
    }
}

impl TrustedKey {
    /// A key from the base64 line of a minisign `.pub` file (`RW...`), or the whole file's text
    /// (an untrusted comment line, then that line). `None`: not a minisign Ed25519 public key.
    pub fn parse(text: &str) -> Option<TrustedKey> {
        let line = text.lines().map(str::trim).rfind(|l| !l.is_empty())?;
        let bytes = base64::engine::general_purpose::STANDARD.decode(line).ok()?;
        if bytes.len() != 42 || &bytes[..2] != b"Ed" {
            return None;
        }
        let key = PublicKey::from_base64(line).ok()?;
        Some(TrustedKey { id: KeyId(bytes[2..10].try_into().ok()?), key })
    }
}

/// The keys plugins must be signed with; empty: signatures are not required (rule 1).
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys(pub Vec<TrustedKey>);

impl TrustedKeys {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Who signed a loaded plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    pub key_id: KeyId,
    /// The signature's trusted comment (signed with it), as minisign writes it.
    pub trusted_comment: String,
}

/// Why a plugin's signature was refused. Each displays as one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    #[error("not signed by a trusted key: no signature file {name}")]
    Missing { name: String },
    #[error("not signed by a trusted key: signed by key {key_id}, which is not in trusted_keys")]
    UntrustedKey { key_id: KeyId },
    #[error("signature does not match: the file is not what key {key_id} signed")]
    Mismatch { key_id: KeyId },
    #[error("signature file {name} is not a minisign signature")]
    Malformed { name: String },
}

/// `<file>.minisig`.
pub fn signature_path(file: &Path) -> PathBuf {
    let mut name = file.file_name().unwrap_or_default().to_owned();
    name.push(".minisig");
    file.with_file_name(name)
}

/// Checks `bytes`, read from `file`, against its signature file (rule 2); `None` when no keys
/// are trusted (rule 1).
pub fn verify(file: &Path, bytes: &[u8], keys: &TrustedKeys) -> Result<Option<Signer>, LoadError> {
    if keys.is_empty() {
        return Ok(None);
    }
    let path = signature_path(file);
    let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
    let text = match CheckedFile::open(&path, Subject::PluginSignature) {
        Ok(checked) => checked.read(Limit::Fixed { bytes: MAX_SIGNATURE_BYTES })?,
        Err(err) if err.is_not_found() => return Err(SignatureError::Missing { name }.into()),
        Err(err) => return Err(err.into()),
    };
    let malformed = || SignatureError::Malformed { name: name.clone() };
    let text = String::from_utf8(text).map_err(|_| malformed())?;
    let signature = Signature::decode(&text).map_err(|_| malformed())?;
    let key_id = signature_key_id(&text).ok_or_else(malformed)?;
    let key = keys.0.iter().find(|k| k.id == key_id).ok_or(SignatureError::UntrustedKey { key_id })?;
    // Legacy (not pre-hashed) signatures are accepted: the whole file is in memory anyway.
    key.key.verify(bytes, &signature, true).map_err(|_| SignatureError::Mismatch { key_id })?;
    Ok(Some(Signer { key_id, trusted_comment: signature.trusted_comment().to_owned() }))
}

/// The key id inside a signature's second line (algorithm, key id, signature).
fn signature_key_id(text: &str) -> Option<KeyId> {
    let line = text.lines().nth(1)?.trim();
    let bytes = base64::engine::general_purpose::STANDARD.decode(line).ok()?;
    Some(KeyId(bytes.get(2..10)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example key of minisign's own documentation (a public key: no secret here).
    const DOC_KEY: &str = "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3";

    #[test]
    fn keys_parse_from_the_base64_line_or_a_pub_file_and_show_minisigns_key_id() {
        let key = TrustedKey::parse(DOC_KEY).expect("a key");
        assert_eq!(key.id.to_string(), "E7620F1842B4E81F");
        let file = format!("untrusted comment: minisign public key E7620F1842B4E81F\n{DOC_KEY}\n");
        assert_eq!(TrustedKey::parse(&file).expect("a .pub file").id, key.id);
        for bad in ["", "RWQnot-a-key", "aGVsbG8=", &DOC_KEY[1..]] {
            assert!(TrustedKey::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn signature_files_are_beside_the_plugin() {
        assert_eq!(signature_path(Path::new("/p/libfoo.so")), Path::new("/p/libfoo.so.minisig"));
    }
}
