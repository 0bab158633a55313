//! `plughost serve`: the admin HTTP API.
//!
//! Start-up order: settings, admin token, token store (a state directory that cannot be used
//! stops the start, naming the path), metrics, bind, then the first scan of the plugin directory
//! in the background (`/readyz` answers 503 until it is done). The bound address is logged as
//! `listening on http://ADDR` for people; `--print-addr` also prints `ADDR` alone on stdout, the
//! machine-readable way to learn the port picked for `--listen 127.0.0.1:0`.
//! SIGHUP rescans the plugin directory; SIGTERM and SIGINT stop accepting connections and let
//! requests in flight finish.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use clap::Args;
use plughost_sdk::abi::LogLevel;
use secrecy::SecretString;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::api::{self, AdminToken, AppState};
use crate::config::{self, ConfigError, FileConfig};
use crate::loader::{LoadError, LoaderConfig};
use crate::registry::Registry;
use crate::store::{StoreError, WorkspaceTokenStore};

/// How long, after the server stopped, plugin calls still running on the blocking pool may
/// delay the exit (a hung plugin thread cannot be stopped, only abandoned).
const BLOCKING_POOL_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [env: PLUGHOST_LISTEN] [default: 127.0.0.1:8080]; port 0 picks a free one.
    #[arg(long)]
    listen: Option<String>,
    /// Directory of plugin .so files [env: PLUGHOST_PLUGIN_DIR] [default: /etc/plughost/plugins].
    #[arg(long)]
    plugin_dir: Option<PathBuf>,
    /// Directory for the token database and the plugin cache [env: PLUGHOST_STATE_DIR] [default: /var/lib/plughost].
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Once listening, print the bound address (`IP:PORT`) and a newline on stdout, and nothing
    /// else there: how a supervisor or a test learns the port picked for `--listen 127.0.0.1:0`.
    #[arg(long)]
    print_addr: bool,
}

/// Why `serve` could not start or stopped on its own.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot read the admin token file {}: {err}", path.display())]
    AdminTokenFile { path: PathBuf, err: std::io::Error },
    #[error("the admin token file {} is empty", path.display())]
    EmptyAdminTokenFile { path: PathBuf },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot install the metrics recorder: {0}")]
    Metrics(String),
    #[error("cannot listen on {addr}: {err}")]
    Bind { addr: SocketAddr, err: std::io::Error },
    #[error("cannot load plugins from {}: {err}", dir.display())]
    Plugins { dir: PathBuf, err: LoadError },
    #[error("{action}: {err}")]
    Io { action: &'static str, err: std::io::Error },
}

/// Settings of a `serve` run, resolved flag > environment > config file > default.
struct Settings {
    listen: SocketAddr,
    plugin_dir: PathBuf,
    state_dir: PathBuf,
    admin_token: Option<AdminToken>,
    call_timeout: Duration,
    max_body_bytes: usize,
    token_cache_ttl: Duration,
    print_addr: bool,
    file: FileConfig,
}

pub fn run(args: ServeArgs, config_file: Option<&Path>) -> ExitCode {
    let settings = match resolve(args, config_file) {
        Ok(settings) => settings,
        Err(err) => {
            tracing::error!("{err}");
            eprintln!("plughost: {err}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("plughost: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(serve(settings));
    runtime.shutdown_timeout(BLOCKING_POOL_GRACE);
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err}");
            eprintln!("plughost: {err}");
            ExitCode::FAILURE
        }
    }
}

fn resolve(args: ServeArgs, config_file: Option<&Path>) -> Result<Settings, ServeError> {
    let file = FileConfig::read_optional(config_file)?;
    let listen =
        config::pick(args.listen, "PLUGHOST_LISTEN", file.listen.clone(), || config::DEFAULT_LISTEN.to_owned());
    let listen = config::parse_listen(&listen)?;
    let plugin_dir = config::pick(args.plugin_dir, "PLUGHOST_PLUGIN_DIR", file.plugin_dir.clone(), || {
        PathBuf::from(config::DEFAULT_PLUGIN_DIR)
    });
    let state_dir = state_dir(args.state_dir, &file);
    let admin_token = admin_token(&file)?;
    let call_timeout = file.plugin_call_timeout_ms.map_or(config::DEFAULT_CALL_TIMEOUT, Duration::from_millis);
    let max_body_bytes = file.max_body_bytes.unwrap_or(api::DEFAULT_MAX_BODY_BYTES);
    let token_cache_ttl = file.token_cache_ms.map_or(api::tokens::DEFAULT_TOKEN_CACHE_TTL, Duration::from_millis);
    Ok(Settings {
        listen,
        plugin_dir,
        state_dir,
        admin_token,
        call_timeout,
        max_body_bytes,
        token_cache_ttl,
        print_addr: args.print_addr,
        file,
    })
}

/// `--state-dir`, `PLUGHOST_STATE_DIR`, `state_dir` of the config file, or the default.
pub fn state_dir(flag: Option<PathBuf>, file: &FileConfig) -> PathBuf {
    config::pick(flag, "PLUGHOST_STATE_DIR", file.state_dir.clone(), || PathBuf::from(config::DEFAULT_STATE_DIR))
}

