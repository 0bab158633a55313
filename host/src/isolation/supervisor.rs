//! Keeps one plugin's worker process running, and turns its deaths into answers.
//!
//! Rules:
//! 1. A worker that dies (signal, exit, killed for hanging) fails its calls in flight at once
//!    ([`super::process::Connection`]); the caller learns the cause.
//! 2. It is restarted: the first time at once, then after a delay doubling from 100 ms up to
//!    [`ProcessPolicy::max_backoff`]. Calls arriving meanwhile wait for the new worker within
//!    their own deadline, or fail at once when the restart is due after it.
//! 3. `crash_limit` deaths within `crash_window` quarantine the plugin: every call fails at
//!    once, and the plugin list says why, until a reload (or a changed file) lifts it.
//! 4. A restart that fails (the plugin now crashes or fails in init) counts as a death. So does
//!    a content-addressed copy that no longer hashes to the plugin's hash: it is never restarted
//!    from a copy edited since it was loaded.
//! 5. Dropping the [`Supervisor`] (the plugin left the running set) kills the worker for good.

use std::collections::VecDeque;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::process::{self, CallFailure, Connection, ExitCause, InitMessage, ReadyWorker, WorkerSpec};
use super::protocol::{Call, Reply};
use super::quarantine;

/// Restart and quarantine policy of a worker.
#[derive(Debug, Clone)]
pub struct ProcessPolicy {
    /// How long the worker may take to load and initialise, on every (re)start.
    pub start_timeout: Duration,
    /// A call still running this long after its deadline gets the worker killed.
    pub stuck_grace: Duration,
    pub crash_limit: usize,
    pub crash_window: Duration,
    pub max_backoff: Duration,
    /// Where to keep the quarantine record for `plugins list`, and the file's hash it names.
    pub quarantine_record: Option<(PathBuf, String)>,
}

/// Why a supervised call got no answer.
#[derive(Debug, Clone)]
pub enum SupervisedError {
    Timeout,
    Crashed(ExitCause),
    Quarantined(Quarantine),
}

/// Why a plugin is quarantined: `crashed 5 times in 60 s (SIGSEGV)`.
#[derive(Debug, Clone)]
pub struct Quarantine {
    pub crashes: usize,
    pub window: Duration,
    pub last: ExitCause,
}

impl fmt::Display for Quarantine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "crashed {} times in {} s ({})", self.crashes, self.window.as_secs(), self.last)
    }
}

#[derive(Clone)]
enum State {
    Running(Arc<Connection>),
    Restarting { cause: ExitCause, at: Instant },
    Quarantined(Quarantine),
    Stopped,
}

/// The supervised worker of one plugin.
pub struct Supervisor {
    shared: Arc<Shared>,
}

struct Shared {
    plugin: String,
    /// The hash of the plugin's bytes, which its cached copy (`spec.library`) must still have.
    sha256: String,
    spec: WorkerSpec,
    init: InitMessage,
    policy: ProcessPolicy,
    state: watch::Sender<State>,
    deaths: Mutex<VecDeque<std::time::Instant>>,
    stopped: AtomicBool,
}

impl fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervisor").field("plugin", &self.shared.plugin).field("status", &self.status()).finish()
    }
}

impl Supervisor {
    /// Supervises `worker`, already initialised with `init` from the copy `spec.library` of the
    /// bytes hashing to `sha256`. Must run inside a tokio runtime.
    pub fn start(
        plugin: String,
        sha256: String,
        worker: ReadyWorker,
        spec: WorkerSpec,
        init: InitMessage,
        policy: ProcessPolicy,
    ) -> std::io::Result<Supervisor> {
        let (state, _) = watch::channel(State::Stopped);
        let shared = Arc::new(Shared {
            plugin,
            sha256,
            spec,
            init,
            policy,
            state,
            deaths: Mutex::new(VecDeque::new()),
            stopped: AtomicBool::new(false),
        });
        Shared::run(&shared, worker)?;
        Ok(Supervisor { shared })
    }

