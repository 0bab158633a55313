//! # plughost-sdk
//!
//! Everything a vendor needs to ship a plughost plugin as a `cdylib`, in safe Rust, without
//! knowing anything about the ABI underneath.
//!
//! A complete plugin:
//!
//! ```
//! use std::collections::BTreeMap;
//! use plughost_sdk::{EnvMutator, Error, InitContext, Plugin};
//!
//! #[derive(serde::Deserialize)]
//! struct Config { region: String }
//!
//! struct Region(Config);
//!
//! impl Plugin for Region {
//!     fn init(ctx: InitContext) -> Result<Self, Error> {
//!         Ok(Region(ctx.config()?))
//!     }
//! }
//!
//! impl EnvMutator for Region {
//!     fn mutate_env(&self, _workspace: &str, env: &mut BTreeMap<String, String>) -> Result<(), Error> {
//!         env.insert("REGION".into(), self.0.region.clone());
//!         Ok(())
//!     }
//! }
//!
//! plughost_sdk::export_plugin! { plugin: Region, provides: [env_mutator] }
//! ```
//!
//! with `crate-type = ["cdylib"]` in its `Cargo.toml`. `plughost plugins check target/debug/libregion.so`
//! tells whether the host will load it.
//!
//! ## Scoped tokens and revocation (since 1.1)
//!
//! A token provider that can limit a token to some repositories and permissions implements
//! [`ScopedTokenProvider`] too, and lists `scoped_token_provider` in [`export_plugin!`]. The host
//! then asks it, per workspace, for a token limited to the scope the workspace was issued with
//! (a [`TokenScope`]), caches that token per scope itself, and revokes it through
//! [`ScopedTokenProvider::revoke`] when the workspace's tokens are revoked. [`TokenProvider::audiences`]
//! says what the tokens are for: the host's GitHub routes are served only by a provider declaring
//! [`Audience::github`] for the host asked about (or one the operator names).
//!
//! The rules a scoped provider follows:
//! - never return a token wider than the scope: what it cannot limit, it refuses
//!   ([`ScopeError::Refused`], naming the repository or permission; the host answers 422);
//! - a failure to mint (upstream down) is [`ScopeError::Failed`], as [`TokenProvider::token`] fails;
//! - do not cache scoped tokens (the host does), and make `revoke` idempotent.
//!
//! ```
//! use plughost_sdk::{
//!     Audience, Error, InitContext, Plugin, ScopeError, ScopedTokenProvider, Secret, Token, TokenProvider, TokenScope,
//! };
//! use std::time::{Duration, SystemTime};
//!
//! struct Forge;
//!
//! impl Plugin for Forge {
//!     fn init(_ctx: InitContext) -> Result<Self, Error> {
//!         Ok(Forge)
//!     }
//! }
//!
//! impl TokenProvider for Forge {
//!     fn token(&self) -> Result<Token, Error> {
//!         Ok(Token::new("forge-wide", SystemTime::now() + Duration::from_secs(3600)))
//!     }
//!     fn audiences(&self) -> Vec<Audience> {
//!         vec![Audience::github("github.com")]
//!     }
//! }
//!
//! impl ScopedTokenProvider for Forge {
//!     fn scoped_token(&self, scope: &TokenScope) -> Result<Token, ScopeError> {
//!         if let Some(level) = scope.permissions.get("administration") {
//!             return Err(ScopeError::Refused(format!("permission administration={level} is not granted")));
//!         }
//!         let secret = format!("forge-{}", scope.repositories.join("+"));
//!         Ok(Token::new(secret, SystemTime::now() + Duration::from_secs(3600)))
//!     }
//!
//!     fn revoke(&self, _token: &Secret) -> Result<(), Error> {
//!         Ok(()) // e.g. DELETE /installation/token with that token
//!     }
//! }
//!
//! plughost_sdk::export_plugin! { plugin: Forge, provides: [scoped_token_provider] }
//! ```
//!
//! Plugins built with 1.0 keep loading into 1.1 hosts (they declare no audience and are never
//! asked for a scoped token), and plugins built with 1.1 load into 1.0 hosts, which see only
//! their 1.0 capabilities.
//!
//! ## Design
//!
//! - Vendors implement [`Plugin`] plus any of the capability traits ([`EnvMutator`],
//!   [`TokenProvider`], [`ScopedTokenProvider`]) and list them in [`export_plugin!`].
//! - Underneath, an `abi_stable` root module and `#[sabi_trait]` vtables ([`abi`]) carry the calls.
//!   The host checks the full layout of every type that crosses the boundary at load time.
//!   Within a major version old plugins load into new hosts and new plugins into old hosts:
//!   each released minor's root module stays frozen in [`abi`], and the host picks the one
//!   matching the plugin's SDK version.
//! - Every entry point runs inside `catch_unwind`: a plugin panic becomes an error carrying the
//!   panic message, and never unwinds into (or exits) the host.
//! - `tracing` events and panic reports of the plugin reach the host's log stream, tagged with
//!   the plugin's name, through a sink passed at init.
//! - Configuration arrives at init as TOML ([`InitContext::config`]).
//!
//! ## Names and values the host checks
//!
//! - A plugin's name (`export_plugin!`'s `name`, by default the crate's package name) must match
//!   `^[a-z0-9][a-z0-9._-]{0,63}$`: 1 to 64 characters from `a-z 0-9 . _ -`, starting with a
//!   letter or digit. It names the plugin in logs, metrics and the host's `[plugins.<name>]`
//!   table. Its version must be 1 to 64 printable ASCII characters without spaces (semver fits).
//!   The host refuses a plugin outside these with one line.
//! - A [`Token`]'s expiry must be no later than 9999-12-31T23:59:59Z (the last instant RFC 3339
//!   can write), and the token non-empty and unexpired: the host refuses other answers.
//! - Hosts may require a minisign signature beside the file (`libyourplugin.so.minisig`), made
//!   over the exact bytes shipped (see docs/vendor.md in the plughost repository).
//!
//! ## Non-features
//!
//! - No async in the ABI: the host calls plugins from blocking threads with a timeout.
//! - Plugins are never unloaded (unloading Rust code is unsound with thread-locals).
//!
//! ## The public interface is:
//!
//! - [`Plugin`], [`EnvMutator`], [`TokenProvider`], [`Token`], [`Secret`], [`Error`], [`InitContext`]
//! - since 1.1: [`ScopedTokenProvider`], [`TokenScope`], [`ScopeError`], [`Audience`]
//! - [`without_value`]: configuration error messages without the values they would quote
//! - [`export_plugin!`]
//! - [`abi`]: the stable ABI types (for the host and for tests)
//! - [`host`] (feature `host`): opening, checking and calling plugins from a host

pub mod abi;
mod export;
#[cfg(feature = "host")]
pub mod host;
mod log_bridge;
mod plugin;
mod redact;

pub use plugin::{
    Audience, EnvMutator, Error, InitContext, Plugin, ScopeError, ScopedTokenProvider, Secret, Token, TokenProvider,
    TokenScope,
};
pub use redact::without_value;

/// Used by [`export_plugin!`]'s expansion; not part of the public interface.
#[doc(hidden)]
pub mod __private {
    pub use crate::export::{Capabilities, Exported, lib_header};
    pub use abi_stable::library::LibHeader;
}
