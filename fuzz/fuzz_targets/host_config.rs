//! The host's config file (`ConfigFile` in `host/src/settings.rs`) and the configuration the loader
//! hands a plugin: its sidecar TOML overridden by `[plugins.<name>]` (`host/src/loader/mod.rs`).
//!
//! The input is the config file, optionally followed by a NUL byte and the sidecar file of the
//! plugin `p`. Asserts: nothing panics; parsing is deterministic; every error is one line and
//! quotes no value; `Debug` of a config file shows nothing of the plugin tables; the merged
//! configuration reads back as the sidecar with each `[plugins.p]` key overriding, and is a fixed
//! point.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use plughost::fuzzing::{ConfigFile, plugin_config};
use plughost_fuzz::{assert_no_value_quoted, assert_one_line};

const PATH: &str = "/etc/plughost/plughost.toml";
const PLUGIN: &str = "p";

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (host_text, sidecar) = match text.split_once('\0') {
        Some((host, sidecar)) => (host, Some(sidecar)),
        None => (&*text, None),
    };

    let parse = |t: &str| ConfigFile::parse(t, Path::new(PATH));
    let config = match parse(host_text) {
        Ok(config) => config,
        Err(err) => {
            let message = err.to_string();
            assert_eq!(message, parse(host_text).unwrap_err().to_string(), "not deterministic");
            assert!(message.starts_with(&format!("config file {PATH}: ")), "{message}");
            assert_one_line(&message);
            assert_no_value_quoted(host_text, |t| parse(t).err().map(|err| err.to_string()));
            return;
        }
    };
    assert_eq!(format!("{config:?}"), format!("{:?}", parse(host_text).unwrap()), "not deterministic");
    assert_debug_ignores_plugin_tables(host_text, &config);

    let central = host_text.parse::<toml::Table>().expect("a valid config file is TOML");
    let central = central.get("plugins").and_then(|p| p.get(PLUGIN)).and_then(|p| p.as_table());
    match plugin_config(&config, PLUGIN, sidecar) {
        Ok(merged) => {
            let read_back: toml::Table = merged.parse().expect("the merged configuration is TOML");
            let sidecar_table = sidecar.map(|s| s.parse::<toml::Table>().expect("merged, so it parsed"));
            let expected =
                sidecar_table.iter().flatten().filter(|(key, _)| central.is_none_or(|c| !c.contains_key(*key)));
            let expected: toml::Table =
                expected.chain(central.into_iter().flatten()).map(|(k, v)| (k.clone(), v.clone())).collect();
            assert_eq!(toml::to_string(&read_back).unwrap(), toml::to_string(&expected).unwrap(), "merged wrongly");
            assert_eq!(plugin_config(&config, PLUGIN, Some(&merged)).unwrap(), merged, "not a fixed point");
        }
        Err(err) => {
            let sidecar = sidecar.expect("without a sidecar file, merging cannot fail");
            assert!(sidecar.parse::<toml::Table>().is_err(), "a valid sidecar file was refused: {err}");
            assert_one_line(&err.to_string());
            assert_no_value_quoted(sidecar, |s| plugin_config(&config, PLUGIN, Some(s)).err().map(|e| e.to_string()));
        }
    }
});

/// Plugin tables may hold secrets, so `Debug` of a config file names the plugins only: it is the
/// same with every plugin table emptied.
fn assert_debug_ignores_plugin_tables(text: &str, config: &ConfigFile) {
    let mut table = text.parse::<toml::Table>().expect("a valid config file is TOML");
    if let Some(toml::Value::Table(plugins)) = table.get_mut("plugins") {
        plugins.iter_mut().for_each(|(_, plugin)| *plugin = toml::Value::Table(toml::Table::new()));
    }
    let emptied = toml::to_string(&table).expect("TOML that was read can be written");
    let emptied = ConfigFile::parse(&emptied, Path::new(PATH)).expect("still a valid config file");
    assert_eq!(format!("{config:?}"), format!("{emptied:?}"), "Debug shows what a plugin table holds");
}
