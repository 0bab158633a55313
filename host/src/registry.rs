//! The running set of plugins, and the async face the HTTP API calls.
//!
//! A call goes where the plugin runs:
//! - process mode: over its worker's socket ([`crate::isolation::Supervisor`]); the host holds
//!   no thread while it waits, and a hung worker is killed and replaced;
//! - in-process: synchronous C-ABI code on tokio's blocking pool with a deadline. A deadline
//!   answers the caller but cannot stop a hung plugin thread, so calls in flight are bounded
//!   ([`InProcessPermits`]): per plugin, keyed by the plugin's name so that a reload (a new
//!   instance of the same plugin) grants a hung plugin no more threads, and in all, below the
//!   size of tokio's blocking pool, so that the host's own blocking work always finds a thread.
//!   Later callers time out waiting for a permit instead of exhausting the pool.
//!
//! Every way a call can fail is a [`CallError`] variant; the API maps each to one status.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use secrecy::SecretString;
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};

use crate::isolation::protocol::{Call, Reply};
use crate::isolation::{Mode, SupervisedError};
use crate::loader::{self, LoadError, LoadedPlugin, LoaderConfig};
use crate::settings::{MAX_IN_PROCESS_CALLS, MAX_IN_PROCESS_CALLS_PER_PLUGIN};

/// A snapshot of the loaded plugins; replaced whole on reload.
#[derive(Debug, Default)]
pub struct PluginSet {
    /// In chain order.
    pub plugins: Vec<Arc<LoadedPlugin>>,
    pub rejected: Vec<RejectedFile>,
    pub loaded_at: Option<SystemTime>,
}

/// A refused file, as reported by `GET /admin/plugins`.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct RejectedFile {
    #[schema(value_type = String)]
    pub file: PathBuf,
    pub error: String,
}

/// A token as served to callers. `Debug` never shows the secret.
#[derive(Clone)]
pub struct ServedToken {
    pub token: SecretString,
    pub expires_at: SystemTime,
    pub plugin: String,
}

impl std::fmt::Debug for ServedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServedToken")
            .field("token", &"[REDACTED]")
            .field("expires_at", &self.expires_at)
            .field("plugin", &self.plugin)
            .finish()
    }
}

/// Why a call into a plugin got no usable answer. Messages are safe to log: they never
/// contain a token. Each reads after the plugin's name: `token provider X did not answer ...`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The plugin answered with an error.
    #[error("failed: {0}")]
    Failed(String),
    /// The plugin panicked; the SDK caught it inside the plugin.
    #[error("failed: {0}")]
    Panicked(String),
    #[error("did not answer within {0:?}")]
    Timeout(Duration),
    /// Its worker process died with the call in flight, or is restarting after a death.
    #[error("crashed ({0})")]
    Crashed(String),
    #[error("is quarantined: {0}")]
    Quarantined(String),
    /// The plugin answered, with something the host will not pass on.
    #[error("failed: {0}")]
    BadAnswer(BadAnswer),
}

/// The latest expiry a token may have: the last second RFC 3339 can write (9999-12-31T23:59:59Z).
pub const LATEST_EXPIRY_UNIX: i64 = 253_402_300_799;

/// An answer refused by the host. The messages never hold a token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BadAnswer {
    #[error("empty token")]
    EmptyToken,
    #[error("token already expired at {}", humantime::format_rfc3339_seconds(*at))]
    Expired { at: SystemTime },
    #[error("token expiry {expires_at_unix} (Unix seconds) is after 9999-12-31T23:59:59Z")]
    ExpiryOutOfRange { expires_at_unix: i64 },
    #[error("no env mutator")]
    NoEnvMutator,
}

impl CallError {
    /// An error message from the plugin: the SDK reports a caught panic as `<entry> panicked: ...`.
    fn from_plugin(message: String) -> CallError {
        let panicked = ["token panicked: ", "mutate_env panicked: ", "init panicked: "]
            .iter()
            .any(|prefix| message.starts_with(prefix));
        if panicked { CallError::Panicked(message) } else { CallError::Failed(message) }
    }
}

impl From<SupervisedError> for CallError {
    fn from(err: SupervisedError) -> CallError {
        match err {
            // The caller's deadline: filled in by the registry, which knows it.
            SupervisedError::Timeout => CallError::Timeout(Duration::ZERO),
            SupervisedError::Crashed(cause) => CallError::Crashed(cause.to_string()),
            SupervisedError::Quarantined(quarantine) => CallError::Quarantined(quarantine.to_string()),
        }
    }
}

