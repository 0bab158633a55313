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

use crate::isolation::protocol::{Call, Reply, WireScope, WireScopeError, WireSecret};
use crate::isolation::{Mode, SupervisedError};
use crate::loader::{self, LoadError, LoadedPlugin, LoaderConfig};
use crate::settings::{MAX_IN_PROCESS_CALLS, MAX_IN_PROCESS_CALLS_PER_PLUGIN};
use plughost_sdk::Audience;

/// A snapshot of the loaded plugins; replaced whole on reload.
#[derive(Debug, Default)]
pub struct PluginSet {
    /// In chain order.
    pub plugins: Vec<Arc<LoadedPlugin>>,
    pub rejected: Vec<RejectedFile>,
    pub loaded_at: Option<SystemTime>,
    /// GitHub hosts several providers declare with none named in settings (see [`Pick::GitHub`]).
    pub ambiguities: Vec<Ambiguity>,
}

impl PluginSet {
    /// The token provider a request is for. The GitHub rule, never load order:
    /// 1. the host is `?host=` or, without it, [`DEFAULT_GITHUB_HOST`];
    /// 2. `github_token_provider` (if set) answers every request without `?host=`, and those for a
    ///    host it declares GitHub at, or for any host if it declares no GitHub audience at all (a
    ///    1.0 plugin, or one that declares nothing: the operator's word is all there is);
    /// 3. else the one provider declaring GitHub at that host; two or more is [`TokenError::Ambiguous`];
    /// 4. without `?host=` and with no provider at `github.com`: the one provider declaring GitHub at
    ///    any host (a single GitHub Enterprise Server installation); two or more is
    ///    [`TokenError::NoDefaultGitHub`]; none is [`TokenError::NoGitHubProvider`].
    ///
    /// A provider declaring nothing never answers the GitHub routes unless named.
    pub fn provider(&self, pick: Pick<'_>, named_github: Option<&str>) -> Result<&Arc<LoadedPlugin>, TokenError> {
        if self.plugins.is_empty() {
            return Err(TokenError::NoPluginLoaded);
        }
        let mut providers = self.plugins.iter().filter(|p| p.provides.token_provider).peekable();
        if providers.peek().is_none() {
            return Err(TokenError::NoTokenProvider);
        }
        match pick {
            Pick::Named(name) => {
                providers.find(|p| p.name == name).ok_or_else(|| TokenError::NoSuchProvider { name: name.to_owned() })
            }
            Pick::GitHub { host: asked } => {
                let host = asked.unwrap_or(DEFAULT_GITHUB_HOST);
                let declares =
                    |p: &LoadedPlugin| p.audiences.iter().any(|a| a.kind == Audience::GITHUB && a.host == host);
                if let Some(name) = named_github {
                    let named = self
                        .plugins
                        .iter()
                        .find(|p| p.provides.token_provider && p.name == name)
                        .ok_or_else(|| TokenError::NamedProviderMissing { name: name.to_owned() })?;
                    if asked.is_none() || declares(named) || !named.audiences.iter().any(|a| a.kind == Audience::GITHUB)
                    {
                        return Ok(named);
                    }
                }
                let github: Vec<&Arc<LoadedPlugin>> =
                    providers.filter(|p| p.audiences.iter().any(|a| a.kind == Audience::GITHUB)).collect();
                let names = |list: &[&Arc<LoadedPlugin>]| list.iter().map(|p| p.name.clone()).collect();
                let candidates: Vec<&Arc<LoadedPlugin>> = github.iter().copied().filter(|p| declares(p)).collect();
                match (candidates.as_slice(), github.as_slice(), asked) {
                    ([one], _, _) => Ok(one),
                    ([], [only], None) => Ok(only),
                    ([], [], _) | ([], _, Some(_)) => Err(TokenError::NoGitHubProvider { host: host.to_owned() }),
                    ([], several, None) => Err(TokenError::NoDefaultGitHub { candidates: names(several) }),
                    (several, _, _) => {
                        Err(TokenError::Ambiguous(Ambiguity { host: host.to_owned(), candidates: names(several) }))
                    }
                }
            }
        }
    }

