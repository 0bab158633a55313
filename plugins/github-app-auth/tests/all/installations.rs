//! Several installations (organizations) and several hosts (github.com beside a GitHub
//! Enterprise Server, each with its own App): the installation follows the owner of the asked
//! repositories and the scope's host; audiences name every host served.

use std::sync::OnceLock;
use std::time::Duration;

use github_emulator::{
    AppConfig, Emulator, EmulatorConfig, EmulatorHandle, InstallationConfig, TEST_APP_ID, TEST_INSTALLATION_ID,
    TestKeyPair, shared_test_key,
};
use plughost_sdk::{Audience, ScopeError, ScopedTokenProvider, Secret, TokenProvider, TokenScope};

use crate::support::*;

const GLOBEX_INSTALLATION: u64 = 515151;
const GHES_APP_ID: u64 = 2002;
const GHES_CLIENT_ID: &str = "Iv23liGhesApp00002";
const GHES_INSTALLATION: u64 = 626262;

/// The test App on two organizations: acme (widgets, gadgets, docs) and globex (tools).
fn two_orgs() -> EmulatorHandle {
    let config = EmulatorConfig::with_test_app(&shared_test_key().public_pem).with_installation(
        InstallationConfig::new(GLOBEX_INSTALLATION, TEST_APP_ID, "globex")
            .with_repos(["tools"])
            .with_permissions([("contents", "read"), ("metadata", "read")]),
    );
    Emulator::start(config).expect("emulator starts")
}

/// The Enterprise Server's own App key (a GHES App is another App than github.com's).
fn ghes_key() -> &'static TestKeyPair {
    static KEY: OnceLock<TestKeyPair> = OnceLock::new();
    KEY.get_or_init(|| TestKeyPair::generate().expect("key"))
}

fn ghes() -> EmulatorHandle {
    let config = EmulatorConfig {
        apps: vec![AppConfig::new(GHES_APP_ID, GHES_CLIENT_ID, &ghes_key().public_pem)],
        installations: vec![InstallationConfig::new(GHES_INSTALLATION, GHES_APP_ID, "platform").with_repos(["infra"])],
        ..EmulatorConfig::default()
    };
    Emulator::start(config).expect("GHES emulator starts")
}

#[test]
fn each_organization_gets_its_own_installations_token() {
    let emu = two_orgs();
    let toml = plugin_toml_with(
        &emu.base_url(),
        &format!("[[installations]]\nowner = \"globex\"\ninstallation_id = {GLOBEX_INSTALLATION}\n"),
    );
    let plugin = plugin_from(&toml);
    let acme = ScopedTokenProvider::scoped_token(&plugin, &scope(&["acme/widgets"], &[])).expect("acme");
    let globex =
        ScopedTokenProvider::scoped_token(&plugin, &scope(&["globex/tools"], &[("contents", "read")])).expect("globex");
    assert_eq!(emu.token_info(acme.expose()).unwrap().installation_id, TEST_INSTALLATION_ID);
    assert_eq!(emu.token_info(globex.expose()).unwrap().installation_id, GLOBEX_INSTALLATION);
    assert_eq!(reachable(&emu.base_url(), acme.expose()), ["acme/widgets"]);
    assert_eq!(reachable(&emu.base_url(), globex.expose()), ["globex/tools"]);

    // The unscoped token stays the default (first) installation's; one audience for one host.
    let unscoped = TokenProvider::token(&plugin).expect("unscoped");
    assert_eq!(emu.token_info(unscoped.expose()).unwrap().installation_id, TEST_INSTALLATION_ID);
    assert_eq!(plugin.audiences(), [Audience::github(host_of(&emu))]);
    // Each installation's refusals speak of it.
    let refused = match ScopedTokenProvider::scoped_token(&plugin, &scope(&["globex/tools"], &[("contents", "write")]))
    {
        Err(ScopeError::Refused(why)) => why,
        other => panic!("{:?}", other.map(|_| ())),
    };
    assert_eq!(
        refused,
        format!(
            "permission contents:write is not granted to the installation on globex at {} (it has contents:read)",
            host_of(&emu)
        )
    );
}

