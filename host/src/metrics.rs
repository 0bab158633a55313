//! Prometheus metrics: the recorder `serve` installs, and the per-request counters
//! (called by [`crate::api::RequestLayer`]).
//!
//! Families: `plughost_http_requests_total{route,method,status}` and
//! `plughost_http_request_duration_seconds{route}` (here; `route` is the route template, never
//! the concrete path, so workspace ids do not explode the label set),
//! `plughost_token_provider_seconds{plugin}`, `plughost_env_mutator_seconds{plugin}`,
//! `plughost_plugins_loaded` and `plughost_plugins_refused` (recorded by the registry).

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use axum::http::Method;
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

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
    metrics::describe_gauge!("plughost_plugins_loaded", "Plugins in the running set");
    metrics::describe_gauge!("plughost_plugins_refused", "Plugin files refused at the last scan");
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
        loop {
            tick.tick().await;
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

/// Handles of one route template's metrics.
struct RouteHandles {
    latency: Histogram,
    requests: HashMap<(&'static str, u16), Counter>,
}

thread_local! {
    /// This worker thread's handles by route template. `metrics::counter!` with owned labels
    /// allocates a label set and looks it up in the recorder on every call, and a shared table
    /// would bounce its lock between the cores on every request: both were a visible share of
    /// the cached token route's time. Each thread registers a label combination once (the
    /// recorder hands every thread the same underlying counter) and keeps the handle.
    static HANDLES: RefCell<HashMap<String, RouteHandles>> = RefCell::new(HashMap::new());
}

/// Counts a request answered and records its time.
pub fn record(route: &str, method: &'static str, status: u16, elapsed: Duration) {
    HANDLES.with_borrow_mut(|routes| {
        if !routes.contains_key(route) {
            let latency = metrics::histogram!("plughost_http_request_duration_seconds", "route" => route.to_owned());
            routes.insert(route.to_owned(), RouteHandles { latency, requests: HashMap::new() });
        }
        let Some(handles) = routes.get_mut(route) else { return };
        handles
            .requests
            .entry((method, status))
            .or_insert_with(|| {
                metrics::counter!("plughost_http_requests_total",
                    "route" => route.to_owned(), "method" => method, "status" => status.to_string())
            })
            .increment(1);
        handles.latency.record(elapsed.as_secs_f64());
    });
}
