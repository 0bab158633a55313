//! Panics inside a plugin become errors carrying the panic message; nothing unwinds into the
//! host, and the host (this test process) keeps running and keeps using the plugin.

use std::collections::BTreeMap;

use crate::support::{Load as _, PluginDir, fixtures, refusal};

#[test]
fn panic_in_init_refuses_the_plugin() {
    let dir = PluginDir::new();
    dir.add(&fixtures().panicking, "panic-in-init.so");
    dir.configure("panic-in-init.so", "panic_in = \"init\"\n");
    dir.add(&fixtures().static_env, "static.so");
    let report = dir.scan();
    assert_eq!(refusal(&report, "panic-in-init.so"), "init failed: init panicked: boom in init");
    assert_eq!(crate::support::names(&report), ["static-env"]);
}

#[test]
fn panic_in_env_mutation_is_an_error_and_the_plugin_stays_usable() {
    let dir = PluginDir::new();
    dir.add(&fixtures().panicking, "panic-in-env.so");
    dir.configure("panic-in-env.so", "panic_in = \"env\"\n");
    let report = dir.scan();
    let plugin = &report.plugins[0];
    let env = BTreeMap::from([("KEEP".to_owned(), "me".to_owned())]);
    for _ in 0..3 {
        let err = plugin.env_mutator.as_ref().unwrap().mutate_env("ws", &env).unwrap_err();
        assert_eq!(err, "mutate_env panicked: boom in mutate_env");
    }
    // The other capability of the same plugin still answers.
    assert!(plugin.token_provider.as_ref().unwrap().token().is_ok());
}

#[test]
fn panic_in_token_is_an_error_and_the_plugin_stays_usable() {
    let dir = PluginDir::new();
    dir.add(&fixtures().panicking, "panic-in-token.so");
    dir.configure("panic-in-token.so", "panic_in = \"token\"\n");
    let report = dir.scan();
    let plugin = &report.plugins[0];
    for _ in 0..3 {
        let err = plugin.token_provider.as_ref().unwrap().token().unwrap_err();
        assert_eq!(err, "token panicked: boom in token");
    }
    let env = plugin.env_mutator.as_ref().unwrap().mutate_env("ws", &BTreeMap::new()).unwrap();
    assert_eq!(env["TOUCHED_BY_PANICKING"], "1");
}
