// Every row of docs/api.md's route table, answered with the documented status and body shape.

use crate::harness::{ADMIN, fixtures, server};

#[test]
fn every_route_answers_as_the_contract_says() {
    let s = server()
        .plugin("10-static-env.so", &fixtures().static_env, Some("[vars]\nTZ = \"UTC\"\n"))
        .plugin(
            "20-tokens.so",
            &fixtures().test_token_provider,
            Some("token = \"ghs_routes_fixed\"\nlifetime_secs = 3600\n"),
        )
        .start();

    // GET /admin/github-installation-token
    let reply = s.get("/admin/github-installation-token", Some(ADMIN));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let json = reply.json();
    assert_eq!(json["token"], "ghs_routes_fixed");
    let expires_at = json["expires_at"].as_str().unwrap();
    assert!(expires_at.ends_with('Z') && expires_at.len() == 20, "RFC 3339 UTC: {expires_at}");
    assert_eq!(json.as_object().unwrap().len(), 2);
    assert_eq!(reply.cache_control.as_deref(), Some("no-store"));
    assert_eq!(reply.content_type.as_deref(), Some("application/json"));

    // GET /workspaces/{id}/github-installation-token
    let ws = s.issue("ws-routes");
    let reply = s.get("/workspaces/ws-routes/github-installation-token", Some(&ws));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["token"], "ghs_routes_fixed");

    // GET /admin/plugins
    let reply = s.get("/admin/plugins", Some(ADMIN));
    assert_eq!(reply.status, 200);
    let json = reply.json();
    let plugins = json["plugins"].as_array().unwrap();
    assert_eq!(plugins.len(), 2, "{json}");
    assert_eq!(plugins[0]["name"], "static-env");
    assert_eq!(plugins[0]["capabilities"], serde_json::json!(["env_mutator"]));
    assert_eq!(plugins[1]["name"], "test-token-provider");
    assert_eq!(plugins[1]["capabilities"], serde_json::json!(["env_mutator", "token_provider"]));
    for plugin in plugins {
        for key in ["name", "version", "sdk_version", "file", "sha256"] {
            assert!(plugin[key].is_string(), "{key} in {plugin}");
        }
        assert_eq!(plugin["sha256"].as_str().unwrap().len(), 64);
        assert_eq!(plugin["sdk_version"], "1.1.0");
    }
    assert!(plugins[0]["file"].as_str().unwrap().ends_with("/10-static-env.so"));
    assert_eq!(json["rejected"], serde_json::json!([]));

    // POST /admin/plugins/reload answers like GET /admin/plugins
    let reply = s.post("/admin/plugins/reload", Some(ADMIN), None);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), json);

    // POST /admin/workspaces/{id}/env
    let reply = s.post("/admin/workspaces/ws-routes/env", Some(ADMIN), Some(r#"{"env":{"HOME":"/home/agent"}}"#));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json(), serde_json::json!({"env": {"HOME": "/home/agent", "TZ": "UTC"}}));

    // POST /admin/workspaces/{id}/tokens: 201, a fresh 43-character base64url token each time
    let reply = s.post("/admin/workspaces/ws-routes/tokens", Some(ADMIN), None);
    assert_eq!(reply.status, 201);
    assert_eq!(reply.cache_control.as_deref(), Some("no-store"));
    let second = reply.json()["token"].as_str().unwrap().to_owned();
    assert_eq!(second.len(), 43);
    assert!(second.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    assert_ne!(second, ws);

    // DELETE /admin/workspaces/{id}/tokens: 200 with the counts, every token of the workspace
    // stops working (unscoped tokens were never minted for it: no GitHub token to revoke)
    let reply = s.delete("/admin/workspaces/ws-routes/tokens", Some(ADMIN));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json(), serde_json::json!({"workspace_tokens_revoked": 2, "github_tokens_revoked": 0}));
    for token in [&ws, &second] {
        assert_eq!(s.get("/workspaces/ws-routes/github-installation-token", Some(token)).status, 401);
    }

    // GET /healthz, /readyz, /metrics: no token needed
    let reply = s.get("/healthz", None);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["status"], "ok");
    let reply = s.get("/readyz", None);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["status"], "ready");
    let reply = s.get("/metrics", None);
    assert_eq!(reply.status, 200);
    assert!(reply.content_type.unwrap().starts_with("text/plain"));
    assert!(reply.body.contains("# TYPE plughost_http_requests_total counter"), "{}", reply.body);
}
