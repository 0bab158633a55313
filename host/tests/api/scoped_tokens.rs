// SDK 1.1 through the real host, in both isolation modes: workspace tokens issued with a scope
// get GitHub tokens minted for exactly that scope by the `scoped-provider` fixture (whose tokens
// spell out their scope), refusals answer 422 naming what was refused, DELETE revokes the
// workspace's own minted tokens and no one else's, shared mode, single flight under a cold herd,
// and which provider answers which route (never load order).

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::harness::*;

const GITHUB: &str = "/github-installation-token";

/// Where the fixture appends its mints and revocations.
struct Logs {
    mints: PathBuf,
    revoked: PathBuf,
}

impl Logs {
    fn in_dir(dir: &Path) -> Logs {
        Logs { mints: dir.join("mints.log"), revoked: dir.join("revoked.log") }
    }

    fn mints(&self) -> Vec<String> {
        lines(&self.mints)
    }

    fn revoked(&self) -> Vec<String> {
        lines(&self.revoked)
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_owned).collect()
}

/// A server with the scoped provider (as `20-github.so`), its logs in the plugin directory's root,
/// `extra` appended to its configuration, `host_config` as the host's config file.
fn scoped_server(extra: &str, host_config: &str) -> (Server, Logs) {
    let dir = PluginDir::new();
    let logs = Logs::in_dir(dir.root());
    dir.add(&fixtures().scoped_provider, "20-github.so");
    dir.configure(
        "20-github.so",
        &format!(
            "refuse_repositories = [\"o/secret\"]\nrefuse_permissions = [\"administration\"]\nmint_log = {:?}\n\
             revocation_log = {:?}\n{extra}",
            logs.mints.display().to_string(),
            logs.revoked.display().to_string()
        ),
    );
    (server().dir(dir).config(host_config).start(), logs)
}

fn issue_scoped(s: &Server, workspace: &str, scope: serde_json::Value) -> String {
    let body = json!({ "scope": scope }).to_string();
    let reply = s.post(&format!("/admin/workspaces/{workspace}/tokens"), Some(ADMIN), Some(&body));
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply.json()["token"].as_str().unwrap().to_owned()
}

fn token_of(s: &Server, path: &str, bearer: &str) -> String {
    let reply = s.get(path, Some(bearer));
    assert_eq!(reply.status, 200, "{path}: {}", reply.body);
    reply.json()["token"].as_str().unwrap().to_owned()
}

/// `scoped.<n>.<workspace>.<host>.<repos>.<ids>.<perms>` without its mint number.
fn scope_of(token: &str) -> String {
    let mut parts = token.splitn(3, '.');
    assert_eq!(parts.next(), Some("scoped"), "{token}");
    parts.nth(1).unwrap().to_owned()
}

