//! Down-scoping a token: repositories by name or id, permissions, and the 422s for too much.

use serde_json::json;

use crate::support::*;

#[test]
fn repositories_by_name_and_id_narrow_the_token() {
    let emu = emulator();
    let widgets_id = github_emulator::TEST_INSTALLATION_ID * 1000 + 1;
    let reply = mint(&emu, &good_jwt(), Some(&json!({ "repositories": ["docs"], "repository_ids": [widgets_id] })));
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.body["repository_selection"], "selected");
    let names: Vec<&str> =
        reply.body["repositories"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["docs", "widgets"]);
    let info = emu.token_info(reply.body["token"].as_str().unwrap()).unwrap();
    assert_eq!(info.repositories, Some(vec!["docs".to_owned(), "widgets".to_owned()]));

    let owner_qualified = mint(&emu, &good_jwt(), Some(&json!({ "repositories": ["acme/gadgets"] })));
    assert_eq!(owner_qualified.status, 201, "{}", owner_qualified.body);
}

#[test]
fn permissions_can_be_lowered_not_raised() {
    let emu = emulator();
    let lower = mint(&emu, &good_jwt(), Some(&json!({ "permissions": { "contents": "read" } })));
    assert_eq!(lower.status, 201, "{}", lower.body);
    assert_eq!(lower.body["permissions"], json!({ "contents": "read" }));
    let raise = mint(&emu, &good_jwt(), Some(&json!({ "permissions": { "metadata": "write" } })));
    assert_github_error(&raise, 422, "permissions requested");
    let absent = mint(&emu, &good_jwt(), Some(&json!({ "permissions": { "administration": "read" } })));
    assert_github_error(&absent, 422, "permissions requested");
}

#[test]
fn repositories_outside_the_installation_are_422() {
    let emu = emulator();
    assert_github_error(&mint(&emu, &good_jwt(), Some(&json!({ "repositories": ["secret"] }))), 422, "not accessible");
    assert_github_error(
        &mint(&emu, &good_jwt(), Some(&json!({ "repositories": ["other/docs"] }))),
        422,
        "not accessible",
    );
    assert_github_error(&mint(&emu, &good_jwt(), Some(&json!({ "repository_ids": [1] }))), 422, "not accessible");
    assert_eq!(emu.mints(), 0);
}

#[test]
fn more_than_500_repositories_is_422() {
    let emu = emulator();
    let many: Vec<String> = (0..501).map(|i| format!("repo{i}")).collect();
    assert_github_error(&mint(&emu, &good_jwt(), Some(&json!({ "repositories": many }))), 422, "at most 500");
}

#[test]
fn malformed_body_is_400() {
    let emu = emulator();
    let url = format!("{}/app/installations/{}/access_tokens", emu.base_url(), github_emulator::TEST_INSTALLATION_ID);
    let reply = call("POST", &url, Some(&format!("Bearer {}", good_jwt())), Some(&json!("not an object")));
    assert_github_error(&reply, 400, "Problems parsing JSON");
}

fn get(emu: &github_emulator::EmulatorHandle, path: &str, token: &str) -> Reply {
    call("GET", &format!("{}{path}", emu.base_url()), Some(&format!("token {token}")), None)
}

fn put_readme(emu: &github_emulator::EmulatorHandle, repo: &str, token: &str) -> Reply {
    let url = format!("{}/repos/{repo}/contents/README.md", emu.base_url());
    call("PUT", &url, Some(&format!("token {token}")), Some(&json!({ "message": "m", "content": "aGk=" })))
}