    /// Calls the plugin, waiting for a restart in progress within `deadline`.
    pub async fn call(&self, call: Call, deadline: Instant) -> Result<Reply, SupervisedError> {
        let mut states = self.shared.state.subscribe();
        loop {
            let state = states.borrow_and_update().clone();
            match state {
                State::Running(connection) => {
                    return connection.call(call, deadline).await.map_err(|failure| match failure {
                        CallFailure::Timeout => SupervisedError::Timeout,
                        CallFailure::Died(cause) => SupervisedError::Crashed(cause),
                    });
                }
                State::Restarting { cause, at } => {
                    if at > deadline {
                        return Err(SupervisedError::Crashed(cause));
                    }
                    if tokio::time::timeout_at(deadline, states.changed()).await.is_err() {
                        return Err(SupervisedError::Crashed(cause));
                    }
                }
                State::Quarantined(quarantine) => return Err(SupervisedError::Quarantined(quarantine)),
                State::Stopped => return Err(SupervisedError::Crashed(ExitCause::Killed("plugin unloaded"))),
            }
        }
    }

    /// One line for the plugin list: `running (pid 42)`, `restarting after SIGSEGV`,
    /// `quarantined: crashed 5 times in 60 s (SIGSEGV)`.
    pub fn status(&self) -> String {
        match &*self.shared.state.borrow() {
            State::Running(connection) => format!("running (pid {})", connection.pid()),
            State::Restarting { cause, .. } => format!("restarting after {cause}"),
            State::Quarantined(quarantine) => format!("quarantined: {quarantine}"),
            State::Stopped => "stopped".to_owned(),
        }
    }

    pub fn is_quarantined(&self) -> bool {
        matches!(&*self.shared.state.borrow(), State::Quarantined(_))
    }

    /// The worker's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        match &*self.shared.state.borrow() {
            State::Running(connection) => Some(connection.pid()),
            _ => None,
        }
    }

    /// Lifts a quarantine (a reload asked for it): the deaths are forgotten and the worker
    /// restarts now.
    pub fn lift_quarantine(&self) {
        if !self.is_quarantined() {
            return;
        }
        self.shared.deaths.lock().unwrap_or_else(PoisonError::into_inner).clear();
        self.shared.remove_quarantine_record();
        tracing::info!(plugin = %self.shared.plugin, "quarantine lifted by a reload; restarting the worker");
        Shared::restart_after(&self.shared, ExitCause::Killed("quarantined"), Duration::ZERO);
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::Release);
        self.shared.remove_quarantine_record();
        let previous = self.shared.state.send_replace(State::Stopped);
        if let State::Running(connection) = previous {
            connection.kill();
        }
    }
}

impl Shared {
    fn remove_quarantine_record(&self) {
        if let Some((file, _)) = &self.policy.quarantine_record {
            quarantine::remove(file);
        }
    }

    /// Serves through `worker` until it dies.
    fn run(shared: &Arc<Shared>, worker: ReadyWorker) -> std::io::Result<()> {
        let on_exit = {
            let shared = Arc::clone(shared);
            move |cause| Shared::died(&shared, cause)
        };
        let connection = Connection::start(worker, shared.policy.stuck_grace, on_exit)?;
        if shared.stopped.load(Ordering::Acquire) {
            connection.kill();
        } else {
            shared.state.send_replace(State::Running(connection));
        }
        Ok(())
    }

