//! Scoped tokens (SDK 1.1) through the plugin's `ScopedTokenProvider`: limited to exactly the
//! scope, as the emulator confirms; refusals that name the repository or permission; a
//! configured scope as a ceiling; nothing cached here (the host caches per scope).

use std::collections::BTreeMap;
use std::time::Duration;

use github_emulator::TEST_INSTALLATION_ID;
use plughost_sdk::{ScopeError, ScopedTokenProvider, TokenProvider};
use serde_json::json;

use crate::support::*;

fn refusal(result: Result<plughost_sdk::Token, ScopeError>) -> String {
    match result {
        Err(ScopeError::Refused(why)) => why,
        Err(ScopeError::Failed(err)) => panic!("failed instead of refused: {err}"),
        Ok(_) => panic!("a token for a scope that cannot be granted"),
    }
}

#[test]
fn a_scope_gives_a_token_limited_to_exactly_that() {
    let emu = emulator(Duration::from_secs(3600));
    let plugin = plugin_from(&plugin_toml_with(&emu.base_url(), ""));
    let base = emu.base_url();

    let token = ScopedTokenProvider::scoped_token(&plugin, &scope(&["acme/widgets"], &[("contents", "read")]))
        .expect("scoped token");
    let info = emu.token_info(token.expose()).expect("minted here");
    assert_eq!(info.installation_id, TEST_INSTALLATION_ID);
    assert_eq!(info.repositories, Some(vec!["widgets".to_owned()]));
    assert_eq!(info.permissions, BTreeMap::from([("contents".to_owned(), "read".to_owned())]));
    // What the token reaches, as GitHub answers it.
    assert_eq!(reachable(&base, token.expose()), ["acme/widgets"]);
    assert_eq!(github("GET", &base, "/repos/acme/widgets", token.expose(), None).0, 200);
    assert_eq!(github("GET", &base, "/repos/acme/gadgets", token.expose(), None).0, 404);
    assert_eq!(github("GET", &base, "/repos/acme/widgets/contents/README.md", token.expose(), None).0, 200);
    let write = json!({ "message": "no", "content": "aGk=" });
    assert_eq!(github("PUT", &base, "/repos/acme/widgets/contents/README.md", token.expose(), Some(write)).0, 403);
    let left = token.expires_at().duration_since(std::time::SystemTime::now()).expect("future");
    assert!(left > Duration::from_secs(3590), "{left:?}");

    // Not cached here: the same scope again is a new mint (the host caches per scope).
    let again = ScopedTokenProvider::scoped_token(&plugin, &scope(&["acme/widgets"], &[("contents", "read")]))
        .expect("scoped token");
    assert_ne!(again.expose(), token.expose());
    assert_eq!(emu.mints(), 2);
    // The unscoped token is the installation's, cached as in 1.0, and unaffected.
    let unscoped = TokenProvider::token(&plugin).expect("token");
    assert_eq!(emu.token_info(unscoped.expose()).unwrap().repositories, None);
    assert_eq!(reachable(&base, unscoped.expose()).len(), 3);
    assert_eq!(TokenProvider::token(&plugin).unwrap().expose(), unscoped.expose());
    assert_eq!(emu.mints(), 3);
}

#[test]
fn repository_ids_and_permissions_alone_scope_too() {
    let emu = emulator(Duration::from_secs(3600));
    let plugin = plugin_from(&plugin_toml_with(&emu.base_url(), ""));
    let gadgets_id = TEST_INSTALLATION_ID * 1000 + 2;
    let by_id = plughost_sdk::TokenScope { repository_ids: vec![gadgets_id], ..scope(&[], &[]) };
    let token = ScopedTokenProvider::scoped_token(&plugin, &by_id).expect("by id");
    assert_eq!(reachable(&emu.base_url(), token.expose()), ["acme/gadgets"]);
    assert_eq!(emu.token_info(token.expose()).unwrap().permissions.len(), 3, "every permission of the installation");

    let token = ScopedTokenProvider::scoped_token(&plugin, &scope(&[], &[("pull_requests", "read")]))
        .expect("permissions only");
    let info = emu.token_info(token.expose()).unwrap();
    assert_eq!(info.permissions, BTreeMap::from([("pull_requests".to_owned(), "read".to_owned())]));
    assert_eq!(info.repositories, None, "every repository of the installation");
    // Names given as GitHub wants them: without the owner.
    let token = ScopedTokenProvider::scoped_token(&plugin, &scope(&["acme/docs", "ACME/widgets"], &[]))
        .expect("two, one owner");
    assert_eq!(reachable(&emu.base_url(), token.expose()), ["acme/widgets", "acme/docs"]);
}

