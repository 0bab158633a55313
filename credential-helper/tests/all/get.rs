//! `get` through `git credential fill`: which requests are answered, what git receives,
//! and how the cache follows `expires_at` and the margin.

use crate::support::*;

#[test]
fn fill_returns_the_token_with_its_expiry_and_caches_it() {
    let server = TokenServer::start(3600, 600);
    let sandbox = Sandbox::new(&server.url);

    let out = sandbox.fill("https", "github.com");
    assert!(out.status.success(), "{}", stderr(&out));
    let attrs = attributes(&out);
    let issued = server.current().unwrap();
    assert_eq!(attrs["username"], "x-access-token");
    assert_eq!(attrs["password"], issued.token);
    assert_eq!(attrs["password_expiry_utc"], issued.expires_at.to_string());
    assert_eq!(stderr(&out), "", "a normal fill is silent");

    let again = sandbox.fill("https", "github.com");
    assert_eq!(password(&again).unwrap(), issued.token);
    assert_eq!(server.requests(), 1, "the second fill is served from the cache");
}

#[test]
fn cache_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let server = TokenServer::start(3600, 600);
    let sandbox = Sandbox::new(&server.url);
    assert!(sandbox.fill("https", "github.com").status.success());
    let dir = sandbox.cache_dir();
    assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(files.iter().any(|f| f.extension().is_some_and(|e| e == "json")));
    for f in files {
        assert_eq!(std::fs::metadata(&f).unwrap().permissions().mode() & 0o777, 0o600, "{}", f.display());
    }
}

#[test]
fn other_hosts_and_protocols_get_nothing() {
    let server = TokenServer::start(3600, 600);
    let sandbox = Sandbox::new(&server.url);
    for (protocol, host) in
        [("https", "gitlab.com"), ("http", "github.com"), ("ssh", "github.com"), ("https", "github.com:8443")]
    {
        let out = sandbox.helper(&["get"], &format!("protocol={protocol}\nhost={host}\n\n"));
        assert!(out.status.success());
        assert!(out.stdout.is_empty(), "{protocol}://{host} must not be answered");
        assert!(out.stderr.is_empty());
    }
    let out = sandbox.fill("https", "gitlab.com");
    assert!(password(&out).is_none());
    assert_eq!(server.requests(), 0);
}

#[test]
fn listed_hosts_with_ports_and_explicit_http() {
    let server = TokenServer::start(3600, 600);
    let mut sandbox = Sandbox::new(&server.url);
    sandbox.set("PLUGHOST_CREDENTIAL_HOSTS", "ghe.example.com:8443,http://127.0.0.1:9999");
    assert!(password(&sandbox.fill("https", "ghe.example.com:8443")).is_some());
    assert!(
        password(&sandbox.fill("http", "ghe.example.com:8443")).is_none(),
        "plain http only when listed as http://"
    );
    assert!(password(&sandbox.fill("http", "127.0.0.1:9999")).is_some());
    assert!(password(&sandbox.fill("https", "github.com")).is_none(), "the default is replaced by the list");
}

#[test]
fn unknown_actions_and_store_are_ignored_silently() {
    let server = TokenServer::start(3600, 600);
    let sandbox = Sandbox::new(&server.url);
    let input = "protocol=https\nhost=github.com\nusername=x-access-token\npassword=ghs_other\n\n";
    for action in [&["store"][..], &["frobnicate"], &["capability", "--x"]] {
        let out = sandbox.helper(action, input);
        assert!(out.status.success(), "{action:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{action:?}");
    }
    assert_eq!(server.requests(), 0);
    assert!(!sandbox.cache_dir().join("seen.json").exists(), "store records nothing");
}

