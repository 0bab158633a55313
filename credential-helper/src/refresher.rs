//! `refresh`: keeps the cache (and gh's hosts file) fresh ahead of expiry.
//!
//! One instance per cache directory (`refresher.pid`, held under flock for the life of
//! the process). For each host it wakes at `expires_at - margin - jitter`, fetches through
//! the same locked path as `get`, and writes gh's `hosts.yml`. Failures are retried after
//! 1 s, 2 s, 4 s ... capped at `PLUGHOST_CREDENTIAL_BACKOFF_MAX_SECS` (60 s), each with
//! jitter. One line per event on stderr, never a token. SIGTERM/SIGINT end it cleanly;
//! SIGHUP is ignored so it survives the terminal that started it.

use std::io::Write;
use std::sync::mpsc;
use std::time::Duration;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::cache::Cache;
use crate::config::Config;
use crate::fsutil::{self, LockGuard, PathError};
use crate::gh;
use crate::resolve::{Failure, obtain};
use crate::time::{format_rfc3339, now_unix};

/// Longest jitter before a scheduled refresh.
const MAX_JITTER_SECS: u64 = 60;

/// Why the refresher did not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RefreshError {
    /// No cache directory is configured.
    #[error("no cache directory: set HOME or PLUGHOST_CREDENTIAL_CACHE_DIR")]
    NoCacheDir,
    /// The cache directory or PID file is unusable.
    #[error(transparent)]
    Path(#[from] PathError),
    /// Another refresher holds the PID file.
    #[error("a refresher is already running for {dir} (pid {pid})")]
    AlreadyRunning {
        /// The cache directory.
        dir: String,
        /// The PID written by the other instance, as found.
        pid: String,
    },
    /// The signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    /// `--once` and at least one host failed.
    #[error("{failed} of {total} hosts could not be refreshed")]
    Failed {
        /// Hosts that failed.
        failed: usize,
        /// Hosts tried.
        total: usize,
    },
}

/// The path of the PID file in `cache_dir`.
pub fn pid_file(cache: &Cache) -> std::path::PathBuf {
    cache.dir().join("refresher.pid")
}

/// True if a refresher currently holds the PID file lock of this cache.
pub fn is_running(cache: &Cache) -> Result<bool, PathError> {
    Ok(fsutil::try_lock(&pid_file(cache))?.is_none())
}

/// Takes the PID file: the returned guard must live as long as the refresher.
pub fn claim_pid_file(cache: &Cache) -> Result<LockGuard, RefreshError> {
    let path = pid_file(cache);
    match fsutil::try_lock(&path)? {
        Some(guard) => {
            let mut file = guard.file();
            let written = file
                .set_len(0)
                .and_then(|()| file.write_all(format!("{}\n", std::process::id()).as_bytes()))
                .and_then(|()| file.sync_all());
            written.map_err(|e| PathError::new("cannot write", &path, e))?;
            Ok(guard)
        }
        None => Err(RefreshError::AlreadyRunning {
            dir: cache.dir().display().to_string(),
            pid: std::fs::read_to_string(&path).map(|s| s.trim().to_owned()).unwrap_or_else(|_| "?".into()),
        }),
    }
}

/// One line on stderr, with a UTC timestamp.
fn log(message: &str) {
    let line = format!("{} git-credential-plughost refresh: {message}\n", format_rfc3339(now_unix()));
    // A closed stderr must not kill the refresher.
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// `attempt` = 1 for the first retry: 1 s, 2 s, 4 s ... up to `cap`, then between half and all of it.
pub fn backoff(attempt: u32, cap: Duration) -> Duration {
    let base = Duration::from_secs(1u64 << attempt.saturating_sub(1).min(20)).min(cap);
    let half = base / 2;
    half + Duration::from_millis(crate::random_u64() % (half.as_millis() as u64 + 1))
}

/// When to refresh a token expiring at `expires_at`: `margin` before it, minus up to a
/// tenth of the remaining time (at most 60 s) of jitter so many workspaces do not wake together.
pub fn refresh_at(expires_at: u64, margin: u64, now: u64) -> u64 {
    let target = expires_at.saturating_sub(margin);
    let window = target.saturating_sub(now) / 10;
    let jitter = crate::random_u64() % (window.min(MAX_JITTER_SECS) + 1);
    target - jitter
}

struct HostState {
    host: String,
    next_at: u64,
    failures: u32,
    /// Expiry of the token last seen: the next refresh must bring a later one.
    known_expiry: u64,
}

/// Runs until SIGTERM/SIGINT (or, with `once`, after one round).
pub fn run(config: &Config, once: bool) -> Result<(), RefreshError> {
    let dir = config.cache_dir.as_ref().ok_or(RefreshError::NoCacheDir)?;
    let cache = Cache::open(dir)?;
    let _pid = claim_pid_file(&cache)?;

    let (tx, rx) = mpsc::channel::<i32>();
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP]).map_err(RefreshError::Signals)?;
    let handle = signals.handle();
    std::thread::spawn(move || {
        for signal in signals.forever() {
            if tx.send(signal).is_err() {
                break;
            }
        }
    });

    let hosts: Vec<String> = config.hosts.iter().map(|h| h.host.clone()).collect();
    log(&format!(
        "started (pid {}, hosts {}, margin {}s, backoff cap {}s)",
        std::process::id(),
        hosts.join(","),
        config.margin_secs,
        config.backoff_max.as_secs()
    ));
    if config.platform_url.is_none() {
        log("PLATFORM_URL is not set: every refresh will fail until it is");
    }
    let now = now_unix();
    let mut states: Vec<HostState> =
        hosts.into_iter().map(|host| HostState { host, next_at: now, failures: 0, known_expiry: 0 }).collect();

    let result = loop {
        let now = now_unix();
        let mut failed = 0;
        for state in states.iter_mut().filter(|s| s.next_at <= now) {
            if !refresh_host(config, &cache, state) {
                failed += 1;
            }
        }
        if once {
            break if failed == 0 { Ok(()) } else { Err(RefreshError::Failed { failed, total: states.len() }) };
        }
        let next = states.iter().map(|s| s.next_at).min().unwrap_or(now + 3600);
        let wait = Duration::from_secs(next.saturating_sub(now_unix()));
        match rx.recv_timeout(wait) {
            Ok(SIGHUP) => log("ignoring SIGHUP"),
            Ok(signal) => {
                log(&format!("received {}, exiting", if signal == SIGINT { "SIGINT" } else { "SIGTERM" }));
                break Ok(());
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break Ok(()),
        }
    };
    handle.close();
    result
}

