// The state directory and the plugin cache inside it are trusted only after the same checks as
// the plugin directory (owner: the host's user or root; not writable by group or others): an
// insecure one stops the start with one line naming it. A cached copy is checked against the
// bytes just read from the plugin file before every load, and replaced when it differs.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use plughost_testkit::StartError;

use crate::harness::{ADMIN, PluginDir, Server, fixtures, run_cli, server};

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `plughost serve` on `dir` must stop at start-up: its log (stderr).
fn serve_fails(dir: PluginDir) -> String {
    match server().dir(dir).try_start() {
        Err(StartError::Exited { status, log }) => {
            assert_eq!(status.code(), Some(1), "{log}");
            log
        }
        Err(other) => panic!("{other}"),
        Ok(s) => panic!("serve started on an insecure state directory; log:\n{}", s.log()),
    }
}

fn assert_line(log: &str, line: &str) {
    assert!(log.lines().any(|l| l == line), "expected the line {line:?} in:\n{log}");
}

#[test]
fn an_insecure_state_directory_stops_the_start_with_one_line_naming_it() {
    let dir = PluginDir::new();
    let state = dir.state_dir().to_owned();
    std::fs::create_dir(&state).unwrap();
    chmod(&state, 0o777);
    let line = format!(
        "plughost: insecure: the state directory {} is writable by others (mode 777); run chmod go-w",
        state.display()
    );
    // The command line refuses it the same way.
    let (status, _, stderr) =
        run_cli(&["workspace-token", "issue", "ws-1", "--state-dir", &state.display().to_string()]);
    assert!(!status.success());
    assert_line(&stderr, &line);
    assert_line(&serve_fails(dir), &line);
}

#[test]
fn an_insecure_plugin_cache_stops_the_start_with_one_line_naming_it() {
    let dir = PluginDir::new();
    let cache = dir.state_dir().join("plugin-cache");
    std::fs::create_dir_all(&cache).unwrap();
    chmod(dir.state_dir(), 0o700);
    chmod(&cache, 0o770);
    let line = format!(
        "plughost: insecure: the plugin cache {} is writable by group (mode 770); run chmod go-w",
        cache.display()
    );
    assert_line(&serve_fails(dir), &line);

    // Owned by someone else (only root can hand a directory to another user).
    let dir = PluginDir::new();
    let cache = dir.state_dir().join("plugin-cache");
    std::fs::create_dir_all(&cache).unwrap();
    chmod(dir.state_dir(), 0o700);
    chmod(&cache, 0o700);
    if std::os::unix::fs::chown(&cache, Some(4242), None).is_ok() {
        let line = format!(
            "plughost: insecure: the plugin cache {} is owned by uid 4242, not by this host's user (uid 0) or root",
            cache.display()
        );
        assert_line(&serve_fails(dir), &line);
    }
}

#[test]
fn a_cached_copy_edited_in_place_is_replaced_before_it_loads() {
    let s = server().plugin("10-env.so", &fixtures().static_env, Some("[vars]\nTZ = \"UTC\"\n")).start();
    let json = s.get("/admin/plugins", Some(ADMIN)).json();
    assert_eq!(json["plugins"][0]["name"], "static-env");
    let sha = json["plugins"][0]["sha256"].as_str().unwrap().to_owned();
    let dir = s.stop();

    // Same length, other bytes: the plugin's name literal.
    let cached = dir.state_dir().join("plugin-cache").join(format!("{sha}.so"));
    let mut bytes = std::fs::read(&cached).unwrap();
    let at = bytes.windows(10).position(|w| w == b"static-env").expect("the name literal");
    bytes[at..at + 10].copy_from_slice(b"static-enw");
    chmod(&cached, 0o700);
    std::fs::write(&cached, &bytes).unwrap();
    chmod(&cached, 0o500);

    let s: Server = server().dir(dir).start();
    let json = s.get("/admin/plugins", Some(ADMIN)).json();
    assert_eq!(json["plugins"][0]["name"], "static-env", "{json}");
    assert_eq!(json["plugins"][0]["sha256"], sha.as_str());
    assert_ne!(std::fs::read(&cached).unwrap(), bytes, "the edited copy was replaced");
    assert_eq!(std::fs::read(&cached).unwrap(), std::fs::read(&fixtures().static_env).unwrap());
    let log = s.log();
    assert!(log.contains("cached copy differs from the plugin file; replaced"), "{log}");
    let env = s.post("/admin/workspaces/ws-1/env", Some(ADMIN), Some(r#"{"env":{}}"#));
    assert_eq!(env.json()["env"]["TZ"], "UTC");
}
