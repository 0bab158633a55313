//! What `deploy/` ships: the systemd unit passes `systemd-analyze verify`, and the example host
//! config is accepted by the real `plughost serve`, its values taking effect.

use std::process::Command;

use plughost_testkit::{Serve, fixtures, workspace_dir};

use crate::harness::ADMIN;

/// The unit as shipped, but for `ExecStart`'s binary, which `verify` requires to exist: it
/// points at the plughost this test run built.
#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let unit = std::fs::read_to_string(workspace_dir().join("deploy/systemd/plughost.service")).unwrap();
    for directive in
        ["ProtectSystem=strict", "NoNewPrivileges=yes", "StateDirectory=plughost", "ExecReload=/bin/kill -HUP $MAINPID"]
    {
        assert!(unit.lines().any(|line| line == directive), "the unit lacks {directive}");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plughost.service");
    let plughost = fixtures().plughost.display().to_string();
    std::fs::write(&path, unit.replace("/usr/local/bin/plughost", &plughost)).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap_or_else(|err| panic!("systemd-analyze: {err} (install Debian's systemd package, as .ci/run does)"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify failed:\n{stderr}");
    // Anything it says about this unit is a finding (lines about the machine it runs on are not).
    let findings: Vec<&str> = stderr.lines().filter(|line| line.contains("plughost.service")).collect();
    assert!(findings.is_empty(), "{findings:#?}");
}

/// The example config as shipped, with the addresses and directories a test needs given as
/// flags and the admin token in the environment (both outrank the file). What the file sets
/// must show: the static-env table it configures reaches the plugin.
#[test]
fn the_example_config_is_accepted_by_plughost_serve() {
    let example = std::fs::read_to_string(workspace_dir().join("deploy/plughost.example.toml")).unwrap();
    let s = Serve::builder().config(&example).plugin("static-env.so", &fixtures().static_env, None).start();
    assert_eq!(s.get("/readyz", None).status, 200);
    let reply = s.post("/admin/workspaces/ws-1/env", Some(ADMIN), Some(r#"{"env":{}}"#));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["env"]["PLATFORM_REGION"], "eu-west-1");
}