#[test]
fn a_scoped_workspace_gets_exactly_its_scope_in_both_isolation_modes() {
    for mode in ["process", "in-process"] {
        let (s, logs) = scoped_server("", &format!("[isolation]\nmode = \"{mode}\"\n"));
        let plugins = s.get("/admin/plugins", Some(ADMIN)).json();
        assert_eq!(plugins["plugins"][0]["capabilities"], json!(["token_provider", "scoped_token_provider"]));
        assert_eq!(plugins["plugins"][0]["audiences"], json!([{"kind": "github", "host": "github.com"}]));
        assert_eq!(plugins["plugins"][0]["sdk_version"], "1.1.0");

        let body = json!({"scope": {"repositories": ["o/r1"], "permissions": {"contents": "read"}}}).to_string();
        let reply = s.post("/admin/workspaces/ws-a/tokens", Some(ADMIN), Some(&body));
        assert_eq!(reply.status, 201, "{}", reply.body);
        assert_eq!(
            reply.json()["scope"],
            json!({"repositories": ["o/r1"], "repository_ids": [], "permissions": {"contents": "read"}}),
            "{mode}"
        );
        let ws_a = reply.json()["token"].as_str().unwrap().to_owned();

        let github = token_of(&s, &format!("/workspaces/ws-a{GITHUB}"), &ws_a);
        assert_eq!(scope_of(&github), "ws-a.github.com.o/r1..contents=read", "{mode}");
        // Cached: the same token again, one mint.
        assert_eq!(token_of(&s, &format!("/workspaces/ws-a{GITHUB}"), &ws_a), github);
        // The admin bearer on the workspace's route gets the workspace's scope too.
        assert_eq!(token_of(&s, &format!("/workspaces/ws-a{GITHUB}"), ADMIN), github);
        // By plugin name: the same scope, no host.
        let named = token_of(&s, "/workspaces/ws-a/tokens/scoped-provider", &ws_a);
        assert_eq!(scope_of(&named), "ws-a..o/r1..contents=read");
        assert_eq!(logs.mints().len(), 2, "{mode}: {:?}", logs.mints());
        // The admin route stays unscoped.
        assert!(token_of(&s, "/admin/github-installation-token", ADMIN).starts_with("unscoped."));
        assert!(token_of(&s, "/admin/tokens/scoped-provider", ADMIN).starts_with("unscoped."));

        // Another workspace, another scope (ids, several permissions).
        let ws_b = issue_scoped(
            &s,
            "ws-b",
            json!({"repository_ids": [7, 3], "permissions": {"issues": "write", "contents": "read"}}),
        );
        let github_b = token_of(&s, &format!("/workspaces/ws-b{GITHUB}"), &ws_b);
        assert_eq!(scope_of(&github_b), "ws-b.github.com..3,7.contents=read,issues=write");

        // A scope the installation cannot grant: 422 naming it, never a token.
        let bad = issue_scoped(&s, "ws-bad", json!({"repositories": ["o/r1", "o/secret"]}));
        let reply = s.get(&format!("/workspaces/ws-bad{GITHUB}"), Some(&bad));
        assert_eq!(reply.status, 422, "{}", reply.body);
        assert_eq!(
            reply.error(),
            "scope cannot be granted: repository o/secret is not accessible to this installation"
        );
        let bad = issue_scoped(&s, "ws-bad2", json!({"permissions": {"administration": "admin"}}));
        let reply = s.get(&format!("/workspaces/ws-bad2{GITHUB}"), Some(&bad));
        assert_eq!(reply.status, 422);
        assert_eq!(
            reply.error(),
            "scope cannot be granted: permission administration=admin is not granted to this installation"
        );

        // DELETE revokes ws-a's GitHub tokens (both it was served), and only those.
        let reply = s.delete("/admin/workspaces/ws-a/tokens", Some(ADMIN));
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.json(), json!({"workspace_tokens_revoked": 1, "github_tokens_revoked": 2}));
        let mut revoked = logs.revoked();
        revoked.sort();
        let mut expected = vec![github.clone(), named.clone()];
        expected.sort();
        assert_eq!(revoked, expected, "{mode}");
        assert_eq!(s.get(&format!("/workspaces/ws-a{GITHUB}"), Some(&ws_a)).status, 401);
        // ws-b keeps its token, unrevoked.
        assert_eq!(token_of(&s, &format!("/workspaces/ws-b{GITHUB}"), &ws_b), github_b);
        assert!(!logs.revoked().contains(&github_b));
        // Re-issued, ws-a gets a fresh token (the revoked one is never served again).
        let ws_a = issue_scoped(&s, "ws-a", json!({"repositories": ["o/r1"], "permissions": {"contents": "read"}}));
        let again = token_of(&s, &format!("/workspaces/ws-a{GITHUB}"), &ws_a);
        assert_ne!(again, github);
        assert_eq!(scope_of(&again), scope_of(&github));
        // A workspace that never fetched: nothing to revoke at the provider.
        let _ = s.issue("ws-idle");
        assert_eq!(
            s.delete("/admin/workspaces/ws-idle/tokens", Some(ADMIN)).json(),
            json!({"workspace_tokens_revoked": 1, "github_tokens_revoked": 0})
        );
    }
}

