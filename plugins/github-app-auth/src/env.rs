//! The env mutator's core: the token (and its expiry) into a workspace's environment.

use std::collections::BTreeMap;

use crate::config::{EnvSettings, rfc3339};
use crate::token::InstallationToken;

impl EnvSettings {
    /// Whether the mutator writes anything at all (if not, no token is fetched for it).
    pub fn is_enabled(&self) -> bool {
        !self.token_vars.is_empty() || self.expires_at_var.is_some()
    }

    /// Writes `token` into every token variable and its expiry (on this machine's clock, see
    /// [`InstallationToken::expires_at_local`]) into the expiry variable,
    /// replacing earlier values: a token set by the provisioner at boot is the stale kind
    /// this plugin exists to replace.
    pub fn apply(&self, token: &InstallationToken, env: &mut BTreeMap<String, String>) {
        for name in &self.token_vars {
            env.insert(name.clone(), token.expose().to_owned());
        }
        if let Some(name) = &self.expires_at_var {
            env.insert(name.clone(), rfc3339(token.expires_at_local()));
        }
    }
}
