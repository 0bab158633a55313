//! `GH_TOKEN`/`GITHUB_TOKEN`: a last resort while plughost is unreachable, with a warning,
//! and never when the helper knows the value expired or was rejected.

use crate::support::*;

#[test]
fn env_token_is_used_with_a_warning_when_plughost_is_unreachable() {
    let mut sandbox = Sandbox::new(&dead_url());
    sandbox.set("GITHUB_TOKEN", "ghs_from_github_token_env");
    let out = sandbox.fill("https", "github.com");
    assert_eq!(password(&out).unwrap(), "ghs_from_github_token_env", "{}", stderr(&out));
    assert!(!attributes(&out).contains_key("password_expiry_utc"), "unknown expiry is not invented");
    let err = stderr(&out);
    assert!(err.contains("warning") && err.contains("falling back to $GITHUB_TOKEN"), "{err}");
    assert!(!err.contains("ghs_from_github_token_env"));

    sandbox.set("GH_TOKEN", "ghs_from_gh_token_env");
    assert_eq!(password(&sandbox.fill("https", "github.com")).unwrap(), "ghs_from_gh_token_env", "GH_TOKEN first");
}

#[test]
fn env_token_is_not_used_while_plughost_answers() {
    let server = TokenServer::start(3600, 600);
    let mut sandbox = Sandbox::new(&server.url);
    sandbox.set("GH_TOKEN", "ghs_stale_boot_time_token");
    let out = sandbox.fill("https", "github.com");
    assert_eq!(password(&out).unwrap(), server.current().unwrap().token);
    assert_eq!(stderr(&out), "");
}

#[test]
fn env_token_known_to_be_expired_is_refused() {
    // The provisioner put the token plughost handed out at boot into GH_TOKEN; the helper
    // saw it (and its expiry) when it fetched it too.
    let server = TokenServer::start(2, 0);
    let mut sandbox = Sandbox::new(&server.url);
    let boot = password(&sandbox.fill("https", "github.com")).unwrap();
    let expires_at = server.current().unwrap().expires_at;
    drop(server);
    sleep_until_unix(expires_at);

    sandbox.set("PLATFORM_URL", &dead_url()).set("GH_TOKEN", &boot);
    let out = sandbox.helper(&["get"], "protocol=https\nhost=github.com\n\n");
    assert!(out.stdout.is_empty(), "a token known to be expired never reaches git");
    let err = stderr(&out);
    assert!(err.contains("$GH_TOKEN expired at"), "{err}");
    assert!(!err.contains(&boot));
}

#[test]
fn env_token_rejected_by_git_is_not_offered_again() {
    let mut sandbox = Sandbox::new(&dead_url());
    sandbox.set("GH_TOKEN", "ghs_revoked_env_token");
    assert_eq!(password(&sandbox.fill("https", "github.com")).unwrap(), "ghs_revoked_env_token");
    // GitHub answered 401: git calls erase with it.
    sandbox.reject("https", "github.com", "ghs_revoked_env_token");
    let out = sandbox.helper(&["get"], "protocol=https\nhost=github.com\n\n");
    assert!(out.stdout.is_empty());
    let err = stderr(&out);
    assert!(err.contains("$GH_TOKEN was rejected by git before"), "{err}");
    assert!(!err.contains("ghs_revoked_env_token"));
}
