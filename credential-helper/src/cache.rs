//! The per-user token cache and what the helper remembers about tokens it has seen.
//!
//! Layout of the cache directory (0700, files 0600):
//! - `token-<hash>.json`: the current token for one (PLATFORM_URL, WORKSPACE_ID, host),
//!   with its `expires_at`; `<hash>` is a SHA-256 prefix of that triple.
//! - `token-<hash>.lock`: flock taken around "re-check, fetch, write" so concurrent git
//!   processes share one request to plughost.
//! - `seen.json` (+ `seen.lock`): SHA-256 hashes of tokens with their expiry or the fact
//!   that git rejected them, never the tokens; this is how a dead `GH_TOKEN` is recognised.
//! - `refresher.pid`, `refresher.log`: see the `refresher` module.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::fsutil::{self, LockGuard, PathError};
use crate::secret::{Secret, sha256_hex};

/// How long `seen.json` remembers a token after its expiry (or after it was rejected).
const SEEN_RETENTION_SECS: u64 = 7 * 24 * 3600;
/// At most this many tokens are remembered; the oldest go first.
const SEEN_MAX_ENTRIES: usize = 2000;

/// Which token: the cache is shared by every plughost/workspace/host a user talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheKey {
    /// `PLATFORM_URL`.
    pub platform_url: String,
    /// `WORKSPACE_ID`, empty for the admin route.
    pub workspace_id: String,
    /// The git host.
    pub host: String,
}

impl CacheKey {
    fn file_stem(&self) -> String {
        let digest = sha256_hex(format!("{}\0{}\0{}", self.platform_url, self.workspace_id, self.host).as_bytes());
        format!("token-{}", &digest[..32])
    }
}

/// A cached installation token.
#[derive(Debug, Clone)]
pub struct CachedToken {
    /// The token.
    pub token: Secret,
    /// Unix seconds after which GitHub refuses it.
    pub expires_at: u64,
}

#[derive(Serialize, Deserialize)]
struct TokenFile {
    platform_url: String,
    workspace_id: String,
    host: String,
    token: String,
    expires_at: u64,
    fetched_at: u64,
}

/// What the helper knows about one token value (by hash).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    /// Its expiry, when plughost told us.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// git reported it rejected (`erase`).
    #[serde(default)]
    pub rejected: bool,
    /// When this entry was last updated (for pruning).
    pub updated_at: u64,
}

#[derive(Default, Serialize, Deserialize)]
struct SeenFile {
    tokens: BTreeMap<String, Seen>,
}

