// The provisioning chain: every env mutator runs in file-name order on the posted env; the
// first failure stops it with a non-2xx naming the plugin (422 refused, 504 hung); the env
// values (which may hold tokens) never reach the log.

use crate::harness::{ADMIN, fixtures, server};

#[test]
fn mutators_run_in_file_name_order() {
    let s = server()
        .plugin("10-static-env.so", &fixtures().static_env, Some("[vars]\nTZ = \"UTC\"\nLANG = \"C.UTF-8\"\n"))
        .plugin(
            "20-tokens.so",
            &fixtures().test_token_provider,
            Some("token = \"ghs_env_chain\"\nenv_var = \"GH_TOKEN\"\n"),
        )
        .start();
    let reply = s.post("/admin/workspaces/ws-env/env", Some(ADMIN), Some(r#"{"env":{"HOME":"/home/agent"}}"#));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.json(),
        serde_json::json!({"env": {"HOME": "/home/agent", "TZ": "UTC", "LANG": "C.UTF-8", "GH_TOKEN": "ghs_env_chain"}})
    );
    assert_eq!(reply.cache_control.as_deref(), Some("no-store"));
    // An empty env is fine too.
    let reply = s.post("/admin/workspaces/ws-env/env", Some(ADMIN), Some(r#"{"env":{}}"#));
    assert_eq!(reply.status, 200);
    assert!(!s.log().contains("ghs_env_chain"), "a token value reached the log");
}

#[test]
fn a_failing_mutator_stops_the_chain_naming_the_plugin() {
    let s = server()
        .plugin("10-static-env.so", &fixtures().static_env, Some("[vars]\nTZ = \"UTC\"\n"))
        .plugin("20-tokens.so", &fixtures().test_token_provider, Some("env_var = \"GH_TOKEN\"\n"))
        .start();
    let reply = s.post("/admin/workspaces/ws-env/env", Some(ADMIN), Some(r#"{"env":{"TZ":"Europe/Paris"}}"#));
    assert_eq!(reply.status, 422, "{}", reply.body);
    assert_eq!(
        reply.error(),
        "env mutator static-env failed: TZ is already set for workspace ws-env; set overwrite = true to replace it"
    );

    let s = server().token_provider("mode = \"error\"\nenv_var = \"GH_TOKEN\"\n").start();
    let reply = s.post("/admin/workspaces/ws-env/env", Some(ADMIN), Some(r#"{"env":{}}"#));
    assert_eq!(reply.status, 422);
    assert_eq!(reply.error(), "env mutator test-token-provider failed: upstream said 401 Bad credentials");
}

#[test]
fn a_hung_mutator_is_504_naming_the_plugin() {
    let s = server()
        .config("plugin_call_timeout_ms = 500\n")
        .token_provider("mode = \"slow\"\ndelay_ms = 2000\nenv_var = \"GH_TOKEN\"\n")
        .start();
    let reply = s.post("/admin/workspaces/ws-env/env", Some(ADMIN), Some(r#"{"env":{}}"#));
    assert_eq!(reply.status, 504, "{}", reply.body);
    assert!(reply.error().starts_with("env mutator test-token-provider did not answer within"), "{}", reply.body);
}
