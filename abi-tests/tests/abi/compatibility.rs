//! Plugins built against other copies and versions of the SDK: what loads, and the one line
//! that refuses what does not.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::SystemTime;

use crate::support::{Load as _, PluginDir, fixtures, refusal};

#[test]
fn independent_copy_of_the_sdk_loads_and_works() {
    let dir = PluginDir::new();
    dir.add(&fixtures().sdk_copy, "copy.so");
    let report = dir.scan();
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    let plugin = &report.plugins[0];
    assert_eq!(plugin.name, "variant-copy");
    let token = plugin.token_provider.as_ref().unwrap().token().unwrap();
    assert!(token.expires_at > SystemTime::now());
    assert_eq!(token.secret.expose(), "token-from-copy");
    let env = plugin.env_mutator.as_ref().unwrap().mutate_env("ws", &BTreeMap::new()).unwrap();
    assert_eq!(env["BUILT_WITH_SDK"], "1.1.0");
}

#[test]
fn newer_minor_plugin_loads_into_this_host() {
    let dir = PluginDir::new();
    dir.add(&fixtures().sdk_1_2, "newer.so");
    let report = dir.scan();
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    let plugin = &report.plugins[0];
    assert_eq!((plugin.name.as_str(), plugin.sdk_version.as_str()), ("variant-minor-1-2", "1.2.0"));
    assert!(plugin.token_provider.as_ref().unwrap().token().is_ok());
    let env = plugin.env_mutator.as_ref().unwrap().mutate_env("ws", &BTreeMap::new()).unwrap();
    assert_eq!(env["BUILT_WITH_SDK"], "1.2.0");
}

#[test]
fn host_built_with_sdk_1_2_loads_todays_plugins_and_uses_the_new_capability() {
    let f = fixtures();
    let dir = PluginDir::new();
    let old = dir.add(&f.static_env, "static.so");
    let new = dir.add(&f.sdk_1_2, "newer.so");
    let out = Command::new(&f.probe_host_1_2).arg(&old).arg(&new).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0],
        format!("ok {}: name=static-env sdk=1.1.0 env=Some(Ok({{}})) token_live=None describe=None", old.display())
    );
    assert_eq!(
        lines[1],
        format!(
            "ok {}: name=variant-minor-1-2 sdk=1.2.0 env=Some(Ok({{\"BUILT_WITH_SDK\": \"1.2.0\"}})) \
             token_live=Some(Ok(true)) describe=Some(\"a plugin using a 1.2 capability\")",
            new.display()
        )
    );
}

#[test]
fn major_version_bump_is_refused() {
    let dir = PluginDir::new();
    dir.add(&fixtures().sdk_2_0, "next-major.so");
    let report = dir.scan();
    assert_eq!(refusal(&report, "next-major.so"), "built with plughost-sdk 2.0.0; this host loads 1.x");
}

#[test]
fn same_version_with_a_changed_field_type_is_refused_with_one_line() {
    let dir = PluginDir::new();
    dir.add(&fixtures().layout_mismatch, "mismatch.so");
    let report = dir.scan();
    let message = refusal(&report, "mismatch.so");
    assert_eq!(message.lines().count(), 1, "{message}");
    assert_eq!(message, "ABI mismatch at TokenProvider::token.expires_at: expected i64, found u64");
}
