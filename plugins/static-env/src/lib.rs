#![forbid(unsafe_code)]

//! # static-env
//!
//! A plughost env mutator that sets variables from its configuration:
//!
//! ```toml
//! # libstatic_env.toml beside libstatic_env.so, or [plugins.static-env] in the host config
//! overwrite = false            # default: refuse to replace a variable already set
//! [vars]
//! TZ = "UTC"
//! HTTP_PROXY = "http://proxy.internal:3128"
//! ```
//!
//! A variable already present in the workspace's environment (set by the provisioner or an
//! earlier plugin in the chain) is an error unless `overwrite = true`: silently replacing it
//! hides configuration mistakes.

use std::collections::BTreeMap;

use plughost_sdk::{EnvMutator, Error, InitContext, Plugin};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    vars: BTreeMap<String, String>,
    #[serde(default)]
    overwrite: bool,
}

pub struct StaticEnv {
    config: Config,
}

impl Plugin for StaticEnv {
    fn init(ctx: InitContext) -> Result<Self, Error> {
        let config: Config = ctx.config()?;
        for name in config.vars.keys() {
            if !is_valid_name(name) {
                return Err(Error::msg(format!(
                    "vars: {name:?} is not a valid environment variable name (letters, digits, '_'; not starting with a digit)"
                )));
            }
        }
        tracing::info!(count = config.vars.len(), overwrite = config.overwrite, "static-env configured");
        Ok(StaticEnv { config })
    }
}

impl EnvMutator for StaticEnv {
    fn mutate_env(&self, workspace_id: &str, env: &mut BTreeMap<String, String>) -> Result<(), Error> {
        if !self.config.overwrite {
            if let Some(name) = self.config.vars.keys().find(|name| env.contains_key(*name)) {
                return Err(Error::msg(format!(
                    "{name} is already set for workspace {workspace_id}; set overwrite = true to replace it"
                )));
            }
        }
        env.extend(self.config.vars.iter().map(|(k, v)| (k.clone(), v.clone())));
        Ok(())
    }
}

fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

plughost_sdk::export_plugin! { plugin: StaticEnv, provides: [env_mutator] }

#[cfg(test)]
mod tests {
    use super::*;

    fn plugin(toml: &str) -> Result<StaticEnv, Error> {
        StaticEnv::init(InitContext::for_tests(toml))
    }

    #[test]
    fn sets_configured_variables() {
        let p = plugin("[vars]\nTZ = \"UTC\"\nLANG = \"C.UTF-8\"").unwrap();
        let mut env = BTreeMap::from([("HOME".to_owned(), "/home/agent".to_owned())]);
        p.mutate_env("ws-1", &mut env).unwrap();
        assert_eq!(env["TZ"], "UTC");
        assert_eq!(env["LANG"], "C.UTF-8");
        assert_eq!(env["HOME"], "/home/agent");
    }

    #[test]
    fn refuses_to_overwrite_unless_configured() {
        let p = plugin("[vars]\nTZ = \"UTC\"").unwrap();
        let mut env = BTreeMap::from([("TZ".to_owned(), "Europe/Paris".to_owned())]);
        let err = p.mutate_env("ws-1", &mut env).unwrap_err();
        assert_eq!(err.message(), "TZ is already set for workspace ws-1; set overwrite = true to replace it");
        assert_eq!(env["TZ"], "Europe/Paris");

        let p = plugin("overwrite = true\n[vars]\nTZ = \"UTC\"").unwrap();
        p.mutate_env("ws-1", &mut env).unwrap();
        assert_eq!(env["TZ"], "UTC");
    }

    #[test]
    fn rejects_bad_configuration_naming_the_setting() {
        let err = plugin("[vars]\n\"1BAD\" = \"x\"").err().unwrap();
        assert!(err.message().starts_with("vars: \"1BAD\" is not a valid"), "{err}");
        let err = plugin("overwrite = \"yes\"").err().unwrap();
        assert!(err.message().contains("overwrite"), "{err}");
        let err = plugin("colour = 1").err().unwrap();
        assert!(err.message().contains("colour"), "{err}");
    }
}