#[test]
fn admin_route_without_workspace_id() {
    let server = TokenServer::start(3600, 600);
    let mut sandbox = Sandbox::new(&server.url);
    sandbox.unset("WORKSPACE_ID");
    let out = sandbox.fill("https", "github.com");
    assert!(password(&out).is_none(), "a workspace bearer does not open the admin route");
    assert!(stderr(&out).contains("/admin/github-installation-token"), "{}", stderr(&out));

    std::fs::write(sandbox.path("configs/.auth_token"), format!("  {ADMIN_TOKEN}\n\n")).unwrap();
    let out = sandbox.fill("https", "github.com");
    assert_eq!(password(&out).unwrap(), server.current().unwrap().token, "{}", stderr(&out));
}

#[test]
fn a_token_inside_the_margin_is_refetched_and_never_handed_out_expired() {
    // Server re-mints only when its token has expired (margin 0); the helper's margin is 2 s.
    let server = TokenServer::start(4, 0);
    let mut sandbox = Sandbox::new(&server.url);
    sandbox.set("PLUGHOST_CREDENTIAL_MARGIN_SECS", "2");

    let first = sandbox.fill("https", "github.com");
    let t1 = server.current().unwrap();
    assert_eq!(password(&first).unwrap(), t1.token);
    assert_eq!(server.requests(), 1);

    // Inside the margin: the helper asks again; the server still has only t1, which is
    // valid, so it is used (with a warning) rather than nothing.
    sleep_until_unix(t1.expires_at - 2);
    let inside = sandbox.fill("https", "github.com");
    assert_eq!(server.requests(), 2, "a cached token inside the margin is refetched");
    assert_eq!(password(&inside).unwrap(), t1.token);
    assert!(stderr(&inside).contains("less than the 2s margin"), "{}", stderr(&inside));

    // Expired: never handed out; the server's new token is.
    sleep_until_unix(t1.expires_at);
    let after = sandbox.fill("https", "github.com");
    let t2 = server.current().unwrap();
    assert_ne!(t1.token, t2.token);
    assert_eq!(password(&after).unwrap(), t2.token);
    assert_eq!(attributes(&after)["password_expiry_utc"], t2.expires_at.to_string());
}

#[test]
fn a_fresh_cache_entry_is_used_until_the_margin() {
    let server = TokenServer::start(3600, 0);
    let mut sandbox = Sandbox::new(&server.url);
    sandbox.set("PLUGHOST_CREDENTIAL_MARGIN_SECS", "3590");
    // 3600 s lifetime, 3590 s margin: fresh for about 10 s, then refetched.
    assert!(password(&sandbox.fill("https", "github.com")).is_some());
    assert!(password(&sandbox.fill("https", "github.com")).is_some());
    assert_eq!(server.requests(), 1);
    sandbox.set("PLUGHOST_CREDENTIAL_MARGIN_SECS", "3601");
    let out = sandbox.fill("https", "github.com");
    assert_eq!(server.requests(), 2, "a larger margin makes the same entry stale: no fixed TTL");
    assert!(password(&out).is_some());
}

#[test]
fn each_host_is_asked_for_by_name_and_cached_apart() {
    let server = TokenServer::start(3600, 600);
    let mut sandbox = Sandbox::new(&server.url);
    sandbox.set("PLUGHOST_CREDENTIAL_HOSTS", "github.com,ghe.example.com:8443");

    let dotcom = sandbox.fill("https", "github.com");
    let ghes = sandbox.fill("https", "GHE.example.com:8443");
    assert_eq!(password(&dotcom).unwrap(), server.current_for("github.com").unwrap().token, "{}", stderr(&dotcom));
    assert_eq!(
        password(&ghes).unwrap(),
        server.current_for("ghe.example.com:8443").unwrap().token,
        "{}",
        stderr(&ghes)
    );
    assert_ne!(password(&dotcom), password(&ghes), "each host gets its own provider's token");
    assert_eq!(server.asked_hosts(), [Some("github.com".to_owned()), Some("ghe.example.com:8443".to_owned())]);

    // Warm: each host from its own cache entry, plughost not asked again.
    assert_eq!(password(&sandbox.fill("https", "github.com")), password(&dotcom));
    assert_eq!(password(&sandbox.fill("https", "ghe.example.com:8443")), password(&ghes));
    assert_eq!(server.requests(), 2);
}
