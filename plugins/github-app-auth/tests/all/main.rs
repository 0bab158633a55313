//! github-app-auth against the real GitHub emulator on loopback. One module per behaviour.

mod config_loading;
mod discovery_and_env;
mod errors;
mod installations;
mod outage;
mod plugin_sdk;
mod rate_limits;
mod redaction;
mod refresh_margin;
mod revocation;
mod scoped_tokens;
mod single_flight;
mod skew;
mod support;
mod through_the_host;
mod tls;
