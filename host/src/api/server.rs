//! Serving the API over HTTP/1.1: accepting connections, their limits, and graceful shutdown.
//!
//! The rules, which [`serve`] follows:
//!
//! 1. At most `max_connections` connections are open at once. At the limit the server stops
//!    accepting: further connections wait in the kernel's listen queue (bounded by the listen
//!    backlog, beyond which the kernel refuses them) until a connection ends, and a warning says
//!    so at most once a minute. Waiting rather than refusing: an answer written before the request
//!    was read races the client's request and often arrives as a connection reset, and rules 2
//!    and 3 bound how long any slot stays taken.
//! 2. A connection must send a complete request head within `header_read_timeout`, counted from
//!    the connection's start for its first request and from the first byte of each later one.
//! 3. Between requests, a keep-alive connection may stay idle for `keep_alive_timeout`; a
//!    client that does not read its answer counts as idle too.
//! 4. While a request is being handled neither applies: the request layer's whole-request
//!    timeout does ([`super::RequestLayer`]).
//! 5. On shutdown the listener closes at once (new connections are refused); connections
//!    without a request in flight, half-sent ones included, close at once; a request in flight
//!    is answered with `Connection: close`, then its connection closes.
//!
//! Why not hyper's own `header_read_timeout`: hyper starts it as soon as a connection is idle,
//! so it also closes idle keep-alive connections, and one timer cannot be both a short header
//! timeout and a longer keep-alive. Instead each connection has a `Clock` that the socket
//! (first byte of a request) and the service (request handled, answered) move on, and the
//! connection's own task checks it, waking only when a deadline can have passed. On the request
//! path that costs two clock reads and a few relaxed stores to memory of that connection alone:
//! no write shared between connections, as in the rest of the hot path. For the same reason each
//! connection waits for the shutdown on its own `oneshot` (`StopSwitches`): a shared `watch`
//! or `Notify` (what `axum::serve` waits on) takes a lock shared by every connection each time
//! a connection's task wakes, that is several times per request.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Request;
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tower::Service as _;

use crate::settings;

/// How often, at most, the server says that the connection limit is reached.
const LIMIT_WARNING_INTERVAL: Duration = Duration::from_secs(60);

/// What a connection may cost the server (rules 1 to 3). Resolved by
/// [`crate::settings::Settings::connection_limits`]; [`Default`] gives the defaults declared there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub keep_alive_timeout: Duration,
    pub max_connections: u32,
}

impl Default for ConnectionLimits {
    fn default() -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: settings::DEFAULT_HEADER_READ_TIMEOUT,
            keep_alive_timeout: settings::DEFAULT_KEEP_ALIVE_TIMEOUT,
            max_connections: settings::DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then stops as rule 5 says and returns
/// once every connection has closed. Errors accepting a connection are logged, never fatal.
pub async fn serve(listener: TcpListener, app: Router, limits: ConnectionLimits, shutdown: impl Future<Output = ()>) {
    let slots = Arc::new(Semaphore::new(limits.max_connections as usize));
    let switches = Arc::new(StopSwitches::default());
    let mut shutdown = pin!(shutdown);
    let mut warned_at: Option<Instant> = None;
    loop {
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                if warned_at.is_none_or(|at| at.elapsed() >= LIMIT_WARNING_INTERVAL) {
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        "connection limit reached: new connections wait to be accepted until one closes"
                    );
                    warned_at = Some(Instant::now());
                }
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    slot = Arc::clone(&slots).acquire_owned() => slot.expect("the semaphore is never closed"),
                }
            }
        };
        let stream = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    accept_failed(&err).await;
                    continue;
                }
            },
        };
        let stop = StopSwitches::register(&switches);
        tokio::spawn(connection(stream, app.clone(), limits, stop, slot));
    }
    drop(listener);
    switches.stop_all();
    // Every connection holds a slot until it closes: all slots back means all closed.
    let _all = slots.acquire_many(limits.max_connections).await.expect("the semaphore is never closed");
}