/// Why no token could be served.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("no plugin loaded")]
    NoPluginLoaded,
    #[error("no loaded plugin provides tokens")]
    NoTokenProvider,
    #[error("token provider {plugin} {err}")]
    Call { plugin: String, err: CallError },
}

/// Why the env-mutator chain stopped.
#[derive(Debug, thiserror::Error)]
#[error("env mutator {plugin} {err}")]
pub struct EnvError {
    pub plugin: String,
    pub err: CallError,
}

/// The bounds on in-process calls in flight: one semaphore per plugin name, kept across reloads
/// (the threads of a hung instance stay pinned after it is replaced), and one for all plugins.
pub struct InProcessPermits {
    per_plugin_limit: usize,
    per_plugin: std::sync::Mutex<HashMap<String, Arc<Semaphore>>>,
    all: Arc<Semaphore>,
}

/// Both permits of one in-process call; dropped when the call returns, however late.
pub struct CallPermits {
    _plugin: OwnedSemaphorePermit,
    _all: OwnedSemaphorePermit,
}

impl InProcessPermits {
    pub fn new(per_plugin_limit: usize, all_limit: usize) -> InProcessPermits {
        InProcessPermits {
            per_plugin_limit,
            per_plugin: std::sync::Mutex::new(HashMap::new()),
            all: Arc::new(Semaphore::new(all_limit)),
        }
    }

    /// The plugin's own semaphore, made on first use: never a fresh one for a known name.
    fn of(&self, plugin: &str) -> Arc<Semaphore> {
        let mut map = self.per_plugin.lock().unwrap_or_else(PoisonError::into_inner);
        let semaphore = map.entry(plugin.to_owned()).or_insert_with(|| Arc::new(Semaphore::new(self.per_plugin_limit)));
        Arc::clone(semaphore)
    }

    /// Waits until `deadline` for a permit of `plugin`, then one of all plugins' (in that order,
    /// so callers of a hung plugin wait without holding a share of the others').
    pub async fn acquire(&self, plugin: &str, deadline: tokio::time::Instant) -> Option<CallPermits> {
        let mine = tokio::time::timeout_at(deadline, self.of(plugin).acquire_owned()).await.ok()?.ok()?;
        let all = tokio::time::timeout_at(deadline, Arc::clone(&self.all).acquire_owned()).await.ok()?.ok()?;
        Some(CallPermits { _plugin: mine, _all: all })
    }

    /// Forgets the semaphores of plugins no longer loaded and without calls in flight.
    fn prune(&self, loaded: &[Arc<LoadedPlugin>]) {
        let mut map = self.per_plugin.lock().unwrap_or_else(PoisonError::into_inner);
        map.retain(|name, semaphore| {
            semaphore.available_permits() < self.per_plugin_limit || loaded.iter().any(|p| &p.name == name)
        });
    }
}

pub struct Registry {
    config: LoaderConfig,
    call_timeout: Duration,
    current: RwLock<Arc<PluginSet>>,
    /// Bumped each time `current` is replaced: a cheap "is this still the running set" for
    /// answers cached on the request path.
    generation: AtomicU64,
    /// Bounds on in-process calls in flight, kept across reloads.
    permits: InProcessPermits,
    reloading: Mutex<()>,
}

impl Registry {
    /// Scans the plugin directory once. Fails only if the directory itself is unusable.
    pub async fn load(config: LoaderConfig, call_timeout: Duration) -> Result<Arc<Registry>, LoadError> {
        // Records a killed host left describe nothing that runs.
        crate::isolation::quarantine::clear(&config.state_dir);
        let registry = Arc::new(Registry {
            config,
            call_timeout,
            current: RwLock::new(Arc::new(PluginSet::default())),
            generation: AtomicU64::new(0),
            permits: InProcessPermits::new(MAX_IN_PROCESS_CALLS_PER_PLUGIN, MAX_IN_PROCESS_CALLS),
            reloading: Mutex::new(()),
        });
        registry.reload().await?;
        Ok(registry)
    }

