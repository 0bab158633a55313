//! # plughost
//!
//! Loads plugins that operators drop into a directory as `.so` files, and serves what they
//! provide: live tokens (above all GitHub App installation tokens) and the env-mutator chain
//! run when a workspace is provisioned.
//!
//! ## Design
//!
//! The path of a request, by module:
//! HTTP route ([`api`]) -> [`registry`] (async, timeouts) -> plugin handle (`plughost_sdk::host`,
//! the ABI call) -> the plugin. Plugins come from the [`loader`], which vets each file before
//! the dynamic loader sees it, copies it into a content-addressed cache and checks its layout
//! against the frozen layout of the SDK minor it was built with.
//!
//! ## The public interface is:
//!
//! - [`loader`]: scanning a plugin directory ([`loader::scan`], [`loader::load_file`])
//! - [`registry::Registry`]: the running set, token and env calls, reload
//! - [`config`]: settings and their precedence
//! - [`cli`]: the `plughost` command line

pub mod cli;
pub mod config;
pub mod loader;
pub mod registry;
