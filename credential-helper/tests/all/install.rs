//! `install`: git configured globally (reset entry first, then this binary), idempotent,
//! fail-soft without git or gh, refresher started once.

use std::time::{Duration, Instant};

use crate::support::*;

/// Stops a detached refresher even when an assertion fails first.
struct KillOnDrop(String);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill").arg(&self.0).status();
    }
}

fn helpers(sandbox: &Sandbox, url: &str) -> Vec<String> {
    let out = sandbox
        .command("git")
        .args(["config", "--global", "--get-all", &format!("credential.{url}.helper")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect()
}

#[test]
fn install_twice_gives_the_same_config() {
    let mut sandbox = Sandbox::new(&dead_url());
    sandbox.set("PLUGHOST_CREDENTIAL_HOSTS", "github.com,ghe.example.com:8443,http://127.0.0.1:9418");
    // An inherited helper that must be overridden for our hosts.
    std::fs::write(sandbox.path("home/.gitconfig"), "[credential]\n\thelper = store\n").unwrap();

    let first = sandbox.helper(&["install", "--no-refresher"], "");
    assert!(first.status.success(), "{}", stderr(&first));
    let config_after_first = std::fs::read_to_string(sandbox.path("home/.gitconfig")).unwrap();
    let second = sandbox.helper(&["install", "--no-refresher"], "");
    assert!(second.status.success());
    assert_eq!(std::fs::read_to_string(sandbox.path("home/.gitconfig")).unwrap(), config_after_first);

    let bin = std::fs::canonicalize(BIN).unwrap().to_string_lossy().into_owned();
    for url in ["https://github.com", "https://ghe.example.com:8443", "https://127.0.0.1:9418", "http://127.0.0.1:9418"]
    {
        assert_eq!(helpers(&sandbox, url), ["".to_owned(), bin.clone()], "{url}");
    }
    assert!(helpers(&sandbox, "http://github.com").is_empty(), "no plain http unless listed");
    assert!(sandbox.cache_dir().is_dir());
    assert!(stderr(&second).contains("gh"), "gh presence is reported");

    // The configured helper is what git now runs for github.com (not the inherited `store`).
    let server = TokenServer::start(3600, 600);
    sandbox.set("PLATFORM_URL", &server.url);
    let out =
        crate::support::run(sandbox.command("git").args(["credential", "fill"]), "protocol=https\nhost=github.com\n\n");
    assert_eq!(password(&out).unwrap(), server.current().unwrap().token, "{}", stderr(&out));
}

#[test]
fn missing_git_is_a_warning_not_a_failure() {
    let mut sandbox = Sandbox::new(&dead_url());
    let empty = sandbox.path("empty-bin");
    std::fs::create_dir_all(&empty).unwrap();
    sandbox.set("PATH", &empty.to_string_lossy());
    let out = sandbox.helper(&["install", "--no-refresher"], "");
    assert!(out.status.success());
    let err = stderr(&out);
    assert!(err.contains("warning: git not found on PATH"), "{err}");
    assert!(err.contains("warning: gh not found on PATH"), "{err}");
    assert!(sandbox.cache_dir().is_dir(), "the other steps still ran");
}

#[test]
fn install_starts_the_refresher_once() {
    let server = TokenServer::start(3600, 600);
    let sandbox = Sandbox::new(&server.url);
    let out = sandbox.helper(&["install"], "");
    assert!(out.status.success());
    assert!(stderr(&out).contains("refresher started"), "{}", stderr(&out));

    let pid_file = sandbox.cache_dir().join("refresher.pid");
    let log = sandbox.cache_dir().join("refresher.log");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("valid until") {
        assert!(Instant::now() < deadline, "refresher did not refresh: {:?}", std::fs::read_to_string(&log));
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = std::fs::read_to_string(&pid_file).unwrap().trim().to_owned();
    let _stop = KillOnDrop(pid.clone());

    let again = sandbox.helper(&["install"], "");
    assert!(stderr(&again).contains("refresher already running"), "{}", stderr(&again));

    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("received SIGTERM, exiting") {
        assert!(Instant::now() < deadline, "refresher did not exit on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_no_secrets(&std::fs::read_to_string(&log).unwrap(), &issued_tokens(&server));
}

#[test]
fn the_helper_is_named_by_its_path_on_path_when_that_is_this_binary() {
    let mut sandbox = Sandbox::new(&dead_url());
    let bin_dir = sandbox.path("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let link = bin_dir.join("git-credential-plughost");
    std::os::unix::fs::symlink(BIN, &link).unwrap();
    let path = format!("{}:{}", bin_dir.display(), sandbox.env["PATH"]);
    sandbox.set("PATH", &path);
    let out = sandbox.helper(&["install", "--no-refresher"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(helpers(&sandbox, "https://github.com"), ["".to_owned(), link.to_string_lossy().into_owned()]);
}

/// A workspace `bin` holding the helper (as an image installs it), first on `PATH`.
fn helper_on_path(sandbox: &mut Sandbox) -> std::path::PathBuf {
    let bin = sandbox.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(BIN, bin.join("git-credential-plughost")).unwrap();
    let path = format!("{}:{}", bin.display(), sandbox.env["PATH"]);
    sandbox.set("PATH", &path);
    bin
}

#[test]
fn install_puts_a_gh_link_ahead_of_the_real_gh_once() {
    let mut sandbox = Sandbox::new(&dead_url());
    let bin = helper_on_path(&mut sandbox);
    let real_gh = sandbox.command("sh").args(["-c", "command -v gh"]).output().unwrap();
    assert!(real_gh.status.success(), "the real gh must be installed (apt-get install gh)");

    let first = sandbox.helper(&["install", "--no-refresher"], "");
    assert!(stderr(&first).contains("gh wrapper"), "{}", stderr(&first));
    let link = std::fs::read_link(bin.join("gh")).unwrap();
    assert_eq!(link, bin.join("git-credential-plughost"), "the link names the helper as PATH finds it");
    let second = sandbox.helper(&["install", "--no-refresher"], "");
    assert!(stderr(&second).contains("gh wrapper already at"), "{}", stderr(&second));
    assert!(!stderr(&second).contains("warning: no gh wrapper"), "{}", stderr(&second));

    // Through the link, gh itself runs (no token needed for --version), with a warning that
    // plughost could not be reached, never stopping gh.
    let out = sandbox.command(bin.join("gh").to_str().unwrap()).arg("--version").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("gh version"));
    assert!(stderr(&out).contains("gh runs without a plughost token for github.com"), "{}", stderr(&out));
}

#[test]
fn install_leaves_a_foreign_gh_alone() {
    let mut sandbox = Sandbox::new(&dead_url());
    let bin = helper_on_path(&mut sandbox);
    std::fs::write(bin.join("gh"), "#!/bin/sh\necho mine\n").unwrap();
    let out = sandbox.helper(&["install", "--no-refresher"], "");
    assert!(out.status.success());
    assert!(stderr(&out).contains("is not this program; left alone"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(bin.join("gh")).unwrap(), "#!/bin/sh\necho mine\n");
}

#[test]
fn the_gh_link_replaces_a_stale_installation_token_and_keeps_a_users_own() {
    let server = TokenServer::start(3600, 600);
    let mut sandbox = Sandbox::new(&server.url);
    let bin = helper_on_path(&mut sandbox);
    // A stand-in for the real gh that shows the token it was given.
    let fake_gh = sandbox.path("real/gh");
    std::fs::create_dir_all(fake_gh.parent().unwrap()).unwrap();
    std::fs::write(&fake_gh, "#!/bin/sh\necho \"argv=$* GH_TOKEN=$GH_TOKEN GITHUB_TOKEN=$GITHUB_TOKEN\"\n").unwrap();
    std::fs::set_permissions(&fake_gh, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    sandbox.set("PLUGHOST_GH_PATH", fake_gh.to_str().unwrap());
    std::os::unix::fs::symlink(BIN, bin.join("gh")).unwrap();

    let run = |env: &[(&str, &str)]| {
        let out = sandbox
            .command(bin.join("gh").to_str().unwrap())
            .args(["api", "--x"])
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    let fresh = run(&[("GH_TOKEN", "ghs_stale"), ("GITHUB_TOKEN", "ghs_stale")]);
    let token = server.current_for("github.com").unwrap().token;
    assert_eq!(fresh.trim(), format!("argv=api --x GH_TOKEN={token} GITHUB_TOKEN={token}"));
    let kept = run(&[("GH_TOKEN", "ghp_users_own")]);
    assert_eq!(kept.trim(), "argv=api --x GH_TOKEN=ghp_users_own GITHUB_TOKEN=");
    assert_eq!(server.requests(), 1, "the second run asked nobody");

    // PLUGHOST_GH_PATH naming the wrapper itself is refused, not an endless exec.
    let out = sandbox.command(BIN).args(["gh", "api"]).env("PLUGHOST_GH_PATH", bin.join("gh")).output().unwrap();
    assert_eq!(out.status.code(), Some(127));
    assert!(stderr(&out).contains("is this wrapper, not gh"), "{}", stderr(&out));

    // The same as a subcommand: every argument is gh's, flags included.
    let out = sandbox.command(BIN).args(["gh", "--help", "--hostname", "x"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8(out.stdout).unwrap().starts_with("argv=--help --hostname x GH_TOKEN="));
}
