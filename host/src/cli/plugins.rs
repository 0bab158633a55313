//! `plughost plugins check FILE...` and `plughost plugins list`: what vendors run in CI and
//! operators run before deploying. Both load and initialise plugins exactly as `serve` would.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;
use plughost_sdk::abi::LogLevel;

use crate::config::{self, FileConfig};
use crate::loader::{self, LoadedPlugin, LoaderConfig};

#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// Load and initialise each file as serve would (configuration included); serve nothing.
    /// Prints one line per file; exits 0 only if all load.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// What serve would load from the plugin directory, and why the rest would be refused.
    List {
        #[arg(long, env = "PLUGHOST_PLUGIN_DIR")]
        plugin_dir: Option<PathBuf>,
    },
}

pub fn run(cmd: PluginsCommand, config_file: Option<&Path>) -> ExitCode {
    let file_config = match FileConfig::read_optional(config_file) {
        Ok(c) => c,
        Err(err) => {
            eprintln!("plughost: {err}");
            return ExitCode::from(2);
        }
    };
    // The content-addressed copies go to a scratch state directory: inspecting must not
    // touch a running host's cache.
    let scratch = match tempfile::Builder::new().prefix("plughost-check-").tempdir() {
        Ok(dir) => dir,
        Err(err) => {
            eprintln!("plughost: cannot create a scratch directory: {err}");
            return ExitCode::from(2);
        }
    };
    let plugin_dir = match &cmd {
        PluginsCommand::List { plugin_dir } => plugin_dir
            .clone()
            .or(file_config.plugin_dir.clone())
            .unwrap_or_else(|| PathBuf::from(config::DEFAULT_PLUGIN_DIR)),
        PluginsCommand::Check { .. } => PathBuf::new(),
    };
    let loader_config = LoaderConfig {
        plugin_dir,
        state_dir: scratch.path().to_owned(),
        plugin_configs: file_config.plugins,
        max_log_level: LogLevel::Warn,
        init_timeout: loader::DEFAULT_INIT_TIMEOUT,
    };
    match cmd {
        PluginsCommand::Check { files } => check(&files, &loader_config),
        PluginsCommand::List { .. } => list(&loader_config),
    }
}

fn check(files: &[PathBuf], config: &LoaderConfig) -> ExitCode {
    let mut loaded: Vec<Arc<LoadedPlugin>> = Vec::new();
    let mut all_ok = true;
    for file in files {
        match loader::load_file(file, config, &[], &loaded) {
            Ok(plugin) => {
                println!("ok    {}: {}", file.display(), describe(&plugin));
                loaded.push(plugin);
            }
            Err(err) => {
                all_ok = false;
                println!("FAIL  {}: {err}", file.display());
            }
        }
    }
    if all_ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

fn list(config: &LoaderConfig) -> ExitCode {
    match loader::scan(config, &[]) {
        Ok(report) => {
            println!("plugin directory {}:", config.plugin_dir.display());
            for plugin in &report.plugins {
                println!("load     {}: {}", plugin.file.display(), describe(plugin));
            }
            for rejected in &report.rejected {
                println!("refuse   {}: {}", rejected.file.display(), rejected.error);
            }
            if report.plugins.is_empty() && report.rejected.is_empty() {
                println!("(no .so files)");
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("plughost: {}: {err}", config.plugin_dir.display());
            ExitCode::FAILURE
        }
    }
}

fn describe(plugin: &LoadedPlugin) -> String {
    let caps = plugin.capabilities();
    format!(
        "{} {} (plughost-sdk {}), provides {}",
        plugin.name,
        plugin.version,
        plugin.sdk_version,
        if caps.is_empty() { "nothing".to_owned() } else { caps.join(", ") }
    )
}
