//! Prometheus metrics: the recorder `serve` installs, and the per-request middleware.
//!
//! Families: `plughost_http_requests_total{route,method,status}` and
//! `plughost_http_request_duration_seconds{route}` (here; `route` is the route template, never
//! the concrete path, so workspace ids do not explode the label set),
//! `plughost_token_provider_seconds{plugin}`, `plughost_env_mutator_seconds{plugin}`,
//! `plughost_plugins_loaded` and `plughost_plugins_refused` (recorded by the registry).

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{OnceLock, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::response::Response;
use tower::{Layer, Service};
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

/// Counts and times each request by route template and status, and logs it at debug level
/// (method, route, status, time: never headers or bodies, which carry tokens).
///
/// A hand-written layer rather than `middleware::from_fn`, which costs a boxed clone of the
/// inner service per request on top of the boxed future.
#[derive(Debug, Clone, Copy)]
pub struct TrackRequestsLayer;

impl<S> Layer<S> for TrackRequestsLayer {
    type Service = TrackRequests<S>;

    fn layer(&self, inner: S) -> TrackRequests<S> {
        TrackRequests { inner }
    }
}

#[derive(Debug, Clone)]
pub struct TrackRequests<S> {
    inner: S,
}

impl<S> Service<Request> for TrackRequests<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let started = Instant::now();
        let route = request.extensions().get::<MatchedPath>().cloned();
        let method = method_label(request.method());
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            let elapsed = started.elapsed();
            let status = response.status().as_u16();
            let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
            tracing::debug!(method, route, status, elapsed_ms = elapsed.as_secs_f64() * 1000.0, "request");
            let _ = (route, method, status, elapsed);
            Ok(response)
        })
    }
}

/// The method as a label: the standard ones by name, anything else as "other" (a client
/// inventing methods must not grow the label set).
fn method_label(method: &Method) -> &'static str {
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

/// Handles by route template. `metrics::counter!` with owned labels allocates a label set and
/// looks it up in the recorder on every call; on the token route that was a visible share of
/// the request's cost, so each label combination is registered once and its handle kept.
fn record(route: &str, method: &'static str, status: u16, elapsed: Duration) {
    static HANDLES: OnceLock<RwLock<HashMap<String, RouteHandles>>> = OnceLock::new();
    let table = HANDLES.get_or_init(Default::default);
    {
        let routes = table.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(handles) = routes.get(route) {
            if let Some(counter) = handles.requests.get(&(method, status)) {
                counter.increment(1);
                handles.latency.record(elapsed.as_secs_f64());
                return;
            }
        }
    }
    let mut routes = table.write().unwrap_or_else(PoisonError::into_inner);
    let handles = routes.entry(route.to_owned()).or_insert_with(|| RouteHandles {
        latency: metrics::histogram!("plughost_http_request_duration_seconds", "route" => route.to_owned()),
        requests: HashMap::new(),
    });
    handles
        .requests
        .entry((method, status))
        .or_insert_with(|| {
            metrics::counter!("plughost_http_requests_total",
                "route" => route.to_owned(), "method" => method, "status" => status.to_string())
        })
        .increment(1);
    handles.latency.record(elapsed.as_secs_f64());
}