    /// The current set of plugins.
    pub fn snapshot(&self) -> Arc<PluginSet> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Changes whenever the running set is replaced. Read it before asking a plugin, and an
    /// answer tagged with it is never taken for the answer of a later set.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Rescans the directory: new files load, removed ones go, changed ones load as a new
    /// version; a file that fails keeps its running version. Concurrent reloads run one at a time.
    pub async fn reload(&self) -> Result<Arc<PluginSet>, LoadError> {
        let _guard = self.reloading.lock().await;
        let previous = self.snapshot();
        let config = self.config.clone();
        let running = previous.plugins.clone();
        let report = tokio::task::spawn_blocking(move || loader::scan(&config, &running))
            .await
            .map_err(|err| LoadError::Io { action: "scan plugins", err: std::io::Error::other(err.to_string()) })??;
        for rejected in &report.rejected {
            tracing::warn!(file = %rejected.file.display(), error = %rejected.error, "plugin refused");
        }
        let set = Arc::new(PluginSet {
            rejected: report
                .rejected
                .iter()
                .map(|r| RejectedFile { file: r.file.clone(), error: r.error.to_string() })
                .collect(),
            plugins: report.plugins,
            loaded_at: Some(SystemTime::now()),
        });
        self.permits.prune(&set.plugins);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::clone(&set);
        // After the swap: a reader that sees the new generation then sees the new set.
        self.generation.fetch_add(1, Ordering::AcqRel);
        metrics::gauge!("plughost_plugins_loaded").set(set.plugins.len() as f64);
        metrics::gauge!("plughost_plugins_refused").set(set.rejected.len() as f64);
        tracing::info!(loaded = set.plugins.len(), refused = set.rejected.len(), "plugin directory scanned");
        Ok(set)
    }

    /// A token from the first token provider in chain order. Empty and already-expired tokens
    /// are errors: a caller must never be handed a token that cannot work.
    pub async fn token(&self) -> Result<ServedToken, TokenError> {
        let set = self.snapshot();
        if set.plugins.is_empty() {
            return Err(TokenError::NoPluginLoaded);
        }
        let plugin = set.plugins.iter().find(|p| p.provides.token_provider).ok_or(TokenError::NoTokenProvider)?;
        let name = plugin.name.clone();
        let started = Instant::now();
        let outcome = self.call(plugin, Call::Token).await;
        metrics::histogram!("plughost_token_provider_seconds", "plugin" => name.clone())
            .record(started.elapsed().as_secs_f64());
        let failed = |err| TokenError::Call { plugin: name.clone(), err };
        let bad = |answer| failed(CallError::BadAnswer(answer));
        let (secret, expires_at_unix) = match outcome.map_err(failed)? {
            Reply::Token(Ok(token)) => (token.secret, token.expires_at),
            Reply::Token(Err(message)) => return Err(failed(CallError::from_plugin(message))),
            Reply::Env(_) | Reply::NotProvided => return Err(TokenError::NoTokenProvider),
        };
        if secret.is_empty() {
            return Err(bad(BadAnswer::EmptyToken));
        }
        // Before any conversion: an expiry the answer cannot write would panic its formatting.
        if expires_at_unix > LATEST_EXPIRY_UNIX {
            return Err(bad(BadAnswer::ExpiryOutOfRange { expires_at_unix }));
        }
        let expires_at = unix_time(expires_at_unix);
        if expires_at <= SystemTime::now() {
            return Err(bad(BadAnswer::Expired { at: expires_at }));
        }
        Ok(ServedToken { token: SecretString::from(secret), expires_at, plugin: name })
    }

