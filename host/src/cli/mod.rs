//! The `plughost` command line.

mod plugins;

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
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::Plugins(cmd) => plugins::run(cmd, cli.config.as_deref()),
    }
}

/// Logs to stderr; `RUST_LOG` filters, `PLUGHOST_LOG_FORMAT=json` switches to JSON lines.
pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let json = std::env::var("PLUGHOST_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}
