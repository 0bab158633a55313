//! The token cache: refresh ahead of expiry, one upstream request however many callers,
//! a still-valid token when GitHub fails, and one backoff shared by every caller.
//!
//! Rules, in order, for each caller:
//! 1. A cached token with at least `margin` left is returned at once.
//! 2. If a refresh is in flight, wait for it (single flight). A caller that holds a fallback
//!    waits at most [`FALLBACK_WAIT`], then takes the fallback.
//! 3. If the last refresh failed and its backoff has not run out, do not ask GitHub again yet:
//!    return the still-valid token, or the last error when there is none. After a rate limit,
//!    the backoff lasts at least until the time GitHub named, and the error says when that is.
//! 4. Otherwise this caller refreshes, every request ending by the retry deadline. With a
//!    still-valid fallback it tries once (a failure serves the fallback and schedules the next
//!    try after a jittered backoff); without one it retries transient failures with jittered
//!    backoff until the retry deadline. A rate limit's wait is never cut short: if GitHub's
//!    time falls after the deadline, the caller fails at once with the rate-limit error.
//!
//! A fallback is a cached token with at least `min_validity` left (`min_validity_secs`, default
//! 60 s): a token with seconds left would let git start a clone and fail part-way, which is
//! worse than a clear error now. Even a just-minted token is never returned with less than
//! [`MIN_VALIDITY`] left.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rand::Rng;

use crate::client::GitHubClient;
use crate::error::Error;
use crate::token::InstallationToken;

/// Shortest validity any served token may have, a just-minted one included.
pub const MIN_VALIDITY: Duration = Duration::from_secs(1);
/// How long a caller holding a valid fallback waits for an in-flight refresh.
pub const FALLBACK_WAIT: Duration = Duration::from_secs(1);

/// Where new tokens come from: GitHub in production.
pub trait TokenSource: Send + Sync {
    fn fetch(&self) -> Result<InstallationToken, Error>;

    /// [`fetch`](Self::fetch), giving up by `deadline`. Sources that cannot bound their
    /// requests may keep the default.
    fn fetch_before(&self, deadline: Instant) -> Result<InstallationToken, Error> {
        let _ = deadline;
        self.fetch()
    }
}

impl TokenSource for GitHubClient {
    fn fetch(&self) -> Result<InstallationToken, Error> {
        self.mint()
    }

    fn fetch_before(&self, deadline: Instant) -> Result<InstallationToken, Error> {
        self.mint_before(Some(deadline))
    }
}

/// Backoff between attempts: `initial`, doubling up to `max`, each wait drawn uniformly from
/// its upper half (jitter, so many hosts do not retry in step).
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Total time a refresh may take, retries and waits included. Keep it below the host's
    /// plugin call timeout, or callers get the host's timeout instead of this plugin's error.
    pub deadline: Duration,
}

impl RetryPolicy {
    fn backoff(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(16);
        let ceiling = self.initial_backoff.saturating_mul(1 << exp).min(self.max_backoff);
        let half = ceiling / 2;
        half + rand::thread_rng().gen_range(Duration::ZERO..=half)
    }
}

#[derive(Default)]
struct State {
    token: Option<InstallationToken>,
    refreshing: bool,
    /// Bumped at the end of every refresh, so waiters know theirs finished.
    generation: u64,
    last_error: Option<Error>,
    /// Consecutive failed refreshes.
    failures: u32,
    /// No refresh before this, after a failure: a backoff, or the time GitHub named.
    retry_at: Option<Instant>,
}

impl State {
    fn fresh(&self, margin: Duration) -> Option<&InstallationToken> {
        self.token.as_ref().filter(|t| t.remaining() >= margin)
    }

    /// What may be served while GitHub fails.
    fn fallback(&self, min_validity: Duration) -> Option<&InstallationToken> {
        self.token.as_ref().filter(|t| t.remaining() >= min_validity.max(MIN_VALIDITY))
    }

    /// The token the last refresh brought, when it succeeded.
    fn just_minted(&self) -> Option<&InstallationToken> {
        self.token.as_ref().filter(|t| self.last_error.is_none() && t.remaining() >= MIN_VALIDITY)
    }
}

/// Thread-safe cache in front of a [`TokenSource`].
pub struct TokenCache<S> {
    source: S,
    margin: Duration,
    min_validity: Duration,
    retry: RetryPolicy,
    state: Mutex<State>,
    refreshed: Condvar,
}

/// The state is consistent after any panic of a holder (every update is a single assignment
/// under the lock), so a poisoned lock is safe to keep using.
fn relock<T>(result: Result<T, PoisonError<T>>) -> T {
    result.unwrap_or_else(PoisonError::into_inner)
}

impl<S: TokenSource> TokenCache<S> {
    /// `margin`: a token with less than this left is refreshed before being served.
    /// `min_validity`: while GitHub fails, a cached token is served only with this much left.
    pub fn new(source: S, margin: Duration, min_validity: Duration, retry: RetryPolicy) -> Self {
        TokenCache { source, margin, min_validity, retry, state: Mutex::default(), refreshed: Condvar::new() }
    }

    pub fn source(&self) -> &S {
        &self.source
    }

    /// A token with at least the margin left, or, while GitHub fails, a cached one with at least
    /// `min_validity` left.
    pub fn token(&self) -> Result<InstallationToken, Error> {
        let mut state = relock(self.state.lock());
        loop {
            if let Some(token) = state.fresh(self.margin) {
                return Ok(token.clone());
            }
            if state.refreshing {
                state = self.wait_for_refresh(state);
                let finished = !state.refreshing;
                if let Some(token) = state.fresh(self.margin).or_else(|| state.just_minted().filter(|_| finished)) {
                    return Ok(token.clone());
                }
                if let Some(token) = state.fallback(self.min_validity) {
                    return Ok(token.clone());
                }
                if let Some(err) = &state.last_error {
                    return Err(err.clone());
                }
                continue;
            }
            if state.retry_at.is_some_and(|at| Instant::now() < at) {
                if let Some(token) = state.fallback(self.min_validity) {
                    return Ok(token.clone());
                }
                if let Some(err) = &state.last_error {
                    return Err(err.clone());
                }
            }
            return self.refresh(state);
        }
    }

