//! What happens around every request, matched or not: it is counted and timed by route template
//! and status ([`crate::metrics`]), logged at debug level (method, route, status, time: never
//! headers or bodies, which carry tokens), and a refusal of a request whose body was not read
//! closes the connection.
//!
//! Why the last: a handler refused before its body was read (401, 404, 405, 413, ...) leaves
//! the body's bytes on the connection. hyper then drains them only if they have already arrived,
//! and otherwise closes the connection after the answer without saying so, so a client that
//! pools connections may send its next request into a closed socket. `Connection: close` says
//! it: the client opens a fresh connection. Refusals are rare, so this costs nothing in practice.
//!
//! A hand-written layer rather than `middleware::from_fn`, which costs a boxed clone of the
//! inner service per request on top of the boxed future (measurable on the cached token route).

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use tower::{Layer, Service};

use crate::metrics;

#[derive(Debug, Clone, Copy)]
pub struct RequestLayer;

impl<S> Layer<S> for RequestLayer {
    type Service = RequestService<S>;

    fn layer(&self, inner: S) -> RequestService<S> {
        RequestService { inner }
    }
}

#[derive(Debug, Clone)]
pub struct RequestService<S> {
    inner: S,
}

impl<S> Service<Request> for RequestService<S>
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
        let method = metrics::method_label(request.method());
        let has_body = has_body(&request);
        let response = self.inner.call(request);
        Box::pin(async move {
            let mut response = response.await?;
            let elapsed = started.elapsed();
            let status = response.status();
            if has_body && (status.is_client_error() || status.is_server_error()) {
                response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
            let status = status.as_u16();
            tracing::debug!(method, route, status, elapsed_ms = elapsed.as_secs_f64() * 1000.0, "request");
            metrics::record(route, method, status, elapsed);
            Ok(response)
        })
    }
}

fn has_body(request: &Request) -> bool {
    let headers = request.headers();
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|length| length > 0)
}
