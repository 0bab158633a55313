//! # plughost
//!
//! Loads plugins that operators drop into a directory as `.so` files, and serves what they
//! provide: live tokens (above all GitHub App installation tokens) and the env-mutator chain
//! run when a workspace is provisioned.
//!
//! ## Design
//!
//! The path of a request, by module:
//! HTTP route ([`api`]) -> [`registry`] (async, timeouts) -> where the plugin runs:
//! - process mode (the default): its supervised worker process ([`isolation`]: the same binary,
//!   the same `.so`, calls over a socket), which dies alone when the plugin crashes;
//! - in-process: the plugin handle (`plughost_sdk::host`, the ABI call) -> the plugin.
//!
//! Plugins come from the [`loader`], which vets each file before the dynamic loader sees it,
//! copies it into a content-addressed cache, and opens it (in a worker first, for a file never
//! loaded before) checking its layout against the frozen layout of the SDK minor it was built with.
//!
//! Every command ([`cli`]) takes its settings from [`settings`], the one module that declares
//! defaults and resolves flag > environment > config file > default; it reads the environment
//! through a lookup function, so only the command-line entry touches the process environment.
//!
//! ## The public interface is:
//!
//! - [`loader`]: scanning a plugin directory ([`loader::scan`], [`loader::load_file`])
//! - [`registry::Registry`]: the running set, token and env calls, reload; [`registry::CallError`]
//!   says how a call failed (timeout, crashed, quarantined, panicked, plugin error)
//! - [`isolation`]: plugin worker processes, their protocol and supervision
//! - [`api`]: the admin HTTP API ([`api::router`], [`api::AppState`]): routes, auth, error shape,
//!   and how it is served ([`api::server::serve`]: connection limit, timeouts, shutdown)
//! - [`scope::Scope`]: what a workspace's GitHub tokens are limited to, set when its token is issued
//! - [`store::Store`]: workspace bearer tokens, stored as SHA-256 hashes in SQLite
//!   ([`store::WorkspaceTokenStore`]) or PostgreSQL ([`store::postgres`])
//!   (GitHub installation tokens come from plugins; see [`api::tokens`])
//! - [`metrics`]: the Prometheus recorder and per-request metrics
//! - [`settings`]: every setting of the host and its default, resolved flag > environment >
//!   config file > default in one place ([`settings::Settings`])
//! - [`trust`]: which files and directories the host trusts (owner, mode, type), and reading a
//!   file through the descriptor it checked
//! - [`cli`]: the `plughost` command line (`serve`, `plugins`, `workspace-token`)

pub mod api;
pub mod cli;
#[doc(hidden)]
pub mod fuzzing;
pub mod isolation;
pub mod loader;
pub mod metrics;
pub mod registry;
pub mod scope;
pub mod settings;
pub mod store;
pub mod trust;
