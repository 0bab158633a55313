// No secret leaks: one full run exercising every route (success and failure) with the most
// verbose log level; every line the server logged and every response body is searched for the
// admin token, every workspace token and every served token. They may appear only in the
// answers meant to carry them: 200 token responses, 201 issue responses, and the 200 env answer
// (GH_TOKEN is the point of the env chain).

use crate::harness::{ADMIN, fixtures, run_cli, server};

#[test]
fn no_token_appears_in_logs_or_in_any_other_response() {
    let s = server()
        .rust_log("trace")
        .config("plugin_call_timeout_ms = 3000\n")
        .plugin("10-static-env.so", &fixtures().static_env, Some("[vars]\nTZ = \"UTC\"\n"))
        .plugin("20-tokens.so", &fixtures().test_token_provider, Some("rotate = true\nenv_var = \"GH_TOKEN\"\n"))
        .plugin("30-scoped.so", &fixtures().scoped_provider, Some("github_hosts = [\"ghe.example.com\"]\n"))
        .start();
    let mut served = Vec::new();
    let mut workspace_tokens = Vec::new();

    for ws in ["ws-a", "ws-b"] {
        workspace_tokens.push(s.issue(ws));
    }
    for _ in 0..3 {
        let json = s.get("/admin/github-installation-token", Some(ADMIN)).json();
        served.push(json["token"].as_str().unwrap().to_owned());
        let json = s.get("/workspaces/ws-a/github-installation-token", Some(&workspace_tokens[0])).json();
        served.push(json["token"].as_str().unwrap().to_owned());
    }
    // SDK 1.1: a scoped workspace's minted tokens, served, then revoked through the worker.
    let reply = s.post("/admin/workspaces/ws-s/tokens", Some(ADMIN), Some(r#"{"scope":{"repositories":["o/r"]}}"#));
    workspace_tokens.push(reply.json()["token"].as_str().unwrap().to_owned());
    for path in
        ["/workspaces/ws-s/github-installation-token?host=ghe.example.com", "/workspaces/ws-s/tokens/scoped-provider"]
    {
        let json = s.get(path, Some(&workspace_tokens[2])).json();
        served.push(json["token"].as_str().unwrap().to_owned());
    }
    let _ = s.get("/workspaces/ws-s/tokens/test-token-provider", Some(&workspace_tokens[2]));
    assert_eq!(s.delete("/admin/workspaces/ws-s/tokens", Some(ADMIN)).json()["github_tokens_revoked"], 2);
    let env = s.post("/admin/workspaces/ws-a/env", Some(ADMIN), Some(r#"{"env":{"HOME":"/h"}}"#)).json();
    served.push(env["env"]["GH_TOKEN"].as_str().unwrap().to_owned());
    // Failures and refusals, each presenting a secret where it does not belong.
    let _ = s.get("/workspaces/ws-b/github-installation-token", Some(&workspace_tokens[0]));
    let _ = s.get("/admin/plugins", Some(&workspace_tokens[1]));
    let _ = s.get("/admin/plugins", Some(&format!("{ADMIN}-not")));
    let _ = s.request_with_auth("GET", "/admin/plugins", Some(&format!("Basic {ADMIN}")), None);
    let _ = s.post("/admin/workspaces/ws-a/env", Some(ADMIN), Some(&format!(r#"{{"env":{{"X":"{}"}}"#, served[0])));
    let _ = s.post("/admin/workspaces/ws-a/env", Some(ADMIN), Some(r#"{"env":{"TZ":"x"}}"#));
    let _ = s.get("/admin/plugins", Some(ADMIN));
    let _ = s.post("/admin/plugins/reload", Some(ADMIN), None);
    let _ = s.get("/metrics", None);
    let _ = s.get(&format!("/nope/{}", "x"), Some(ADMIN));
    let _ = s.delete("/admin/workspaces/ws-a/tokens", Some(ADMIN));
    let _ = s.get("/workspaces/ws-a/github-installation-token", Some(&workspace_tokens[0]));
    let (status, cli_token, _) =
        run_cli(&["workspace-token", "issue", "ws-c", "--state-dir", &s.state_dir().display().to_string()]);
    assert!(status.success());
    workspace_tokens.push(cli_token.trim().to_owned());
    let _ = s.get("/workspaces/ws-c/github-installation-token", Some(&workspace_tokens[3]));

    let mut secrets = vec![ADMIN.to_owned()];
    secrets.extend(workspace_tokens);
    secrets.extend(served);
    let log = s.log();
    assert!(log.lines().count() > 20, "expected a verbose log:\n{log}");
    for secret in &secrets {
        assert!(!log.contains(secret.as_str()), "a token reached the log:\n{log}");
    }
    for (status, path, body) in s.bodies() {
        let may_carry = (status == 200 && (path.contains("/github-installation-token") || path.contains("/tokens/")))
            || (status == 201 && path.ends_with("/tokens"))
            || (status == 200 && path.ends_with("/env"));
        if !may_carry {
            for secret in &secrets {
                assert!(!body.contains(secret.as_str()), "a token in the {status} answer of {path}: {body}");
            }
        }
    }
    // The database holds hashes only.
    let db = std::fs::read(s.state_dir().join("plughost.sqlite3")).unwrap();
    let wal = std::fs::read(s.state_dir().join("plughost.sqlite3-wal")).unwrap_or_default();
    for secret in &secrets {
        for bytes in [&db, &wal] {
            assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "a token stored in clear");
        }
    }
}

#[test]
fn configuration_values_never_reach_the_plugin_list_or_the_log() {
    // Each plugin's configuration has a secret where a number, a flag or valid TOML belongs: in a
    // sidecar, in the host's [plugins.<name>] table, inside a table, and in a line TOML cannot parse.
    let s = server()
        .rust_log("trace")
        .config("[plugins.static-env]\noverwrite = \"hunter2-flag-secret\"\n")
        .plugin("10-static-env.so", &fixtures().static_env, None)
        .plugin("20-tokens.so", &fixtures().test_token_provider, Some("delay_ms = \"hunter2-sidecar-secret\"\n"))
        .plugin("30-append.so", &fixtures().append_env, Some("suffix = [\"ok\", hunter2-unparsable-secret]\n"))
        .start();
    let json = s.get("/admin/plugins", Some(ADMIN)).json();
    let rejected = json["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 3, "{json}");
    for (file, names) in
        [("10-static-env.so", "overwrite"), ("20-tokens.so", "delay_ms"), ("30-append.so", "30-append.toml")]
    {
        let entry = rejected.iter().find(|r| r["file"].as_str().unwrap().ends_with(file)).expect(file);
        let error = entry["error"].as_str().unwrap();
        assert!(!error.contains("hunter2"), "{file}: a configuration value in the answer: {error}");
        assert!(!error.contains('\n'), "{file}: one line: {error:?}");
        assert!(error.contains(names), "{file}: names {names}: {error}");
    }
    let log = s.log();
    assert!(!log.contains("hunter2"), "a configuration value in the log:\n{log}");
    assert!(log.contains("invalid type: string, expected u64"), "the reason stays:\n{log}");
}
