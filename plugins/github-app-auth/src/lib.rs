#![forbid(unsafe_code)]

//! # github-app-auth
//!
//! A plughost plugin that hands out GitHub App installation tokens (token provider) and writes
//! them into workspace environments (env mutator).
//!
//! ## Configuration
//!
//! `[plugins.github-app-auth]` in the host's config, or `libgithub_app_auth.toml` beside the `.so`:
//!
//! ```toml
//! app_id = 123456                       # or client_id = "Iv23li..." (GITHUB_APP_ID / GITHUB_APP_CLIENT_ID)
//! installation_id = 7890                # GITHUB_APP_INSTALLATION_ID; or installation_org = "acme",
//!                                       # or installation_repo = "acme/widgets" (discovered at first use)
//! private_key_path = "app.pem"          # GITHUB_APP_PRIVATE_KEY_PATH; relative to the plugin's folder
//! # private_key = """-----BEGIN RSA PRIVATE KEY-----..."""   (GITHUB_APP_PRIVATE_KEY)
//! api_url = "https://api.github.com"    # GITHUB_API_URL; GHES: "https://ghe.example.com/api/v3"
//! tls_roots = "builtin"                 # GITHUB_APP_TLS_ROOTS; "builtin": the roots compiled into the
//!                                       # plugin; "system": the operating system's trust store
//! # ca_bundle_path = "corp-ca.pem"      # GITHUB_APP_CA_BUNDLE_PATH; trust exactly these CAs (PEM;
//!                                       # relative to the plugin's folder), e.g. GHES behind a private CA
//! refresh_margin_secs = 600             # a token with less than this left is refreshed first
//! min_validity_secs = 60                # GITHUB_APP_MIN_VALIDITY_SECS; while GitHub fails, a cached
//!                                       # token is served only while it has at least this long left
//! repositories = ["widgets"]            # optional down-scoping; also repository_ids, permissions
//! permissions = { contents = "read" }
//! connect_timeout_secs = 5
//! request_timeout_secs = 15             # one request; never past the retry deadline either
//! retry_deadline_secs = 8               # how long a refresh may take, retries included: keep it
//!                                       # below the host's plugin_call_timeout_ms (default 10 s)
//! user_agent = "plughost-github-app-auth/0.1.0"
//! [env]                                 # the env mutator
//! token_vars = ["GH_TOKEN", "GITHUB_TOKEN"]    # [] writes no token into workspace environments
//! expires_at_var = "GITHUB_TOKEN_EXPIRES_AT"   # "" writes no expiry
//! ```
//!
//! ## Design
//!
//! - `config`: the table above with environment fallbacks; everything checkable is checked at
//!   load (the key is parsed and test-signed, the URL parsed), and every error names the setting
//!   (or the environment variable it came from). A key in the table wins over its variable.
//! - `jwt`: RS256 App JWTs, `iat` 60 s back, `exp` 9 minutes ahead, `iss` the client or app id.
//! - [`GitHubClient`]: blocking HTTP (ureq) with timeouts; on a 401 it re-signs once with
//!   GitHub's clock taken from the `Date` header, and keeps that offset for later requests.
//!   TLS trusts the built-in roots, the operating system's store, or a CA bundle; a failed
//!   handshake says which setting would trust the server. Proxies come from the host
//!   process's standard variables (`HTTPS_PROXY`, `NO_PROXY`, ...), set by the operator.
//! - [`TokenCache`]: refresh ahead of expiry, single flight across threads, a still-valid token
//!   served while GitHub fails, jittered backoff within a deadline, never an expired token.
//!   GitHub's rate limits are honoured (`Retry-After`; `x-ratelimit-reset` with none remaining;
//!   else a minute) with one backoff for every caller: nobody asks GitHub before the time it
//!   named, and a caller without a usable token learns at once when that is.
//! - `plugin`: the plughost-sdk glue (token provider + env mutator), thin on top of the above.
//! - Secrets ([`InstallationToken`], [`PrivateKey`]) print as `[REDACTED]`; errors quote GitHub's
//!   message but never a token, a JWT or a key.
//!
//! ## Current features / Non-features
//!
//! Installation tokens for one installation per plugin instance, github.com and GHES,
//! discovery by org or repository, down-scoping by repositories and permissions.
//! Not: user-to-server tokens, webhooks, several installations per instance.
//!
//! ## The public interface is:
pub use cache::{FALLBACK_WAIT, MIN_VALIDITY, RetryPolicy, TokenCache, TokenSource};
pub use client::{GitHubClient, InstallationAccount, Revoked};
pub use config::{
    AppIdentity, CaBundle, Config, DEFAULT_API_URL, DEFAULT_EXPIRES_AT_VAR, DEFAULT_MIN_VALIDITY,
    DEFAULT_REFRESH_MARGIN, DEFAULT_RETRY_DEADLINE, EnvSettings, InstallationTarget, PrivateKey, TlsTrust, TokenScope,
    host_of_api_url,
};
pub use error::{ConfigError, Error, Refusal, RetryAt, ScopedError};
pub use token::InstallationToken;

