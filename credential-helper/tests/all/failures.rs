//! plughost down, refusing or broken: a still-valid cached token is used while it is only
//! unavailable; otherwise one clear line on stderr, nothing on stdout, no secret anywhere.

use crate::support::*;

/// Gets a token cached that is already inside the margin (lifetime 100 s, margin 200 s),
/// so the next fill must ask plughost.
fn sandbox_with_token_inside_margin(server: &TokenServer) -> (Sandbox, String) {
    let mut sandbox = Sandbox::new(&server.url);
    sandbox.set("PLUGHOST_CREDENTIAL_MARGIN_SECS", "200");
    let token = password(&sandbox.fill("https", "github.com")).unwrap();
    (sandbox, token)
}

fn helper_get(sandbox: &Sandbox) -> std::process::Output {
    sandbox.helper(&["get"], "protocol=https\nhost=github.com\n\n")
}

#[test]
fn host_down_uses_a_still_valid_cached_token() {
    let server = TokenServer::start(100, 0);
    let (mut sandbox, token) = sandbox_with_token_inside_margin(&server);
    // The cache is keyed by PLATFORM_URL: keep the URL, stop the server.
    let url = server.url.clone();
    drop(server);
    sandbox.set("PLATFORM_URL", &url);
    let out = sandbox.fill("https", "github.com");
    assert_eq!(password(&out).unwrap(), token);
    let err = stderr(&out);
    assert!(err.contains("cannot reach plughost") && err.contains("using the cached token"), "{err}");
    assert!(!err.contains(&token));
}

#[test]
fn host_down_without_a_valid_token_fails_clearly() {
    let sandbox = Sandbox::new(&dead_url());
    let out = helper_get(&sandbox);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.starts_with(
            "git-credential-plughost: no credential for github.com: cannot reach plughost at http://127.0.0.1:"
        ),
        "{err}"
    );
    assert!(err.contains("GH_TOKEN and GITHUB_TOKEN are not set"), "{err}");
    assert_no_secrets(&err, &[]);

    let via_git = sandbox.fill("https", "github.com");
    assert!(!via_git.status.success() && password(&via_git).is_none());
}

#[test]
fn an_expired_cached_token_is_never_handed_out() {
    let server = TokenServer::start(2, 0);
    let sandbox = Sandbox::new(&server.url);
    let out = sandbox.fill("https", "github.com");
    let t1 = server.current().unwrap();
    assert_eq!(password(&out).unwrap(), t1.token);
    let url = server.url.clone();
    let secrets = issued_tokens(&server);
    drop(server);
    sleep_until_unix(t1.expires_at);

    let mut sandbox = sandbox;
    sandbox.set("PLATFORM_URL", &url);
    let out = helper_get(&sandbox);
    assert!(out.stdout.is_empty(), "an expired token must not reach git");
    assert_eq!(out.status.code(), Some(1));
    assert_no_secrets(&stderr(&out), &secrets);
}

#[test]
fn revoked_workspace_is_a_clear_failure_without_fallbacks() {
    let server = TokenServer::start(100, 0);
    let (mut sandbox, cached) = sandbox_with_token_inside_margin(&server);
    server.revoke_workspace(WORKSPACE_ID);
    sandbox.set("GH_TOKEN", "ghs_env_fallback_token");
    let out = helper_get(&sandbox);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "neither the cached token nor GH_TOKEN after a 401");
    let err = stderr(&out);
    assert!(
        err.contains("HTTP 401") && err.contains("missing, wrong or revoked") && err.contains(".auth_token"),
        "{err}"
    );
    assert_no_secrets(&err, &[cached, "ghs_env_fallback_token".into()]);
    let leftover = std::fs::read_dir(sandbox.cache_dir())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".json"))
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("token-"))
        .count();
    assert_eq!(leftover, 0, "the revoked workspace's cached token is dropped");
}

#[test]
fn server_errors_are_reported_with_plughosts_message() {
    let server = TokenServer::start(3600, 600);
    let sandbox = Sandbox::new(&server.url);
    for (code, message) in
        [(500, "token refresh failed"), (404, "no GitHub App configured"), (504, "token provider timed out")]
    {
        server.set_mode(Mode::Fail(code));
        let out = helper_get(&sandbox);
        assert!(out.stdout.is_empty());
        let err = stderr(&out);
        assert!(err.contains(&format!("HTTP {code}")) && err.contains(message), "{err}");
        assert_no_secrets(&err, &issued_tokens(&server));
    }
}

#[test]
fn an_already_expired_token_from_the_server_is_refused() {
    let server = TokenServer::start(3600, 600);
    server.set_mode(Mode::Expired);
    let sandbox = Sandbox::new(&server.url);
    let out = helper_get(&sandbox);
    assert!(out.stdout.is_empty());
    let err = stderr(&out);
    assert!(err.contains("returned a token that expired at"), "{err}");
    assert_no_secrets(&err, &issued_tokens(&server));
}

#[test]
fn missing_bearer_file_is_named() {
    let server = TokenServer::start(3600, 600);
    let sandbox = Sandbox::new(&server.url);
    std::fs::remove_file(sandbox.path("configs/.auth_token")).unwrap();
    let out = helper_get(&sandbox);
    assert!(out.stdout.is_empty());
    assert!(stderr(&out).contains("cannot read the workspace bearer token"), "{}", stderr(&out));
    assert_eq!(server.requests(), 0);
}
