//! `plughost serve`: the admin HTTP API.
//!
//! Start-up order: settings ([`Settings::serve`], the admin token included; an unusable one
//! stops the start with status 2, naming where it came from), token store and plugin cache (a
//! state directory or cache that cannot be used or trusted stops the start, naming the path), metrics, bind, then the first scan of the plugin directory
//! in the background (`/readyz` answers 503 until it is done). The bound address is logged as
//! `listening on http://ADDR` for people; `--print-addr` also prints `ADDR` alone on stdout, the
//! machine-readable way to learn the port picked for `--listen 127.0.0.1:0`.
//! SIGHUP rescans the plugin directory; SIGTERM and SIGINT stop accepting connections, close idle
//! and half-sent ones at once, and let requests in flight finish ([`api::server`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use clap::Args;
use metrics_exporter_prometheus::BuildError;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::api::{self, AppState};
use crate::loader::LoadError;
use crate::registry::Registry;
use crate::settings::{self, Environment, Flags, ServeSettings, Settings};
use crate::store::{Store, StoreConfig, StoreWorkError};

/// How long, after the server stopped, plugin calls still running on the blocking pool may
/// delay the exit (a hung plugin thread cannot be stopped, only abandoned).
const BLOCKING_POOL_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[arg(long, help = settings::LISTEN.help("Address to listen on; port 0 picks a free one", settings::DEFAULT_LISTEN))]
    listen: Option<String>,
    #[arg(long, help = settings::PLUGIN_DIR.help("Directory of plugin .so files", settings::DEFAULT_PLUGIN_DIR))]
    plugin_dir: Option<PathBuf>,
    #[arg(long, help = settings::STATE_DIR.help(
        "Directory for the token database and the plugin cache",
        settings::DEFAULT_STATE_DIR,
    ))]
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
    Store(#[from] StoreWorkError),
    #[error("cannot install the metrics recorder: {0}")]
    Metrics(#[from] BuildError),
    #[error("cannot listen on {addr}: {err}")]
    Bind { addr: SocketAddr, err: std::io::Error },
    #[error("cannot load plugins from {}: {err}", dir.display())]
    Plugins { dir: PathBuf, err: LoadError },
    /// The plugin cache in the state directory cannot be created or trusted.
    #[error(transparent)]
    PluginCache(LoadError),
    #[error("{action}: {err}")]
    Io { action: &'static str, err: std::io::Error },
}

pub fn run(args: ServeArgs, config: Option<PathBuf>, env: Environment<'_>) -> ExitCode {
    let flags = Flags { config, listen: args.listen, plugin_dir: args.plugin_dir, state_dir: args.state_dir };
    let settings = match Settings::load(flags, env).and_then(|settings| settings.serve()) {
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
    let outcome = runtime.block_on(serve(settings, args.print_addr));
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

async fn serve(settings: ServeSettings, print_addr: bool) -> Result<(), ServeError> {
    if settings.admin_token.is_none() {
        tracing::warn!(
            "no admin token configured (set PLUGHOST_ADMIN_TOKEN or admin_token_file in the config file): \
             every /admin route answers 401"
        );
    }
    let store_config = StoreConfig::new(settings.store_url, settings.state_dir.clone());
    let store = Store::open_serving(&store_config, settings.store_timeout).await?;
    tracing::info!(database = %store.describe(), "workspace token store open");
    crate::loader::plugin_cache(&settings.state_dir).map_err(ServeError::PluginCache)?;
    let metrics = crate::metrics::install()?;
    let sealer = settings.admin_token.as_ref().map(api::AdminToken::mint_sealer);
    let state = Arc::new(AppState {
        registry: OnceLock::new(),
        store,
        admin_token: settings.admin_token,
        metrics: Some(metrics),
        token_cache: api::tokens::TokenCache::new(settings.token_cache_ttl),
        scoped_tokens: api::scoped_tokens::ScopedTokens::new(settings.share_scoped_tokens, sealer),
    });

    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|err| ServeError::Bind { addr: settings.listen, err })?;
    let bound = listener.local_addr().map_err(|err| ServeError::Io { action: "read the bound address", err })?;
    tracing::info!("listening on http://{bound}");
    if print_addr {
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
    let loading = Arc::clone(&state);
    let plugin_dir = settings.loader.plugin_dir.clone();
    tokio::spawn(async move {
        match Registry::load(settings.loader, settings.plugin_call_timeout).await {
            Ok(registry) => {
                let _ = loading.registry.set(registry);
            }
            Err(err) => {
                let _ = fatal_tx.send(ServeError::Plugins { dir: plugin_dir, err }).await;
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
    let app = api::router(Arc::clone(&state), settings.max_body_bytes, settings.request_timeout);
    let shutdown = async move {
        let fatal = stop_rx.await.ok().flatten();
        let _ = fatal_seen_tx.send(fatal);
    };
    api::server::serve(listener, app, settings.connections, shutdown).await;
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
