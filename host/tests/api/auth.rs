// The auth matrix: admin routes take only the admin token; a workspace route takes its own
// workspace's live token or the admin token; every refusal is the same 401 body; a server
// without an admin token refuses every admin route; the admin token may come from a file.

use crate::harness::{ADMIN, server};

const ADMIN_ROUTES: &[(&str, &str)] = &[
    ("GET", "/admin/github-installation-token"),
    ("GET", "/admin/plugins"),
    ("POST", "/admin/plugins/reload"),
    ("POST", "/admin/workspaces/ws-a/env"),
    ("POST", "/admin/workspaces/ws-a/tokens"),
    ("DELETE", "/admin/workspaces/ws-a/tokens"),
];

fn assert_unauthorized(reply: &crate::harness::Reply, what: &str) {
    assert_eq!(reply.status, 401, "{what}: {}", reply.body);
    assert_eq!(reply.body, r#"{"error":"unauthorized"}"#, "{what}");
}

#[test]
fn every_refusal_is_the_same_401() {
    let s = server().token_provider("token = \"ghs_auth_fixed\"\n").start();
    let ws_a = s.issue("ws-a");
    let ws_b = s.issue("ws-b");
    let revoked = s.issue("ws-c");
    assert_eq!(s.delete("/admin/workspaces/ws-c/tokens", Some(ADMIN)).status, 200);

    let env_body = Some(r#"{"env":{}}"#);
    for (method, path) in ADMIN_ROUTES {
        let body = if path.ends_with("/env") { env_body } else { None };
        let what = format!("{method} {path}");
        assert_unauthorized(&s.request_with_auth(method, path, None, body), &format!("{what} without a token"));
        for malformed in ["Basic YWRtaW46YWRtaW4=", "Bearer", "Bearer ", "admin-token-for-tests-0123456789"] {
            assert_unauthorized(
                &s.request_with_auth(method, path, Some(malformed), body),
                &format!("{what} {malformed:?}"),
            );
        }
        assert_unauthorized(&s.request(method, path, Some("wrong"), body), &format!("{what} wrong token"));
        assert_unauthorized(&s.request(method, path, Some(&format!("{ADMIN}x")), body), &format!("{what} admin+x"));
        assert_unauthorized(&s.request(method, path, Some(&ws_a), body), &format!("{what} workspace token"));
    }

    let route = "/workspaces/ws-a/github-installation-token";
    assert_unauthorized(&s.get(route, None), "no token");
    assert_unauthorized(&s.request_with_auth("GET", route, Some("Basic eDp5"), None), "malformed");
    assert_unauthorized(&s.get(route, Some("not-a-token")), "wrong");
    assert_unauthorized(&s.get(route, Some(&ws_b)), "another workspace's token");
    assert_unauthorized(&s.get("/workspaces/ws-c/github-installation-token", Some(&revoked)), "revoked");
    let own = s.get(route, Some(&ws_a));
    assert_eq!(own.status, 200, "own token: {}", own.body);
    let admin = s.get(route, Some(ADMIN));
    assert_eq!(admin.status, 200, "admin token: {}", admin.body);
    // The scheme is case-insensitive (RFC 7235).
    assert_eq!(s.request_with_auth("GET", route, Some(&format!("bearer {ws_a}")), None).status, 200);
}

#[test]
fn without_an_admin_token_admin_routes_answer_401_and_the_log_says_why() {
    let s = server().admin_token(None).token_provider("").start();
    for (method, path) in ADMIN_ROUTES {
        let body = path.ends_with("/env").then_some(r#"{"env":{}}"#);
        for bearer in [None, Some(ADMIN), Some("")] {
            assert_unauthorized(&s.request(method, path, bearer, body), &format!("{method} {path}"));
        }
    }
    assert!(s.log().contains("no admin token configured"), "{}", s.log());
    // Unauthenticated routes still work.
    assert_eq!(s.get("/healthz", None).status, 200);
}

#[test]
fn the_admin_token_can_come_from_a_file_and_the_environment_wins() {
    let dir = crate::harness::PluginDir::new();
    let file = dir.write_private("admin-token", "from-the-file-0123456789\n");
    let config = format!("admin_token_file = {:?}\n", file.display().to_string());

    let s = server().admin_token(None).config(&config).start();
    assert_eq!(s.get("/admin/plugins", Some("from-the-file-0123456789")).status, 200);
    assert_eq!(s.get("/admin/plugins", Some(ADMIN)).status, 401);

    let s = server().config(&config).start();
    assert_eq!(s.get("/admin/plugins", Some(ADMIN)).status, 200, "PLUGHOST_ADMIN_TOKEN beats the file");
    assert_eq!(s.get("/admin/plugins", Some("from-the-file-0123456789")).status, 401);
}

#[test]
fn an_unauthenticated_caller_gets_401_whatever_else_is_wrong() {
    let s = server().token_provider("token = \"ghs_auth_fixed\"\n").start();
    let ws_a = s.issue("ws-a");
    let bad_ids = ["-leading-dash", ".hidden", "has%20space", "semi%3Bcolon", &"x".repeat(129)];
    for bad in bad_ids {
        let route = format!("/workspaces/{bad}/github-installation-token");
        assert_unauthorized(&s.get(&route, None), &format!("{route} without a token"));
        assert_unauthorized(
            &s.request_with_auth("GET", &route, Some("Basic eDp5"), None),
            &format!("{route} malformed"),
        );
        assert_unauthorized(&s.get(&route, Some("not-a-token")), &format!("{route} wrong token"));
        assert_unauthorized(&s.get(&route, Some(&ws_a)), &format!("{route} another workspace's token"));
        // Once authenticated, the id is what is wrong.
        assert_eq!(s.get(&route, Some(ADMIN)).status, 400, "{route} as admin");
        for (method, path) in [("POST", "tokens"), ("DELETE", "tokens"), ("POST", "env")] {
            let path = format!("/admin/workspaces/{bad}/{path}");
            let body = path.ends_with("/env").then_some(r#"{"env":{}}"#);
            assert_unauthorized(&s.request(method, &path, None, body), &format!("{method} {path}"));
        }
    }
    // Routes that do not exist, or a method a route does not take, behind the authenticated prefixes.
    for (method, path) in [
        ("GET", "/admin/nope"),
        ("GET", "/admin/plugins/reload"),
        ("PUT", "/admin/plugins"),
        ("GET", "/workspaces/ws-a/nope"),
        ("POST", "/workspaces/ws-a/github-installation-token"),
    ] {
        assert_unauthorized(&s.request(method, path, None, None), &format!("{method} {path} without a token"));
        assert_unauthorized(&s.request(method, path, Some("wrong"), None), &format!("{method} {path} wrong token"));
    }
    assert_eq!(s.get("/workspaces/ws-a/nope", Some(&ws_a)).status, 404, "its own workspace's token");
    assert_eq!(s.request("POST", "/workspaces/ws-a/github-installation-token", Some(&ws_a), None).status, 405);
    assert_eq!(s.get("/admin/nope", Some(ADMIN)).status, 404);
    assert_eq!(s.get("/nope", None).status, 404, "outside /admin and /workspaces nothing is behind a token");
}
