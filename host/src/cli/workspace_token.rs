//! `plughost workspace-token issue|revoke WORKSPACE_ID`: the same store `serve` uses (SQLite in
//! the state directory, or PostgreSQL at `PLUGHOST_STORE_URL` / `store_url`), so an operator can
//! issue or revoke tokens while the server runs (the database arbitrates; revocation takes
//! effect on every server's next request).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use crate::api::validate_workspace_id;
use crate::scope::{Scope, ScopeError};
use crate::settings::{self, Environment, Flags, Settings};
use crate::store::{Store, StoreConfig};

#[derive(Debug, Subcommand)]
pub enum WorkspaceTokenCommand {
    /// Issue a new bearer token for the workspace; prints it once, on stdout.
    ///
    /// With any of --repo, --repo-id, --permission the token is scoped: the GitHub tokens served
    /// to it are limited to those repositories and permissions.
    Issue {
        workspace_id: String,
        #[arg(long, help = state_dir_help())]
        state_dir: Option<PathBuf>,
        /// Limit to this repository, owner/name (repeatable).
        #[arg(long = "repo", value_name = "OWNER/NAME")]
        repositories: Vec<String>,
        /// Limit to this repository, by numeric id (repeatable).
        #[arg(long = "repo-id", value_name = "ID")]
        repository_ids: Vec<u64>,
        /// Limit to this permission, name=level with level read, write or admin (repeatable).
        #[arg(long = "permission", value_name = "NAME=LEVEL")]
        permissions: Vec<String>,
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
    let (WorkspaceTokenCommand::Issue { workspace_id, state_dir, .. }
    | WorkspaceTokenCommand::Revoke { workspace_id, state_dir }) = &cmd;
    if let Err(err) = validate_workspace_id(workspace_id) {
        eprintln!("plughost: {err}");
        return ExitCode::from(2);
    }
    let scope = match &cmd {
        WorkspaceTokenCommand::Issue { repositories, repository_ids, permissions, .. } => {
            match scope_from_flags(repositories, repository_ids, permissions) {
                Ok(scope) => scope,
                Err(err) => {
                    eprintln!("plughost: {err}");
                    return ExitCode::from(2);
                }
            }
        }
        WorkspaceTokenCommand::Revoke { .. } => None,
    };
    let settings = match Settings::load(Flags { config, state_dir: state_dir.clone(), ..Flags::default() }, env) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("plughost: {err}");
            return ExitCode::from(2);
        }
    };
    let store_config = match settings.store_url() {
        Ok(url) => StoreConfig::new(url, settings.state_dir()),
        Err(err) => {
            eprintln!("plughost: {err}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("plughost: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        let store = Store::open(&store_config, settings.store_timeout()).await?;
        match &cmd {
            WorkspaceTokenCommand::Issue { .. } => store.issue(workspace_id, scope.as_ref()).await.map(|token| {
                println!("{}", token.expose());
            }),
            // GitHub tokens minted for the workspace are revoked by the server's DELETE route
            // only: their records live in the server's memory.
            WorkspaceTokenCommand::Revoke { .. } => store.revoke(workspace_id).await.map(|count| {
                eprintln!("revoked {count} token(s) of workspace {workspace_id}");
            }),
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("plughost: {err}");
            ExitCode::FAILURE
        }
    }
}

/// The scope the flags give; `None` without any of them (an unscoped token).
fn scope_from_flags(
    repositories: &[String],
    repository_ids: &[u64],
    permissions: &[String],
) -> Result<Option<Scope>, ScopeError> {
    if repositories.is_empty() && repository_ids.is_empty() && permissions.is_empty() {
        return Ok(None);
    }
    let permissions = permissions.iter().map(|given| Scope::parse_permission(given)).collect::<Result<_, _>>()?;
    Scope { repositories: repositories.to_vec(), repository_ids: repository_ids.to_vec(), permissions }
        .validated()
        .map(Some)
}
