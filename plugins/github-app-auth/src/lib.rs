#![forbid(unsafe_code)]

//! # github-app-auth
//!
//! A plughost plugin that hands out GitHub App installation tokens (token provider), tokens
//! limited to a workspace's scope and their revocation (scoped token provider, SDK 1.1), for
//! one or several installations on github.com and GitHub Enterprise Servers; and, only when
//! configured to, writes a token into workspace environments (env mutator).
//!
//! ## Configuration
//!
//! `[plugins.github-app-auth]` in the host's config, or `libgithub_app_auth.toml` beside the `.so`:
//!
//! ```toml
//! app_id = 123456                       # or client_id = "Iv23li..." (GITHUB_APP_ID / GITHUB_APP_CLIENT_ID)
//! installation_id = 7890                # GITHUB_APP_INSTALLATION_ID; or installation_org = "acme",
//!                                       # or installation_repo = "acme/widgets" (discovered at first use)
//! owner = "acme"                        # optional: whose repositories it serves (else taken from
//!                                       # installation_org/_repo, or asked of GitHub when first needed)
//! private_key_path = "app.pem"          # GITHUB_APP_PRIVATE_KEY_PATH; relative to the plugin's folder
//! # private_key = """-----BEGIN RSA PRIVATE KEY-----..."""   (GITHUB_APP_PRIVATE_KEY)
//! api_url = "https://api.github.com"    # GITHUB_API_URL; GHES: "https://ghe.example.com/api/v3"
//! # host = "github.com"                 # the host its tokens are for; default: derived from api_url
//! tls_roots = "builtin"                 # GITHUB_APP_TLS_ROOTS; "builtin": the roots compiled into the
//!                                       # plugin; "system": the operating system's trust store
//! # ca_bundle_path = "corp-ca.pem"      # GITHUB_APP_CA_BUNDLE_PATH; trust exactly these CAs (PEM;
//!                                       # relative to the plugin's folder), e.g. GHES behind a private CA
//! refresh_margin_secs = 600             # a token with less than this left is refreshed first
//! min_validity_secs = 60                # GITHUB_APP_MIN_VALIDITY_SECS; while GitHub fails, a cached
//!                                       # token is served only while it has at least this long left
//! repositories = ["widgets"]            # optional down-scoping; also repository_ids, permissions;
//! permissions = { contents = "read" }   # also the most a scoped token of this installation gets
//! connect_timeout_secs = 5
//! request_timeout_secs = 15             # one request; never past the retry deadline either
//! retry_deadline_secs = 8               # how long a refresh may take, retries included: keep it
//!                                       # below the host's plugin_call_timeout_ms (default 10 s)
//! user_agent = "plughost-github-app-auth/0.1.0"
//!
//! [env]                                 # the env mutator; by default it writes nothing
//! token_vars = []                       # e.g. ["GH_TOKEN", "GITHUB_TOKEN"]: see below before you do
//! # expires_at_var = "GITHUB_TOKEN_EXPIRES_AT"  # the default when token_vars names any; "" for none
//!
//! [[installations]]                     # a further installation: another organization, same App
//! owner = "globex"
//! installation_id = 4242                # optional: discovered from owner when absent
//!
//! [[installations]]                     # a GitHub Enterprise Server, with its own App
//! owner = "platform"
//! api_url = "https://ghe.example.com/api/v3"
//! client_id = "Iv23liGHES0000000001"    # or app_id
//! private_key_path = "ghes-app.pem"
//! # ca_bundle_path = "corp-ca.pem"      # also tls_roots, host, repositories, repository_ids, permissions
//! ```
//!
//! An `[[installations]]` entry sets `owner` (required unless `installation_org` or
//! `installation_repo` names it), optionally `installation_id` / `installation_org` /
//! `installation_repo`, and may set `api_url`, `host`, the App (`app_id` or `client_id`), its key
//! (`private_key_path` or `private_key`), its TLS trust (`tls_roots` or `ca_bundle_path`) and
//! its own ceiling (`repositories`, `repository_ids`, `permissions`). What it does not set is
//! taken from the top level: the App, key, `api_url` and TLS trust (each group whole: an entry
//! setting `app_id` inherits no `client_id`), and the plugin-wide timings; never the top level's
//! installation, owner, host or ceiling. Environment fallbacks apply as at the top level, except
//! `GITHUB_APP_INSTALLATION_ID`, which is the top level's only. Without a top-level installation
//! the first entry is the default. Errors name the entry and the key
//! (`installations[1].owner: ...`) and never quote a value. One installation per owner and host.
//!
//! ## Which installation serves a request
//!
//! - Unscoped tokens ([`GitHubAppAuth::token`], the 1.0 token provider, the env mutator) come
//!   from the default installation, cached and refreshed as before.
//! - A scoped request goes to the installation whose host is the scope's `host` (default: the
//!   default installation's) and whose owner is the owner of the scope's repositories; a scope
//!   naming no repository by name (only ids, or only permissions) goes to that host's first
//!   installation. [`host_of_api_url`]: `https://api.github.com` → `github.com`,
//!   `https://ghe.example.com/api/v3` → `ghe.example.com`, a non-default port kept
//!   (`ghe.example.com:8443`). The token provider declares `Audience::github(host)` for every
//!   host served.
//!
//! ## Scoped tokens and revocation (SDK 1.1)
//!
//! A scope (`repositories` as `owner/name`, `repository_ids`, `permissions` name → `read`,
//! `write` or `admin`) is minted with exactly that body: `POST
//! /app/installations/{id}/access_tokens` with the names without their owner, as GitHub wants
//! them. An empty field is not limited by the scope (the installation's configured ceiling, if
//! any, fills it). The rules are in the `scoped` module; the refusals ([`Refusal`], answered 422
//! by the host) read, with `HOST` the host and `OWNER` the installation's account:
//!
//! - `repository "widgets" is not "owner/name"`
//! - `the repositories of one scope must have one owner, found acme (acme/widgets) and globex (globex/tools)`
//! - `permission contents: level "owner" is not read, write or admin`
//! - `a token reaches at most 500 repositories; the scope names 501`
//! - `no GitHub App installation is configured for host ghe.example.com (hosts served: github.com)`
//! - `no GitHub App installation is configured for owner globex at HOST (owners served there: acme)`
//! - `repository acme/secret does not exist or is not accessible to the installation on acme at HOST`
//!   (`repositories acme/a, id 7 do not exist or are not accessible ...` for several): GitHub's 422
//!   names no repository, so the plugin lists the installation's repositories with its own
//!   (cached) installation token to name the missing ones
//! - `permission contents:admin is not granted to the installation on acme at HOST (it has contents:write)`
//!   (or `(it has no issues permission)`), from the installation's permissions as
//!   `GET /app/installations/{id}` reports them
//! - `repository acme/gadgets is outside what this plugin is configured to grant on acme (repositories, repository_ids)`,
//!   `permission contents:write is outside what this plugin is configured to grant on acme (contents:read)`:
//!   the configured ceiling, refused before GitHub is asked
//! - `GitHub refused the scope for the installation on OWNER at HOST: MESSAGE`: any other 422
//!
//! GitHub's answer is checked to be no wider than asked (repository selection, repositories,
//! permissions; `metadata: read`, which comes with any repository permission, excepted); a
//! wider one is revoked and never handed out. Scoped tokens are not cached here: the host
//! caches per scope, with single flight.
//!
//! Revocation is `DELETE /installation/token`, authenticated by the token itself, sent to the
//! host that minted it (the plugin remembers which, by the token's SHA-256, until it expires).
//! GitHub answers 204. A 401 means the token no longer works (revoked before, or expired): that
//! is what revoking is for, so it counts as revoked ([`Revoked::AlreadyDead`]). A token the
//! plugin cannot place (minted before a restart of the plugin, with several API URLs
//! configured) is sent nowhere: [`Error::UnknownToken`]. Revoking the cached installation token
//! makes the cache mint a new one.
//!
//! ## No token in the environment by default
//!
//! `env.token_vars` defaults to `[]`. An installation token lives one hour and cannot be
//! extended; one written into a workspace's environment at boot is dead an hour later, and gh
//! prefers `GH_TOKEN`/`GITHUB_TOKEN` over its stored login (and `gh auth login --with-token`
//! refuses to run while one is set). Inside workspaces, git and gh get live tokens from
//! `git-credential-plughost`. Setting `token_vars` still writes the default installation's token
//! (and its expiry) for images that need it.
//!
//! ## The mint budget, from GitHub's side
//!
//! GitHub documents: creating an installation token is authenticated with the App's JWT and
//! counts against the App's rate limit, 5,000 requests an hour (up to 12,500 for large
//! installations); tokens live one hour and cannot be extended; minting a new token does not
//! invalidate older ones (each lives its hour unless revoked); on 403/429 clients must wait for
//! `Retry-After` / `x-ratelimit-reset`, and retrying in a tight loop is what gets an integration
//! blocked by secondary rate limits. What this plugin spends of that budget:
//!
//! - unscoped: one `POST .../access_tokens` per installation in use every
//!   `3600 - refresh_margin_secs` seconds (50 minutes by default), whatever the number of callers;
//! - scoped: one `POST .../access_tokens` per scoped request that reaches the plugin (the host's
//!   per-scope cache decides how often that is: with one token per workspace per hour,
//!   N workspaces cost N requests an hour, so a few thousand workspaces with distinct scopes
//!   reach the App's limit; workspaces sharing a scope share a token);
//! - once per installation whose owner is not configured: `GET /app/installations/{id}`;
//!   explaining a permission refusal: one more; explaining a repository refusal: the
//!   installation's repository list, read with its installation token (not the App's JWT);
//! - revocation is authenticated by the revoked token, not the App's JWT.
//!
//! Rate-limit answers are never retried before the time GitHub named; a scoped mint retries
//! only transient failures, within `retry_deadline_secs`.
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
//!   named, and a caller without a usable token learns at once when that is. One cache per
//!   installation.
//! - `scoped`: scoped requests: which installation, the ceiling, GitHub's refusals explained,
//!   answers no wider than asked.
//! - `plugin`: the plughost-sdk glue (token provider with audiences, scoped token provider,
//!   env mutator), thin on top of the above.
//! - Secrets ([`InstallationToken`], [`PrivateKey`]) print as `[REDACTED]`; errors quote GitHub's
//!   message but never a token, a JWT or a key.
//!
//! ## Current features / Non-features
//!
//! Installation tokens for several installations (organizations or users) and several hosts
//! (github.com, GitHub Enterprise Servers, each with its own App) per plugin instance,
//! discovery by org or repository, tokens scoped per request, revocation, down-scoping by
//! repositories and permissions. Not: user-to-server tokens, webhooks, pagination beyond
//! 5,000 repositories when explaining a refusal.
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
