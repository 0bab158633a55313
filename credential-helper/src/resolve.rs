//! Where a credential comes from: the cache, plughost, or (last resort) the environment.

use std::fmt;
use std::time::Duration;

use crate::cache::{Cache, CacheKey, CachedToken, Seen};
use crate::config::Config;
use crate::platform::{FetchError, fetch_token};
use crate::secret::{Secret, sha256_hex};
use crate::time::{format_rfc3339, now_unix};

/// A credential for git.
#[derive(Debug, Clone)]
pub struct Credential {
    /// The token.
    pub token: Secret,
    /// Unix seconds, when known (sent to git as `password_expiry_utc`).
    pub expires_at: Option<u64>,
    /// Where it came from.
    pub source: Source,
}

/// Where a [`Credential`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The cache, still valid beyond the margin (or inside it while plughost is unavailable).
    Cache,
    /// A fresh answer from plughost.
    Platform,
    /// `GH_TOKEN` / `GITHUB_TOKEN`, while plughost is unavailable.
    Env(&'static str),
}

/// No credential could be found: plughost's failure plus why the fallbacks did not apply.
#[derive(Debug, thiserror::Error)]
pub struct NoCredential {
    /// The git host asked for.
    pub host: String,
    /// Why plughost gave nothing.
    #[source]
    pub cause: FetchError,
    /// Why each fallback was skipped.
    pub notes: Vec<String>,
}

impl fmt::Display for NoCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no credential for {}: {}", self.host, self.cause)?;
        for note in &self.notes {
            write!(f, "; {note}")?;
        }
        Ok(())
    }
}

/// A token from [`obtain`], and whether plughost was asked for it.
#[derive(Debug, Clone)]
pub struct Obtained {
    /// The token.
    pub token: CachedToken,
    /// True when it was fetched just now.
    pub fetched: bool,
}

/// plughost's failure, and the cached token that is still valid (if any, and if allowed).
#[derive(Debug)]
pub struct Failure {
    /// Why plughost gave nothing.
    pub error: FetchError,
    /// Inside the margin but not expired; `None` after a refusal.
    pub still_valid: Option<CachedToken>,
}

/// The cache key for `host`, or `None` when `PLATFORM_URL` is not set.
pub fn cache_key(config: &Config, host: &str) -> Option<CacheKey> {
    Some(CacheKey {
        platform_url: config.platform_url.clone()?,
        workspace_id: config.workspace_id.clone().unwrap_or_default(),
        host: host.to_ascii_lowercase(),
    })
}

/// Opens the configured cache directory; a failure becomes a warning and no cache.
pub fn open_cache(config: &Config, warnings: &mut Vec<String>) -> Option<Cache> {
    let dir = config.cache_dir.as_ref().or_else(|| {
        warnings
            .push("no cache directory (set HOME or PLUGHOST_CREDENTIAL_CACHE_DIR); every call asks plughost".into());
        None
    })?;
    Cache::open(dir).map_err(|e| warnings.push(format!("cache disabled: {e}"))).ok()
}

/// A token that expires after `need_after` (Unix seconds): from the cache if it has one,
/// else from plughost. Concurrent callers share one request: the per-key lock is taken,
/// the cache re-checked, and only then plughost asked.
///
/// A token from plughost is returned even if it expires before `need_after` (it is still
/// valid; the caller decides what to say), never one that has expired.
pub fn obtain(
    config: &Config,
    cache: Option<&Cache>,
    host: &str,
    need_after: u64,
    warnings: &mut Vec<String>,
) -> Result<Obtained, Failure> {
    let key = cache_key(config, host);
    let (Some(cache), Some(key)) = (cache, key) else {
        let now = now_unix();
        return fetch_token(config, host, now)
            .map(|t| Obtained { token: CachedToken { token: t.token, expires_at: t.expires_at }, fetched: true })
            .map_err(|error| Failure { error, still_valid: None });
    };
    if let Some(hit) = cache.load(&key).filter(|c| c.expires_at > need_after) {
        return Ok(Obtained { token: hit, fetched: false });
    }

    // Longer than one whole request, so a waiter normally sees the holder's result.
    let lock_wait = config.request_timeout + Duration::from_secs(5);
    let _guard = match cache.lock(&key, lock_wait) {
        Ok(Some(guard)) => Some(guard),
        Ok(None) => {
            warnings
                .push(format!("the cache lock stayed taken for {}s; asking plughost without it", lock_wait.as_secs()));
            None
        }
        Err(e) => {
            warnings.push(format!("{e}; asking plughost without the lock"));
            None
        }
    };
    if let Some(hit) = cache.load(&key).filter(|c| c.expires_at > need_after) {
        return Ok(Obtained { token: hit, fetched: false });
    }

    let now = now_unix();
    match fetch_token(config, host, now) {
        Ok(issued) => {
            let token = CachedToken { token: issued.token, expires_at: issued.expires_at };
            if let Err(e) = cache.store(&key, &token, now) {
                warnings.push(e.to_string());
            }
            if let Err(e) = cache.remember_issued(&token.token.sha256_hex(), token.expires_at, now) {
                warnings.push(e.to_string());
            }
            Ok(Obtained { token, fetched: true })
        }
        Err(error) if error.is_refusal() => {
            // The workspace lost its right to tokens: what we hold for it goes too.
            if let Err(e) = cache.remove(&key) {
                warnings.push(e.to_string());
            }
            Err(Failure { error, still_valid: None })
        }
        Err(error) => {
            let still_valid = cache.load(&key).filter(|c| c.expires_at > now_unix());
            Err(Failure { error, still_valid })
        }
    }
}