/// A failed `accept`: the peer gave up before it was accepted (go on at once), or the process
/// is out of descriptors or memory (wait a moment for some to be released, as axum does).
async fn accept_failed(err: &io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(err.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        return;
    }
    tracing::error!(error = %err, "cannot accept a connection; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Serves one connection while holding its `_slot`, enforcing rules 2, 3 and 5.
async fn connection(stream: TcpStream, app: Router, limits: ConnectionLimits, stop: Stop, _slot: OwnedSemaphorePermit) {
    let clock = Arc::new(Clock::new());
    let io = TokioIo::new(WatchedIo { inner: stream, clock: Arc::clone(&clock) });
    let service = WatchedService { app, clock: Arc::clone(&clock) };
    // No timer: hyper's header-read timeout would also close idle keep-alive connections (see
    // the module header); `clock` enforces both instead.
    let mut conn = pin!(hyper::server::conn::http1::Builder::new().serve_connection(io, service));
    let mut check = pin!(tokio::time::sleep_until(clock.next_check(&limits, Instant::now()).into()));
    let mut stop = pin!(stop);
    let mut stopping = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(err) = result {
                    tracing::trace!(error = %err, "connection ended with an error");
                }
                return;
            }
            () = check.as_mut() => {
                let now = Instant::now();
                if let Some(expired) = clock.expired(&limits, now) {
                    tracing::debug!("closing a connection: {expired}");
                    return;
                }
                check.as_mut().reset(clock.next_check(&limits, now).into());
            }
            () = stop.as_mut(), if !stopping => {
                stopping = true;
                if clock.phase() != Phase::Busy {
                    return;
                }
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// The stop switch of every open connection (rule 5), by connection number.
#[derive(Default)]
struct StopSwitches {
    next: AtomicU64,
    open: Mutex<HashMap<u64, oneshot::Sender<()>>>,
}

impl StopSwitches {
    /// A new connection's switch, which unregisters itself when the connection ends.
    fn register(switches: &Arc<StopSwitches>) -> Stop {
        let id = switches.next.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = oneshot::channel();
        switches.open.lock().unwrap_or_else(PoisonError::into_inner).insert(id, sender);
        Stop { receiver, id, switches: Arc::clone(switches) }
    }

    /// Tells every open connection to stop (each switch completes when its sender is dropped).
    fn stop_all(&self) {
        self.open.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }
}

pin_project! {
    /// Completes when the server stops.
    struct Stop {
        #[pin]
        receiver: oneshot::Receiver<()>,
        id: u64,
        switches: Arc<StopSwitches>,
    }

    impl PinnedDrop for Stop {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            this.switches.open.lock().unwrap_or_else(PoisonError::into_inner).remove(this.id);
        }
    }
}

impl Future for Stop {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.project().receiver.poll(cx).map(|_| ())
    }
}

/// Where a connection is in its request cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request head (rule 2).
    Head = 0,
    /// A request is being handled (rule 4).
    Busy = 1,
    /// Answered; waiting for the next request (rule 3).
    Idle = 2,
}

/// A connection's phase and when it began, packed into one word (nanoseconds since the
/// connection started, shifted left by two, and the phase). Written and read only by the
/// connection's own task: relaxed ordering is enough.
struct Clock {
    started: Instant,
    state: AtomicU64,
}

impl Clock {
    fn new() -> Clock {
        Clock { started: Instant::now(), state: AtomicU64::new(Phase::Head as u64) }
    }

    fn phase(&self) -> Phase {
        match self.state.load(Ordering::Relaxed) & 0b11 {
            0 => Phase::Head,
            1 => Phase::Busy,
            _ => Phase::Idle,
        }
    }

    fn since(&self) -> Instant {
        self.started + Duration::from_nanos(self.state.load(Ordering::Relaxed) >> 2)
    }

