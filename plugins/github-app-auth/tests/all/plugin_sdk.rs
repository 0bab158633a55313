//! The plugin through the SDK's traits, as the host drives it: init from TOML (errors name the
//! setting), tokens on this machine's clock, the env mutator; and the built `.so` itself.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use github_app_auth::GitHubAppAuth;
use github_emulator::{TEST_CLIENT_ID, TEST_INSTALLATION_ID, shared_test_key};
use plughost_sdk::{EnvMutator, InitContext, Plugin, TokenProvider};

use crate::support::*;

fn plugin_toml(api_url: &str) -> String {
    format!(
        "client_id = {:?}\ninstallation_id = {TEST_INSTALLATION_ID}\nprivate_key = {:?}\napi_url = {api_url:?}\n",
        TEST_CLIENT_ID,
        shared_test_key().private_pem,
    )
}

#[test]
fn init_token_and_env_through_the_sdk_traits() {
    let emu = emulator(Duration::from_secs(3600));
    let plugin = GitHubAppAuth::init(InitContext::for_tests(&plugin_toml(&emu.base_url()))).expect("init");
    assert_eq!(emu.requests(TOKEN_ROUTE), 0, "init does not contact GitHub");

    let token = TokenProvider::token(&plugin).expect("token");
    assert!(emu.is_token_valid(token.expose()));
    let left = token.expires_at().duration_since(SystemTime::now()).expect("in the future");
    assert!(left > Duration::from_secs(3590) && left <= Duration::from_secs(3600), "{left:?}");
    assert!(!format!("{token:?}").contains(token.expose()));

    let mut env = BTreeMap::new();
    EnvMutator::mutate_env(&plugin, "ws-1", &mut env).expect("mutates");
    assert!(env.is_empty(), "no token in a workspace's environment by default: {:?}", env.keys());

    let with_vars = format!("{}[env]\ntoken_vars = [\"GH_TOKEN\"]\n", plugin_toml(&emu.base_url()));
    let plugin = GitHubAppAuth::init(InitContext::for_tests(&with_vars)).expect("init");
    EnvMutator::mutate_env(&plugin, "ws-1", &mut env).expect("mutates");
    assert_eq!(env.keys().collect::<Vec<_>>(), ["GH_TOKEN", "GITHUB_TOKEN_EXPIRES_AT"]);
    assert!(emu.is_token_valid(&env["GH_TOKEN"]));
    assert_eq!(emu.mints(), 2, "one per plugin instance");
}

#[test]
fn init_errors_name_the_setting() {
    let err =
        GitHubAppAuth::init(InitContext::for_tests("installation_id = 1\nprivate_key_path = \"/nonexistent.pem\""))
            .err()
            .expect("refused");
    // The process environment could hold GITHUB_APP_ID; either way a setting is named.
    let message = err.message();
    assert!(
        message.starts_with("app_id: missing") || message.starts_with("private_key_path: cannot read /nonexistent.pem"),
        "{message}"
    );
    let err = GitHubAppAuth::init(InitContext::for_tests(&plugin_toml("ftp://nowhere"))).err().expect("refused");
    assert!(err.message().starts_with("api_url:"), "{}", err.message());
}

#[test]
fn env_mutator_failure_names_the_workspace_and_the_cause() {
    let emu = emulator(Duration::from_secs(3600));
    emu.inject(github_emulator::Fault::Status(404));
    let toml = format!("{}[env]\ntoken_vars = [\"GH_TOKEN\"]\n", plugin_toml(&emu.base_url()));
    let plugin = GitHubAppAuth::init(InitContext::for_tests(&toml)).expect("init");
    let mut env = BTreeMap::new();
    let err = EnvMutator::mutate_env(&plugin, "ws-9", &mut env).expect_err("404");
    assert!(err.message().contains("ws-9") && err.message().contains("404"), "{}", err.message());
    assert!(env.is_empty());
}

/// The built `.so` (the test kit's fixture build), loaded as the host loads plugins.
#[test]
fn the_built_cdylib_loads_and_serves_tokens() {
    let so = &plughost_testkit::fixtures().github_app_auth;
    let library = plughost_sdk::host::PluginLibrary::open(so).expect("loads");
    assert_eq!(library.info().name, "github-app-auth");

    let emu = emulator(Duration::from_secs(3600));
    let instance = library
        .init(plughost_sdk::host::InitArgs {
            config_toml: plugin_toml(&emu.base_url()),
            plugin_file: so.display().to_string(),
            log: Arc::new(|_, _, _| {}),
            max_log_level: plughost_sdk::abi::LogLevel::Info,
        })
        .expect("init");
    let provider = instance.token_provider.expect("declares token_provider");
    let token = provider.token().expect("token through the ABI");
    assert!(emu.is_token_valid(token.secret.expose()));
    assert!(instance.env_mutator.is_some(), "declares env_mutator");
}
