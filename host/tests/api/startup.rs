// Start-up: the server listens at once and is ready (`/readyz` 200) only once the plugin
// directory is scanned. Failures stop `serve` with a non-zero exit and a message naming the
// culprit: an unusable state directory, a corrupt database file, an unreadable plugin directory,
// a bad listen address, an unreadable admin token file. A fresh state directory is created and
// migrated; JSON logs are one object per line.

use crate::harness::{PluginDir, run_cli};

/// `plughost serve ARGS...` (on an ephemeral port unless ARGS say) to the end: (status, stderr).
fn serve(args: &[&str]) -> (std::process::ExitStatus, String) {
    let mut all = vec!["serve"];
    if !args.contains(&"--listen") {
        all.extend(["--listen", "127.0.0.1:0"]);
    }
    all.extend(args);
    let (status, _, stderr) = run_cli(&all);
    (status, stderr)
}

/// A scratch root with an empty plugin directory, and the paths of both directories as strings.
fn dirs() -> (PluginDir, String, String) {
    let dir = PluginDir::new();
    let (plugins, state) = (dir.plugin_dir().display().to_string(), dir.state_dir().display().to_string());
    (dir, plugins, state)
}

#[test]
fn an_unusable_state_directory_stops_the_start_naming_it() {
    let (dir, plugins, _) = dirs();
    let not_a_dir = dir.root().join("a-file");
    std::fs::write(&not_a_dir, "").unwrap();
    for state in [not_a_dir.clone(), not_a_dir.join("state")] {
        let (status, stderr) = serve(&["--plugin-dir", &plugins, "--state-dir", &state.display().to_string()]);
        assert!(!status.success());
        assert!(stderr.contains(&format!("state directory {}", state.display())), "{stderr}");
    }
}

#[test]
fn a_corrupt_database_stops_the_start_naming_it() {
    let (_dir, plugins, state) = dirs();
    std::fs::create_dir(&state).unwrap();
    let db = format!("{state}/plughost.sqlite3");
    std::fs::write(&db, vec![0x5a; 8192]).unwrap();
    let (status, stderr) = serve(&["--plugin-dir", &plugins, "--state-dir", &state]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&db) && stderr.contains("not a database"), "{stderr}");
    // The CLI refuses it the same way.
    let (status, _, stderr) = run_cli(&["workspace-token", "issue", "ws-1", "--state-dir", &state]);
    assert!(!status.success());
    assert!(stderr.contains(&db), "{stderr}");
}

#[test]
fn a_missing_plugin_directory_stops_the_server_naming_it() {
    let (dir, _, state) = dirs();
    let missing = dir.root().join("no-such-plugins").display().to_string();
    let (status, stderr) = serve(&["--plugin-dir", &missing, "--state-dir", &state]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("cannot load plugins from {missing}")), "{stderr}");
}

#[test]
fn bad_settings_stop_the_start() {
    let (dir, plugins, state) = dirs();
    let (status, stderr) = serve(&["--plugin-dir", &plugins, "--state-dir", &state, "--listen", "nowhere"]);
    assert_eq!(status.code(), Some(2));
    assert!(stderr.contains("\"nowhere\" is not an address:port"), "{stderr}");

    let config = dir.root().join("plughost.toml");
    let missing = dir.root().join("missing-token");
    std::fs::write(&config, format!("admin_token_file = {:?}\n", missing.display().to_string())).unwrap();
    let config = config.display().to_string();
    let (status, _, stderr) = run_cli(&[
        "--config",
        &config,
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--plugin-dir",
        &plugins,
        "--state-dir",
        &state,
    ]);
    assert_eq!(status.code(), Some(2));
    assert!(stderr.contains(&format!("cannot read the admin token file {}", missing.display())), "{stderr}");
}