    /// Every GitHub host declared by several providers, none of them named in settings.
    fn find_ambiguities(plugins: &[Arc<LoadedPlugin>], named_github: Option<&str>) -> Vec<Ambiguity> {
        let mut by_host: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for plugin in plugins.iter().filter(|p| p.provides.token_provider) {
            for audience in plugin.audiences.iter().filter(|a| a.kind == Audience::GITHUB) {
                let names = by_host.entry(audience.host.as_str()).or_default();
                if !names.contains(&plugin.name) {
                    names.push(plugin.name.clone());
                }
            }
        }
        by_host
            .into_iter()
            .filter(|(_, names)| names.len() > 1 && !names.iter().any(|n| Some(n.as_str()) == named_github))
            .map(|(host, candidates)| Ambiguity { host: host.to_owned(), candidates })
            .collect()
    }
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
    /// The provider refused a scope it cannot grant (SDK 1.1); the message names the repository
    /// or permission. The request, not the provider, is wrong: 422.
    #[error("refused the scope: {0}")]
    Refused(String),
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
    #[error("no answer of the capability called")]
    WrongReply,
}

impl CallError {
    /// An error message from the plugin: the SDK reports a caught panic as `<entry> panicked: ...`.
    fn from_plugin(message: String) -> CallError {
        let panicked = [
            "token panicked: ",
            "mutate_env panicked: ",
            "init panicked: ",
            "scoped_token panicked: ",
            "revoke panicked: ",
        ]
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
    /// `/tokens/{provider}`: no loaded token provider has that name.
    #[error("no token provider named {name}")]
    NoSuchProvider { name: String },
    /// The GitHub routes: no provider declares GitHub at the host, and none is named.
    #[error("no token provider declares GitHub at {host}")]
    NoGitHubProvider { host: String },
    /// The GitHub routes: several providers declare GitHub at the host and settings name none of them.
    #[error("{0}")]
    Ambiguous(Ambiguity),
    /// The GitHub routes without `?host=`: no provider declares `github.com` and several declare
    /// other hosts.
    #[error(
        "token providers {} declare GitHub at other hosts than github.com; pass ?host= or name one with \
         github_token_provider (PLUGHOST_GITHUB_TOKEN_PROVIDER)",
        candidates.join(", ")
    )]
    NoDefaultGitHub { candidates: Vec<String> },
    /// `github_token_provider` names a plugin that is not loaded or provides no tokens.
    #[error("github_token_provider names {name}, which is not a loaded token provider")]
    NamedProviderMissing { name: String },
    /// A scoped request to a provider without the scoped capability: never served a wider token.
    #[error("token provider {plugin} cannot limit a token to a scope (it does not provide scoped_token_provider)")]
    NotScoped { plugin: String },
    #[error("token provider {plugin} {err}")]
    Call { plugin: String, err: CallError },
}

/// Several token providers declare GitHub at one host and settings name none of them: found at
/// load (logged, listed by `GET /admin/plugins`) and answered on the route, never guessed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, thiserror::Error)]
#[error(
    "token providers {} all declare GitHub at {host}; name one with github_token_provider (PLUGHOST_GITHUB_TOKEN_PROVIDER)",
    candidates.join(", ")
)]
pub struct Ambiguity {
    pub host: String,
    pub candidates: Vec<String>,
}

