//! Prometheus metrics: the recorder `serve` installs, and the per-request counters
//! (called by [`crate::api::RequestLayer`]).
//!
//! Families: `plughost_http_requests_total{route,method,status}` and
//! `plughost_http_request_duration_seconds{route}` (here; `route` is the route template, never
//! the concrete path, so workspace ids do not explode the label set),
//! `plughost_token_provider_seconds{plugin}`, `plughost_env_mutator_seconds{plugin}`,
//! `plughost_plugins_loaded` and `plughost_plugins_refused` (recorded by the registry),
//! `plughost_plugin_call_seconds{plugin,mode,outcome}` (every plugin call, by isolation mode),
//! and the supervision counters `plughost_plugin_crashes_total{plugin,cause}`,
//! `plughost_plugin_restarts_total{plugin}`, `plughost_plugin_quarantines_total{plugin}`.
//!
//! The request families are tallied per thread and merged into the recorder before every
//! render ([`flush`]), so a scrape sees every request answered before it.

use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::Duration;

use axum::http::Method;
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use thread_local::ThreadLocal;

/// Latency buckets (seconds) for every `*_seconds` histogram: sub-millisecond cached answers up
/// to the default 10 s plugin call timeout.
const SECONDS_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// How often histograms are drained into their rendered form between scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Installs the process-wide recorder. Call once, inside the tokio runtime (it starts the
/// upkeep task).
pub fn install() -> Result<PrometheusHandle, BuildError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), SECONDS_BUCKETS)?
        .install_recorder()?;
    metrics::describe_counter!("plughost_http_requests_total", "HTTP requests answered, by route template and status");
    metrics::describe_histogram!(
        "plughost_http_request_duration_seconds",
        metrics::Unit::Seconds,
        "Time to answer an HTTP request, by route template"
    );
    metrics::describe_histogram!(
        "plughost_token_provider_seconds",
        metrics::Unit::Seconds,
        "Time a token provider took to answer (timeouts included)"
    );
    metrics::describe_histogram!(
        "plughost_env_mutator_seconds",
        metrics::Unit::Seconds,
        "Time an env mutator took to answer (timeouts included)"
    );
    metrics::describe_histogram!(
        "plughost_plugin_call_seconds",
        metrics::Unit::Seconds,
        "Time a plugin call took, by isolation mode (process, in-process) and outcome"
    );
    metrics::describe_counter!(
        "plughost_plugin_crashes_total",
        "Plugin worker processes that died (signal, exit, killed when stuck), by cause"
    );
    metrics::describe_counter!("plughost_plugin_restarts_total", "Plugin worker processes restarted after a death");
    metrics::describe_counter!("plughost_plugin_quarantines_total", "Plugins quarantined for dying too often");
    metrics::describe_gauge!("plughost_plugins_loaded", "Plugins in the running set");
    metrics::describe_gauge!("plughost_plugins_refused", "Plugin files refused at the last scan");
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
        loop {
            tick.tick().await;
            flush();
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

/// The method as a label: the standard ones by name, anything else as "other" (a client
/// inventing methods must not grow the label set).
pub fn method_label(method: &Method) -> &'static str {
    [Method::GET, Method::POST, Method::PUT, Method::DELETE, Method::HEAD, Method::OPTIONS, Method::PATCH]
        .into_iter()
        .zip(["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"])
        .find_map(|(known, label)| (known == method).then_some(label))
        .unwrap_or("other")
}

/// Requests answered on one thread since its last flush into the recorder.
#[derive(Default)]
struct Tally {
    /// (route, method, status) and how many; a handful of combinations, so a short list.
    counts: Vec<((&'static str, &'static str, u16), u64)>,
    /// (route, seconds) of each request.
    latencies: Vec<(&'static str, f64)>,
}

/// Latencies a thread keeps before flushing them itself (about 16 KiB).
const FLUSH_AT: usize = 1024;

/// One tally per thread that answers requests.
///
/// Why not increment the recorder's handles directly: every handle is one shared atomic (the
/// histogram a shared queue), so with every core answering requests each increment moves a
/// cache line between cores, and each handle lookup by label hashes strings. On the cached token
/// route that was a visible share of a request's time. A thread's own tally is a lock nobody else
/// takes except [`flush`], and a short list of `&'static str` keys compared by address.
static TALLIES: LazyLock<ThreadLocal<Mutex<Tally>>> = LazyLock::new(ThreadLocal::new);

/// Counts a request answered and records its time. `route` is a route template (or
/// "unmatched") from the fixed set the router was built from.
pub fn record(route: &'static str, method: &'static str, status: u16, elapsed: Duration) {
    let mut tally = TALLIES.get_or_default().lock().unwrap_or_else(PoisonError::into_inner);
    let key = (route, method, status);
    match tally.counts.iter_mut().find(|(k, _)| std::ptr::eq(k.0, key.0) && k.1 == key.1 && k.2 == key.2) {
        Some((_, count)) => *count += 1,
        None => tally.counts.push((key, 1)),
    }
    tally.latencies.push((route, elapsed.as_secs_f64()));
    if tally.latencies.len() >= FLUSH_AT {
        tally.flush();
    }
}

/// Moves every thread's tally into the recorder. Called before each render, so a scrape counts
/// every request answered before it.
pub fn flush() {
    for tally in TALLIES.iter() {
        tally.lock().unwrap_or_else(PoisonError::into_inner).flush();
    }
}

impl Tally {
    fn flush(&mut self) {
        for ((route, method, status), count) in self.counts.drain(..) {
            metrics::counter!("plughost_http_requests_total",
                "route" => route, "method" => method, "status" => status.to_string())
            .increment(count);
        }
        let mut latencies = self.latencies.drain(..).peekable();
        while let Some((route, seconds)) = latencies.next() {
            let histogram = metrics::histogram!("plughost_http_request_duration_seconds", "route" => route);
            histogram.record(seconds);
            while let Some((_, seconds)) = latencies.next_if(|(next, _)| std::ptr::eq(*next, route)) {
                histogram.record(seconds);
            }
        }
    }
}
