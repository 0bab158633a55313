//! The plughost side: [`GitHubAppAuth`] as a plugin providing tokens and mutating environments.
//! Everything here is thin; the behaviour lives in the core modules.

use std::collections::BTreeMap;

use plughost_sdk::{
    Audience, EnvMutator, Error, InitContext, Plugin, ScopeError, ScopedTokenProvider, Secret, Token, TokenProvider,
    TokenScope,
};

use crate::config::{AppIdentity, Config, InstallationTarget};
use crate::error::ScopedError;
use crate::{GitHubAppAuth, InstallationToken, Revoked};

impl Plugin for GitHubAppAuth {
    /// Loads and checks the settings (environment fallbacks from the host process); contacts
    /// GitHub only at the first token request, so a GitHub outage does not stop the host.
    /// A relative `private_key_path` is resolved against the plugin file's folder, where its
    /// `<file-stem>.toml` lives.
    fn init(ctx: InitContext) -> Result<Self, Error> {
        let base_dir = ctx.plugin_file().parent();
        let config = Config::from_toml_with_process_env(ctx.config_toml(), base_dir).map_err(Error::msg)?;
        for (i, config) in std::iter::once(&config).chain(&config.installations).enumerate() {
            describe(i, config);
        }
        Ok(GitHubAppAuth::new(&config))
    }
}

/// One log line per installation: what it is, where, for which owner (no secret in any of it).
fn describe(index: usize, config: &Config) {
    let app = match &config.identity {
        AppIdentity::AppId(id) => format!("app id {id}"),
        AppIdentity::ClientId(id) => format!("client id {id}"),
    };
    let installation = match &config.installation {
        InstallationTarget::Id(id) => format!("installation {id}"),
        InstallationTarget::Org(org) => format!("installation on {org} (discovered at first use)"),
        InstallationTarget::Repo { owner, repo } => {
            format!("installation on {owner}/{repo} (discovered at first use)")
        }
    };
    let owner = config.configured_owner().unwrap_or("learned at the first scoped request");
    tracing::info!(
        api_url = %config.api_url,
        host = %config.host(),
        owner,
        refresh_margin_secs = config.refresh_margin.as_secs(),
        min_validity_secs = config.min_validity.as_secs(),
        "github-app-auth configured{}: {app}, {installation}",
        if index == 0 { " (default installation)" } else { "" }
    );
}

fn sdk_token(token: &InstallationToken) -> Token {
    Token::new(token.expose(), token.expires_at_local())
}

impl TokenProvider for GitHubAppAuth {
    fn token(&self) -> Result<Token, Error> {
        let token = GitHubAppAuth::token(self).map_err(Error::msg)?;
        Ok(sdk_token(&token))
    }

    /// GitHub at every host served (github.com, an Enterprise Server, ...).
    fn audiences(&self) -> Vec<Audience> {
        self.hosts().into_iter().map(Audience::github).collect()
    }
}

impl ScopedTokenProvider for GitHubAppAuth {
    fn scoped_token(&self, scope: &TokenScope) -> Result<Token, ScopeError> {
        match GitHubAppAuth::scoped_token(self, scope) {
            Ok(token) => Ok(sdk_token(&token)),
            Err(ScopedError::Refused(refusal)) => Err(ScopeError::Refused(refusal.to_string())),
            Err(ScopedError::Failed(err)) => Err(ScopeError::Failed(Error::msg(err))),
        }
    }

    /// A token GitHub already refuses (401: revoked before, or expired) counts as revoked.
    fn revoke(&self, token: &Secret) -> Result<(), Error> {
        match GitHubAppAuth::revoke(self, token.expose()) {
            Ok(Revoked::Now) => Ok(()),
            Ok(Revoked::AlreadyDead) => {
                tracing::debug!("the token to revoke was already dead at GitHub (401)");
                Ok(())
            }
            Err(err) => Err(Error::msg(err)),
        }
    }
}

impl EnvMutator for GitHubAppAuth {
    fn mutate_env(&self, workspace_id: &str, env: &mut BTreeMap<String, String>) -> Result<(), Error> {
        GitHubAppAuth::mutate_env(self, env)
            .map_err(|err| Error::msg(format!("no GitHub token for workspace {workspace_id}: {err}")))
    }
}

plughost_sdk::export_plugin! { plugin: GitHubAppAuth, provides: [scoped_token_provider, env_mutator] }
