//! `git-credential-plughost`: GitHub installation tokens from plughost for git and gh
//! inside long-lived workspace containers.
//!
//! # What it does
//!
//! ```text
//! git-credential-plughost get|store|erase   # git's credential protocol on stdin/stdout
//! git-credential-plughost refresh [--once]  # long-running refresher (cache + gh hosts.yml)
//! git-credential-plughost install [--no-refresher]   # wire git and gh up, start the refresher
//! git-credential-plughost gh [ARGS...]               # the real gh with a fresh token (the `gh` link)
//! git-credential-plughost gh-token [--host HOST]     # print the token: GH_TOKEN=$(...) gh ...
//! ```
//!
//! # Design
//!
//! - `get` answers only for `PLUGHOST_CREDENTIAL_HOSTS` (default `github.com`), over
//!   `https`; an entry written `http://host:port` also allows plain `http` for that host
//!   (loopback test servers, plain-HTTP GitHub Enterprise behind a proxy). Anything else:
//!   no output, exit 0, so the next helper in git's list answers.
//! - A credential comes from, in order: the cache, if the token outlives the margin
//!   (`PLUGHOST_CREDENTIAL_MARGIN_SECS`, default 300; there is no fixed TTL, only the
//!   server's `expires_at`); plughost's token route; while plughost is unavailable (not
//!   when it refuses us), a cached token that has not expired; last, `GH_TOKEN` or
//!   `GITHUB_TOKEN`, with a warning, unless the helper knows that value expired or was
//!   rejected. git gets `password_expiry_utc` whenever the expiry is known (always, for
//!   plughost's tokens), so it never reuses a token after it; and it never gets a token
//!   known to be expired.
//! - plughost is asked for the token of the git host at hand (`?host=`): each host may be served
//!   by its own provider (github.com, a GitHub Enterprise Server), and is cached apart.
//! - Run under the name `gh` (a link `install` puts ahead of the real gh), the helper execs the
//!   real gh with the current token in `GH_TOKEN`/`GH_ENTERPRISE_TOKEN`: gh is fresh at every
//!   start, with or without the refresher ([`gh_wrapper`]).
//! - A 401/403 from plughost (revoked workspace token) is final: the cached token for
//!   that workspace is dropped and no fallback is used.
//! - Concurrent git processes share one request: flock on a per-key lock file, re-check
//!   the cache, fetch, replace the cache file atomically, unlock.
//! - `erase` drops the cached token only if it is the password git rejected (constant-time
//!   comparison), and remembers the rejected value's SHA-256 so it is never offered again.
//!   `store` does nothing; unknown actions are ignored silently.
//! - Blocking HTTP (`ureq`) with a 3 s connect and `PLUGHOST_CREDENTIAL_TIMEOUT_SECS`
//!   (default 10 s) overall timeout; no async runtime. The bearer goes to plughost over https
//!   (trusting the built-in roots, the system's store or `PLUGHOST_CA_BUNDLE`), over plain http
//!   only to this machine unless allowed, and through a proxy only when
//!   `PLUGHOST_PLATFORM_PROXY` names one.
//! - Tokens are [`Secret`]s: their `Debug`/`Display` print `<redacted>`. The only places a
//!   token is written are git's stdout on `get`, stdout of `gh-token`, the 0600 cache file,
//!   gh's 0600 `hosts.yml` and the environment of the gh the wrapper execs.
//!
//! # Exit status
//!
//! `get` exits 0 with a credential; when it answers for the host but has none, it prints one
//! line on stderr, nothing on stdout, and exits 1. git ignores a helper's exit status (it
//! moves on to the next helper or the prompt either way; gitcredentials(7) asks only that
//! failures be reported on stderr), so the status is for people and scripts. `store`,
//! `erase` and unknown actions exit 0. `install` always exits 0 and lists problems on stderr.
//!
//! # Environment
//!
//! | variable | meaning |
//! | --- | --- |
//! | `PLATFORM_URL` | plughost's base URL; unset: only the `GH_TOKEN` fallback can answer |
//! | `WORKSPACE_ID` | use `/workspaces/$WORKSPACE_ID/github-installation-token?host=HOST`; unset: `/admin/github-installation-token?host=HOST` |
//! | `CONFIGS_DIR` | the bearer token is `$CONFIGS_DIR/.auth_token` (default `/configs`) |
//! | `PLUGHOST_CREDENTIAL_HOSTS` | comma-separated hosts as git sends `host` (with `:port`); `http://host` allows plain http |
//! | `PLUGHOST_CREDENTIAL_MARGIN_SECS` | refetch when less than this is left (default 300) |
//! | `PLUGHOST_CREDENTIAL_CACHE_DIR` | default `$XDG_CACHE_HOME/plughost-credential`, else `~/.cache/plughost-credential` |
//! | `PLUGHOST_CREDENTIAL_TIMEOUT_SECS` | whole request to plughost (default 10) |
//! | `PLUGHOST_CREDENTIAL_BACKOFF_MAX_SECS` | refresher's longest retry delay (default 60) |
//! | `GH_TOKEN`, `GITHUB_TOKEN` | last-resort fallback |
//! | `GH_CONFIG_DIR` | gh's config directory (else `$XDG_CONFIG_HOME/gh`, else `~/.config/gh`) |
//! | `PLUGHOST_CA_BUNDLE` | PEM file of the CAs trusted for an `https://` `PLATFORM_URL` (instead of the built-in roots) |
//! | `PLUGHOST_TLS_ROOTS` | `builtin` (default) or `system` (the operating system's trust store) |
//! | `PLUGHOST_PLATFORM_ALLOW_HTTP` | `1`: allow plain `http://` to another machine (default: loopback only) |
//! | `PLUGHOST_PLATFORM_PROXY` | the only proxy the request to plughost uses; `HTTP(S)_PROXY`/`ALL_PROXY` never are |
//! | `PLUGHOST_GH_PATH` | the real gh the `gh` link runs (default: the first other `gh` on `PATH`) |
//! | `PLUGHOST_GH_WRAPPER_DIR` | where `install` puts the `gh` link (default: beside this program on `PATH`) |
//!
//! # The public interface is:
//!
//! - [`Error`]: why a subcommand failed (wrapping [`ConfigError`], [`NoCredential`], [`refresher::RefreshError`]).
//! - [`Config`] (and [`HostRule`], [`EnvToken`]): the environment, read once.
//! - [`credential_for`], [`erase`], [`obtain`]: the credential logic behind `get`, `erase`, `refresh`.
//! - [`Request`], [`write_credential`], [`MAX_REQUEST`], [`MAX_LINE`]: git's line protocol.
//! - [`Cache`], [`CacheKey`], [`CachedToken`]: the on-disk cache.
//! - [`fetch_token`], [`FetchError`]: one request to plughost.
//! - [`refresher::run`], [`install::install`], [`gh::write_token`], [`gh_wrapper::exec`]: the other subcommands.
//! - [`Secret`]: a token that cannot be printed by accident.

mod cache;
mod config;
mod error;
mod fsutil;
pub mod gh;
pub mod gh_wrapper;
pub mod install;
mod platform;
mod protocol;
pub mod refresher;
mod resolve;
mod secret;
pub mod time;

pub use cache::{Cache, CacheKey, CachedToken, Seen};
pub use config::{CaBundle, Config, ConfigError, EnvToken, HostRule, PlatformProxy, TlsTrust};
pub use error::Error;
pub use fsutil::PathError;
pub use platform::{FetchError, IssuedToken, fetch_token};
pub use protocol::{MAX_LINE, MAX_REQUEST, Request, USERNAME, write_credential};
pub use resolve::{Credential, Failure, NoCredential, Obtained, Source, cache_key, credential_for, erase, obtain};
pub use secret::{InvalidSecret, Secret};

/// A random number for jitter and temp-file names; not for secrets.
///
/// std's `RandomState` is seeded from the OS per process (and varied per instance), which
/// is all jitter needs; it saves a dependency on `rand`.
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    hasher.finish()
}