    fn died(shared: &Arc<Shared>, cause: ExitCause) {
        if shared.stopped.load(Ordering::Acquire) {
            return;
        }
        let plugin = shared.plugin.as_str();
        metrics::counter!("plughost_plugin_crashes_total", "plugin" => plugin.to_owned(), "cause" => cause.label())
            .increment(1);
        let now = std::time::Instant::now();
        let deaths = {
            let mut deaths = shared.deaths.lock().unwrap_or_else(PoisonError::into_inner);
            deaths.push_back(now);
            while deaths.front().is_some_and(|t| now.duration_since(*t) > shared.policy.crash_window) {
                deaths.pop_front();
            }
            deaths.len()
        };
        if deaths >= shared.policy.crash_limit {
            let quarantine = Quarantine { crashes: deaths, window: shared.policy.crash_window, last: cause };
            tracing::error!(plugin, "plugin worker died ({}); quarantined: {quarantine}", quarantine.last);
            metrics::counter!("plughost_plugin_quarantines_total", "plugin" => plugin.to_owned()).increment(1);
            if let Some((file, sha256)) = &shared.policy.quarantine_record {
                quarantine::write(file, &quarantine::Record { sha256: sha256.clone(), reason: quarantine.to_string() });
            }
            shared.state.send_replace(State::Quarantined(quarantine));
            return;
        }
        // 0, 100 ms, 200 ms, ... up to the cap.
        let backoff = match deaths {
            0 | 1 => Duration::ZERO,
            n => Duration::from_millis(100).saturating_mul(1 << (n - 2).min(16)).min(shared.policy.max_backoff),
        };
        tracing::error!(plugin, "plugin worker died ({cause}); restarting in {backoff:?}");
        Shared::restart_after(shared, cause, backoff);
    }

    fn restart_after(shared: &Arc<Shared>, cause: ExitCause, backoff: Duration) {
        shared.state.send_replace(State::Restarting { cause, at: Instant::now() + backoff });
        let shared = Arc::clone(shared);
        tokio::spawn(async move {
            tokio::time::sleep(backoff).await;
            if shared.stopped.load(Ordering::Acquire) {
                return;
            }
            let (spec, init, timeout) = (shared.spec.clone(), shared.init.clone(), shared.policy.start_timeout);
            let sha256 = shared.sha256.clone();
            let started = tokio::task::spawn_blocking(move || {
                if !copy_has_hash(&spec.library, &sha256) {
                    return Ok(Err(ExitCause::Killed("its cached copy changed since it was loaded")));
                }
                process::open(&spec, timeout)?.init(&init, timeout).map(Ok)
            })
            .await;
            let plugin = shared.plugin.as_str();
            match started {
                Ok(Ok(Err(cause))) => {
                    tracing::error!(plugin, "plugin worker not restarted: {cause}; touch the plugin file and reload");
                    Shared::died(&shared, cause);
                }
                Ok(Ok(Ok(worker))) => {
                    let pid = worker.pid();
                    match Shared::run(&shared, worker) {
                        Ok(()) => {
                            metrics::counter!("plughost_plugin_restarts_total", "plugin" => plugin.to_owned())
                                .increment(1);
                            tracing::info!(plugin, pid, "plugin worker restarted");
                        }
                        Err(err) => {
                            tracing::error!(plugin, "cannot take over the restarted worker: {err}");
                            Shared::died(&shared, ExitCause::Killed("could not be taken over"));
                        }
                    }
                }
                Ok(Err(err)) => {
                    tracing::error!(plugin, "plugin worker failed to restart: {err}");
                    let cause = err.died().cloned().unwrap_or(ExitCause::Killed("failed to restart"));
                    Shared::died(&shared, cause);
                }
                Err(join) => {
                    tracing::error!(plugin, "plugin worker restart task failed: {join}");
                    Shared::died(&shared, ExitCause::Killed("restart task failed"));
                }
            }
        });
    }
}

/// Whether the file at `path` still hashes to `sha256` (rule 4), read as the loader reads.
fn copy_has_hash(path: &std::path::Path, sha256: &str) -> bool {
    let copy = crate::trust::CheckedFile::open(path, crate::trust::Subject::CachedCopy)
        .and_then(|file| file.read(crate::trust::Limit::Fixed { bytes: u64::MAX }));
    copy.is_ok_and(|bytes| crate::loader::sha256_hex(&bytes) == sha256)
}
