//! Behaviour tests of `plughost serve`: each module starts the real binary on an ephemeral
//! loopback port, with its own plugin directory (real `.so` fixtures), state directory (a real
//! SQLite file) and admin token, and talks HTTP to it.
//!
//! Run: `cargo test -p plughost --test api` (builds the fixture plugins on first use).

mod harness;
mod raw;

mod isolation;

mod auth;
mod bad_input;
mod blocking_limits;
mod deploy;
mod docs;
mod env_chain;
mod http_limits;
mod kill9;
mod metrics;
mod openapi;
mod plugin_files;
mod plugin_values;
mod plugins_reload;
mod postgres;
mod routes;
mod scoped_tokens;
mod secrets;
mod shutdown;
mod signatures;
mod soak;
mod startup;
mod state_dir;
mod token_cache;
mod token_errors;
mod workspace_token_cli;
