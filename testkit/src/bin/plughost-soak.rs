//! `plughost-soak`: the soak of `plughost serve` (see the kit's `soak` module), as a program for
//! the long run. `host/benches/soak.sh` builds it and runs it against the release build:
//!
//! ```text
//! bash host/benches/soak.sh                       # 1,000,000 requests, 16 threads, a reload step every 2 s
//! target/release/plughost-soak --requests 200000 --concurrency 8 --reload-every-ms 500
//! ```
//!
//! It prints a row per window (requests/s, errors, RSS and descriptors of the host, RSS of each
//! worker), then the totals, and exits 1 if any answer was unexpected or the host's RSS grew by
//! `--max-rss-drift` percent or more between the second window and the last.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use plughost_testkit::{Serve, SoakConfig, SoakPlugins, Window, soak};

#[derive(Debug, Parser)]
#[command(about = "Mixed requests against plughost serve while its plugins are reloaded; counts errors, samples RSS")]
struct Args {
    /// The plughost binary [default: beside this program].
    #[arg(long)]
    plughost: Option<PathBuf>,
    /// The test token provider library [default: libtest_token_provider.so beside this program].
    #[arg(long)]
    token_provider: Option<PathBuf>,
    /// The static-env library [default: libstatic_env.so beside this program].
    #[arg(long)]
    static_env: Option<PathBuf>,
    /// Requests in all.
    #[arg(long, default_value_t = 1_000_000)]
    requests: u64,
    /// Threads sending them, one connection each.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Milliseconds between two reload steps.
    #[arg(long, default_value_t = 2000)]
    reload_every_ms: u64,
    /// Requests per row of the table.
    #[arg(long, default_value_t = 100_000)]
    window: u64,
    /// Workspaces the workspace-route and env requests go to.
    #[arg(long, default_value_t = 4)]
    workspaces: usize,
    /// The host's `token_cache_ms`; 0 sends every token request to the provider's worker.
    #[arg(long, default_value_t = 0)]
    token_cache_ms: u64,
    /// Fail if the host's RSS grows by this many percent or more from the second row to the last.
    #[arg(long, default_value_t = 5.0)]
    max_rss_drift: f64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let beside = std::env::current_exe().ok().and_then(|exe| exe.parent().map(PathBuf::from)).unwrap_or_default();
    let plughost = args.plughost.unwrap_or_else(|| beside.join("plughost"));
    let plugins = SoakPlugins {
        token_provider: args.token_provider.unwrap_or_else(|| beside.join("libtest_token_provider.so")),
        static_env: args.static_env.unwrap_or_else(|| beside.join("libstatic_env.so")),
    };
    let config = SoakConfig {
        requests: args.requests,
        concurrency: args.concurrency,
        reload_every: Duration::from_millis(args.reload_every_ms),
        window: args.window,
        workspaces: args.workspaces,
    };
    let serve = plugins.serve(Serve::builder().binary(&plughost).rust_log("warn"), args.token_cache_ms).start();
    println!(
        "plughost {} (pid {}): {} requests, {} threads, a reload step every {} ms, token_cache_ms = {}",
        plughost.display(),
        serve.pid(),
        config.requests,
        config.concurrency,
        args.reload_every_ms,
        args.token_cache_ms
    );
    println!("{}", Window::header());
    let report = soak(&serve, &plugins, &config, |window| println!("{window}"));
    print!("{report}");

    let log = serve.log();
    let complaints: Vec<&str> = log.lines().filter(|line| line.contains("WARN") || line.contains("ERROR")).collect();
    if !complaints.is_empty() {
        println!("the host logged {} warnings or errors, the first ones:", complaints.len());
        for line in complaints.iter().take(10) {
            println!("  {line}");
        }
    }
    let drift = report.rss_drift_percent();
    let drift_ok = drift.is_none_or(|d| d < args.max_rss_drift);
    println!(
        "targets: errors {} (target 0): {}; host RSS drift {} (target < {} %): {}",
        report.errors(),
        if report.errors() == 0 { "met" } else { "MISSED" },
        drift.map_or("n/a".to_owned(), |d| format!("{d:+.2} %")),
        args.max_rss_drift,
        if drift_ok { "met" } else { "MISSED" }
    );
    if report.errors() == 0 && drift_ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
