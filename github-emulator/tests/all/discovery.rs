//! Finding the installation (by app, org, repo) and the GHES `/api/v3` prefix.

use github_emulator::{TEST_INSTALLATION_ID, TEST_ORG};

use crate::support::*;

#[test]
fn installations_are_found_by_app_org_and_repo() {
    let emu = emulator();
    let auth = format!("Bearer {}", good_jwt());
    let base = emu.base_url();
    let list = call("GET", &format!("{base}/app/installations"), Some(&auth), None);
    assert_eq!(list.status, 200);
    assert_eq!(list.body[0]["id"], TEST_INSTALLATION_ID);
    assert_eq!(list.body[0]["account"]["login"], TEST_ORG);
    let org = call("GET", &format!("{base}/orgs/{TEST_ORG}/installation"), Some(&auth), None);
    assert_eq!(org.body["id"], TEST_INSTALLATION_ID);
    assert_eq!(org.body["access_tokens_url"], format!("{base}/app/installations/{TEST_INSTALLATION_ID}/access_tokens"));
    let repo = call("GET", &format!("{base}/repos/{TEST_ORG}/widgets/installation"), Some(&auth), None);
    assert_eq!(repo.body["id"], TEST_INSTALLATION_ID);
    let one = call("GET", &format!("{base}/app/installations/{TEST_INSTALLATION_ID}"), Some(&auth), None);
    assert_eq!(one.body["app_id"], github_emulator::TEST_APP_ID);

    assert_github_error(&call("GET", &format!("{base}/orgs/nobody/installation"), Some(&auth), None), 404, "Not Found");
    assert_github_error(
        &call("GET", &format!("{base}/repos/{TEST_ORG}/nothing/installation"), Some(&auth), None),
        404,
        "Not Found",
    );
    assert_github_error(&call("GET", &format!("{base}/app/installations"), None, None), 401, "JSON web token");
    assert_eq!(emu.requests("GET /orgs/{org}/installation"), 2);
}

#[test]
fn every_route_is_also_served_under_the_ghes_prefix() {
    let emu = emulator();
    let auth = format!("Bearer {}", good_jwt());
    let ghes = emu.ghes_base_url();
    assert!(ghes.ends_with("/api/v3"));
    let org = call("GET", &format!("{ghes}/orgs/{TEST_ORG}/installation"), Some(&auth), None);
    assert_eq!(org.status, 200);
    let tokens_url = org.body["access_tokens_url"].as_str().unwrap().to_owned();
    assert_eq!(tokens_url, format!("{ghes}/app/installations/{TEST_INSTALLATION_ID}/access_tokens"));
    let minted = call("POST", &tokens_url, Some(&auth), None);
    assert_eq!(minted.status, 201, "{}", minted.body);
    assert!(emu.is_token_valid(minted.body["token"].as_str().unwrap()));
    // Counted under the same route name as github.com-style requests.
    assert_eq!(emu.requests(TOKEN_ROUTE), 1);
    assert_github_error(&call("GET", &format!("{ghes}/no/such/route"), Some(&auth), None), 404, "Not Found");
}
