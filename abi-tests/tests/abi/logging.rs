//! A plugin's `tracing` events and its panic reports reach the host's log stream, tagged with
//! the plugin's name.

use crate::support::{Load as _, PluginDir, capture_logs, captured_logs, fixtures};

#[test]
fn plugin_events_and_panic_reports_reach_the_host_log() {
    capture_logs();
    let dir = PluginDir::new();
    dir.add(&fixtures().panicking, "logging.so");
    dir.configure("logging.so", "panic_in = \"token\"\n");
    let report = dir.scan();
    let _ = report.plugins[0].token_provider.as_ref().unwrap().token();

    let logs = captured_logs();
    let init_line = logs
        .lines()
        .find(|l| l.contains("panicking fixture initialising"))
        .unwrap_or_else(|| panic!("plugin event missing from host log:\n{logs}"));
    assert!(init_line.contains("INFO") && init_line.contains("plugin=\"panicking\""), "{init_line}");
    assert!(init_line.contains("panic_in=token"), "{init_line}");
    let panic_line = logs
        .lines()
        .find(|l| l.contains("plugin panicked at") && l.contains("boom in token"))
        .unwrap_or_else(|| panic!("panic report missing from host log:\n{logs}"));
    assert!(panic_line.contains("ERROR") && panic_line.contains("panicking"), "{panic_line}");
}
