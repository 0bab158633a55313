//! The running set of plugins, and the async face the HTTP API calls.
//!
//! Plugins are synchronous C-ABI code: every call runs on tokio's blocking pool with a deadline.
//! A deadline answers the caller but cannot stop a hung plugin thread, so each plugin also has a
//! bound on calls in flight: a hung plugin pins at most that many threads, and later callers
//! time out waiting for a permit instead of exhausting the pool.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use secrecy::SecretString;
use tokio::sync::{Mutex, Semaphore};

use crate::loader::{self, LoadError, LoadedPlugin, LoaderConfig};

/// Calls in flight per plugin before callers queue (and time out) for a permit.
const MAX_CALLS_IN_FLIGHT: usize = 64;

/// A snapshot of the loaded plugins; replaced whole on reload.
#[derive(Debug, Default)]
pub struct PluginSet {
    /// In chain order.
    pub plugins: Vec<Arc<LoadedPlugin>>,
    pub rejected: Vec<RejectedFile>,
    pub loaded_at: Option<SystemTime>,
}

/// A refused file, as reported by `GET /admin/plugins`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RejectedFile {
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

/// Why no token could be served. Messages are safe to log: they never contain a token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("no plugin loaded")]
    NoPluginLoaded,
    #[error("no loaded plugin provides tokens")]
    NoTokenProvider,
    #[error("token provider {plugin} failed: {reason}")]
    Failed { plugin: String, reason: String },
    #[error("token provider {plugin} did not answer within {timeout:?}")]
    Timeout { plugin: String, timeout: Duration },
}

/// Why the env-mutator chain stopped.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("env mutator {plugin} failed: {message}")]
    Failed { plugin: String, message: String },
    #[error("env mutator {plugin} did not answer within {timeout:?}")]
    Timeout { plugin: String, timeout: Duration },
}

impl EnvError {
    pub fn plugin(&self) -> &str {
        match self {
            EnvError::Failed { plugin, .. } | EnvError::Timeout { plugin, .. } => plugin,
        }
    }
}

struct Slot {
    plugin: Arc<LoadedPlugin>,
    permits: Arc<Semaphore>,
}

pub struct Registry {
    config: LoaderConfig,
    call_timeout: Duration,
    current: RwLock<Arc<PluginSet>>,
    /// Bumped each time `current` is replaced: a cheap "is this still the running set" for
    /// answers cached on the request path.
    generation: AtomicU64,
    /// Permits per loaded file hash, kept across reloads for unchanged plugins.
    slots: RwLock<Vec<Slot>>,
    reloading: Mutex<()>,
}

impl Registry {
    /// Scans the plugin directory once. Fails only if the directory itself is unusable.
    pub async fn load(config: LoaderConfig, call_timeout: Duration) -> Result<Arc<Registry>, LoadError> {
        let registry = Arc::new(Registry {
            config,
            call_timeout,
            current: RwLock::new(Arc::new(PluginSet::default())),
            generation: AtomicU64::new(0),
            slots: RwLock::new(Vec::new()),
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
        {
            let mut slots = self.slots.write().unwrap_or_else(PoisonError::into_inner);
            let mut next = Vec::with_capacity(set.plugins.len());
            for plugin in &set.plugins {
                let permits = slots
                    .iter()
                    .find(|s| Arc::ptr_eq(&s.plugin, plugin))
                    .map(|s| Arc::clone(&s.permits))
                    .unwrap_or_else(|| Arc::new(Semaphore::new(MAX_CALLS_IN_FLIGHT)));
                next.push(Slot { plugin: Arc::clone(plugin), permits });
            }
            *slots = next;
        }
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
        let plugin = set.plugins.iter().find(|p| p.token_provider.is_some()).ok_or(TokenError::NoTokenProvider)?;
        let name = plugin.name.clone();
        let started = Instant::now();
        let outcome = self
            .call(plugin, |p| p.token_provider.as_ref().map(|tp| tp.token()))
            .await
            .map_err(|()| TokenError::Timeout { plugin: name.clone(), timeout: self.call_timeout });
        metrics::histogram!("plughost_token_provider_seconds", "plugin" => name.clone())
            .record(started.elapsed().as_secs_f64());
        let token = match outcome? {
            Some(Ok(token)) => token,
            Some(Err(reason)) => return Err(TokenError::Failed { plugin: name, reason }),
            None => return Err(TokenError::NoTokenProvider),
        };
        if token.secret.expose().is_empty() {
            return Err(TokenError::Failed { plugin: name, reason: "empty token".to_owned() });
        }
        if token.expires_at <= SystemTime::now() {
            return Err(TokenError::Failed {
                plugin: name,
                reason: format!("token already expired at {}", humantime::format_rfc3339_seconds(token.expires_at)),
            });
        }
        let token_value = SecretString::from(token.secret.expose());
        Ok(ServedToken { token: token_value, expires_at: token.expires_at, plugin: name })
    }

    /// Runs every env mutator in chain order on `env`; the first failure stops the chain.
    pub async fn mutate_env(
        &self,
        workspace_id: &str,
        mut env: BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, EnvError> {
        let set = self.snapshot();
        for plugin in set.plugins.iter().filter(|p| p.env_mutator.is_some()) {
            let workspace = workspace_id.to_owned();
            let input = env.clone();
            let name = plugin.name.clone();
            let started = Instant::now();
            let outcome =
                self.call(plugin, move |p| p.env_mutator.as_ref().map(|m| m.mutate_env(&workspace, &input))).await;
            metrics::histogram!("plughost_env_mutator_seconds", "plugin" => name.clone())
                .record(started.elapsed().as_secs_f64());
            env = match outcome {
                Ok(Some(Ok(next))) => next,
                Ok(Some(Err(message))) => return Err(EnvError::Failed { plugin: name, message }),
                Ok(None) => continue,
                Err(()) => return Err(EnvError::Timeout { plugin: name, timeout: self.call_timeout }),
            };
        }
        Ok(env)
    }

    /// Calls into a plugin on the blocking pool, within the call timeout (waiting for a permit
    /// included). `Err(())` means the deadline passed.
    async fn call<T: Send + 'static>(
        &self,
        plugin: &Arc<LoadedPlugin>,
        f: impl FnOnce(&LoadedPlugin) -> T + Send + 'static,
    ) -> Result<T, ()> {
        let deadline = tokio::time::Instant::now() + self.call_timeout;
        let permits = {
            let slots = self.slots.read().unwrap_or_else(PoisonError::into_inner);
            slots.iter().find(|s| Arc::ptr_eq(&s.plugin, plugin)).map(|s| Arc::clone(&s.permits))
        }
        .unwrap_or_else(|| Arc::new(Semaphore::new(MAX_CALLS_IN_FLIGHT)));
        let permit = match tokio::time::timeout_at(deadline, permits.acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            _ => return Err(()),
        };
        let plugin = Arc::clone(plugin);
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f(&plugin)
        });
        match tokio::time::timeout_at(deadline, task).await {
            Ok(Ok(value)) => Ok(value),
            // The SDK catches plugin panics inside the plugin; a join error here is a host bug.
            Ok(Err(join_error)) => {
                tracing::error!(%join_error, "plugin call task failed");
                Err(())
            }
            Err(_) => Err(()),
        }
    }
}
