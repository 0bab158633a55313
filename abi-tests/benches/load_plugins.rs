//! Loading 100 distinct plugins from a directory, cold (copy into the cache, dlopen, layout
//! check, init) and warm (a reload that finds every file unchanged).
//!
//! Run: `cargo bench -p abi-tests --bench load_plugins`. Target: 100 plugins cold under 1 s.
//!
//! The 100 plugins are one build of the `numbered` fixture with a distinct number stamped into
//! its name literal, so each is a different file (own hash, own cached path, own dlopen).
//! Libraries are never unloaded, so each round maps 100 more: rounds are few.

use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, Instant};

use plughost::loader;
use plughost_sdk::abi::LogLevel;
use plughost_testkit::PluginDir;

const PLUGINS: usize = 100;
const ROUNDS: usize = 5;

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this once as a smoke test.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let fixtures = plughost_testkit::fixtures();
    let original = std::fs::read(&fixtures.numbered).unwrap();
    let needle = abi_tests::NUMBERED_NAME.as_bytes();
    let positions: Vec<usize> =
        original.windows(needle.len()).enumerate().filter(|(_, w)| *w == needle).map(|(i, _)| i).collect();
    assert!(!positions.is_empty(), "name literal not found in the numbered fixture");

    let rounds = if smoke { 1 } else { ROUNDS };
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    for round in 0..rounds {
        let dir = PluginDir::new();
        let config = loader::LoaderConfig { max_log_level: LogLevel::Warn, ..dir.loader_config() };
        for i in 0..PLUGINS {
            let mut bytes = original.clone();
            let name = format!("numbered-plugin-{:06}", round * PLUGINS + i);
            for &at in &positions {
                bytes[at..at + needle.len()].copy_from_slice(name.as_bytes());
            }
            let path = config.plugin_dir.join(format!("{i:03}-numbered.so"));
            std::fs::write(&path, &bytes).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let started = Instant::now();
        let report = loader::scan(&config, &[]).unwrap();
        cold.push(started.elapsed());
        assert_eq!(report.plugins.len(), PLUGINS, "{:?}", report.rejected);
        assert!(report.plugins.iter().all(|p| p.token_provider.as_ref().unwrap().token().is_ok()));

        let started = Instant::now();
        let again = loader::scan(&config, &report.plugins).unwrap();
        warm.push(started.elapsed());
        assert_eq!(again.plugins.len(), PLUGINS);
    }
    println!(
        "load {PLUGINS} plugins ({} build, {} KiB each), {rounds} rounds: cold median {:?} (min {:?}, max {:?}); warm reload median {:?}",
        fixtures.profile(),
        original.len() / 1024,
        median(&mut cold),
        cold.iter().min().unwrap(),
        cold.iter().max().unwrap(),
        median(&mut warm),
    );
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}