    /// Waits until the in-flight refresh ends (or, holding a fallback, [`FALLBACK_WAIT`]).
    fn wait_for_refresh<'a>(&'a self, mut state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        let generation = state.generation;
        let started = Instant::now();
        while state.refreshing && state.generation == generation {
            if state.fallback(self.min_validity).is_some() {
                let waited = started.elapsed();
                if waited >= FALLBACK_WAIT {
                    break;
                }
                state = relock(self.refreshed.wait_timeout(state, FALLBACK_WAIT - waited)).0;
            } else {
                state = relock(self.refreshed.wait(state));
            }
        }
        state
    }

    /// Runs the refresh as the single caller allowed to, then wakes the others.
    fn refresh<'a>(&'a self, mut state: MutexGuard<'a, State>) -> Result<InstallationToken, Error> {
        state.refreshing = true;
        let has_fallback = state.fallback(self.min_validity).is_some();
        drop(state);

        // A panicking source must not leave `refreshing` set forever: the guard clears it.
        let guard = RefreshGuard { cache: self };
        let deadline = Instant::now() + self.retry.deadline;
        let result = if has_fallback { self.source.fetch_before(deadline) } else { self.fetch_with_retries(deadline) };
        std::mem::forget(guard);

        let mut state = relock(self.state.lock());
        state.refreshing = false;
        state.generation = state.generation.wrapping_add(1);
        let outcome = match result {
            Ok(token) => {
                state.token = Some(token.clone());
                state.failures = 0;
                state.retry_at = None;
                state.last_error = None;
                Ok(token)
            }
            Err(err) => {
                state.failures = state.failures.saturating_add(1);
                let backoff = Instant::now() + self.retry.backoff(state.failures);
                // Every caller honours GitHub's time: one backoff for the installation.
                state.retry_at = Some(err.retry_at().map_or(backoff, |at| at.instant().max(backoff)));
                state.last_error = Some(err.clone());
                match state.fallback(self.min_validity) {
                    Some(token) => {
                        tracing::warn!(error = %err, remaining = ?token.remaining(), "token refresh failed; serving the cached token while it is valid");
                        Ok(token.clone())
                    }
                    None => Err(err),
                }
            }
        };
        drop(state);
        self.refreshed.notify_all();
        outcome
    }

    fn fetch_with_retries(&self, deadline: Instant) -> Result<InstallationToken, Error> {
        with_retries(&self.retry, deadline, |deadline| self.source.fetch_before(deadline))
    }

    /// Forgets the cached token if it is `secret` (it was revoked): the next caller mints anew.
    /// Returns whether it was the cached one.
    pub fn forget(&self, secret: &str) -> bool {
        let mut state = relock(self.state.lock());
        let held = state.token.as_ref().is_some_and(|t| t.expose() == secret);
        if held {
            state.token = None;
        }
        held
    }
}

/// Calls `attempt` until it succeeds, fails for good, or `deadline` comes: transient failures
/// are retried after a jittered backoff, never before the time a rate limit named; a rate
/// limit whose time falls after the deadline fails at once, saying when.
pub(crate) fn with_retries<T>(
    policy: &RetryPolicy,
    deadline: Instant,
    mut attempt: impl FnMut(Instant) -> Result<T, Error>,
) -> Result<T, Error> {
    let started = Instant::now();
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let err = match attempt(deadline) {
            Ok(value) => return Ok(value),
            Err(err) if !err.is_transient() => return Err(err),
            Err(err) => err,
        };
        let now = Instant::now();
        let backoff = now + policy.backoff(attempts);
        let wake = err.retry_at().map_or(backoff, |at| at.instant().max(backoff));
        if wake >= deadline {
            if attempts == 1 && err.retry_at().is_some() {
                // GitHub's time is past the deadline: say when, at once.
                return Err(err);
            }
            return Err(Error::GaveUp { attempts, elapsed: started.elapsed(), last: Box::new(err) });
        }
        let wait = wake - now;
        tracing::debug!(error = %err, ?wait, attempts, "token request failed; retrying");
        std::thread::sleep(wait);
    }
}

/// Clears `refreshing` and wakes waiters if the refresh unwinds.
struct RefreshGuard<'a, S: TokenSource> {
    cache: &'a TokenCache<S>,
}

impl<S: TokenSource> Drop for RefreshGuard<'_, S> {
    fn drop(&mut self) {
        let mut state = relock(self.cache.state.lock());
        state.refreshing = false;
        state.generation = state.generation.wrapping_add(1);
        drop(state);
        self.cache.refreshed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half() {
        let policy = RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
            deadline: Duration::from_secs(10),
        };
        for (failures, ceiling) in [(1, 100), (2, 200), (3, 400), (4, 800), (5, 1000), (40, 1000)] {
            let ceiling = Duration::from_millis(ceiling);
            for _ in 0..200 {
                let wait = policy.backoff(failures);
                assert!(
                    wait >= ceiling / 2 && wait <= ceiling,
                    "failures {failures}: {wait:?} outside [{:?}, {ceiling:?}]",
                    ceiling / 2
                );
            }
        }
        let distinct: std::collections::HashSet<Duration> = (0..50).map(|_| policy.backoff(3)).collect();
        assert!(distinct.len() > 10, "jittered, not fixed");
    }
}