/// A cache directory, created private on open.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// Creates the directory if needed and makes it 0700.
    pub fn open(dir: &Path) -> Result<Self, PathError> {
        fsutil::private_dir(dir)?;
        Ok(Self { dir: dir.to_owned() })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn token_path(&self, key: &CacheKey) -> PathBuf {
        self.dir.join(format!("{}.json", key.file_stem()))
    }

    /// The cached token for `key`, if any. A corrupt or foreign file counts as absent.
    pub fn load(&self, key: &CacheKey) -> Option<CachedToken> {
        let bytes = fs::read(self.token_path(key)).ok()?;
        let file: TokenFile = serde_json::from_slice(&bytes).ok()?;
        if file.platform_url != key.platform_url || file.workspace_id != key.workspace_id || file.host != key.host {
            return None;
        }
        Some(CachedToken { token: Secret::new(file.token).ok()?, expires_at: file.expires_at })
    }

    /// Replaces the cached token for `key`.
    pub fn store(&self, key: &CacheKey, token: &CachedToken, now: u64) -> Result<(), PathError> {
        let file = TokenFile {
            platform_url: key.platform_url.clone(),
            workspace_id: key.workspace_id.clone(),
            host: key.host.clone(),
            token: token.token.expose().to_owned(),
            expires_at: token.expires_at,
            fetched_at: now,
        };
        let json = serde_json::to_vec_pretty(&file).expect("a struct of strings and integers serialises");
        fsutil::write_atomic(&self.token_path(key), &json)
    }

    /// Drops the cached token for `key` (absent is fine).
    pub fn remove(&self, key: &CacheKey) -> Result<(), PathError> {
        let path = self.token_path(key);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(PathError::new("cannot remove", &path, e)),
            _ => Ok(()),
        }
    }

    /// Takes the per-key lock, waiting at most `timeout`; `Ok(None)` when it stayed taken.
    pub fn lock(&self, key: &CacheKey, timeout: Duration) -> Result<Option<LockGuard>, PathError> {
        fsutil::lock_with_timeout(&self.dir.join(format!("{}.lock", key.file_stem())), timeout)
    }

    /// What is known about the token whose SHA-256 is `hash`.
    pub fn seen(&self, hash: &str) -> Option<Seen> {
        self.read_seen().tokens.get(hash).copied()
    }

    /// Remembers that plughost issued a token with this hash and expiry.
    pub fn remember_issued(&self, hash: &str, expires_at: u64, now: u64) -> Result<(), PathError> {
        self.update_seen(now, |tokens| {
            let entry = tokens.entry(hash.to_owned()).or_default();
            entry.expires_at = Some(expires_at);
            entry.updated_at = now;
        })
    }

    /// Remembers that git was refused with the token whose hash this is.
    pub fn remember_rejected(&self, hash: &str, now: u64) -> Result<(), PathError> {
        self.update_seen(now, |tokens| {
            let entry = tokens.entry(hash.to_owned()).or_default();
            entry.rejected = true;
            entry.updated_at = now;
        })
    }

    fn read_seen(&self) -> SeenFile {
        fs::read(self.dir.join("seen.json")).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
    }

    fn update_seen(&self, now: u64, change: impl FnOnce(&mut BTreeMap<String, Seen>)) -> Result<(), PathError> {
        // Bounded wait: losing one "seen" record is better than stalling git.
        let _guard = fsutil::lock_with_timeout(&self.dir.join("seen.lock"), Duration::from_secs(2))?;
        let mut seen = self.read_seen();
        change(&mut seen.tokens);
        seen.tokens.retain(|_, s| {
            let last_relevant = s.expires_at.unwrap_or(0).max(s.updated_at);
            last_relevant + SEEN_RETENTION_SECS > now
        });
        if seen.tokens.len() > SEEN_MAX_ENTRIES {
            let mut by_age: Vec<(u64, String)> = seen.tokens.iter().map(|(k, s)| (s.updated_at, k.clone())).collect();
            by_age.sort();
            for (_, key) in by_age.into_iter().take(seen.tokens.len() - SEEN_MAX_ENTRIES) {
                seen.tokens.remove(&key);
            }
        }
        let json = serde_json::to_vec_pretty(&seen).expect("a map of small structs serialises");
        fsutil::write_atomic(&self.dir.join("seen.json"), &json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(host: &str) -> CacheKey {
        CacheKey { platform_url: "http://p".into(), workspace_id: "ws".into(), host: host.into() }
    }

    #[test]
    fn store_load_remove() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(&dir.path().join("c")).unwrap();
        assert!(cache.load(&key("github.com")).is_none());
        let t = CachedToken { token: Secret::new("ghs_1").unwrap(), expires_at: 99 };
        cache.store(&key("github.com"), &t, 1).unwrap();
        assert_eq!(cache.load(&key("github.com")).unwrap().token.expose(), "ghs_1");
        assert!(cache.load(&key("ghe.example.com")).is_none());
        cache.remove(&key("github.com")).unwrap();
        cache.remove(&key("github.com")).unwrap();
        assert!(cache.load(&key("github.com")).is_none());
    }

    #[test]
    fn seen_keeps_hashes_only_and_prunes() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let secret = Secret::new("ghs_secret_value").unwrap();
        let hash = secret.sha256_hex();
        cache.remember_issued(&hash, 1000, 900).unwrap();
        cache.remember_rejected(&hash, 950).unwrap();
        let seen = cache.seen(&hash).unwrap();
        assert_eq!((seen.expires_at, seen.rejected), (Some(1000), true));
        let text = fs::read_to_string(dir.path().join("seen.json")).unwrap();
        assert!(!text.contains("ghs_secret_value"));
        cache.remember_issued("other", 5, 1000 + SEEN_RETENTION_SECS + 1).unwrap();
        assert!(cache.seen(&hash).is_none(), "old entries are pruned");
    }
}
