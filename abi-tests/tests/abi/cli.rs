//! `plughost plugins check` and `plughost plugins list`, as vendors and operators run them:
//! one line per file, and the exit code says whether everything loads.

use std::os::unix::fs::PermissionsExt as _;

use plughost_testkit::plughost_command;

use crate::support::{PluginDir, fixtures};

#[test]
fn check_accepts_a_good_plugin() {
    let f = fixtures();
    let dir = PluginDir::new();
    let file = dir.add(&f.static_env, "libstatic_env.so");
    let out = plughost_command().args(["plugins", "check"]).arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("ok    {}: static-env 1.0.0 (plughost-sdk 1.1.0), provides env_mutator\n", file.display())
    );
}

#[test]
fn check_refuses_each_broken_fixture_with_its_reason() {
    let f = fixtures();
    let dir = PluginDir::new();
    let bytes = std::fs::read(&f.static_env).unwrap();
    let not_elf = dir.plugin_dir().join("not-elf.so");
    std::fs::write(&not_elf, "plain text").unwrap();
    let truncated = dir.plugin_dir().join("truncated.so");
    std::fs::write(&truncated, &bytes[..64]).unwrap();
    let writable = dir.add(&f.static_env, "writable.so");
    std::fs::set_permissions(&writable, std::fs::Permissions::from_mode(0o777)).unwrap();
    let panic_in_init = dir.add(&f.panicking, "panic-in-init.so");
    dir.configure("panic-in-init.so", "panic_in = \"init\"\n");
    let cases = [
        (not_elf, "no ELF header (not a shared library)".to_owned()),
        (truncated, "malformed or truncated ELF file:".to_owned()),
        (dir.add(&f.not_a_plugin, "no-entry.so"), "not a plughost plugin: entry symbol missing".to_owned()),
        (writable, "insecure: the plugin file is writable by others (mode 777); run chmod go-w".to_owned()),
        (dir.add(&f.sdk_2_0, "major.so"), "built with plughost-sdk 2.0.0; this host loads 1.x".to_owned()),
        (dir.add(&f.layout_mismatch, "mismatch.so"), "ABI mismatch at TokenProvider::token".to_owned()),
        (panic_in_init, "init failed: init panicked: boom in init".to_owned()),
    ];
    for (file, reason) in &cases {
        let out = plughost_command().args(["plugins", "check"]).arg(file).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{}: {stdout}", file.display());
        assert_eq!(stdout.lines().count(), 1, "{stdout}");
        let prefix = format!("FAIL  {}: {reason}", file.display());
        assert!(stdout.starts_with(&prefix), "expected {prefix:?}, got {stdout:?}");
    }
}

#[test]
fn check_of_several_files_fails_if_any_fails_and_reports_each() {
    let f = fixtures();
    let dir = PluginDir::new();
    let good = dir.add(&f.static_env, "good.so");
    let bad = dir.plugin_dir().join("bad.so");
    std::fs::write(&bad, "x").unwrap();
    let out = plughost_command().args(["plugins", "check"]).arg(&good).arg(&bad).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("ok    ") && lines[1].starts_with("FAIL  "), "{stdout}");
}

#[test]
fn list_shows_what_serve_would_load_and_why_the_rest_is_refused() {
    let f = fixtures();
    let dir = PluginDir::new();
    dir.add(&f.static_env, "10-static.so");
    dir.add(&f.sdk_2_0, "20-major.so");
    let out = plughost_command().args(["plugins", "list", "--plugin-dir"]).arg(dir.plugin_dir()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!("load     {}/10-static.so: static-env 1.0.0", dir.plugin_dir().display())),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "refuse   {}/20-major.so: built with plughost-sdk 2.0.0; this host loads 1.x",
            dir.plugin_dir().display()
        )),
        "{stdout}"
    );
}
