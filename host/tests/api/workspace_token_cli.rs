// `plughost workspace-token issue|revoke` against the state directory of a running server:
// an issued token works at once, a revocation takes effect at once; bad ids are refused.

use crate::harness::{ADMIN, plughost_command, run_cli, server};

#[test]
fn cli_issue_and_revoke_take_effect_on_the_running_server() {
    let s = server().token_provider("token = \"ghs_cli\"\n").start();
    let state = s.state_dir().display().to_string();
    let route = "/workspaces/ws-cli/github-installation-token";

    let (status, stdout, stderr) = run_cli(&["workspace-token", "issue", "ws-cli", "--state-dir", &state]);
    assert!(status.success(), "{stderr}");
    let token = stdout.trim().to_owned();
    assert_eq!(stdout, format!("{token}\n"), "stdout is the token alone");
    assert_eq!(token.len(), 43);
    assert!(!stderr.contains(&token), "the token is printed once, on stdout");
    assert_eq!(s.get(route, Some(&token)).json()["token"], "ghs_cli");
    let api_token = s.issue("ws-cli");

    let (status, _, stderr) = run_cli(&["workspace-token", "revoke", "ws-cli", "--state-dir", &state]);
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("revoked 2 token(s) of workspace ws-cli"), "{stderr}");
    assert_eq!(s.get(route, Some(&token)).status, 401);
    assert_eq!(s.get(route, Some(&api_token)).status, 401);
    assert_eq!(s.get(route, Some(ADMIN)).status, 200);

    // PLUGHOST_STATE_DIR works as well as the flag.
    let output = plughost_command()
        .args(["workspace-token", "issue", "ws-env"])
        .env("PLUGHOST_STATE_DIR", &state)
        .output()
        .unwrap();
    assert!(output.status.success());
    let token = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert_eq!(s.get("/workspaces/ws-env/github-installation-token", Some(&token)).status, 200);

    let (status, stdout, stderr) = run_cli(&["workspace-token", "issue", "../etc", "--state-dir", &state]);
    assert_eq!(status.code(), Some(2));
    assert!(stdout.is_empty());
    assert!(stderr.contains("invalid workspace id"), "{stderr}");
}

#[test]
fn a_cli_revocation_reaches_every_worker_at_once() {
    // Each worker checks tokens on its own database connection; a revocation written by another
    // process must reach all of them before the next request.
    let s = server().token_provider("token = \"ghs_cli\"\n").start();
    let token = s.issue("ws-many");
    let fetch = |s: &crate::harness::Server| s.get("/workspaces/ws-many/github-installation-token", Some(&token));
    assert!(s.concurrently(8, 25, fetch).iter().all(|r| r.status == 200));
    let (status, _, stderr) =
        run_cli(&["workspace-token", "revoke", "ws-many", "--state-dir", &s.state_dir().display().to_string()]);
    assert!(status.success(), "{stderr}");
    let statuses: Vec<u16> = s.concurrently(8, 25, fetch).iter().map(|r| r.status).collect();
    assert!(statuses.iter().all(|&status| status == 401), "{statuses:?}");
}

#[test]
fn last_use_is_recorded() {
    let s = server().token_provider("").start();
    let token = s.issue("ws-used");
    let db = rusqlite::Connection::open(s.state_dir().join("plughost.sqlite3")).unwrap();
    let last_used = || -> Option<i64> {
        db.query_row("SELECT last_used_at FROM workspace_tokens WHERE workspace_id = 'ws-used'", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(last_used(), None);
    assert_eq!(s.get("/workspaces/ws-used/github-installation-token", Some(&token)).status, 200);
    // Recorded off the request path: poll.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while last_used().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let first = last_used().expect("last use recorded on first use");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((now - first).abs() <= 5);
}
