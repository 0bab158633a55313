//! `plughost workspace-token issue|revoke WORKSPACE_ID`: the same store `serve` uses, so an
//! operator can issue or revoke tokens while the server runs (SQLite arbitrates; revocation
//! takes effect on the server's next request).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use crate::api::validate_workspace_id;
use crate::settings::{self, Environment, Flags, Settings};
use crate::store::WorkspaceTokenStore;

#[derive(Debug, Subcommand)]
pub enum WorkspaceTokenCommand {
    /// Issue a new bearer token for the workspace; prints it once, on stdout.
    Issue {
        workspace_id: String,
        #[arg(long, help = state_dir_help())]
        state_dir: Option<PathBuf>,
    },
    /// Revoke every token of the workspace, effective at once.
    Revoke {
        workspace_id: String,
        #[arg(long, help = state_dir_help())]
        state_dir: Option<PathBuf>,
    },
}

fn state_dir_help() -> String {
    settings::STATE_DIR
        .help("State directory holding the workspace token database, as serve uses it", settings::DEFAULT_STATE_DIR)
}

pub fn run(cmd: WorkspaceTokenCommand, config: Option<PathBuf>, env: Environment<'_>) -> ExitCode {
    let (WorkspaceTokenCommand::Issue { workspace_id, state_dir }
    | WorkspaceTokenCommand::Revoke { workspace_id, state_dir }) = &cmd;
    if let Err(err) = validate_workspace_id(workspace_id) {
        eprintln!("plughost: {err}");
        return ExitCode::from(2);
    }
    let settings = match Settings::load(Flags { config, state_dir: state_dir.clone(), ..Flags::default() }, env) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("plughost: {err}");
            return ExitCode::from(2);
        }
    };
    let store = match WorkspaceTokenStore::open(&settings.state_dir()) {
        Ok(store) => store,
        Err(err) => {
            eprintln!("plughost: {err}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match &cmd {
        WorkspaceTokenCommand::Issue { .. } => store.issue(workspace_id).map(|token| {
            println!("{}", token.expose());
        }),
        WorkspaceTokenCommand::Revoke { .. } => store.revoke(workspace_id).map(|count| {
            eprintln!("revoked {count} token(s) of workspace {workspace_id}");
        }),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("plughost: {err}");
            ExitCode::FAILURE
        }
    }
}
