//! The whole stack, nothing emulated but GitHub: the emulator, the real `plughost` binary with
//! the real GitHub App and static-env plugins, the real SQLite store, the real credential helper
//! and real `git`. Covers the story itself, tokens rotating under git, the host going away, a
//! revoked workspace token, and that no token leaks into the host's log.

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use plughost_demo::{Options, Story};

/// The story on the test kit's fixtures (built once per test run, in this test's target directory).
fn run(options: Options) -> (Story, String) {
    let mut narration = Vec::new();
    let story = Story::run(plughost_testkit::fixtures().clone(), options, &mut narration)
        .unwrap_or_else(|e| panic!("story failed: {e:#}\n{}", String::from_utf8_lossy(&narration)));
    (story, String::from_utf8(narration).unwrap())
}

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

#[test]
fn the_story_runs_and_every_token_is_live_and_never_logged() {
    let (story, narration) = run(Options::default());
    assert!(narration.contains("NOT GitHub"), "{narration}");
    assert!(narration.contains("static-env 1.0.0"), "{narration}");
    assert!(narration.contains("github-app-auth"), "{narration}");
    assert!(narration.contains("\"PLATFORM\""), "{narration}");
    assert!(!narration.contains("\"GH_TOKEN\""), "no short-lived secret in the environment by default: {narration}");

    let fill = story.git_credential_fill().unwrap();
    assert_eq!(fill.username, "x-access-token");
    assert!(story.emulator.is_token_valid(&fill.password));
    assert!(fill.expiry_utc > now_unix() + 3000, "expiry {}", fill.expiry_utc);
    // The provisioning chain, the token endpoint and git all hold the same live token: one mint.
    assert_eq!(story.emulator.mints(), 1);

    let log = story.host_log();
    assert!(log.contains("plugin loaded"), "{log}");
    for secret in [&fill.password, &story.workspace_token, &story.admin_token] {
        assert!(!log.contains(secret.as_str()), "a secret reached the host log");
    }
}

#[test]
fn git_keeps_getting_live_tokens_while_they_rotate() {
    // 12 s tokens; the plugin refreshes 5 s ahead, the helper 2 s ahead of what it caches.
    let (story, _) = run(Options {
        token_ttl: Duration::from_secs(12),
        refresh_margin_secs: 5,
        helper_margin_secs: 2,
        ..Options::default()
    });
    let mut seen = std::collections::BTreeSet::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        let fill = story.git_credential_fill().unwrap();
        assert!(story.emulator.is_token_valid(&fill.password), "git was handed a dead token");
        assert!(fill.expiry_utc > now_unix(), "git was handed an expired token");
        seen.insert(fill.password);
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(seen.len() >= 2, "tokens did not rotate: {} seen", seen.len());
}

#[test]
fn cached_token_survives_the_host_going_away_and_a_revoked_workspace_fails_clearly() {
    let (mut story, _) = run(Options::default());
    let cached = story.git_credential_fill().unwrap();

    // Revoke the workspace's bearer: the cached token (still valid) keeps working ...
    let revoked = Command::new(&story.artifacts.plughost)
        .args(["workspace-token", "revoke", &story.workspace_id, "--state-dir"])
        .arg(story.work().join("state"))
        .output()
        .unwrap();
    assert!(revoked.status.success(), "{}", String::from_utf8_lossy(&revoked.stderr));
    assert_eq!(story.git_credential_fill().unwrap().password, cached.password);

    // ... and once the cache is gone, the host's 401 is a clear failure, not a dead token.
    std::fs::remove_dir_all(story.work().join("credential-cache")).unwrap();
    let out = Command::new("git")
        .args(["credential", "fill"])
        .envs(story.workspace_env())
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child.stdin.take().unwrap().write_all(b"protocol=https\nhost=github.com\n\n")?;
            child.wait_with_output()
        })
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "git got credentials with a revoked workspace token");
    assert!(
        stderr.contains("401") || stderr.to_lowercase().contains("unauthorized") || stderr.contains("rejected"),
        "{stderr}"
    );
    assert!(!stderr.contains(&cached.password));

    // Host down with a fresh cache: the cached token is used.
    let (fresh, _) = run(Options::default());
    let cached = fresh.git_credential_fill().unwrap();
    story = fresh;
    story.stop_host();
    assert_eq!(story.git_credential_fill().unwrap().password, cached.password);
}
