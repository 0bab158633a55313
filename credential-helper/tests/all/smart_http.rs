//! End to end: clone and push over git's smart HTTP protocol (`git http-backend` behind a
//! loopback server) that accepts only the currently valid token, while tokens rotate every
//! few seconds.

use std::time::Duration;

use crate::support::git_http::GitHttpServer;
use crate::support::*;

fn git_ok(sandbox: &Sandbox, dir: &std::path::Path, args: &[&str]) -> String {
    let out = sandbox.git(args).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "git {args:?} failed: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn clone_and_push_while_tokens_rotate() {
    // 5 s tokens, re-minted by the server below 3 s left; helper margin 2 s: git always
    // gets a token with more than 2 s left, and a new one about every 3 s.
    let server = TokenServer::start(5, 3);
    let mut sandbox = Sandbox::new(&server.url);
    for (k, v) in [
        ("GIT_AUTHOR_NAME", "t"),
        ("GIT_AUTHOR_EMAIL", "t@example.com"),
        ("GIT_COMMITTER_NAME", "t"),
        ("GIT_COMMITTER_EMAIL", "t@example.com"),
    ] {
        sandbox.set(k, v);
    }
    sandbox.set("PLUGHOST_CREDENTIAL_MARGIN_SECS", "2");

    let root = sandbox.path("srv");
    std::fs::create_dir_all(&root).unwrap();
    git_ok(&sandbox, &root, &["init", "-q", "--bare", "-b", "main", "repo.git"]);
    let seed = sandbox.path("seed");
    std::fs::create_dir_all(&seed).unwrap();
    git_ok(&sandbox, &seed, &["init", "-q", "-b", "main"]);
    std::fs::write(seed.join("README"), "hello\n").unwrap();
    git_ok(&sandbox, &seed, &["add", "README"]);
    git_ok(&sandbox, &seed, &["commit", "-q", "-m", "seed"]);
    git_ok(&sandbox, &seed, &["push", "-q", root.join("repo.git").to_str().unwrap(), "main"]);

    let http = GitHttpServer::start(root.clone(), server.validator());
    sandbox.set("PLUGHOST_CREDENTIAL_HOSTS", &format!("http://{}", http.host));
    let url = format!("{}/repo.git", http.url);

    let work = sandbox.path("work");
    git_ok(&sandbox, sandbox.dir.path(), &["clone", "-q", &url, work.to_str().unwrap()]);
    let first_token = server.current().unwrap();

    for round in 1..=4 {
        std::thread::sleep(Duration::from_millis(1500));
        std::fs::write(work.join(format!("file{round}")), format!("round {round}\n")).unwrap();
        git_ok(&sandbox, &work, &["add", "."]);
        git_ok(&sandbox, &work, &["commit", "-q", "-m", &format!("round {round}")]);
        git_ok(&sandbox, &work, &["push", "-q", "origin", "main"]);
    }
    git_ok(&sandbox, &work, &["fetch", "-q", "origin"]);

    let log = git_ok(&sandbox, &root.join("repo.git"), &["log", "--format=%s", "main"]);
    assert_eq!(log.lines().collect::<Vec<_>>(), ["round 4", "round 3", "round 2", "round 1", "seed"]);
    let accepted = http.accepted_tokens();
    assert!(accepted.len() >= 3, "tokens rotated during the session: {} distinct", accepted.len());
    assert!(http.refused() >= 1, "git's first, anonymous request is refused and it asks the helper");

    // The first token has expired by now; the server refuses it outright.
    sleep_until_unix(first_token.expires_at);
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{}", first_token.token));
    let response = agent
        .get(&format!("{url}/info/refs?service=git-upload-pack"))
        .header("Authorization", &format!("Basic {basic}"))
        .call()
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
}
