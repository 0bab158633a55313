//! Plugins in their own processes: a crash, an abort, an exit or a hang in a plugin is the
//! plugin's problem, never the host's.
//!
//! Each plugin runs in one of two modes ([`Mode`]):
//! - **`process`** (the default): a worker process (the same `plughost` binary, hidden
//!   subcommand [`process::WORKER_SUBCOMMAND`]) maps the content-addressed copy through the same
//!   SDK open and layout checks, runs `init`, and serves calls over a socket
//!   ([`protocol`], [`worker`]). A [`supervisor::Supervisor`] restarts it when it dies and
//!   quarantines it when it keeps dying.
//! - **`in-process`**: the library is mapped into the host, as fast as a function call, for
//!   trusted plugins. Before the host maps a file it has not loaded before, a short-lived
//!   worker loads and initialises it once (a probe): a file that crashes there is refused
//!   instead of taking the host down.
//!
//! The same `.so` works in both; vendors change nothing. `plughost plugins check|list`
//! always load in a worker.
//!
//! Two consequences operators may meet: an in-process plugin's `init` runs twice for a new file
//! (once in the probe, once in the host), and a worker's memory limit (`RLIMIT_DATA`) counts its
//! thread stacks as well as its heap.

pub mod process;
pub mod protocol;
pub mod quarantine;
pub mod supervisor;
pub mod worker;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::settings::{
    DEFAULT_CRASH_LIMIT, DEFAULT_CRASH_WINDOW, DEFAULT_ISOLATION_MODE, DEFAULT_MAX_RESTART_BACKOFF,
    DEFAULT_STUCK_GRACE, DEFAULT_WORKER_MEMORY_LIMIT_MB, PluginIsolationFile,
};

pub use supervisor::{ProcessPolicy, Quarantine, SupervisedError, Supervisor};

/// Where a plugin's code runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    Process,
    InProcess,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Process => "process",
            Mode::InProcess => "in-process",
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The isolation policy, resolved.
#[derive(Debug, Clone)]
pub struct Isolation {
    pub default_mode: Mode,
    pub memory_limit: u64,
    pub plugins: BTreeMap<String, PluginIsolationFile>,
    /// The program that runs workers: the `plughost` binary.
    pub program: PathBuf,
    pub crash_limit: usize,
    pub crash_window: Duration,
    pub max_backoff: Duration,
    pub stuck_grace: Duration,
}

impl Isolation {
    /// The defaults, with workers run by `program`.
    pub fn new(program: PathBuf) -> Isolation {
        Isolation {
            default_mode: DEFAULT_ISOLATION_MODE,
            memory_limit: mb(DEFAULT_WORKER_MEMORY_LIMIT_MB),
            plugins: BTreeMap::new(),
            program,
            crash_limit: DEFAULT_CRASH_LIMIT,
            crash_window: DEFAULT_CRASH_WINDOW,
            max_backoff: DEFAULT_MAX_RESTART_BACKOFF,
            stuck_grace: DEFAULT_STUCK_GRACE,
        }
    }

    pub fn mode_of(&self, plugin: &str) -> Mode {
        self.plugins.get(plugin).and_then(|p| p.mode).unwrap_or(self.default_mode)
    }

    pub fn memory_limit_of(&self, plugin: &str) -> u64 {
        self.plugins.get(plugin).and_then(|p| p.memory_limit_mb).map_or(self.memory_limit, mb)
    }

    /// The supervision policy of one plugin; `quarantine_record` is where its quarantine record
    /// goes and the hash of its file.
    pub fn policy(&self, start_timeout: Duration, quarantine_record: Option<(PathBuf, String)>) -> ProcessPolicy {
        ProcessPolicy {
            start_timeout,
            stuck_grace: self.stuck_grace,
            crash_limit: self.crash_limit,
            crash_window: self.crash_window,
            max_backoff: self.max_backoff,
            quarantine_record,
        }
    }
}

pub(crate) fn mb(megabytes: u64) -> u64 {
    megabytes.saturating_mul(1024 * 1024)
}