/// The credential for `host` as `get` answers it: cache beyond the margin, else plughost,
/// else (plughost unavailable, not refusing) a still-valid cached token, else an
/// environment token not known to be expired or rejected.
pub fn credential_for(config: &Config, host: &str, warnings: &mut Vec<String>) -> Result<Credential, NoCredential> {
    let cache = open_cache(config, warnings);
    let need_after = now_unix() + config.margin_secs;
    let failure = match obtain(config, cache.as_ref(), host, need_after, warnings) {
        Ok(got) => {
            let now = now_unix();
            if got.token.expires_at <= now + config.margin_secs {
                warnings.push(format!(
                    "plughost returned a token valid for only {}s more (less than the {}s margin); using it",
                    got.token.expires_at.saturating_sub(now),
                    config.margin_secs
                ));
            }
            let source = if got.fetched { Source::Platform } else { Source::Cache };
            return Ok(Credential { token: got.token.token, expires_at: Some(got.token.expires_at), source });
        }
        Err(failure) => failure,
    };
    let Failure { error, still_valid } = failure;
    if error.is_refusal() {
        return Err(NoCredential { host: host.to_owned(), cause: error, notes: Vec::new() });
    }
    if let Some(cached) = still_valid {
        warnings.push(format!("{error}; using the cached token, valid until {}", format_rfc3339(cached.expires_at)));
        return Ok(Credential { token: cached.token, expires_at: Some(cached.expires_at), source: Source::Cache });
    }

    let now = now_unix();
    let mut notes = Vec::new();
    for env in &config.env_tokens {
        let seen = cache.as_ref().and_then(|c| c.seen(&env.token.sha256_hex()));
        match seen {
            Some(s) if s.rejected => notes.push(format!("${} was rejected by git before", env.var)),
            Some(Seen { expires_at: Some(at), .. }) if at <= now => {
                notes.push(format!("${} expired at {}", env.var, format_rfc3339(at)));
            }
            _ => {
                let expiry = match seen.and_then(|s| s.expires_at) {
                    Some(at) => format!("valid until {}", format_rfc3339(at)),
                    None => "its expiry is unknown".to_owned(),
                };
                warnings.push(format!("{error}; falling back to ${} ({expiry})", env.var));
                return Ok(Credential {
                    token: env.token.clone(),
                    expires_at: seen.and_then(|s| s.expires_at),
                    source: Source::Env(env.var),
                });
            }
        }
    }
    if config.env_tokens.is_empty() {
        notes.push("GH_TOKEN and GITHUB_TOKEN are not set".to_owned());
    }
    Err(NoCredential { host: host.to_owned(), cause: error, notes })
}

/// `erase`: drops the cached token for `host` only if it is the one git rejected, and
/// remembers (by hash) that this password was rejected so it is never offered again.
pub fn erase(config: &Config, host: &str, rejected_password: &str, warnings: &mut Vec<String>) {
    let Some(cache) = open_cache(config, warnings) else {
        return;
    };
    if let Some(key) = cache_key(config, host) {
        let guard = cache.lock(&key, config.request_timeout + Duration::from_secs(5));
        if let Err(e) = &guard {
            warnings.push(e.to_string());
        }
        if cache.load(&key).is_some_and(|c| c.token.matches(rejected_password)) {
            if let Err(e) = cache.remove(&key) {
                warnings.push(e.to_string());
            }
        }
    }
    if let Err(e) = cache.remember_rejected(&sha256_hex(rejected_password.as_bytes()), now_unix()) {
        warnings.push(e.to_string());
    }
}
