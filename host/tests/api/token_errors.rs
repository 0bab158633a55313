// The token routes' failures: 404 with no plugin or no provider, 500 when the provider fails
// or hands out an empty or expired token, 504 when it hangs, while other requests go on.

use std::time::{Duration, Instant};

use crate::harness::{ADMIN, fixtures, server};

#[test]
fn no_plugin_loaded_is_404_no_github_app() {
    let s = server().start();
    for path in ["/admin/github-installation-token", "/workspaces/ws-1/github-installation-token"] {
        let reply = s.get(path, Some(ADMIN));
        assert_eq!(reply.status, 404, "{path}");
        assert_eq!(reply.error(), "no GitHub App configured");
    }
}

#[test]
fn plugins_without_a_token_provider_is_404_no_provider() {
    let s = server().plugin("libstatic_env.so", &fixtures().static_env, None).start();
    let reply = s.get("/admin/github-installation-token", Some(ADMIN));
    assert_eq!(reply.status, 404);
    assert_eq!(reply.error(), "no token provider registered");
}

#[test]
fn failing_empty_or_expired_tokens_are_500_with_the_reason_only_in_the_log() {
    for (mode, reason) in
        [("error", "upstream said 401 Bad credentials"), ("empty", "empty token"), ("expired", "already expired")]
    {
        let s = server().token_provider(&format!("mode = \"{mode}\"\n")).start();
        let ws = s.issue("ws-1");
        for (path, bearer) in
            [("/admin/github-installation-token", ADMIN), ("/workspaces/ws-1/github-installation-token", ws.as_str())]
        {
            let reply = s.get(path, Some(bearer));
            assert_eq!(reply.status, 500, "{mode} {path}: {}", reply.body);
            assert_eq!(reply.error(), "token refresh failed");
        }
        let log = s.log();
        assert!(log.contains(reason) && log.contains("test-token-provider"), "{mode}: log lacks {reason:?}:\n{log}");
    }
}

#[test]
fn a_hung_provider_is_504_and_does_not_block_other_requests() {
    let s =
        server().config("plugin_call_timeout_ms = 1500\n").token_provider("mode = \"slow\"\ndelay_ms = 4000\n").start();
    let base = s.base().to_owned();
    let callers: Vec<_> = (0..6)
        .map(|_| {
            let url = format!("{base}/admin/github-installation-token");
            std::thread::spawn(move || {
                let started = Instant::now();
                let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
                let mut response = agent.get(&url).header("Authorization", format!("Bearer {ADMIN}")).call().unwrap();
                (response.status().as_u16(), response.body_mut().read_to_string().unwrap(), started.elapsed())
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // While six calls hang in the plugin, liveness and other routes answer at once.
    for _ in 0..5 {
        let started = Instant::now();
        assert_eq!(s.get("/healthz", None).status, 200);
        assert_eq!(s.get("/admin/plugins", Some(ADMIN)).status, 200);
        assert!(started.elapsed() < Duration::from_millis(500), "blocked for {:?}", started.elapsed());
    }
    for caller in callers {
        let (status, body, took) = caller.join().unwrap();
        assert_eq!(status, 504, "{body}");
        assert_eq!(body, r#"{"error":"token provider timed out"}"#);
        assert!(took >= Duration::from_millis(1400) && took < Duration::from_millis(3500), "took {took:?}");
    }
    assert!(s.log().contains("did not answer within"), "{}", s.log());
}
