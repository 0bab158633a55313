//! gh stays on a live token past the token's lifetime, with no token kept fresh in its
//! environment and no refresher running: the real gh (Debian's `gh` package) through the `gh`
//! link that `git-credential-plughost install` puts on the workspace's PATH, against the emulator
//! over TLS as a GitHub Enterprise Server behind a throwaway CA, through the real `plughost serve`
//! and the real github-app-auth plugin, with 12-second tokens. gh starts with a stale
//! installation token in `GH_ENTERPRISE_TOKEN`, as the replaced system left `GH_TOKEN`.

use std::time::{Duration, Instant};

use plughost_demo::{Options, Story};

/// As GitHub's documentation writes gh calls: the emulator, stricter than GitHub, wants the
/// `Accept` that gh sends only when asked.
const GH_API: [&str; 4] = ["api", "-H", "Accept: application/vnd.github+json", "/installation/repositories"];

fn run(options: Options) -> Story {
    let mut narration = Vec::new();
    Story::run(plughost_testkit::fixtures().clone(), options, &mut narration)
        .unwrap_or_else(|e| panic!("story failed: {e:#}\n{}", String::from_utf8_lossy(&narration)))
}

#[test]
fn gh_answers_200_across_token_rotations_while_old_tokens_expire() {
    // 12 s tokens; the plugin refreshes 5 s ahead, the helper 2 s ahead of what it caches.
    let story = run(Options {
        tls: true,
        token_ttl: Duration::from_secs(12),
        refresh_margin_secs: 5,
        helper_margin_secs: 2,
        ..Options::default()
    });
    let host = story.emulator_host();
    let gh_on_path = story.gh_on_path();
    assert!(gh_on_path.len() >= 2, "the helper's gh link and the real gh (apt-get install gh): {gh_on_path:?}");
    let (wrapper, real_gh) = (&gh_on_path[0], &gh_on_path[1]);
    assert_eq!(wrapper, &story.work().join("bin/gh"), "install put the gh link first on PATH");

    // The token a workspace env would have been given at start.
    let stale = story.git_credential_fill_for(&host).unwrap().password;
    let mut tokens = vec![stale.clone()];
    let started = Instant::now();
    let mut calls = 0;
    // Past three token lifetimes, and until at least two rotations were seen.
    while started.elapsed() < Duration::from_secs(30) || tokens.len() < 3 {
        assert!(started.elapsed() < Duration::from_secs(90), "tokens did not rotate: {} seen", tokens.len());
        let out = story.gh_command(wrapper).args(GH_API).env("GH_ENTERPRISE_TOKEN", &stale).output().unwrap();
        calls += 1;
        assert!(
            out.status.success(),
            "gh failed after {:?} (call {calls}): {}",
            started.elapsed(),
            String::from_utf8_lossy(&out.stderr)
        );
        let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(body["repositories"].as_array().is_some_and(|r| !r.is_empty()), "{body}");
        let current = story.git_credential_fill_for(&host).unwrap().password;
        if tokens.last() != Some(&current) {
            tokens.push(current);
        }
        std::thread::sleep(Duration::from_millis(700));
    }

    // Every token but the newest two has expired at the emulator (not revoked: expired).
    for old in &tokens[..tokens.len() - 2] {
        let info = story.emulator.token_info(old).expect("a token the emulator minted");
        assert!(!info.valid && !info.revoked, "an old token is still live: {info:?}");
    }
    // The control: the real gh, without the link, on the stale token is refused.
    let out = story.gh_command(real_gh).args(GH_API).env("GH_ENTERPRISE_TOKEN", &stale).output().unwrap();
    assert!(!out.status.success(), "the emulator accepted an expired token");
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"), "{}", String::from_utf8_lossy(&out.stderr));
    for token in &tokens {
        assert!(!story.host_log().contains(token.as_str()), "a token reached the host log");
    }
}

/// Stops the refresher the test started, even when an assertion fails first.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_refresher_keeps_hosts_yml_current_for_gh_run_by_its_full_path() {
    let story = run(Options {
        tls: true,
        token_ttl: Duration::from_secs(12),
        refresh_margin_secs: 5,
        helper_margin_secs: 2,
        ..Options::default()
    });
    let host = story.emulator_host();
    let real_gh = story.gh_on_path().pop().expect("the real gh (apt-get install gh)");
    assert_ne!(real_gh, story.work().join("bin/gh"));

    let log = std::fs::File::create(story.work().join("refresher.log")).unwrap();
    let _refresher = KillOnDrop(
        std::process::Command::new(&story.artifacts.credential_helper)
            .arg("refresh")
            .env_clear()
            .envs(story.workspace_env())
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let hosts_yml = story.work().join("home/.config/gh/hosts.yml");
    let started = Instant::now();
    while !std::fs::read_to_string(&hosts_yml).is_ok_and(|t| t.contains(&host)) {
        assert!(started.elapsed() < Duration::from_secs(20), "the refresher wrote no hosts.yml entry for {host}");
        std::thread::sleep(Duration::from_millis(100));
    }

    let mut tokens: Vec<String> = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) || tokens.len() < 3 {
        assert!(started.elapsed() < Duration::from_secs(90), "tokens did not rotate: {} seen", tokens.len());
        let out = story.gh_command(&real_gh).args(GH_API).output().unwrap();
        assert!(
            out.status.success(),
            "gh on hosts.yml failed after {:?}: {}\nrefresher log:\n{}",
            started.elapsed(),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(story.work().join("refresher.log")).unwrap_or_default()
        );
        let current = story.git_credential_fill_for(&host).unwrap().password;
        if tokens.last() != Some(&current) {
            tokens.push(current);
        }
        std::thread::sleep(Duration::from_millis(700));
    }
    let text = std::fs::read_to_string(&hosts_yml).unwrap();
    for old in &tokens[..tokens.len() - 2] {
        assert!(!story.emulator.is_token_valid(old), "an old token is still live");
        assert!(!text.contains(old.as_str()), "hosts.yml still holds an old token");
    }
    let refresher_log = std::fs::read_to_string(story.work().join("refresher.log")).unwrap();
    for token in &tokens {
        assert!(!refresher_log.contains(token.as_str()), "a token reached the refresher's log");
    }
}