#[test]
fn refusals_name_the_repository_or_the_permission() {
    let emu = emulator(Duration::from_secs(3600));
    let plugin = plugin_from(&plugin_toml_with(&emu.base_url(), ""));
    let host = host_of(&emu);
    let cases: Vec<(plughost_sdk::TokenScope, String)> = vec![
        (
            scope(&["acme/secret"], &[]),
            format!("repository acme/secret does not exist or is not accessible to the installation on acme at {host}"),
        ),
        (
            scope(&["acme/widgets", "acme/nope", "acme/gone"], &[("contents", "read")]),
            format!(
                "repositories acme/nope, acme/gone do not exist or are not accessible to the installation on acme at {host}"
            ),
        ),
        (
            plughost_sdk::TokenScope { repository_ids: vec![1], ..scope(&[], &[]) },
            format!("repository id 1 does not exist or is not accessible to the installation on acme at {host}"),
        ),
        (
            scope(&["acme/widgets"], &[("contents", "admin")]),
            format!(
                "permission contents:admin is not granted to the installation on acme at {host} (it has contents:write)"
            ),
        ),
        (
            scope(&[], &[("issues", "read")]),
            format!(
                "permission issues:read is not granted to the installation on acme at {host} (it has no issues permission)"
            ),
        ),
        (
            scope(&["globex/tools"], &[]),
            format!("no GitHub App installation is configured for owner globex at {host} (owners served there: acme)"),
        ),
        (
            scope(&["acme/widgets", "globex/tools"], &[]),
            "the repositories of one scope must have one owner, found acme (acme/widgets) and globex (globex/tools)"
                .into(),
        ),
        (scope(&["widgets"], &[]), "repository \"widgets\" is not \"owner/name\"".into()),
        (
            scope(&[], &[("contents", "owner")]),
            "permission contents: level \"owner\" is not read, write or admin".into(),
        ),
        (
            plughost_sdk::TokenScope { host: "ghe.example.com".into(), ..scope(&["acme/widgets"], &[]) },
            format!("no GitHub App installation is configured for host ghe.example.com (hosts served: {host})"),
        ),
    ];
    for (asked, expected) in cases {
        assert_eq!(refusal(ScopedTokenProvider::scoped_token(&plugin, &asked)), expected, "{asked:?}");
    }
    // The host answers 422 with the whole line.
    let err = ScopedTokenProvider::scoped_token(&plugin, &scope(&["acme/secret"], &[])).err().unwrap().to_string();
    assert!(err.starts_with("scope cannot be granted: repository acme/secret"), "{err}");
    // No scoped token came of any of it; the one token minted is the plugin's own, used to list
    // the installation's repositories (cached: listed twice, minted once).
    assert_eq!(emu.mints(), 1);
    assert_eq!(emu.requests("GET /app/installations/{id}"), 3, "the owner once, the granted permissions per refusal");
}

#[test]
fn a_configured_scope_is_the_most_a_scoped_token_gets() {
    let emu = emulator(Duration::from_secs(3600));
    let toml = plugin_toml_with(
        &emu.base_url(),
        "owner = \"acme\"\nrepositories = [\"widgets\", \"docs\"]\npermissions = { contents = \"read\", metadata = \"read\" }\n",
    );
    let plugin = plugin_from(&toml);
    assert_eq!(
        refusal(ScopedTokenProvider::scoped_token(&plugin, &scope(&["acme/gadgets"], &[]))),
        "repository acme/gadgets is outside what this plugin is configured to grant on acme (repositories, repository_ids)"
    );
    assert_eq!(
        refusal(ScopedTokenProvider::scoped_token(&plugin, &scope(&["acme/widgets"], &[("contents", "write")]))),
        "permission contents:write is outside what this plugin is configured to grant on acme (contents:read)"
    );
    assert_eq!(
        refusal(ScopedTokenProvider::scoped_token(&plugin, &scope(&[], &[("pull_requests", "read")]))),
        "permission pull_requests:read is outside what this plugin is configured to grant on acme (no pull_requests)"
    );
    assert_eq!(emu.mints(), 0, "refused before asking GitHub");
    assert_eq!(emu.requests("GET /app/installations/{id}"), 0, "the owner is configured");

    let within = ScopedTokenProvider::scoped_token(&plugin, &scope(&[], &[])).expect("the configured scope");
    let info = emu.token_info(within.expose()).unwrap();
    assert_eq!(info.repositories, Some(vec!["docs".to_owned(), "widgets".to_owned()]));
    assert_eq!(info.permissions.get("contents").map(String::as_str), Some("read"));
    let narrower =
        ScopedTokenProvider::scoped_token(&plugin, &scope(&["acme/docs"], &[("metadata", "read")])).expect("narrower");
    assert_eq!(reachable(&emu.base_url(), narrower.expose()), ["acme/docs"]);
}

#[test]
fn a_failing_github_is_a_failure_not_a_refusal() {
    let emu = emulator(Duration::from_secs(3600));
    let plugin = plugin_from(&plugin_toml_with(&emu.base_url(), "owner = \"acme\"\n"));
    emu.inject_n(github_emulator::Fault::Status(503), 10);
    match ScopedTokenProvider::scoped_token(&plugin, &scope(&["acme/widgets"], &[])) {
        Err(ScopeError::Failed(err)) => assert!(err.message().contains("503"), "{err}"),
        other => panic!("expected a failure: {:?}", other.map(|_| ()).map_err(|e| e.to_string())),
    }
    assert!(emu.requests(TOKEN_ROUTE) > 1, "transient failures are retried within the deadline");
}
