//! What happens around every request, matched or not: it is counted and timed by route template
//! and status ([`crate::metrics`]), logged at debug level (method, route, status, time: never
//! headers or bodies, which carry tokens), cut off after the request timeout, and a refusal of a
//! request whose body was not read closes the connection.
//!
//! The request timeout covers everything after the request head: reading the body, waiting for
//! plugin calls (each with its own, shorter, timeout) and the store. When it passes, the handler
//! is dropped and the caller gets 503 `{"error":"request timed out"}` with `Connection: close`
//! (the body may be half read). 503 rather than 408: most of a request's time is the server's
//! (plugin calls), and a 408 invites clients to resend at once. Work that must not be abandoned
//! half-way runs in its own task (a plugin reload). The timer is armed only when the handler
//! did not answer at its first poll: an answer served from the token cache never touches it.
//!
//! Why the last: a handler refused before its body was read (401, 404, 405, 413, ...) leaves
//! the body's bytes on the connection. hyper then drains them only if they have already arrived,
//! and otherwise closes the connection after the answer without saying so, so a client that
//! pools connections may send its next request into a closed socket. `Connection: close` says
//! it: the client opens a fresh connection. Refusals are rare, so this costs nothing in practice.
//!
//! A hand-written layer with a named future rather than `middleware::from_fn`, which costs a
//! boxed clone of the inner service and a boxed future per request (measurable on the cached
//! token route).

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse as _, Response};
use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower::{Layer, Service};

use super::ApiError;
use crate::metrics;

/// Label of requests that matched no route.
const UNMATCHED: &str = "unmatched";

#[derive(Debug, Clone, Copy)]
pub struct RequestLayer {
    /// The router's route templates, to label a request by one of them.
    routes: &'static [&'static str],
    /// How long a request may take before it is answered 503.
    timeout: Duration,
}

impl RequestLayer {
    pub fn new(routes: &'static [&'static str], timeout: Duration) -> RequestLayer {
        RequestLayer { routes, timeout }
    }
}

impl<S> Layer<S> for RequestLayer {
    type Service = RequestService<S>;

    fn layer(&self, inner: S) -> RequestService<S> {
        RequestService { inner, routes: self.routes, timeout: self.timeout }
    }
}

#[derive(Debug, Clone)]
pub struct RequestService<S> {
    inner: S,
    routes: &'static [&'static str],
    timeout: Duration,
}

impl<S> Service<Request> for RequestService<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = RequestFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let started = Instant::now();
        // The router's own copy of the template, compared in place: no per-request copy.
        let route = request.extensions().get::<MatchedPath>().map_or(UNMATCHED, |matched| {
            self.routes.iter().copied().find(|route| *route == matched.as_str()).unwrap_or(UNMATCHED)
        });
        RequestFuture {
            route,
            method: metrics::method_label(request.method()),
            has_body: has_body(&request),
            started,
            timeout: self.timeout,
            deadline: None,
            inner: self.inner.call(request),
        }
    }
}

pin_project! {
    pub struct RequestFuture<F> {
        #[pin]
        inner: F,
        route: &'static str,
        method: &'static str,
        has_body: bool,
        started: Instant,
        timeout: Duration,
        // Armed at the first poll that finds the handler not done.
        #[pin]
        deadline: Option<Sleep>,
    }
}

impl<F> Future for RequestFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let (mut response, timed_out) = match this.inner.poll(cx) {
            Poll::Ready(Ok(response)) => (response, false),
            Poll::Pending => {
                if this.deadline.is_none() {
                    let at = tokio::time::Instant::from_std(*this.started + *this.timeout);
                    this.deadline.set(Some(tokio::time::sleep_until(at)));
                }
                match this.deadline.as_pin_mut().map(|deadline| deadline.poll(cx)) {
                    Some(Poll::Ready(())) => (ApiError::RequestTimeout.into_response(), true),
                    _ => return Poll::Pending,
                }
            }
        };
        let elapsed = this.started.elapsed();
        let status = response.status();
        if timed_out || (*this.has_body && (status.is_client_error() || status.is_server_error())) {
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        let (route, method, status) = (*this.route, *this.method, status.as_u16());
        if timed_out {
            tracing::warn!(method, route, timeout_ms = this.timeout.as_millis(), "request timed out");
        }
        tracing::debug!(method, route, status, elapsed_ms = elapsed.as_secs_f64() * 1000.0, "request");
        metrics::record(route, method, status, elapsed);
        Poll::Ready(Ok(response))
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