    fn enter(&self, phase: Phase) {
        let nanos = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX >> 2);
        self.state.store(nanos << 2 | phase as u64, Ordering::Relaxed);
    }

    /// Why the connection must close at `now`, if it must.
    fn expired(&self, limits: &ConnectionLimits, now: Instant) -> Option<&'static str> {
        let (deadline, why) = self.deadline(limits)?;
        (now >= deadline).then_some(why)
    }

    fn deadline(&self, limits: &ConnectionLimits) -> Option<(Instant, &'static str)> {
        match self.phase() {
            Phase::Head => Some((self.since() + limits.header_read_timeout, "no complete request head in time")),
            Phase::Idle => Some((self.since() + limits.keep_alive_timeout, "idle for the keep-alive timeout")),
            Phase::Busy => None,
        }
    }

    /// When to look again: the current phase's deadline, or sooner, because a later phase's
    /// deadline can come no earlier than the shorter timeout from now.
    fn next_check(&self, limits: &ConnectionLimits, now: Instant) -> Instant {
        let soonest_later = now + limits.header_read_timeout.min(limits.keep_alive_timeout);
        self.deadline(limits).map_or(soonest_later, |(deadline, _)| deadline.min(soonest_later))
    }
}

/// The socket, telling the clock when the first byte of a request arrives after an answer.
struct WatchedIo {
    inner: TcpStream,
    clock: Arc<Clock>,
}

impl AsyncRead for WatchedIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        if buf.filled().len() > before && self.clock.phase() == Phase::Idle {
            self.clock.enter(Phase::Head);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for WatchedIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The router, telling the clock when a request starts being handled and when it is answered.
struct WatchedService {
    app: Router,
    clock: Arc<Clock>,
}

impl hyper::service::Service<Request<Incoming>> for WatchedService {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = Answer<<Router as tower::Service<Request>>::Future>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        self.clock.enter(Phase::Busy);
        // The router is always ready; a clone per request is what `axum::serve` does too.
        Answer { inner: self.app.clone().call(request.map(axum::body::Body::new)), clock: Arc::clone(&self.clock) }
    }
}

pin_project! {
    /// The router's answer; when it is ready the connection is idle again (hyper writes it out).
    struct Answer<F> {
        #[pin]
        inner: F,
        clock: Arc<Clock>,
    }
}

impl<F, E> Future for Answer<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let answer = ready!(this.inner.poll(cx));
        this.clock.enter(Phase::Idle);
        Poll::Ready(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ConnectionLimits = ConnectionLimits {
        header_read_timeout: Duration::from_secs(10),
        keep_alive_timeout: Duration::from_secs(60),
        max_connections: 1,
    };

    #[test]
    fn the_clock_applies_the_timeout_of_its_phase() {
        let clock = Clock::new();
        let start = clock.since();
        assert_eq!(clock.phase(), Phase::Head);
        assert_eq!(clock.next_check(&LIMITS, start), start + Duration::from_secs(10));
        assert_eq!(clock.expired(&LIMITS, start + Duration::from_secs(10)), Some("no complete request head in time"));

        clock.enter(Phase::Busy);
        assert_eq!(clock.phase(), Phase::Busy);
        let later = start + Duration::from_secs(100);
        assert_eq!(clock.expired(&LIMITS, later), None, "a request in flight is the request timeout's business");
        assert_eq!(clock.next_check(&LIMITS, later), later + Duration::from_secs(10));

        clock.enter(Phase::Idle);
        let idle = clock.since();
        assert!(idle >= start);
        assert_eq!(clock.expired(&LIMITS, idle + Duration::from_secs(30)), None, "longer than the header timeout");
        assert!(clock.expired(&LIMITS, idle + Duration::from_secs(60)).is_some());
        // An idle connection may start a request at any moment: look again within the header timeout.
        assert_eq!(clock.next_check(&LIMITS, idle), idle + Duration::from_secs(10));
        assert_eq!(clock.next_check(&LIMITS, idle + Duration::from_secs(55)), idle + Duration::from_secs(60));
    }
}
