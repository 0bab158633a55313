//! Issue 12's promises end to end: the real `plughost serve`, the built github-app-auth `.so`
//! (in its default process mode), and the GitHub emulator on two organizations. What a
//! workspace's token reaches, and whether it still works, is asked of the emulator as GitHub
//! would answer it.

use std::collections::BTreeMap;

use github_emulator::{
    Emulator, EmulatorConfig, EmulatorHandle, InstallationConfig, TEST_APP_ID, TEST_INSTALLATION_ID, shared_test_key,
};
use plughost_testkit::{Serve, fixtures};

use crate::support::*;

const GLOBEX_INSTALLATION: u64 = 515151;

/// acme (widgets, gadgets, docs) and globex (tools), one App installed on both.
fn two_orgs() -> EmulatorHandle {
    let config = EmulatorConfig::with_test_app(&shared_test_key().public_pem).with_installation(
        InstallationConfig::new(GLOBEX_INSTALLATION, TEST_APP_ID, "globex")
            .with_repos(["tools"])
            .with_permissions([("contents", "read"), ("metadata", "read")]),
    );
    Emulator::start(config).expect("emulator starts")
}

fn host(emu: &EmulatorHandle) -> Serve {
    let toml = plugin_toml_with(
        &emu.base_url(),
        &format!("[[installations]]\nowner = \"globex\"\ninstallation_id = {GLOBEX_INSTALLATION}\n"),
    );
    Serve::builder().plugin("github.so", &fixtures().github_app_auth, Some(&toml)).start()
}

/// Issues a workspace token with `scope` (JSON) and returns the workspace's bearer.
fn issue(s: &Serve, workspace: &str, scope: &str) -> String {
    let reply = s.post(
        &format!("/admin/workspaces/{workspace}/tokens"),
        Some(s.admin_token().unwrap()),
        Some(&format!(r#"{{"scope":{scope}}}"#)),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply.json()["token"].as_str().unwrap().to_owned()
}

/// The GitHub token the workspace route serves that workspace, for the emulator's host.
fn github_token(s: &Serve, emu: &EmulatorHandle, workspace: &str, bearer: &str) -> String {
    let path = format!("/workspaces/{workspace}/github-installation-token?host={}", host_of(emu));
    let reply = s.get(&path, Some(bearer));
    assert_eq!(reply.status, 200, "{}\n{}", reply.body, s.log());
    reply.json()["token"].as_str().unwrap().to_owned()
}

#[test]
fn a_workspace_scope_gives_exactly_that_and_delete_kills_only_its_token_at_github() {
    let emu = two_orgs();
    let s = host(&emu);
    let base = emu.base_url();
    let scope = r#"{"repositories":["acme/widgets"],"permissions":{"contents":"read"}}"#;
    let ws1 = issue(&s, "ws-1", scope);
    let ws2 = issue(&s, "ws-2", scope);

    let token1 = github_token(&s, &emu, "ws-1", &ws1);
    let info = emu.token_info(&token1).expect("minted by the emulator");
    assert_eq!(info.installation_id, TEST_INSTALLATION_ID);
    assert_eq!(info.repositories, Some(vec!["widgets".to_owned()]));
    assert_eq!(info.permissions, BTreeMap::from([("contents".to_owned(), "read".to_owned())]));
    assert_eq!(reachable(&base, &token1), ["acme/widgets"]);
    assert_eq!(github("GET", &base, "/repos/acme/gadgets", &token1, None).0, 404);
    let write = serde_json::json!({ "message": "no", "content": "aGk=" });
    assert_eq!(github("PUT", &base, "/repos/acme/widgets/contents/README.md", &token1, Some(write)).0, 403);
    // Asked again, the same token (cached per scope and workspace); another workspace with the
    // same scope gets its own (one token per workspace by default).
    assert_eq!(github_token(&s, &emu, "ws-1", &ws1), token1);
    let token2 = github_token(&s, &emu, "ws-2", &ws2);
    assert_ne!(token2, token1);

    let reply = s.delete("/admin/workspaces/ws-1/tokens", s.admin_token());
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json(), serde_json::json!({"workspace_tokens_revoked": 1, "github_tokens_revoked": 1}));
    // Dead at GitHub at once; the other workspace's token still works; ws-1's bearer is refused.
    assert!(!emu.is_token_valid(&token1));
    assert_eq!(github("GET", &base, "/installation/repositories", &token1, None).0, 401);
    assert_eq!(reachable(&base, &token2), ["acme/widgets"]);
    let path = format!("/workspaces/ws-1/github-installation-token?host={}", host_of(&emu));
    assert_eq!(s.get(&path, Some(&ws1)).status, 401);
}

#[test]
fn each_workspace_gets_its_own_organizations_token_and_an_ungrantable_scope_is_422() {
    let emu = two_orgs();
    let s = host(&emu);
    let acme = issue(&s, "ws-acme", r#"{"repositories":["acme/docs"]}"#);
    let globex = issue(&s, "ws-globex", r#"{"repositories":["globex/tools"],"permissions":{"contents":"read"}}"#);
    let acme_token = github_token(&s, &emu, "ws-acme", &acme);
    let globex_token = github_token(&s, &emu, "ws-globex", &globex);
    assert_eq!(emu.token_info(&acme_token).unwrap().installation_id, TEST_INSTALLATION_ID);
    assert_eq!(emu.token_info(&globex_token).unwrap().installation_id, GLOBEX_INSTALLATION);
    assert_eq!(reachable(&emu.base_url(), &acme_token), ["acme/docs"]);
    assert_eq!(reachable(&emu.base_url(), &globex_token), ["globex/tools"]);

    // globex's installation has contents:read only: write cannot be granted, and the answer says so.
    let greedy = issue(&s, "ws-greedy", r#"{"repositories":["globex/tools"],"permissions":{"contents":"write"}}"#);
    let path = format!("/workspaces/ws-greedy/github-installation-token?host={}", host_of(&emu));
    let reply = s.get(&path, Some(&greedy));
    assert_eq!(reply.status, 422, "{}", reply.body);
    let error = reply.error();
    assert!(error.contains("contents:write") && error.contains("globex"), "{error}");
}
