// Load with reloads, short: 20,000 mixed requests (installation token, workspace token route,
// env chain) from 8 threads against the test build, while the plugins are reloaded, swapped and
// their workers replaced; every answer must be the expected one. Memory is printed, not
// asserted (a debug build on a shared machine is too noisy). The long run, with the RSS target,
// is `host/benches/soak.sh`; both use the kit's generator (`plughost_testkit::soak`).

use std::time::Duration;

use plughost_testkit::{SoakConfig, SoakPlugins, Window, soak};

use crate::harness::server;

#[test]
fn mixed_requests_through_plugin_reloads_all_answer_as_expected() {
    let plugins = SoakPlugins::from_fixtures();
    let s = plugins.serve(server().rust_log("warn"), 0).start();
    let config = SoakConfig {
        requests: 20_000,
        concurrency: 8,
        reload_every: Duration::from_millis(250),
        window: 5_000,
        workspaces: 4,
    };
    eprintln!("{}", Window::header());
    let report = soak(&s, &plugins, &config, |window| eprintln!("{window}"));
    eprint!("{report}");
    assert_eq!(report.errors(), 0, "{report}\nlog:\n{}", s.log());
    // The reloader always runs a whole cycle, whatever the speed: both plugins were swapped.
    assert!(report.workers_replaced >= 2, "{report}");
    assert_eq!(report.windows.last().map(|w| w.requests), Some(config.requests));
}