    /// Runs every env mutator in chain order on `env`; the first failure stops the chain.
    pub async fn mutate_env(
        &self,
        workspace_id: &str,
        mut env: BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, EnvError> {
        let set = self.snapshot();
        for plugin in set.plugins.iter().filter(|p| p.provides.env_mutator) {
            let name = plugin.name.clone();
            let started = Instant::now();
            let call = Call::MutateEnv { workspace_id: workspace_id.to_owned(), env: std::mem::take(&mut env) };
            let outcome = self.call(plugin, call).await;
            metrics::histogram!("plughost_env_mutator_seconds", "plugin" => name.clone())
                .record(started.elapsed().as_secs_f64());
            env = match outcome {
                Ok(Reply::Env(Ok(next))) => next,
                Ok(Reply::Env(Err(message))) => {
                    return Err(EnvError { plugin: name, err: CallError::from_plugin(message) });
                }
                Ok(Reply::Token(_) | Reply::NotProvided) => {
                    return Err(EnvError { plugin: name, err: CallError::BadAnswer(BadAnswer::NoEnvMutator) });
                }
                Err(err) => return Err(EnvError { plugin: name, err }),
            };
        }
        Ok(env)
    }

    /// Calls a plugin wherever it runs, within the call timeout.
    async fn call(&self, plugin: &Arc<LoadedPlugin>, call: Call) -> Result<Reply, CallError> {
        let deadline = tokio::time::Instant::now() + self.call_timeout;
        let started = Instant::now();
        let outcome = match &plugin.worker {
            Some(worker) => worker.call(call, deadline).await.map_err(|err| match CallError::from(err) {
                CallError::Timeout(_) => CallError::Timeout(self.call_timeout),
                other => other,
            }),
            None => self.call_in_process(plugin, call, deadline).await,
        };
        let what = match &outcome {
            Ok(_) => "ok",
            Err(CallError::Failed(_) | CallError::BadAnswer(_)) => "failed",
            Err(CallError::Panicked(_)) => "panicked",
            Err(CallError::Timeout(_)) => "timeout",
            Err(CallError::Crashed(_)) => "crashed",
            Err(CallError::Quarantined(_)) => "quarantined",
        };
        metrics::histogram!("plughost_plugin_call_seconds", "plugin" => plugin.name.clone(),
            "mode" => plugin.mode.as_str(), "outcome" => what)
        .record(started.elapsed().as_secs_f64());
        outcome
    }

    /// Calls into a mapped plugin on the blocking pool, within `deadline` (waiting for a
    /// permit included).
    async fn call_in_process(
        &self,
        plugin: &Arc<LoadedPlugin>,
        call: Call,
        deadline: tokio::time::Instant,
    ) -> Result<Reply, CallError> {
        debug_assert_eq!(plugin.mode, Mode::InProcess);
        let timeout = CallError::Timeout(self.call_timeout);
        let Some(permit) = self.permits.acquire(&plugin.name, deadline).await else { return Err(timeout) };
        let plugin = Arc::clone(plugin);
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            call_mapped(&plugin, call)
        });
        match tokio::time::timeout_at(deadline, task).await {
            Ok(Ok(reply)) => Ok(reply),
            // The SDK catches plugin panics inside the plugin; a join error here is a host bug.
            Ok(Err(join_error)) => {
                tracing::error!(%join_error, "plugin call task failed");
                Err(CallError::Panicked(format!("the host's call task failed: {join_error}")))
            }
            Err(_) => Err(timeout),
        }
    }
}

/// One call through the handles of a mapped plugin.
fn call_mapped(plugin: &LoadedPlugin, call: Call) -> Reply {
    match call {
        Call::Token => match &plugin.token_provider {
            Some(provider) => Reply::Token(provider.token().map(|token| crate::isolation::protocol::WireToken {
                secret: token.secret.expose().to_owned(),
                expires_at: token.expires_at.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64),
            })),
            None => Reply::NotProvided,
        },
        Call::MutateEnv { workspace_id, env } => match &plugin.env_mutator {
            Some(mutator) => Reply::Env(mutator.mutate_env(&workspace_id, &env)),
            None => Reply::NotProvided,
        },
    }
}

/// Seconds since the epoch as a time; before the epoch counts as the epoch (already expired).
fn unix_time(seconds: i64) -> SystemTime {
    std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::InProcessPermits;

    #[tokio::test]
    async fn in_process_permits_are_kept_per_plugin_name_and_capped_in_all() {
        let permits = InProcessPermits::new(2, 3);
        let soon = || tokio::time::Instant::now() + Duration::from_millis(20);
        let a1 = permits.acquire("a", soon()).await.expect("a's first");
        let _a2 = permits.acquire("a", soon()).await.expect("a's second");
        assert!(permits.acquire("a", soon()).await.is_none(), "a's share is used up");
        // Pruning (a reload without "a") keeps a semaphore with calls in flight.
        permits.prune(&[]);
        assert!(permits.acquire("a", soon()).await.is_none(), "a reload grants no more");
        let _b1 = permits.acquire("b", soon()).await.expect("b's first");
        assert!(permits.acquire("b", soon()).await.is_none(), "all three are in use");
        drop(a1);
        assert!(permits.acquire("b", soon()).await.is_some(), "a's returned permit serves b");
    }
}
