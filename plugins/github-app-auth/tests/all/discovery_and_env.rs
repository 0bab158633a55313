//! Installation discovery (org, repository), GHES URLs, and the env mutator.

use std::collections::BTreeMap;
use std::time::Duration;

use github_app_auth::{AppIdentity, EnvSettings, GitHubAppAuth, InstallationTarget};
use github_emulator::{TEST_APP_ID, TEST_ORG};

use crate::support::*;

#[test]
fn installation_is_discovered_from_org_or_repository() {
    let emu = emulator(Duration::from_secs(3600));
    let mut config = config(&emu);
    config.installation = InstallationTarget::Org(TEST_ORG.to_owned());
    let by_org = GitHubAppAuth::new(&config);
    assert!(emu.is_token_valid(by_org.token().expect("token").expose()));
    assert_eq!(emu.requests("GET /orgs/{org}/installation"), 1);

    config.installation = InstallationTarget::Repo { owner: TEST_ORG.to_owned(), repo: "gadgets".to_owned() };
    config.identity = AppIdentity::AppId(TEST_APP_ID);
    let by_repo = GitHubAppAuth::new(&config);
    by_repo.token().expect("token");
    by_repo.client().mint().expect("second mint");
    assert_eq!(emu.requests("GET /repos/{owner}/{repo}/installation"), 1, "discovered once");

    config.installation = InstallationTarget::Org("nobody".to_owned());
    let err = GitHubAppAuth::new(&config).token().expect_err("not installed there");
    assert!(err.to_string().contains("installation of this App on nobody"), "{err}");
}

#[test]
fn ghes_api_url_works() {
    let emu = emulator(Duration::from_secs(3600));
    let mut config = config(&emu);
    config.api_url = emu.ghes_base_url();
    let auth = GitHubAppAuth::new(&config);
    assert!(emu.is_token_valid(auth.token().expect("token").expose()));
}

#[test]
fn env_mutator_writes_token_and_expiry_or_nothing() {
    let emu = emulator(Duration::from_secs(3600));
    let mut config = config(&emu);
    let by_default = GitHubAppAuth::new(&config);
    let mut env = BTreeMap::from([("HOME".to_owned(), "/home/agent".to_owned())]);
    by_default.mutate_env(&mut env).expect("no-op");
    assert_eq!(env.keys().collect::<Vec<_>>(), ["HOME"], "the default writes no token");
    assert_eq!(emu.requests(TOKEN_ROUTE), 0, "and asks GitHub nothing");

    config.env = EnvSettings {
        token_vars: vec!["GH_TOKEN".into(), "GITHUB_TOKEN".into()],
        expires_at_var: Some(github_app_auth::DEFAULT_EXPIRES_AT_VAR.into()),
    };
    let auth = GitHubAppAuth::new(&config);
    let mut env = BTreeMap::from([("GH_TOKEN".to_owned(), "ghs_stale_from_boot".to_owned())]);
    auth.mutate_env(&mut env).expect("mutates");
    let token = auth.token().expect("token");
    assert_eq!(env["GH_TOKEN"], token.expose());
    assert_eq!(env["GITHUB_TOKEN"], token.expose());
    let expiry = humantime::parse_rfc3339(&env["GITHUB_TOKEN_EXPIRES_AT"]).expect("RFC 3339");
    // On this machine's clock, never later than GitHub says (no skew here: at most 2 s earlier).
    assert!(expiry <= token.expires_at());
    assert!(token.expires_at().duration_since(expiry).unwrap() <= Duration::from_secs(2));

    config.env = EnvSettings { token_vars: vec!["MY_TOKEN".into()], expires_at_var: None };
    let custom = GitHubAppAuth::new(&config);
    let mut env = BTreeMap::new();
    custom.mutate_env(&mut env).expect("mutates");
    assert_eq!(env.keys().collect::<Vec<_>>(), ["MY_TOKEN"]);

    config.env = EnvSettings { token_vars: vec![], expires_at_var: None };
    let off = GitHubAppAuth::new(&config);
    let requests = emu.requests(TOKEN_ROUTE);
    let mut env = BTreeMap::new();
    off.mutate_env(&mut env).expect("no-op");
    assert!(env.is_empty());
    assert_eq!(emu.requests(TOKEN_ROUTE), requests, "a disabled mutator asks GitHub nothing");
}
