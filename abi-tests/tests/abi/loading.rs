//! Good plugins: they load, report what they are, and several of one interface chain in
//! file-name order, each seeing the previous one's output.

use std::collections::BTreeMap;

use crate::support::{Load as _, PluginDir, fixtures, names};

#[test]
fn static_env_loads_and_mutates() {
    let dir = PluginDir::new();
    dir.add(&fixtures().static_env, "10-static.so");
    dir.configure("10-static.so", "[vars]\nTZ = \"UTC\"\n");
    let report = dir.scan();
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    let plugin = &report.plugins[0];
    assert_eq!(
        (plugin.name.as_str(), plugin.version.as_str(), plugin.sdk_version.as_str()),
        ("static-env", "1.0.0", "1.1.0")
    );
    assert_eq!(plugin.capabilities(), ["env_mutator"]);
    assert_eq!(plugin.sha256, plughost::loader::sha256_hex(&std::fs::read(&fixtures().static_env).unwrap()));
    let env = plugin.env_mutator.as_ref().unwrap().mutate_env("ws-1", &BTreeMap::new()).unwrap();
    assert_eq!(env, BTreeMap::from([("TZ".to_owned(), "UTC".to_owned())]));
}

#[test]
fn two_env_mutators_chain_in_file_name_order() {
    let dir = PluginDir::new();
    dir.add(&fixtures().static_env, "10-static.so");
    dir.configure("10-static.so", "[vars]\nGREETING = \"hello\"\n");
    dir.add(&fixtures().append_env, "20-append.so");
    dir.configure("20-append.so", "suffix = \", world\"\n");
    let report = dir.scan();
    assert_eq!(names(&report), ["static-env", "append-env"]);
    let mut env = BTreeMap::new();
    for plugin in &report.plugins {
        env = plugin.env_mutator.as_ref().unwrap().mutate_env("ws-1", &env).unwrap();
    }
    assert_eq!(env["GREETING"], "hello, world");

    // Renamed so the appender runs first: it no longer sees GREETING.
    let dir = PluginDir::new();
    dir.add(&fixtures().append_env, "10-append.so");
    dir.configure("10-append.so", "suffix = \"!\"\n");
    dir.add(&fixtures().static_env, "20-static.so");
    let report = dir.scan();
    assert_eq!(names(&report), ["append-env", "static-env"]);
    let err = report.plugins[0].env_mutator.as_ref().unwrap().mutate_env("ws-1", &BTreeMap::new()).unwrap_err();
    assert_eq!(err, "GREETING is not set");
}

#[test]
fn host_config_table_overrides_the_sidecar_file() {
    let dir = PluginDir::new();
    dir.add(&fixtures().static_env, "static.so");
    dir.configure("static.so", "[vars]\nTZ = \"UTC\"\n");
    let central: toml::Table = "vars = { TZ = \"Europe/Paris\" }".parse().unwrap();
    let mut config = dir.config();
    config.plugin_configs.insert("static-env".to_owned(), central);
    let report = plughost::loader::scan(&config, &[]).expect("plugin directory readable");
    let env = report.plugins[0].env_mutator.as_ref().unwrap().mutate_env("ws", &BTreeMap::new()).unwrap();
    assert_eq!(env["TZ"], "Europe/Paris");
}

#[test]
fn bad_configuration_is_refused_naming_the_setting() {
    let dir = PluginDir::new();
    dir.add(&fixtures().static_env, "static.so");
    dir.configure("static.so", "overwrite = \"sometimes\"\n");
    let report = dir.scan();
    assert!(report.plugins.is_empty());
    let message = crate::support::refusal(&report, "static.so");
    assert!(message.starts_with("init failed: invalid configuration: overwrite: invalid type: string"), "{message}");
    assert!(!message.contains("sometimes"), "the value is never quoted: {message}");
}

#[test]
fn files_that_are_not_shared_libraries_are_skipped() {
    let dir = PluginDir::new();
    dir.add(&fixtures().static_env, "static.so");
    std::fs::write(dir.plugin_dir().join("README.md"), "notes").unwrap();
    std::fs::write(dir.plugin_dir().join(".static.so.swp"), "editor leftovers").unwrap();
    let report = dir.scan();
    assert_eq!(names(&report), ["static-env"]);
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
}