#[test]
fn scopes_are_validated_at_issue() {
    let (s, _) = scoped_server("", "");
    for (scope, expected) in [
        (json!({"repositories": ["noslash"]}), "invalid repository \"noslash\""),
        (json!({"repositories": ["o/r/x"]}), "invalid repository \"o/r/x\""),
        (json!({"repository_ids": [0]}), "invalid repository id 0"),
        (json!({"permissions": {"Contents": "read"}}), "invalid permission \"Contents\""),
        (json!({"repositories": (0..501).map(|i| format!("o/r{i}")).collect::<Vec<_>>()}), "too many repositories"),
    ] {
        let body = json!({ "scope": scope }).to_string();
        let reply = s.post("/admin/workspaces/ws/tokens", Some(ADMIN), Some(&body));
        assert_eq!(reply.status, 422, "{body}: {}", reply.body);
        assert!(reply.error().starts_with(expected), "{}", reply.error());
    }
    // Levels and unknown keys: refused by the body's shape, 422 too.
    for body in
        [r#"{"scope":{"permissions":{"contents":"owner"}}}"#, r#"{"scope":{"repos":["o/r"]}}"#, r#"{"scopes":{}}"#]
    {
        let reply = s.post("/admin/workspaces/ws/tokens", Some(ADMIN), Some(body));
        assert_eq!(reply.status, 422, "{body}: {}", reply.body);
    }
    // No body, an empty body and a null scope: unscoped, as before 1.1.
    for body in [None, Some(""), Some(r#"{"scope":null}"#), Some("{}")] {
        let reply = s.post("/admin/workspaces/ws/tokens", Some(ADMIN), body);
        assert_eq!(reply.status, 201, "{body:?}: {}", reply.body);
        assert_eq!(reply.json()["scope"], serde_json::Value::Null);
        let token = reply.json()["token"].as_str().unwrap().to_owned();
        assert!(token_of(&s, &format!("/workspaces/ws{GITHUB}"), &token).starts_with("unscoped."));
    }
}

#[test]
fn workspaces_with_one_scope_share_a_token_when_configured() {
    let (s, logs) = scoped_server("", "share_scoped_tokens = true\n");
    let scope = json!({"repositories": ["o/r1"], "permissions": {"contents": "read"}});
    let ws_a = issue_scoped(&s, "ws-a", scope.clone());
    let ws_b = issue_scoped(&s, "ws-b", scope);
    let a = token_of(&s, &format!("/workspaces/ws-a{GITHUB}"), &ws_a);
    let b = token_of(&s, &format!("/workspaces/ws-b{GITHUB}"), &ws_b);
    assert_eq!(a, b);
    assert_eq!(logs.mints().len(), 1);
    // ws-b still holds it: revoking ws-a revokes nothing at the provider.
    assert_eq!(
        s.delete("/admin/workspaces/ws-a/tokens", Some(ADMIN)).json(),
        json!({"workspace_tokens_revoked": 1, "github_tokens_revoked": 0})
    );
    assert!(logs.revoked().is_empty());
    assert_eq!(token_of(&s, &format!("/workspaces/ws-b{GITHUB}"), &ws_b), a);
    // The last holder goes: now it is revoked.
    assert_eq!(
        s.delete("/admin/workspaces/ws-b/tokens", Some(ADMIN)).json(),
        json!({"workspace_tokens_revoked": 1, "github_tokens_revoked": 1})
    );
    assert_eq!(logs.revoked(), [a]);
}

#[test]
fn a_cold_herd_of_a_thousand_makes_one_mint() {
    for mode in ["process", "in-process"] {
        let (s, logs) = scoped_server("mint_delay_ms = 1500\n", &format!("[isolation]\nmode = \"{mode}\"\n"));
        let token = issue_scoped(&s, "ws-herd", json!({"repositories": ["o/r1"]}));
        let path = format!("/workspaces/ws-herd{GITHUB}");
        let replies: Vec<Reply> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..1000).map(|_| scope.spawn(|| s.get(&path, Some(&token)))).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(replies.iter().all(|r| r.status == 200), "{mode}: {:?}", replies.iter().find(|r| r.status != 200));
        let first = replies[0].json()["token"].clone();
        assert!(replies.iter().all(|r| r.json()["token"] == first), "{mode}: one token for all");
        assert_eq!(logs.mints().len(), 1, "{mode}: {:?}", logs.mints());
    }
}

/// The bug of issue 12: a vendor's token plugin sorting first answered the GitHub route.
#[test]
fn a_vendor_token_plugin_sorting_first_never_answers_the_github_route() {
    let (s, _) = {
        let dir = PluginDir::new();
        dir.add(&fixtures().test_token_provider, "10-vendor.so");
        dir.configure("10-vendor.so", "token = \"acme-0\"\ngithub_hosts = []\n");
        dir.add(&fixtures().scoped_provider, "20-github.so");
        (server().dir(dir).start(), ())
    };
    for _ in 0..3 {
        assert!(token_of(&s, "/admin/github-installation-token", ADMIN).starts_with("unscoped."));
    }
    let ws = s.issue("ws");
    assert!(token_of(&s, &format!("/workspaces/ws{GITHUB}"), &ws).starts_with("unscoped."));
    // Every provider has its own route, by plugin name.
    assert_eq!(token_of(&s, "/admin/tokens/test-token-provider", ADMIN), "acme-0");
    assert_eq!(token_of(&s, "/workspaces/ws/tokens/test-token-provider", &ws), "acme-0");
    let reply = s.get("/admin/tokens/nope", Some(ADMIN));
    assert_eq!((reply.status, reply.error().as_str()), (404, "no such token provider"));
    // A workspace token opens only its own workspace's named routes; the admin routes refuse it.
    assert_eq!(s.get("/workspaces/other/tokens/test-token-provider", Some(&ws)).status, 401);
    assert_eq!(s.get("/admin/tokens/test-token-provider", Some(&ws)).status, 401);

    // A scoped workspace on the vendor's route: it cannot down-scope, so 422, never its wide token.
    let scoped = issue_scoped(&s, "ws-scoped", json!({"repositories": ["o/r1"]}));
    let reply = s.get("/workspaces/ws-scoped/tokens/test-token-provider", Some(&scoped));
    assert_eq!(reply.status, 422, "{}", reply.body);
    assert!(!reply.body.contains("acme-0"));
    assert_eq!(
        reply.error(),
        "token provider test-token-provider cannot limit a token to a scope (it does not provide scoped_token_provider)"
    );
}

#[test]
fn a_provider_declaring_nothing_serves_github_only_when_named() {
    let vendor = |s: ServeBuilder| {
        s.plugin("10-vendor.so", &fixtures().test_token_provider, Some("token = \"acme-0\"\ngithub_hosts = []\n"))
    };
    let s = vendor(server()).start();
    let reply = s.get("/admin/github-installation-token", Some(ADMIN));
    assert_eq!((reply.status, reply.error().as_str()), (404, "no token provider declares GitHub at github.com"));
    let s = vendor(server()).env("PLUGHOST_GITHUB_TOKEN_PROVIDER", "test-token-provider").start();
    assert_eq!(token_of(&s, "/admin/github-installation-token", ADMIN), "acme-0");
    let s = vendor(server()).config("github_token_provider = \"test-token-provider\"\n").start();
    assert_eq!(token_of(&s, "/admin/github-installation-token", ADMIN), "acme-0");
    let s = vendor(server()).config("github_token_provider = \"missing\"\n").start();
    let reply = s.get("/admin/github-installation-token", Some(ADMIN));
    assert_eq!(reply.status, 404);
    assert_eq!(reply.error(), "github_token_provider names missing, which is not a loaded token provider");
}

#[test]
fn two_providers_for_one_github_host_and_no_choice_is_an_error_never_a_guess() {
    let two = |b: ServeBuilder, hosts: &str| {
        b.plugin(
            "10-other.so",
            &fixtures().test_token_provider,
            Some(&format!("token = \"other-0\"\ngithub_hosts = {hosts}\n")),
        )
        .plugin("20-github.so", &fixtures().scoped_provider, None)
    };
    let s = two(server(), "[\"github.com\"]").start();
    let expected = "token providers test-token-provider, scoped-provider all declare GitHub at github.com; \
                    name one with github_token_provider (PLUGHOST_GITHUB_TOKEN_PROVIDER)";
    let reply = s.get("/admin/github-installation-token", Some(ADMIN));
    assert_eq!((reply.status, reply.error().as_str()), (500, expected));
    let ws = s.issue("ws");
    assert_eq!(s.get(&format!("/workspaces/ws{GITHUB}"), Some(&ws)).status, 500);
    let plugins = s.get("/admin/plugins", Some(ADMIN)).json();
    assert_eq!(
        plugins["github_conflicts"],
        json!([{"host": "github.com", "candidates": ["test-token-provider", "scoped-provider"], "error": expected}])
    );
    assert!(s.log().contains(expected), "logged at load");
    // Named in settings: resolved, and no conflict is reported.
    let s = two(server(), "[\"github.com\"]").config("github_token_provider = \"scoped-provider\"\n").start();
    assert!(token_of(&s, "/admin/github-installation-token", ADMIN).starts_with("unscoped."));
    assert_eq!(s.get("/admin/plugins", Some(ADMIN)).json()["github_conflicts"], json!([]));

    // Two hosts, two providers: `?host=` picks, the default host is github.com.
    let s = two(server(), "[\"ghe.example.com:8443\"]").start();
    assert!(token_of(&s, "/admin/github-installation-token", ADMIN).starts_with("unscoped."));
    assert!(token_of(&s, "/admin/github-installation-token?host=github.com", ADMIN).starts_with("unscoped."));
    assert_eq!(token_of(&s, "/admin/github-installation-token?host=ghe.example.com:8443", ADMIN), "other-0");
    assert_eq!(token_of(&s, "/admin/github-installation-token?host=GHE.example.com%3A8443", ADMIN), "other-0");
    let ws = s.issue("ws");
    assert_eq!(token_of(&s, &format!("/workspaces/ws{GITHUB}?host=ghe.example.com:8443"), &ws), "other-0");
    let reply = s.get("/admin/github-installation-token?host=gitlab.example.com", Some(ADMIN));
    assert_eq!(
        (reply.status, reply.error().as_str()),
        (404, "no token provider declares GitHub at gitlab.example.com")
    );
    let reply = s.get("/admin/github-installation-token?host=bad%2Fhost", Some(ADMIN));
    assert_eq!(reply.status, 400);
    // A scoped workspace on the other host: its scope goes to that host's provider, which cannot
    // down-scope: 422.
    let scoped = issue_scoped(&s, "ws-s", json!({"repositories": ["o/r1"]}));
    assert_eq!(s.get(&format!("/workspaces/ws-s{GITHUB}?host=ghe.example.com:8443"), Some(&scoped)).status, 422);
    assert_eq!(scope_of(&token_of(&s, &format!("/workspaces/ws-s{GITHUB}"), &scoped)), "ws-s.github.com.o/r1..");
}

#[test]
fn cli_issues_scoped_tokens_from_flags() {
    let (s, _) = scoped_server("", "");
    let state = s.state_dir().display().to_string();
    let (status, stdout, stderr) = run_cli(&[
        "workspace-token",
        "issue",
        "ws-cli",
        "--state-dir",
        &state,
        "--repo",
        "o/r2",
        "--repo",
        "o/r1",
        "--repo-id",
        "42",
        "--permission",
        "contents=read",
        "--permission",
        "pull_requests=write",
    ]);
    assert!(status.success(), "{stderr}");
    let token = stdout.trim();
    assert_eq!(
        scope_of(&token_of(&s, &format!("/workspaces/ws-cli{GITHUB}"), token)),
        "ws-cli.github.com.o/r1,o/r2.42.contents=read,pull_requests=write"
    );
    for (flags, expected) in [
        (&["--permission", "contents=owner"][..], "invalid permission level \"owner\""),
        (&["--permission", "contents"][..], "expected name=level"),
        (&["--repo", "noslash"][..], "invalid repository \"noslash\""),
    ] {
        let mut args = vec!["workspace-token", "issue", "ws-x", "--state-dir", &state];
        args.extend_from_slice(flags);
        let (status, stdout, stderr) = run_cli(&args);
        assert_eq!(status.code(), Some(2), "{flags:?}");
        assert!(stdout.is_empty());
        assert!(stderr.contains(expected), "{flags:?}: {stderr}");
    }
}

#[test]
fn without_host_a_lone_enterprise_provider_answers_and_two_are_an_error() {
    let ghe = |b: ServeBuilder| {
        b.plugin(
            "10-ghe.so",
            &fixtures().test_token_provider,
            Some("token = \"ghe-0\"\ngithub_hosts = [\"ghe.example.com\"]\n"),
        )
    };
    let s = ghe(server()).start();
    assert_eq!(token_of(&s, "/admin/github-installation-token", ADMIN), "ghe-0");
    let reply = s.get("/admin/github-installation-token?host=github.com", Some(ADMIN));
    assert_eq!((reply.status, reply.error().as_str()), (404, "no token provider declares GitHub at github.com"));

    let s = ghe(server())
        .plugin("20-other.so", &fixtures().scoped_provider, Some("github_hosts = [\"ghe2.example.com\"]\n"))
        .start();
    let reply = s.get("/admin/github-installation-token", Some(ADMIN));
    assert_eq!(reply.status, 500);
    assert_eq!(
        reply.error(),
        "token providers test-token-provider, scoped-provider declare GitHub at other hosts than github.com; \
         pass ?host= or name one with github_token_provider (PLUGHOST_GITHUB_TOKEN_PROVIDER)"
    );
    assert_eq!(token_of(&s, "/admin/github-installation-token?host=ghe.example.com", ADMIN), "ghe-0");
    assert_eq!(s.get("/admin/plugins", Some(ADMIN)).json()["github_conflicts"], json!([]), "no host has two");
}

#[test]
fn a_scoped_request_without_host_to_a_lone_enterprise_provider_is_for_its_host() {
    let (s, _) = scoped_server("github_hosts = [\"ghe.example.com\"]\n", "");
    let token = issue_scoped(&s, "ws", json!({"repositories": ["o/r1"]}));
    assert_eq!(scope_of(&token_of(&s, &format!("/workspaces/ws{GITHUB}"), &token)), "ws.ghe.example.com.o/r1..");
}

#[test]
fn a_restarted_host_still_revokes_what_it_minted_before_and_the_database_holds_no_secret_in_clear() {
    let (mut s, logs) = scoped_server("", "");
    let ws = issue_scoped(&s, "ws-r", json!({"repositories": ["o/r1"]}));
    let minted = token_of(&s, &format!("/workspaces/ws-r{GITHUB}"), &ws);
    let db = std::fs::read(s.state_dir().join("plughost.sqlite3")).unwrap();
    let wal = std::fs::read(s.state_dir().join("plughost.sqlite3-wal")).unwrap_or_default();
    for bytes in [&db, &wal] {
        assert!(!bytes.windows(minted.len()).any(|w| w == minted.as_bytes()), "the secret is in the database in clear");
    }

    s.restart().unwrap();
    let reply = s.delete("/admin/workspaces/ws-r/tokens", Some(ADMIN));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json(), json!({"workspace_tokens_revoked": 1, "github_tokens_revoked": 1}));
    assert_eq!(logs.revoked(), [minted.as_str()]);
    assert!(!s.log().contains(&minted));
}