/// One refresh of one host; schedules the next. True on success.
fn refresh_host(config: &Config, cache: &Cache, state: &mut HostState) -> bool {
    let mut warnings = Vec::new();
    // Anything expiring within the margin (or not newer than what we saw) is replaced.
    let need_after = (now_unix() + config.margin_secs).max(state.known_expiry);
    let outcome = obtain(config, Some(cache), &state.host, need_after, &mut warnings);
    for warning in warnings {
        log(&format!("{}: {warning}", state.host));
    }
    let now = now_unix();
    match outcome {
        Ok(got) => {
            let expires_at = got.token.expires_at;
            state.known_expiry = expires_at;
            let when = refresh_at(expires_at, config.margin_secs, now);
            let origin = if got.fetched { "new token from plughost" } else { "cached token (refreshed elsewhere)" };
            if let Some(dir) = &config.gh_config_dir {
                if let Err(e) = gh::write_token(dir, &state.host, &got.token.token) {
                    log(&format!("{}: cannot update gh hosts file: {e}", state.host));
                }
            }
            if when <= now {
                // plughost keeps handing out a token inside our margin: ask again soon, not in a tight loop.
                state.failures += 1;
                let delay = backoff(state.failures, config.backoff_max);
                state.next_at = now + delay.as_secs().max(1);
                log(&format!(
                    "{}: {origin} expires at {} (within the {}s margin); asking again in {}s",
                    state.host,
                    format_rfc3339(expires_at),
                    config.margin_secs,
                    delay.as_secs().max(1)
                ));
                false
            } else {
                state.failures = 0;
                state.next_at = when;
                log(&format!(
                    "{}: {origin} valid until {}; next refresh at {}",
                    state.host,
                    format_rfc3339(expires_at),
                    format_rfc3339(when)
                ));
                true
            }
        }
        Err(Failure { error, still_valid }) => {
            state.failures += 1;
            let delay = backoff(state.failures, config.backoff_max).as_secs().max(1);
            state.next_at = now + delay;
            let cached = match still_valid {
                Some(c) => format!("; cached token still valid until {}", format_rfc3339(c.expires_at)),
                None => String::new(),
            };
            log(&format!(
                "{}: refresh failed (attempt {}): {error}{cached}; retrying in {delay}s",
                state.host, state.failures
            ));
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_with_jitter() {
        let cap = Duration::from_secs(60);
        for _ in 0..50 {
            let first = backoff(1, cap);
            assert!(first >= Duration::from_millis(500) && first <= Duration::from_secs(1));
            let fourth = backoff(4, cap);
            assert!(fourth >= Duration::from_secs(4) && fourth <= Duration::from_secs(8));
            let late = backoff(40, cap);
            assert!(late >= Duration::from_secs(30) && late <= cap);
        }
    }

    #[test]
    fn refresh_is_scheduled_before_the_margin() {
        for _ in 0..50 {
            let at = refresh_at(10_000, 300, 6_400);
            assert!((9_640..=9_700).contains(&at), "{at}");
            assert_eq!(refresh_at(10_000, 300, 9_700), 9_700);
            assert!(refresh_at(10_000, 300, 9_900) <= 9_900);
        }
    }
}