#[test]
fn a_fresh_state_directory_is_created_private_with_a_migrated_database() {
    use std::os::unix::fs::PermissionsExt as _;
    let (_dir, _, state) = dirs();
    let nested = format!("{state}/deeper");
    let (status, stdout, stderr) = run_cli(&["workspace-token", "issue", "ws-1", "--state-dir", &nested]);
    assert!(status.success(), "{stderr}");
    assert_eq!(stdout.trim().len(), 43);
    let mode = std::fs::metadata(&nested).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    let db = rusqlite::Connection::open(format!("{nested}/plughost.sqlite3")).unwrap();
    let version: i64 = db.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(version, 3, "every migration ran");
    let journal: String = db.pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
    assert_eq!(journal, "wal");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let s = crate::harness::server().env("PLUGHOST_LOG_FORMAT", "json").token_provider("").start();
    assert_eq!(s.get("/healthz", None).status, 200);
    let log = s.log();
    assert!(log.lines().count() >= 3, "{log}");
    for line in log.lines() {
        let event: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(event["level"].is_string() && event["fields"]["message"].is_string(), "{line}");
    }
    assert!(log.contains("listening on http://127.0.0.1:"), "{log}");
}

#[test]
fn not_ready_until_the_plugins_are_scanned() {
    use crate::harness::ADMIN;
    let s = crate::harness::server().no_wait_ready().token_provider("init_delay_ms = 1500\n").start();
    let ready = s.get("/readyz", None);
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert_eq!(ready.json()["plugins_scanned"], false);
    assert_eq!(ready.json()["state_store_open"], true);
    assert_eq!(s.get("/healthz", None).status, 200, "alive while loading");
    let reply = s.get("/admin/github-installation-token", Some(ADMIN));
    assert_eq!(reply.status, 503);
    assert_eq!(reply.error(), "plugins are still loading");
    s.wait_ready();
    assert_eq!(s.get("/admin/github-installation-token", Some(ADMIN)).status, 200);
}

#[test]
fn the_admin_token_file_must_be_private_and_every_admin_token_long_enough() {
    use std::os::unix::fs::PermissionsExt as _;
    let (dir, plugins, state) = dirs();
    let token_file = dir.write_private("admin-token", "a-long-enough-admin-token-0123456789\n");
    let config =
        dir.write_private("plughost.toml", &format!("admin_token_file = {:?}\n", token_file.display().to_string()));
    let serve_with = |admin_token: Option<&str>| {
        let mut command = crate::harness::plughost_command();
        command.arg("--config").arg(&config).args(["serve", "--listen", "127.0.0.1:0"]);
        command.args(["--plugin-dir", &plugins, "--state-dir", &state]);
        if let Some(token) = admin_token {
            command.env("PLUGHOST_ADMIN_TOKEN", token);
        }
        // A server that starts is stopped after 10 s (and then fails the status check).
        let mut child = command.stderr(std::process::Stdio::piped()).spawn().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = child.kill();
        let output = child.wait_with_output().unwrap();
        (output.status, String::from_utf8_lossy(&output.stderr).into_owned())
    };
    for mode in [0o644, 0o640, 0o604, 0o620] {
        std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(mode)).unwrap();
        let (status, stderr) = serve_with(None);
        assert_eq!(status.code(), Some(2), "mode {mode:o}: {stderr}");
        let line = stderr.lines().find(|l| l.starts_with("plughost: ")).unwrap_or_else(|| panic!("{stderr}"));
        assert_eq!(
            line,
            format!(
                "plughost: the admin token file {} is open to group or others (mode {mode:o}); \
                 it must be private to its owner (chmod 600)",
                token_file.display()
            )
        );
    }
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let short = dir.write_private("short-token", "too-short\n");
    std::fs::write(&config, format!("admin_token_file = {:?}\n", short.display().to_string())).unwrap();
    let (status, stderr) = serve_with(None);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("the admin token in {} is 9 bytes; at least 16 are required", short.display())),
        "{stderr}"
    );
    let (status, stderr) = serve_with(Some("short-env-token"));
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("PLUGHOST_ADMIN_TOKEN: the admin token is 15 bytes; at least 16 are required"), "{stderr}");
    assert!(
        !stderr.contains("short-env-token") && !stderr.contains("too-short"),
        "the token is never printed: {stderr}"
    );
}