#[test]
fn a_scoped_token_reaches_exactly_its_repositories_with_exactly_its_permissions() {
    let emu = emulator();
    let scoped =
        mint(&emu, &good_jwt(), Some(&json!({ "repositories": ["widgets"], "permissions": { "contents": "read" } })));
    assert_eq!(scoped.status, 201, "{}", scoped.body);
    let token = scoped.body["token"].as_str().unwrap();

    let listed = get(&emu, "/installation/repositories", token);
    assert_eq!(listed.body["total_count"], 1);
    assert_eq!(listed.body["repositories"][0]["full_name"], "acme/widgets");
    assert_eq!(get(&emu, "/repos/acme/widgets", token).body["full_name"], "acme/widgets");
    assert_github_error(&get(&emu, "/repos/acme/gadgets", token), 404, "Not Found");
    assert_github_error(&get(&emu, "/repos/globex/widgets", token), 404, "Not Found");
    // contents: read, not write.
    let readme = get(&emu, "/repos/acme/widgets/contents/README.md", token);
    assert_eq!((readme.status, readme.body["content"].as_str()), (200, Some("IyB3aWRnZXRzCg==")), "{}", readme.body);
    assert_github_error(&put_readme(&emu, "acme/widgets", token), 403, "not accessible by integration");

    // The installation's own token writes, and everyone then reads what it wrote.
    let full = mint(&emu, &good_jwt(), None).body["token"].as_str().unwrap().to_owned();
    assert_eq!(put_readme(&emu, "acme/widgets", &full).status, 200);
    assert_eq!(put_readme(&emu, "acme/gadgets", &full).status, 200);
    assert_eq!(get(&emu, "/repos/acme/widgets/contents/README.md", token).body["content"], "aGk=");
    assert_eq!(get(&emu, "/installation/repositories", &full).body["total_count"], 3);
}

#[test]
fn a_token_without_contents_permission_cannot_read_contents() {
    let emu = emulator();
    let reply = mint(&emu, &good_jwt(), Some(&json!({ "permissions": { "pull_requests": "read" } })));
    let token = reply.body["token"].as_str().unwrap();
    assert_eq!(get(&emu, "/repos/acme/docs", token).status, 200, "any repository permission sees the repository");
    assert_github_error(&get(&emu, "/repos/acme/docs/contents/README.md", token), 403, "not accessible");
    assert_github_error(&get(&emu, "/repos/acme/docs/contents/missing.md", token), 403, "not accessible");
    let full = mint(&emu, &good_jwt(), None).body["token"].as_str().unwrap().to_owned();
    assert_github_error(&get(&emu, "/repos/acme/docs/contents/missing.md", &full), 404, "Not Found");
}

#[test]
fn installations_on_two_orgs_keep_to_their_own_repositories() {
    let config = github_emulator::EmulatorConfig::with_test_app(&github_emulator::shared_test_key().public_pem)
        .with_installation(
            github_emulator::InstallationConfig::new(515151, github_emulator::TEST_APP_ID, "globex")
                .with_repos(["tools"])
                .with_permissions([("contents", "read"), ("metadata", "read")]),
        );
    let emu = emulator_with(config);
    let url = format!("{}/app/installations/515151/access_tokens", emu.base_url());
    let globex = call("POST", &url, Some(&format!("Bearer {}", good_jwt())), None);
    assert_eq!(globex.status, 201, "{}", globex.body);
    let token = globex.body["token"].as_str().unwrap();
    assert_eq!(get(&emu, "/repos/globex/tools", token).status, 200);
    assert_github_error(&get(&emu, "/repos/acme/widgets", token), 404, "Not Found");
    assert_eq!(emu.token_info(token).unwrap().installation_id, 515151);

    // Another installation's repositories, by name or id, and more than it was granted: 422.
    let body = |b: serde_json::Value| call("POST", &url, Some(&format!("Bearer {}", good_jwt())), Some(&b));
    assert_github_error(&body(json!({ "repositories": ["widgets"] })), 422, "not accessible");
    let widgets_id = github_emulator::TEST_INSTALLATION_ID * 1000 + 1;
    assert_github_error(&body(json!({ "repository_ids": [widgets_id] })), 422, "not accessible");
    assert_github_error(&body(json!({ "permissions": { "contents": "write" } })), 422, "permissions requested");
    let listed = call(
        "GET",
        &format!("{}/orgs/globex/installation", emu.base_url()),
        Some(&format!("Bearer {}", good_jwt())),
        None,
    );
    assert_eq!(listed.body["id"], 515151);
}

#[test]
fn an_app_is_installed_once_per_account() {
    let twice = github_emulator::EmulatorConfig::with_test_app(&github_emulator::shared_test_key().public_pem)
        .with_installation(github_emulator::InstallationConfig::new(7, github_emulator::TEST_APP_ID, "ACME"));
    let err = github_emulator::Emulator::start(twice).err().expect("refused").to_string();
    assert!(err.contains("already installed on ACME"), "{err}");
}
