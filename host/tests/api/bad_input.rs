// Bad requests get a `{"error"}` body with a fitting status, and the server keeps serving:
// malformed JSON, wrong JSON shape, empty bodies, oversized bodies, unknown routes, wrong
// methods, invalid workspace ids, and a token store that fails at runtime. A JSON body is
// accepted whatever its Content-Type (what `curl -d` sends).

use crate::harness::{ADMIN, Reply, server};

fn assert_error(reply: &Reply, status: u16, contains: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    let message = reply.error();
    assert!(message.contains(contains), "{message:?} should contain {contains:?}");
}

#[test]
fn malformed_requests_get_json_errors() {
    let s = server().start();
    let env = "/admin/workspaces/ws-1/env";
    assert_error(&s.post(env, Some(ADMIN), Some(r#"{"env":"#)), 400, "Failed to parse the request body as JSON");
    assert_error(&s.post(env, Some(ADMIN), Some("not json")), 400, "Failed to parse");
    assert_error(&s.post(env, Some(ADMIN), Some(r#"{"env":{"A":1}}"#)), 422, "invalid type");
    assert_error(&s.post(env, Some(ADMIN), Some(r#"{"vars":{}}"#)), 422, "unknown field `vars`");
    assert_error(&s.post(env, Some(ADMIN), None), 400, "EOF while parsing");

    let big = format!(r#"{{"env":{{"A":"{}"}}}}"#, "x".repeat(70 * 1024));
    let refused = s.post(env, Some(ADMIN), Some(&big));
    assert_error(&refused, 413, "too large");
    // The unread body is left on the connection: the server says it closes it.
    assert_eq!(refused.connection.as_deref(), Some("close"));
    let unauthorized = s.post(env, None, Some(r#"{"env":{}}"#));
    assert_eq!((unauthorized.status, unauthorized.connection.as_deref()), (401, Some("close")));
    assert_eq!(s.get("/nope", None).connection, None, "bodiless refusals keep the connection");
    // Just under the limit is fine.
    let fits = format!(r#"{{"env":{{"A":"{}"}}}}"#, "x".repeat(60 * 1024));
    assert_eq!(s.post(env, Some(ADMIN), Some(&fits)).status, 200);

    assert_eq!(s.get("/nope", None).body, r#"{"error":"not found"}"#);
    assert_eq!(s.get("/nope", None).status, 404);
    assert_eq!(s.get("/admin/nope", Some(ADMIN)).status, 404);
    assert_eq!(s.get("/admin/github-installation-token/extra", Some(ADMIN)).status, 404);
    assert_error(&s.request("PUT", "/admin/plugins", Some(ADMIN), None), 405, "method not allowed");
    assert_error(&s.get("/admin/plugins/reload", Some(ADMIN)), 405, "method not allowed");
    assert_error(&s.request("POST", "/healthz", None, None), 405, "method not allowed");
    assert_error(&s.get("/admin/workspaces/ws-1/env", Some(ADMIN)), 405, "method not allowed");

    for bad in ["-leading-dash", ".hidden", "has%20space", "semi%3Bcolon", &"x".repeat(129)] {
        assert_error(
            &s.post(&format!("/admin/workspaces/{bad}/tokens"), Some(ADMIN), None),
            400,
            "invalid workspace id",
        );
        assert_error(&s.delete(&format!("/admin/workspaces/{bad}/tokens"), Some(ADMIN)), 400, "invalid workspace id");
        assert_error(
            &s.post(&format!("/admin/workspaces/{bad}/env"), Some(ADMIN), Some(r#"{"env":{}}"#)),
            400,
            "invalid workspace id",
        );
        assert_error(
            &s.get(&format!("/workspaces/{bad}/github-installation-token"), Some(ADMIN)),
            400,
            "invalid workspace id",
        );
    }
    assert_eq!(s.get("/healthz", None).status, 200);
}

#[test]
fn the_body_limit_comes_from_the_config() {
    let s = server().config("max_body_bytes = 128\n").start();
    let body = format!(r#"{{"env":{{"A":"{}"}}}}"#, "x".repeat(200));
    assert_error(&s.post("/admin/workspaces/ws-1/env", Some(ADMIN), Some(&body)), 413, "too large");
}

#[test]
fn a_token_store_failing_at_runtime_answers_503_and_the_server_keeps_serving() {
    let s = server().token_provider("").start();
    let token = s.issue("ws-1");
    // Another process breaks the database under the running server.
    let db = rusqlite::Connection::open(s.state_dir().join("plughost.sqlite3")).unwrap();
    db.execute_batch("DROP TABLE workspace_tokens").unwrap();
    drop(db);

    assert_error(&s.post("/admin/workspaces/ws-1/tokens", Some(ADMIN), None), 503, "workspace token store unavailable");
    assert_error(&s.delete("/admin/workspaces/ws-1/tokens", Some(ADMIN)), 503, "workspace token store unavailable");
    assert_error(&s.get("/workspaces/ws-1/github-installation-token", Some(&token)), 503, "store unavailable");
    let ready = s.get("/readyz", None);
    assert_eq!(ready.status, 503);
    assert_eq!(ready.json()["state_store_open"], false);
    // Everything that does not need the store still works.
    assert_eq!(s.get("/healthz", None).status, 200);
    assert_eq!(s.get("/admin/github-installation-token", Some(ADMIN)).status, 200);
    // The admin token on a workspace's route gets that workspace's scope, which is in the store:
    // unknown, so no token rather than a possibly wider one.
    assert_error(&s.get("/workspaces/ws-1/github-installation-token", Some(ADMIN)), 503, "store unavailable");
    assert!(s.log().contains("plughost.sqlite3"), "the log names the database");
}

#[test]
fn a_json_body_is_accepted_whatever_its_content_type() {
    let s = server().start();
    let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
    for content_type in ["application/x-www-form-urlencoded", "text/plain"] {
        let mut response = agent
            .post(s.url("/admin/workspaces/ws-1/env"))
            .header("Authorization", format!("Bearer {ADMIN}"))
            .header("Content-Type", content_type)
            .send(r#"{"env":{"A":"1"}}"#)
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{content_type}");
        assert_eq!(response.body_mut().read_to_string().unwrap(), r#"{"env":{"A":"1"}}"#);
    }
}
