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
    assert_eq!(version, 1);
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