mod cache;
mod client;
mod config;
mod env;
mod error;
mod jwt;
mod plugin;
mod scoped;
mod token;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Instant;

use sha2::{Digest, Sha256};

/// The plugin's core: one token cache per installation, the default installation first.
pub struct GitHubAppAuth {
    installations: Vec<Installation>,
    env: EnvSettings,
    retry: RetryPolicy,
    /// Which installation minted each scoped token still alive, by the token's SHA-256: a
    /// revocation goes to the host that minted it, and to no other.
    minted: Mutex<HashMap<[u8; 32], (usize, Instant)>>,
}

/// One installation: its client and cache, the host it serves and whose repositories.
pub(crate) struct Installation {
    cache: TokenCache<GitHubClient>,
    host: String,
    /// Configured, or learned from GitHub at the first scoped request that needs it.
    owner: OnceLock<String>,
    /// The configured `repositories`, `repository_ids`, `permissions`: the most it grants.
    ceiling: TokenScope,
}

impl Installation {
    fn new(config: &Config) -> Self {
        let owner = OnceLock::new();
        if let Some(known) = config.configured_owner() {
            let _ = owner.set(known.to_owned());
        }
        Installation {
            cache: TokenCache::new(
                GitHubClient::new(config),
                config.refresh_margin,
                config.min_validity,
                retry_policy(config),
            ),
            host: config.host(),
            owner,
            ceiling: config.scope.clone(),
        }
    }
}

fn retry_policy(config: &Config) -> RetryPolicy {
    RetryPolicy {
        initial_backoff: config.initial_backoff,
        max_backoff: config.max_backoff,
        deadline: config.retry_deadline,
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl GitHubAppAuth {
    pub fn new(config: &Config) -> Self {
        let installations = std::iter::once(config).chain(&config.installations).map(Installation::new).collect();
        GitHubAppAuth { installations, env: config.env.clone(), retry: retry_policy(config), minted: Mutex::default() }
    }

    /// A token of the default installation with at least `refresh_margin` left (or, while GitHub
    /// fails, a cached one with at least `min_validity` left).
    pub fn token(&self) -> Result<InstallationToken, Error> {
        self.installations[0].cache.token()
    }

    /// Writes the token variables into `env` (nothing, and no request, if the mutator is off).
    pub fn mutate_env(&self, env: &mut BTreeMap<String, String>) -> Result<(), Error> {
        if !self.env.is_enabled() {
            return Ok(());
        }
        let token = self.token()?;
        self.env.apply(&token, env);
        Ok(())
    }

    /// The default installation's client.
    pub fn client(&self) -> &GitHubClient {
        self.installations[0].cache.source()
    }

    /// Every host served, the default installation's first, each once.
    pub fn hosts(&self) -> Vec<String> {
        let mut hosts: Vec<String> = Vec::new();
        for installation in &self.installations {
            if !hosts.contains(&installation.host) {
                hosts.push(installation.host.clone());
            }
        }
        hosts
    }

    /// Revokes `token` at the host that minted it: `DELETE /installation/token`. A token already
    /// dead there (GitHub's 401) counts as revoked ([`Revoked::AlreadyDead`]). A token this
    /// plugin cannot place (minted before a restart, several hosts configured) is sent nowhere.
    pub fn revoke(&self, token: &str) -> Result<Revoked, Error> {
        let key = digest(token);
        let recorded = self.minted.lock().unwrap_or_else(PoisonError::into_inner).get(&key).map(|(i, _)| *i);
        let index = recorded
            .or_else(|| self.installations.iter().position(|i| i.cache.forget(token)))
            .or_else(|| {
                let first = self.installations[0].cache.source().api_url();
                self.installations.iter().all(|i| i.cache.source().api_url() == first).then_some(0)
            })
            .ok_or(Error::UnknownToken)?;
        let revoked = self.installations[index].cache.source().revoke(token)?;
        self.minted.lock().unwrap_or_else(PoisonError::into_inner).remove(&key);
        for installation in &self.installations {
            installation.cache.forget(token);
        }
        Ok(revoked)
    }

    /// Notes which installation minted `token`, forgetting tokens past their expiry.
    fn remember(&self, token: &InstallationToken, installation: &Installation) {
        let index = self.installations.iter().position(|i| std::ptr::eq(i, installation)).unwrap_or(0);
        let now = Instant::now();
        let mut minted = self.minted.lock().unwrap_or_else(PoisonError::into_inner);
        minted.retain(|_, (_, valid_until)| *valid_until > now);
        minted.insert(digest(token.expose()), (index, token.valid_until()));
    }
}
