//! `plughost workspace-token issue|revoke WORKSPACE_ID`: the same store `serve` uses, so an
//! operator can issue or revoke tokens while the server runs (SQLite arbitrates; revocation
//! takes effect on the server's next request).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;

use crate::api::validate_workspace_id;
use crate::config::FileConfig;
use crate::store::WorkspaceTokenStore;

#[derive(Debug, Subcommand)]
pub enum WorkspaceTokenCommand {
    /// Issue a new bearer token for the workspace; prints it once, on stdout.
    Issue {
        workspace_id: String,
        /// [env: PLUGHOST_STATE_DIR] [default: /var/lib/plughost]
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
    /// Revoke every token of the workspace, effective at once.
    Revoke {
        workspace_id: String,
        /// [env: PLUGHOST_STATE_DIR] [default: /var/lib/plughost]
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
}

pub fn run(cmd: WorkspaceTokenCommand, config_file: Option<&Path>) -> ExitCode {
    let (WorkspaceTokenCommand::Issue { workspace_id, state_dir }
    | WorkspaceTokenCommand::Revoke { workspace_id, state_dir }) = &cmd;
    if let Err(message) = validate_workspace_id(workspace_id) {
        eprintln!("plughost: {message}");
        return ExitCode::from(2);
    }
    let file = match FileConfig::read_optional(config_file) {
        Ok(file) => file,
        Err(err) => {
            eprintln!("plughost: {err}");
            return ExitCode::from(2);
        }
    };
    let store = match WorkspaceTokenStore::open(&super::serve::state_dir(state_dir.clone(), &file)) {
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
