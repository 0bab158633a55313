//! `plughost plugins check FILE...` and `plughost plugins list`: what vendors run in CI and
//! operators run before deploying. Both load and initialise plugins exactly as `serve` would,
//! with the settings `serve` would resolve (config file and `[plugins.<name>]` tables included);
//! the differences are [`Loading::Inspect`]'s: a scratch state directory, quieter plugins.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;

use crate::isolation::quarantine;
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
    /// What serve would load from the plugin directory, and why the rest would be refused; and
    /// which plugins a host running on the state directory has quarantined.
    List {
        #[arg(long, help = settings::PLUGIN_DIR.help("Directory of plugin .so files", settings::DEFAULT_PLUGIN_DIR))]
        plugin_dir: Option<PathBuf>,
        #[arg(long, help = settings::STATE_DIR.help(
            "State directory of the running host (for its quarantine records)",
            settings::DEFAULT_STATE_DIR,
        ))]
        state_dir: Option<PathBuf>,
    },
}

pub fn run(cmd: PluginsCommand, config: Option<PathBuf>, env: Environment<'_>) -> ExitCode {
    let (plugin_dir, state_dir) = match &cmd {
        PluginsCommand::List { plugin_dir, state_dir } => (plugin_dir.clone(), state_dir.clone()),
        PluginsCommand::Check { .. } => (None, None),
    };
    let settings = match Settings::load(Flags { config, plugin_dir, state_dir, ..Flags::default() }, env) {
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
        PluginsCommand::List { .. } => list(&loader_config, &settings.state_dir()),
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

/// `running_state_dir`: the state directory of a host that may be running (where it keeps its
/// quarantine records); `config` loads into a scratch one.
fn list(config: &LoaderConfig, running_state_dir: &Path) -> ExitCode {
    let quarantined = quarantine::read_all(running_state_dir);
    match loader::scan(config, &[]) {
        Ok(report) => {
            println!("plugin directory {}:", config.plugin_dir.display());
            for plugin in &report.plugins {
                match quarantined.get(&plugin.name).filter(|record| record.sha256 == plugin.sha256) {
                    Some(record) => println!(
                        "load     {}: {}; quarantined by the running host: {}",
                        plugin.file.display(),
                        describe(plugin),
                        record.reason
                    ),
                    None => println!("load     {}: {}", plugin.file.display(), describe(plugin)),
                }
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
