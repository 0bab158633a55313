//! Files that must be refused before the dynamic loader runs any of their code, each with its
//! one-line reason, while the good plugin beside them loads.

use std::os::unix::fs::PermissionsExt as _;

use crate::support::{Load as _, PluginDir, fixtures, names, refusal};

fn dir_with_good_plugin() -> PluginDir {
    let dir = PluginDir::new();
    dir.add(&fixtures().static_env, "50-good.so");
    dir
}

#[test]
fn file_that_is_not_elf() {
    let dir = dir_with_good_plugin();
    std::fs::write(dir.plugin_dir().join("10-script.so"), "#!/bin/sh\necho not a library\n").unwrap();
    let report = dir.scan();
    assert_eq!(refusal(&report, "10-script.so"), "no ELF header (not a shared library)");
    assert_eq!(names(&report), ["static-env"]);
}

#[test]
fn truncated_shared_library() {
    let dir = dir_with_good_plugin();
    let bytes = std::fs::read(&fixtures().static_env).unwrap();
    // Cut inside the segments: headers parse, data is missing.
    std::fs::write(dir.plugin_dir().join("10-truncated.so"), &bytes[..bytes.len() / 3]).unwrap();
    // Cut inside the ELF header itself.
    std::fs::write(dir.plugin_dir().join("11-stub.so"), &bytes[..40]).unwrap();
    let report = dir.scan();
    let message = refusal(&report, "10-truncated.so");
    assert!(
        message.starts_with("malformed or truncated ELF file:")
            || message.starts_with("truncated: a segment ends at byte"),
        "{message}"
    );
    assert!(refusal(&report, "11-stub.so").starts_with("malformed or truncated ELF file:"));
    assert_eq!(names(&report), ["static-env"]);
}

#[test]
fn shared_library_without_the_entry_symbol() {
    let dir = dir_with_good_plugin();
    dir.add(&fixtures().not_a_plugin, "10-not-a-plugin.so");
    let report = dir.scan();
    assert_eq!(refusal(&report, "10-not-a-plugin.so"), "not a plughost plugin: entry symbol missing");
    assert_eq!(names(&report), ["static-env"]);
}

#[test]
fn world_writable_plugin_file() {
    let dir = dir_with_good_plugin();
    let file = dir.add(&fixtures().static_env, "10-writable.so");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o757)).unwrap();
    let report = dir.scan();
    assert_eq!(
        refusal(&report, "10-writable.so"),
        "insecure: the plugin file is writable by others (mode 757); run chmod go-w"
    );
    assert_eq!(names(&report), ["static-env"]);
}

#[test]
fn group_writable_plugin_directory_refuses_the_scan() {
    let dir = dir_with_good_plugin();
    std::fs::set_permissions(dir.plugin_dir(), std::fs::Permissions::from_mode(0o775)).unwrap();
    let err = plughost::loader::scan(&dir.config(), &[]).unwrap_err();
    assert_eq!(err.to_string(), "insecure: the plugin directory is writable by group (mode 775); run chmod go-w");
}

#[test]
fn duplicate_plugin_names() {
    let dir = PluginDir::new();
    let first = dir.add(&fixtures().static_env, "10-static.so");
    dir.add(&fixtures().static_env, "20-static-again.so");
    let report = dir.scan();
    assert_eq!(
        refusal(&report, "20-static-again.so"),
        format!("duplicate plugin name \"static-env\": already loaded from {}", first.display())
    );
    assert_eq!(names(&report), ["static-env"]);
}

#[test]
fn replaced_file_loads_as_a_new_version_from_a_new_cached_path() {
    let dir = PluginDir::new();
    let file = dir.add(&fixtures().static_env, "10-plugin.so");
    let first = dir.scan();
    assert_eq!(names(&first), ["static-env"]);
    // Overwrite the operator's file with another plugin: the running copy lives in the cache.
    dir.add(&fixtures().append_env, "10-plugin.so");
    dir.configure("10-plugin.so", "suffix = \"x\"\n");
    let second = plughost::loader::scan(&dir.config(), &first.plugins).unwrap();
    assert_eq!(names(&second), ["append-env"]);
    let cache = dir.state_dir().join("plugin-cache");
    let mut cached: Vec<_> = std::fs::read_dir(&cache).unwrap().map(|e| e.unwrap().file_name()).collect();
    cached.sort();
    assert_eq!(cached.len(), 2, "{cached:?}");
    assert!(file.exists());
    // The first version is still callable: its mapped copy was never touched.
    let env = first.plugins[0].env_mutator.as_ref().unwrap().mutate_env("ws", &Default::default()).unwrap();
    assert!(env.is_empty());
}
