//! `refresh`: one instance per cache, tokens replaced ahead of expiry, capped backoff on
//! failure, gh's hosts.yml kept current, clean exit on SIGTERM/SIGINT.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::*;

/// A running refresher whose stderr lines arrive on a channel.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    log: Vec<String>,
}

impl Running {
    fn start(sandbox: &Sandbox) -> Self {
        let mut child = sandbox
            .command(BIN)
            .arg("refresh")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines, log: Vec::new() }
    }

    /// Waits for a line containing `needle`; returns it.
    fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no line with {needle:?} within {timeout:?}; log so far:\n{}", self.log.join("\n")),
            }
        }
    }

    fn signal(&self, name: &str) {
        let ok = std::process::Command::new("kill").args([&format!("-{name}"), &self.child.id().to_string()]).status();
        assert!(ok.unwrap().success());
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_second_refresher_is_refused_and_sigterm_exits_cleanly() {
    let server = TokenServer::start(3600, 600);
    let sandbox = Sandbox::new(&server.url);
    let mut first = Running::start(&sandbox);
    first.wait_for("valid until", Duration::from_secs(10));

    let second = sandbox.helper(&["refresh"], "");
    assert_eq!(second.status.code(), Some(1));
    assert!(stderr(&second).contains("a refresher is already running"), "{}", stderr(&second));
    assert!(stderr(&second).contains(&first.child.id().to_string()), "names the running pid");

    first.signal("HUP");
    first.wait_for("ignoring SIGHUP", Duration::from_secs(5));
    first.signal("TERM");
    first.wait_for("received SIGTERM, exiting", Duration::from_secs(5));
    assert!(first.child.wait().unwrap().success());
    assert_no_secrets(&first.log.join("\n"), &issued_tokens(&server));

    // The lock died with the process: a new refresher may start.
    let mut third = Running::start(&sandbox);
    third.wait_for("valid until", Duration::from_secs(10));
    third.signal("INT");
    third.wait_for("received SIGINT, exiting", Duration::from_secs(5));
}

#[test]
fn keeps_the_cache_and_gh_fresh_across_rotations() {
    // Tokens live 4 s and the server re-mints below 2 s left; the helper's margin is 1 s,
    // so the refresher must replace each token about 1-2 s before it expires.
    let server = TokenServer::start(4, 2);
    let mut sandbox = Sandbox::new(&server.url);
    sandbox.set("PLUGHOST_CREDENTIAL_MARGIN_SECS", "1");
    std::fs::create_dir_all(sandbox.path("xdg-config/gh")).unwrap();
    std::fs::write(sandbox.gh_hosts(), "ghe.example.com:\n    user: alice\n    oauth_token: gho_alice\n").unwrap();

    let mut refresher = Running::start(&sandbox);
    refresher.wait_for("new token from plughost", Duration::from_secs(10));
    refresher.wait_for("new token from plughost", Duration::from_secs(10));
    refresher.wait_for("new token from plughost", Duration::from_secs(10));
    assert!(server.issued().len() >= 3);

    // git gets a fresh token from the cache: one plughost issued, not expired, and
    // usually without a request (at most one if the fill races a rotation).
    let before = server.requests();
    let out = sandbox.fill("https", "github.com");
    let given = password(&out).unwrap();
    let expiry: u64 = attributes(&out)["password_expiry_utc"].parse().unwrap();
    assert!(server.issued().iter().any(|i| i.token == given && i.expires_at == expiry), "{}", stderr(&out));
    assert!(expiry as f64 > token_server::now_f64());
    assert!(server.requests() <= before + 1);

    let hosts = std::fs::read_to_string(sandbox.gh_hosts()).unwrap();
    assert!(hosts.starts_with("ghe.example.com:\n    user: alice\n    oauth_token: gho_alice\n"), "{hosts}");
    assert!(
        hosts.contains("github.com:\n    users:\n        x-access-token:\n            oauth_token: ghs_"),
        "{hosts}"
    );
    assert!(hosts.contains("    user: x-access-token\n") && hosts.contains("    git_protocol: https\n"));
    let gh_token = hosts.lines().find_map(|l| l.strip_prefix("    oauth_token: ghs_")).unwrap();
    assert!(server.issued().iter().any(|i| i.token == format!("ghs_{gh_token}")));
    assert!(std::fs::read_to_string(sandbox.path("xdg-config/gh/config.yml")).unwrap().contains("version: \"1\""));

    refresher.signal("TERM");
    refresher.wait_for("exiting", Duration::from_secs(5));
    assert_no_secrets(&refresher.log.join("\n"), &issued_tokens(&server));
}

#[test]
fn failures_are_retried_with_short_capped_backoff() {
    let server = TokenServer::start(3600, 600);
    server.set_mode(Mode::Fail(500));
    let mut sandbox = Sandbox::new(&server.url);
    sandbox.set("PLUGHOST_CREDENTIAL_BACKOFF_MAX_SECS", "2");
    let mut refresher = Running::start(&sandbox);
    let first = refresher.wait_for("refresh failed (attempt 1)", Duration::from_secs(10));
    assert!(first.contains("HTTP 500") && first.contains("retrying in 1s"), "{first}");
    refresher.wait_for("refresh failed (attempt 2)", Duration::from_secs(5));
    let third = refresher.wait_for("refresh failed (attempt 3)", Duration::from_secs(5));
    assert!(third.contains("retrying in 1s") || third.contains("retrying in 2s"), "capped at 2 s: {third}");
    server.set_mode(Mode::Normal);
    refresher.wait_for("new token from plughost", Duration::from_secs(5));
}

#[test]
fn gh_token_prints_only_the_token() {
    let server = TokenServer::start(3600, 600);
    let sandbox = Sandbox::new(&server.url);
    let out = sandbox.helper(&["gh-token"], "");
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), format!("{}\n", server.current().unwrap().token));

    let down = Sandbox::new(&dead_url());
    let out = down.helper(&["gh-token"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
}

#[test]
fn refresh_once_reports_success_and_failure_by_exit_status() {
    let server = TokenServer::start(3600, 600);
    let sandbox = Sandbox::new(&server.url);
    let out = sandbox.helper(&["refresh", "--once"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(std::fs::read_to_string(sandbox.gh_hosts()).unwrap().contains(&server.current().unwrap().token));
    assert_no_secrets(&stderr(&out), &issued_tokens(&server));

    let down = Sandbox::new(&dead_url());
    let out = down.helper(&["refresh", "--once"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("1 of 1 hosts could not be refreshed"), "{}", stderr(&out));
}
