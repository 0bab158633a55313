//! # plughost-testkit
//!
//! The one test kit every test crate of this workspace builds on (dev only, never published).
//! It owns the three set-up steps that tests of a plugin host repeat:
//!
//! 1. **Fixture builds.** [`fixtures`] builds a fixed set of packages (the `plughost` and
//!    `git-credential-plughost` binaries, the real plugins, the test plugins and every
//!    `abi-tests/fixtures/*` crate) with one cargo invocation into the running test's own target
//!    directory and profile, once per process. Every test binary asks for the same set with the
//!    same flags and environment, so the first build of a run does the work and every later one
//!    is a cargo no-op that rebuilds nothing the outer `cargo test` built. [`cargo_build`] is the
//!    same helper for builds that need their own target directory (abi-tests' SDK variants).
//! 2. **Plugin directories.** [`PluginDir`]: a temporary directory holding a `plugins/` directory
//!    with the modes the host's loader insists on, a state directory beside it, sidecar
//!    configuration files, private files, and a [`plughost::loader::LoaderConfig`] for in-process
//!    loading.
//! 3. **A running server.** [`Serve`] starts the real `plughost serve` on an ephemeral loopback
//!    port with a clean environment and learns its address from `--print-addr` (the bound
//!    `IP:PORT` on stdout), never from the log. It keeps the log in memory for tests that search
//!    it for leaked secrets, and records every HTTP reply it sees for the same reason.
//!    [`Serve::restart`] kills it and starts it again on the same directories.
//!
//! Beside them, [`soak`]: mixed load with plugin reloads, errors counted and memory sampled,
//! shared by the soak test and the `plughost-soak` program of the long run.
//!
//! Non-features: no mocks (everything is the real binary, real `.so` files, real SQLite, a real PostgreSQL server), no
//! process-wide state besides the fixture cache, and no environment variables set in the test
//! process: environment goes to child processes only.
//!
//! Adding a fixture crate is one line in the table in `fixtures.rs`.
//!
//! Beside them, [`PgCluster`]: a throwaway PostgreSQL server (Debian's `postgresql`) for the
//! PostgreSQL store's tests.
//!
//! `unsafe` appears three times, in [`Serve::signal`] (kill(2)), where [`Serve::log`] asks how
//! much of the log is still in the pipe (ioctl(2) `FIONREAD`), and where [`PgCluster`] asks
//! whether it runs as root (geteuid(2)); the rest of the crate denies it.

#![deny(unsafe_code)]

// The public interface is:
pub use crate::cli::{plughost_command, run_cli};
pub use crate::fixtures::{Fixtures, cargo_build, fixtures, workspace_dir};
pub use crate::http::Reply;
pub use crate::plugin_dir::PluginDir;
pub use crate::postgres::{PgCluster, PgError};
pub use crate::serve::{ADMIN_TOKEN, Serve, ServeBuilder, StartError};
pub use crate::soak::{Memory, SoakConfig, SoakPlugins, SoakReport, Window, soak};

mod cli;
mod fixtures;
mod http;
mod plugin_dir;
mod postgres;
mod serve;
mod soak;
