//! `plughost plugins check FILE...` and `plughost plugins list`: what vendors run in CI and
//! operators run before deploying. Both load and initialise plugins exactly as `serve` would,
//! with the settings `serve` would resolve (config file and `[plugins.<name>]` tables included);
//! the differences are [`Loading::Inspect`]'s: a scratch state directory, quieter plugins.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;

use crate::loader::{self, LoadedPlugin, LoaderConfig};
use crate::settings::{self, Environment, Flags, Loading, Settings};

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
        #[arg(long, help = settings::PLUGIN_DIR.help("Directory of plugin .so files", settings::DEFAULT_PLUGIN_DIR))]
        plugin_dir: Option<PathBuf>,
    },
}

pub fn run(cmd: PluginsCommand, config: Option<PathBuf>, env: Environment<'_>) -> ExitCode {
    let plugin_dir = match &cmd {
        PluginsCommand::List { plugin_dir } => plugin_dir.clone(),
        PluginsCommand::Check { .. } => None,
    };
    let settings = match Settings::load(Flags { config, plugin_dir, ..Flags::default() }, env) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("plughost: {err}");
            return ExitCode::from(2);
        }
    };
    let scratch = match tempfile::Builder::new().prefix("plughost-check-").tempdir() {
        Ok(dir) => dir,
        Err(err) => {
            eprintln!("plughost: cannot create a scratch directory: {err}");
            return ExitCode::from(2);
        }
    };
    let loader_config = match settings.loader_config(Loading::Inspect { scratch_state_dir: scratch.path() }) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("plughost: {err}");
            return ExitCode::from(2);
        }
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
    let mut line = format!(
        "{} {} (plughost-sdk {}), provides {}",
        plugin.name,
        plugin.version,
        plugin.sdk_version,
        if caps.is_empty() { "nothing".to_owned() } else { caps.join(", ") }
    );
    if let Some(signer) = &plugin.signed_by {
        // Debug-quoted: the trusted comment is the vendor's text, printed on one line.
        line.push_str(&format!("; signed by key {} ({:?})", signer.key_id, signer.trusted_comment));
    }
    line
}