/// Which token provider a request is for.
#[derive(Debug, Clone, Copy)]
pub enum Pick<'a> {
    /// `/tokens/{provider}`: by plugin name.
    Named(&'a str),
    /// The `github-installation-token` routes, for GitHub at a host (`None`: the default host).
    GitHub { host: Option<&'a str> },
}

/// The GitHub host of requests that name none.
pub const DEFAULT_GITHUB_HOST: &str = "github.com";

/// Why a revocation failed.
#[derive(Debug, thiserror::Error)]
#[error("token provider {plugin} {err}")]
pub struct RevokeError {
    pub plugin: String,
    pub err: CallError,
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
        let ambiguities = PluginSet::find_ambiguities(&report.plugins, self.config.github_token_provider.as_deref());
        for ambiguity in &ambiguities {
            tracing::error!(host = %ambiguity.host, candidates = ?ambiguity.candidates, "{ambiguity}");
        }
        let set = Arc::new(PluginSet {
            ambiguities,
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

    /// The token provider `pick` asks for, in the running set.
    pub fn provider(&self, pick: Pick<'_>) -> Result<Arc<LoadedPlugin>, TokenError> {
        let set = self.snapshot();
        set.provider(pick, self.config.github_token_provider.as_deref()).map(Arc::clone)
    }

    /// An unscoped token from the provider `pick` asks for. Empty and already-expired tokens are
    /// errors: a caller must never be handed a token that cannot work.
    pub async fn token(&self, pick: Pick<'_>) -> Result<ServedToken, TokenError> {
        let plugin = self.provider(pick)?;
        self.token_of(&plugin).await
    }

    /// An unscoped token from `plugin`.
    pub async fn token_of(&self, plugin: &Arc<LoadedPlugin>) -> Result<ServedToken, TokenError> {
        let name = plugin.name.clone();
        let started = Instant::now();
        let outcome = self.call(plugin, Call::Token).await;
        metrics::histogram!("plughost_token_provider_seconds", "plugin" => name.clone())
            .record(started.elapsed().as_secs_f64());
        let failed = |err| TokenError::Call { plugin: name.clone(), err };
        match outcome.map_err(failed)? {
            Reply::Token(Ok(token)) => checked(token.secret, token.expires_at, &name),
            Reply::Token(Err(message)) => Err(failed(CallError::from_plugin(message))),
            Reply::NotProvided => Err(TokenError::NoTokenProvider),
            _ => Err(failed(CallError::BadAnswer(BadAnswer::WrongReply))),
        }
    }

    /// A token from `plugin` limited to `scope` (SDK 1.1). A provider without the scoped
    /// capability is never asked: the caller gets [`TokenError::NotScoped`], never a wider token.
    pub async fn scoped_token(&self, plugin: &Arc<LoadedPlugin>, scope: WireScope) -> Result<ServedToken, TokenError> {
        let name = plugin.name.clone();
        if !plugin.provides.scoped_token_provider {
            return Err(TokenError::NotScoped { plugin: name });
        }
        let started = Instant::now();
        let outcome = self.call(plugin, Call::ScopedToken { scope }).await;
        metrics::histogram!("plughost_scoped_token_seconds", "plugin" => name.clone())
            .record(started.elapsed().as_secs_f64());
        let failed = |err| TokenError::Call { plugin: name.clone(), err };
        match outcome.map_err(failed)? {
            Reply::ScopedToken(Ok(token)) => checked(token.secret, token.expires_at, &name),
            Reply::ScopedToken(Err(WireScopeError::Refused(why))) => Err(failed(CallError::Refused(why))),
            Reply::ScopedToken(Err(WireScopeError::Failed(message))) => Err(failed(CallError::from_plugin(message))),
            Reply::NotProvided => Err(TokenError::NotScoped { plugin: name }),
            _ => Err(failed(CallError::BadAnswer(BadAnswer::WrongReply))),
        }
    }

    /// Revokes, through the plugin named `plugin` in the running set, a token it handed out.
    pub async fn revoke(&self, plugin: &str, secret: &SecretString) -> Result<(), RevokeError> {
        use secrecy::ExposeSecret as _;
        let set = self.snapshot();
        let failed = |err| RevokeError { plugin: plugin.to_owned(), err };
        let Some(loaded) = set.plugins.iter().find(|p| p.name == plugin && p.provides.scoped_token_provider) else {
            return Err(failed(CallError::Failed("is no longer loaded with scoped_token_provider".to_owned())));
        };
        let call = Call::Revoke { secret: WireSecret(secret.expose_secret().to_owned()) };
        match self.call(loaded, call).await.map_err(failed)? {
            Reply::Revoked(Ok(())) => Ok(()),
            Reply::Revoked(Err(message)) => Err(failed(CallError::from_plugin(message))),
            _ => Err(failed(CallError::BadAnswer(BadAnswer::WrongReply))),
        }
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
                Ok(_) => {
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
            Err(CallError::Refused(_)) => "refused",
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
        Call::ScopedToken { scope } => match &plugin.scoped_token_provider {
            Some(provider) => Reply::ScopedToken(
                provider
                    .scoped_token(&scope.to_sdk())
                    .map(|token| crate::isolation::protocol::WireToken {
                        secret: token.secret.expose().to_owned(),
                        expires_at: token
                            .expires_at
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_secs() as i64),
                    })
                    .map_err(crate::isolation::worker::wire_scope_error),
            ),
            None => Reply::NotProvided,
        },
        Call::Revoke { secret } => match &plugin.scoped_token_provider {
            Some(provider) => Reply::Revoked(provider.revoke(&secret.0)),
            None => Reply::NotProvided,
        },
    }
}

/// A plugin's token, refused when it cannot work: empty, expiry out of range, already expired.
fn checked(secret: String, expires_at_unix: i64, plugin: &str) -> Result<ServedToken, TokenError> {
    let bad = |answer| TokenError::Call { plugin: plugin.to_owned(), err: CallError::BadAnswer(answer) };
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
    Ok(ServedToken { token: SecretString::from(secret), expires_at, plugin: plugin.to_owned() })
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
