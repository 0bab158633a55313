//! The plughost side: [`GitHubAppAuth`] as a plugin providing tokens and mutating environments.
//! Everything here is thin; the behaviour lives in the core modules.

use std::collections::BTreeMap;

use plughost_sdk::{EnvMutator, Error, InitContext, Plugin, Token, TokenProvider};

use crate::GitHubAppAuth;
use crate::config::{AppIdentity, Config, InstallationTarget};

impl Plugin for GitHubAppAuth {
    /// Loads and checks the settings (environment fallbacks from the host process); contacts
    /// GitHub only at the first token request, so a GitHub outage does not stop the host.
    /// A relative `private_key_path` is resolved against the plugin file's folder, where its
    /// `<file-stem>.toml` lives.
    fn init(ctx: InitContext) -> Result<Self, Error> {
        let base_dir = ctx.plugin_file().parent();
        let config = Config::from_toml_with_process_env(ctx.config_toml(), base_dir).map_err(Error::msg)?;
        let app = match &config.identity {
            AppIdentity::AppId(id) => format!("app id {id}"),
            AppIdentity::ClientId(id) => format!("client id {id}"),
        };
        let installation = match &config.installation {
            InstallationTarget::Id(id) => format!("installation {id}"),
            InstallationTarget::Org(org) => {
                format!("installation on {org} (discovered at first use)")
            }
            InstallationTarget::Repo { owner, repo } => {
                format!("installation on {owner}/{repo} (discovered at first use)")
            }
        };
        tracing::info!(
            api_url = %config.api_url,
            refresh_margin_secs = config.refresh_margin.as_secs(),
            min_validity_secs = config.min_validity.as_secs(),
            "github-app-auth configured: {app}, {installation}"
        );
        Ok(GitHubAppAuth::new(&config))
    }
}

impl TokenProvider for GitHubAppAuth {
    fn token(&self) -> Result<Token, Error> {
        let token = GitHubAppAuth::token(self).map_err(Error::msg)?;
        Ok(Token::new(token.expose(), token.expires_at_local()))
    }
}

impl EnvMutator for GitHubAppAuth {
    fn mutate_env(&self, workspace_id: &str, env: &mut BTreeMap<String, String>) -> Result<(), Error> {
        GitHubAppAuth::mutate_env(self, env)
            .map_err(|err| Error::msg(format!("no GitHub token for workspace {workspace_id}: {err}")))
    }
}

plughost_sdk::export_plugin! { plugin: GitHubAppAuth, provides: [token_provider, env_mutator] }
