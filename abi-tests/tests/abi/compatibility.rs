//! Plugins built against other copies and versions of the SDK: what loads, and the one line
//! that refuses what does not.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::SystemTime;

use crate::support::{Load as _, PluginDir, fixtures, refusal};
use plughost::registry::Pick;

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

/// Each layout drift of a plugin built against an edited copy of the released 1.0.0 is refused
/// with one line naming the type and what changed in it.
#[test]
fn every_layout_drift_is_refused_with_a_line_naming_the_type_and_the_change() {
    let dir = PluginDir::new();
    let drifts = &fixtures().drifts;
    for (i, (file, _)) in drifts.iter().enumerate() {
        dir.add(file, &format!("drift-{i}.so"));
    }
    let report = dir.scan();
    assert!(report.plugins.is_empty(), "{:?}", report.plugins.iter().map(|p| &p.name).collect::<Vec<_>>());
    let found: Vec<String> = (0..drifts.len()).map(|i| refusal(&report, &format!("drift-{i}.so"))).collect();
    let expected: Vec<String> = drifts.iter().map(|(_, line)| format!("ABI mismatch at {line}")).collect();
    assert_eq!(found, expected);
}

/// The SDK version this workspace builds (plugin-sdk/Cargo.toml), as probe hosts print it.
fn current_sdk_version() -> String {
    let manifest = std::fs::read_to_string(plughost_testkit::workspace_dir().join("plugin-sdk/Cargo.toml")).unwrap();
    let table: toml::Table = manifest.parse().unwrap();
    table["package"]["version"].as_str().unwrap().to_owned()
}

/// A plugin built with the released 1.0.0 (the SDK vendors build 1.0 plugins with) loads into
/// this host, in both isolation modes, and serves tokens and env edits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_built_with_the_released_1_0_0_loads_into_this_host_in_both_modes() {
    for mode in [plughost::isolation::Mode::InProcess, plughost::isolation::Mode::Process] {
        let dir = PluginDir::new();
        dir.add(&fixtures().released_1_0, "released.so");
        let mut config = dir.config();
        config.isolation.default_mode = mode;
        let registry = plughost::registry::Registry::load(config, std::time::Duration::from_secs(10)).await.unwrap();
        let plugins = registry.snapshot();
        assert_eq!(plugins.rejected.len(), 0, "{mode:?}: {:?}", plugins.rejected);
        assert_eq!(
            (plugins.plugins[0].name.as_str(), plugins.plugins[0].sdk_version.as_str()),
            ("variant-released-1-0", "1.0.0")
        );
        let token = registry.token(Pick::Named("variant-released-1-0")).await.unwrap();
        assert_eq!(secrecy::ExposeSecret::expose_secret(&token.token), "token-from-released-1-0", "{mode:?}");
        let env = registry.mutate_env("ws", BTreeMap::new()).await.unwrap();
        assert_eq!(env["BUILT_WITH_SDK"], "1.0.0", "{mode:?}");
    }
}

/// A host built with the released 1.0.0 loads plugins built with today's SDK, including one that
/// provides the 1.1 scoped-token capability, and uses what 1.0 knows of them (tokens, env edits).
#[test]
fn a_host_built_with_the_released_1_0_0_loads_plugins_built_with_todays_sdk() {
    let f = fixtures();
    let dir = PluginDir::new();
    let tokens = dir.add(&f.test_token_provider, "tokens.so");
    let env = dir.add(&f.static_env, "static.so");
    let scoped = dir.add(&f.scoped_provider, "scoped.so");
    let out = Command::new(&f.probe_host_1_0).arg(&tokens).arg(&env).arg(&scoped).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let sdk = current_sdk_version();
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            format!(
                "ok {}: name=test-token-provider sdk={sdk} env=Some(Ok({{}})) token_live=Some(Ok(true)) describe=None",
                tokens.display()
            ),
            format!("ok {}: name=static-env sdk={sdk} env=Some(Ok({{}})) token_live=None describe=None", env.display()),
            format!(
                "ok {}: name=scoped-provider sdk={sdk} env=None token_live=Some(Ok(true)) describe=None",
                scoped.display()
            ),
        ]
    );
}

/// A host built with an independent copy of today's SDK (another path, another build) loads
/// plugins built with the released 1.0.0 and with today's SDK.
#[test]
fn a_host_built_with_an_independent_copy_of_todays_sdk_loads_1_0_0_and_current_plugins() {
    let f = fixtures();
    let dir = PluginDir::new();
    let released = dir.add(&f.released_1_0, "released.so");
    let current = dir.add(&f.test_token_provider, "tokens.so");
    let out = Command::new(&f.probe_host_copy).arg(&released).arg(&current).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            format!(
                "ok {}: name=variant-released-1-0 sdk=1.0.0 env=Some(Ok({{\"BUILT_WITH_SDK\": \"1.0.0\"}})) \
                 token_live=Some(Ok(true)) describe=None",
                released.display()
            ),
            format!(
                "ok {}: name=test-token-provider sdk={} env=Some(Ok({{}})) token_live=Some(Ok(true)) describe=None",
                current.display(),
                current_sdk_version()
            ),
        ]
    );
}

/// `sdk-releases/1.0.0` is the release, byte for byte: plugins built against it are built
/// against what vendors have. Its files and their SHA-256 are listed in `SHA256SUMS`, taken
/// from commit 518e55e when it was vendored.
#[test]
fn the_released_1_0_0_sdk_is_kept_byte_for_byte() {
    use sha2::Digest as _;
    let root = plughost_testkit::workspace_dir().join("sdk-releases/1.0.0");
    let sums = std::fs::read_to_string(root.join("SHA256SUMS")).unwrap();
    let mut listed = Vec::new();
    for line in sums.lines() {
        let (sum, file) = line.split_once("  ").unwrap();
        let bytes = std::fs::read(root.join(file)).unwrap();
        assert_eq!(format!("{:x}", sha2::Sha256::digest(&bytes)), sum, "{file} differs from the release");
        listed.push(file.trim_start_matches("./").to_owned());
    }
    let mut present: Vec<String> = walk(&root).into_iter().filter(|f| f != "SHA256SUMS").collect();
    present.sort();
    listed.sort();
    assert_eq!(present, listed, "files added to or removed from the release");
}

fn walk(root: &std::path::Path) -> Vec<String> {
    let mut files = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    files
}
