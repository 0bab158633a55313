//! The `plughost` command line.

mod plugins;
mod serve;
mod workspace_token;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "plughost", version, about = "Loads plugin .so files and serves their tokens and env mutators")]
pub struct Cli {
    /// Host configuration file (TOML).
    #[arg(long, global = true, env = "PLUGHOST_CONFIG")]
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
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::Plugins(cmd) => plugins::run(cmd, cli.config.as_deref()),
        Command::Serve(args) => serve::run(args, cli.config.as_deref()),
        Command::WorkspaceToken(cmd) => workspace_token::run(cmd, cli.config.as_deref()),
    }
}

/// Logs to stderr; `RUST_LOG` filters, `PLUGHOST_LOG_FORMAT=json` switches to JSON lines.
pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: escape codes in a log file or a pipe are noise.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let json = std::env::var("PLUGHOST_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}