/// `PLUGHOST_ADMIN_TOKEN`, else the first line of `admin_token_file`, else none.
fn admin_token(file: &FileConfig) -> Result<Option<AdminToken>, ServeError> {
    if let Some(token) = std::env::var("PLUGHOST_ADMIN_TOKEN").ok().filter(|t| !t.trim().is_empty()) {
        return Ok(Some(AdminToken::new(SecretString::from(token.trim().to_owned()))));
    }
    let Some(path) = &file.admin_token_file else { return Ok(None) };
    let text = std::fs::read_to_string(path).map_err(|err| ServeError::AdminTokenFile { path: path.clone(), err })?;
    let token = text.lines().next().unwrap_or("").trim();
    if token.is_empty() {
        return Err(ServeError::EmptyAdminTokenFile { path: path.clone() });
    }
    Ok(Some(AdminToken::new(SecretString::from(token.to_owned()))))
}

async fn serve(settings: Settings) -> Result<(), ServeError> {
    if settings.admin_token.is_none() {
        tracing::warn!(
            "no admin token configured (set PLUGHOST_ADMIN_TOKEN or admin_token_file in the config file): \
             every /admin route answers 401"
        );
    }
    let store = Arc::new(WorkspaceTokenStore::open(&settings.state_dir)?);
    tracing::info!(path = %store.path().display(), "workspace token store open");
    let metrics = crate::metrics::install().map_err(|err| ServeError::Metrics(err.to_string()))?;
    let state = Arc::new(AppState {
        registry: OnceLock::new(),
        store,
        admin_token: settings.admin_token,
        metrics: Some(metrics),
        token_cache: api::tokens::TokenCache::new(settings.token_cache_ttl),
    });

    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|err| ServeError::Bind { addr: settings.listen, err })?;
    let bound = listener.local_addr().map_err(|err| ServeError::Io { action: "read the bound address", err })?;
    tracing::info!("listening on http://{bound}");
    if settings.print_addr {
        // The machine-readable channel (the log line above is for people).
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{bound}")
            .and_then(|()| stdout.flush())
            .map_err(|err| ServeError::Io { action: "print the bound address", err })?;
    }

    // A fatal error found after start-up (the plugin directory cannot be scanned) stops the
    // server like a signal would, and becomes the exit status.
    let (fatal_tx, mut fatal_rx) = mpsc::channel::<ServeError>(1);
    let loader_config = LoaderConfig {
        plugin_dir: settings.plugin_dir.clone(),
        state_dir: settings.state_dir.clone(),
        plugin_configs: settings.file.plugins,
        max_log_level: LogLevel::Info,
        init_timeout: crate::loader::DEFAULT_INIT_TIMEOUT,
    };
    let loading = Arc::clone(&state);
    let call_timeout = settings.call_timeout;
    tokio::spawn(async move {
        match Registry::load(loader_config, call_timeout).await {
            Ok(registry) => {
                let _ = loading.registry.set(registry);
            }
            Err(err) => {
                let _ = fatal_tx.send(ServeError::Plugins { dir: settings.plugin_dir, err }).await;
            }
        }
    });
    spawn_reload_on_sighup(Arc::clone(&state))?;

    let mut terminate =
        signal(SignalKind::terminate()).map_err(|err| ServeError::Io { action: "listen for SIGTERM", err })?;
    let mut interrupt =
        signal(SignalKind::interrupt()).map_err(|err| ServeError::Io { action: "listen for SIGINT", err })?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<Option<ServeError>>();
    tokio::spawn(async move {
        let fatal = tokio::select! {
            _ = terminate.recv() => { tracing::info!("SIGTERM: finishing requests in flight, then stopping"); None }
            _ = interrupt.recv() => { tracing::info!("SIGINT: finishing requests in flight, then stopping"); None }
            Some(err) = fatal_rx.recv() => Some(err),
        };
        let _ = stop_tx.send(fatal);
    });
    let (fatal_seen_tx, fatal_seen_rx) = tokio::sync::oneshot::channel();
    let app = api::router(Arc::clone(&state), settings.max_body_bytes);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let fatal = stop_rx.await.ok().flatten();
            let _ = fatal_seen_tx.send(fatal);
        })
        .await
        .map_err(|err| ServeError::Io { action: "serve HTTP", err })?;
    tracing::info!("stopped");
    match fatal_seen_rx.await.ok().flatten() {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

fn spawn_reload_on_sighup(state: Arc<AppState>) -> Result<(), ServeError> {
    let mut hangup = signal(SignalKind::hangup()).map_err(|err| ServeError::Io { action: "listen for SIGHUP", err })?;
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            if state.registry.get().is_none() {
                tracing::info!("SIGHUP during the first plugin scan: nothing to reload yet");
                continue;
            }
            tracing::info!("SIGHUP: rescanning the plugin directory");
            // A failure is logged by reload_plugins; the running set stays.
            let _ = state.reload_plugins().await;
        }
    });
    Ok(())
}
