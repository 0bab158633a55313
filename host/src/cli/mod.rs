//! The `plughost` command line. Each command turns its flags into [`settings::Flags`] and
//! resolves them with [`settings::Settings`]; this entry is the only place that hands over the
//! process environment.

mod plugins;
mod serve;
mod workspace_token;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::settings::{self, Environment, LogFormat};

#[derive(Debug, Parser)]
#[command(name = "plughost", version, about = "Loads plugin .so files and serves their tokens and env mutators")]
pub struct Cli {
    /// Host configuration file (TOML) [env: PLUGHOST_CONFIG].
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Inspect plugin files.
    #[command(subcommand)]
    Plugins(plugins::PluginsCommand),
    /// Serve the admin HTTP API.
    Serve(serve::ServeArgs),
    /// Issue or revoke workspace bearer tokens.
    #[command(subcommand)]
    WorkspaceToken(workspace_token::WorkspaceTokenCommand),
    /// Runs one plugin for a host (started by the host itself; see `crate::isolation`).
    #[command(name = "plugin-worker", hide = true)]
    PluginWorker {
        #[arg(long)]
        library: PathBuf,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::PluginWorker { library } = &cli.command {
        // No logging set-up: a worker's events travel to the host over its socket.
        return crate::isolation::worker::run(library);
    }
    let process_env = |name: &str| std::env::var(name).ok();
    let env = Environment::new(&process_env);
    init_logging(env);
    match cli.command {
        Command::Plugins(cmd) => plugins::run(cmd, cli.config, env),
        Command::Serve(args) => serve::run(args, cli.config, env),
        Command::WorkspaceToken(cmd) => workspace_token::run(cmd, cli.config, env),
        Command::PluginWorker { .. } => unreachable!("handled before logging is set up"),
    }
}

/// Logs to stderr; `RUST_LOG` filters (read by tracing-subscriber, the ecosystem's convention),
/// `PLUGHOST_LOG_FORMAT=json` switches to JSON lines.
pub fn init_logging(env: Environment<'_>) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(settings::DEFAULT_LOG_FILTER));
    // Colours only on a terminal: escape codes in a log file or a pipe are noise.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let _ = match LogFormat::from_env(env) {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
