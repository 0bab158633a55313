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
//! ## Design
//!
//! - Vendors implement [`Plugin`] plus any of the capability traits ([`EnvMutator`],
//!   [`TokenProvider`]) and list them in [`export_plugin!`].
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
//! ## Non-features
//!
//! - No async in the ABI: the host calls plugins from blocking threads with a timeout.
//! - Plugins are never unloaded (unloading Rust code is unsound with thread-locals).
//!
//! ## The public interface is:
//!
//! - [`Plugin`], [`EnvMutator`], [`TokenProvider`], [`Token`], [`Secret`], [`Error`], [`InitContext`]
//! - [`export_plugin!`]
//! - [`abi`]: the stable ABI types (for the host and for tests)
//! - [`host`] (feature `host`): opening, checking and calling plugins from a host

pub mod abi;
mod export;
#[cfg(feature = "host")]
pub mod host;
mod log_bridge;
mod plugin;

pub use plugin::{EnvMutator, Error, InitContext, Plugin, Secret, Token, TokenProvider};

/// Used by [`export_plugin!`]'s expansion; not part of the public interface.
#[doc(hidden)]
pub mod __private {
    pub use crate::export::{Capabilities, Exported, lib_header};
    pub use abi_stable::library::LibHeader;
}
