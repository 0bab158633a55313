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