#[test]
fn repository_ids_alone_go_to_the_hosts_first_installation() {
    let emu = two_orgs();
    let toml = plugin_toml_with(&emu.base_url(), "[[installations]]\nowner = \"globex\"\n");
    let plugin = plugin_from(&toml);
    let widgets = TokenScope { repository_ids: vec![TEST_INSTALLATION_ID * 1000 + 1], ..scope(&[], &[]) };
    let token = ScopedTokenProvider::scoped_token(&plugin, &widgets).expect("acme's repository");
    assert_eq!(reachable(&emu.base_url(), token.expose()), ["acme/widgets"]);
    let tools_id = GLOBEX_INSTALLATION * 1000 + 1;
    let tools = TokenScope { repository_ids: vec![tools_id], ..scope(&[], &[]) };
    match ScopedTokenProvider::scoped_token(&plugin, &tools) {
        Err(ScopeError::Refused(why)) => assert_eq!(
            why,
            format!(
                "repository id {tools_id} does not exist or is not accessible to the installation on acme at {}",
                host_of(&emu)
            )
        ),
        other => panic!("{:?}", other.map(|_| ())),
    }
    // Named with its owner, the same repository goes to its own installation.
    let named = TokenScope { repository_ids: vec![tools_id], ..scope(&["globex/tools"], &[]) };
    let token = ScopedTokenProvider::scoped_token(&plugin, &named).expect("globex's repository");
    assert_eq!(reachable(&emu.base_url(), token.expose()), ["globex/tools"]);
}

#[test]
fn an_installation_given_by_owner_alone_is_discovered() {
    let emu = two_orgs();
    // No top-level installation: the first entry is the default.
    let toml = format!(
        "client_id = {:?}\nprivate_key = {:?}\napi_url = {:?}\n[[installations]]\nowner = \"globex\"\n\
         [[installations]]\nowner = \"acme\"\n",
        github_emulator::TEST_CLIENT_ID,
        shared_test_key().private_pem,
        emu.base_url()
    );
    let plugin = plugin_from(&toml);
    let unscoped = TokenProvider::token(&plugin).expect("unscoped");
    assert_eq!(emu.token_info(unscoped.expose()).unwrap().installation_id, GLOBEX_INSTALLATION);
    let acme = ScopedTokenProvider::scoped_token(&plugin, &scope(&["acme/docs"], &[])).expect("acme");
    assert_eq!(emu.token_info(acme.expose()).unwrap().installation_id, TEST_INSTALLATION_ID);
    assert_eq!(emu.requests("GET /orgs/{org}/installation"), 2, "each discovered once");
}

#[test]
fn github_com_and_an_enterprise_server_side_by_side() {
    let dotcom = emulator(Duration::from_secs(3600));
    let enterprise = ghes();
    let toml = plugin_toml_with(
        &dotcom.base_url(),
        &format!(
            "owner = \"acme\"\n[[installations]]\nowner = \"platform\"\ninstallation_id = {GHES_INSTALLATION}\n\
             api_url = {:?}\nclient_id = {GHES_CLIENT_ID:?}\nprivate_key = {:?}\n",
            enterprise.ghes_base_url(),
            ghes_key().private_pem
        ),
    );
    let plugin = plugin_from(&toml);
    let (dotcom_host, ghes_host) = (host_of(&dotcom), host_of(&enterprise));
    assert_eq!(plugin.audiences(), [Audience::github(&dotcom_host), Audience::github(&ghes_host)]);

    let on_ghes = TokenScope { host: ghes_host.clone(), ..scope(&["platform/infra"], &[]) };
    let token = ScopedTokenProvider::scoped_token(&plugin, &on_ghes).expect("GHES token");
    assert!(enterprise.is_token_valid(token.expose()) && dotcom.token_info(token.expose()).is_none());
    assert_eq!(reachable(&enterprise.ghes_base_url(), token.expose()), ["platform/infra"]);
    // Without a host: the default installation's host.
    let token_com =
        ScopedTokenProvider::scoped_token(&plugin, &scope(&["acme/widgets"], &[])).expect("github.com token");
    assert!(dotcom.is_token_valid(token_com.expose()));
    // An owner served on one host is not served on the other.
    let wrong = TokenScope { host: ghes_host.clone(), ..scope(&["acme/widgets"], &[]) };
    match ScopedTokenProvider::scoped_token(&plugin, &wrong) {
        Err(ScopeError::Refused(why)) => assert_eq!(
            why,
            format!(
                "no GitHub App installation is configured for owner acme at {ghes_host} (owners served there: platform)"
            )
        ),
        other => panic!("{:?}", other.map(|_| ())),
    }

    // Revocation goes to the host that minted the token, and only there.
    ScopedTokenProvider::revoke(&plugin, &Secret::new(token.expose())).expect("revoked");
    assert!(!enterprise.is_token_valid(token.expose()) && dotcom.is_token_valid(token_com.expose()));
    assert_eq!(dotcom.requests("DELETE /installation/token"), 0, "the GHES token never went to github.com");
    // A token this plugin cannot place is sent nowhere.
    let stranger = plugin_from(&toml);
    let err = ScopedTokenProvider::revoke(&stranger, &Secret::new(token_com.expose())).expect_err("unknown");
    assert!(err.message().starts_with("cannot tell which GitHub host minted this token"), "{err}");
    assert!(dotcom.is_token_valid(token_com.expose()));
    assert_eq!(enterprise.requests("DELETE /installation/token") + dotcom.requests("DELETE /installation/token"), 1);
}
