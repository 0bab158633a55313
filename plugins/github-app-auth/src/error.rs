//! Errors: each a sentence an operator can act on. None ever contains a token or a key:
//! GitHub's messages are quoted, response bodies of successful mints never are.

use std::fmt;
use std::time::{Duration, Instant, SystemTime};

/// A configuration problem, naming the setting (or the environment variable it came from).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {problem}")]
pub struct ConfigError {
    pub setting: String,
    pub problem: String,
}

impl ConfigError {
    pub(crate) fn new(setting: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError { setting: setting.into(), problem: problem.into() }
    }
}

/// Everything that can go wrong getting an installation token.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Not `#[from]`: that would make it the error's source too, and hosts that print the
    /// chain of causes would print it twice.
    #[error("invalid configuration: {0}")]
    Config(ConfigError),

    #[error(
        "GitHub refused the App's JWT ({status} {message}) at {url}, also after re-signing with GitHub's clock: \
         check app_id/client_id and that the private key belongs to this App"
    )]
    Unauthorized { status: u16, url: String, message: String },

    #[error("GitHub refused access ({status} {message}) at {url}: the App lacks access to this resource")]
    Forbidden { status: u16, url: String, message: String },

    /// GitHub's primary or a secondary rate limit. `retry_at` is when GitHub allows the next
    /// request: its `Retry-After`, else its `x-ratelimit-reset` (with none remaining), else a
    /// minute, as GitHub asks when it names no time.
    #[error(
        "GitHub is rate-limiting the App ({status} {message}) at {url}: GitHub allows the next request at {retry_at}"
    )]
    RateLimited { status: u16, url: String, message: String, retry_at: RetryAt },

    #[error(
        "{what} not found (404 {message}) at {url}: check the installation setting and that the App is installed there"
    )]
    NotFound { what: String, url: String, message: String },

    #[error(
        "GitHub refused the token request (422 {message}) at {url}: check repositories, repository_ids and permissions"
    )]
    Unprocessable { url: String, message: String },

    #[error("GitHub failed ({status} {message}) at {url}")]
    Server { status: u16, url: String, message: String },

    #[error("unexpected answer {status} ({message}) from {url}")]
    UnexpectedStatus { status: u16, url: String, message: String },

    #[error("no answer from {url} in time (connect timeout {connect:?}, request timeout {request:?})")]
    Timeout { url: String, connect: Duration, request: Duration },

    #[error("cannot reach {url}: {reason}")]
    Transport { url: String, reason: String },

    /// The TLS handshake failed, typically a server certificate from a CA not trusted here.
    #[error("TLS with {url} failed ({reason}): {hint}")]
    Tls { url: String, reason: String, hint: String },

    #[error("unusable answer from {url}: {reason}")]
    InvalidResponse { url: String, reason: String },

    #[error("cannot sign the App JWT: {reason}")]
    Signing { reason: String },

    #[error("{last} (gave up after {attempts} attempts in {elapsed:?})")]
    GaveUp { attempts: u32, elapsed: Duration, last: Box<Error> },

    /// GitHub's answer reached further than the request: the token was revoked, not handed out.
    #[error("GitHub answered {url} with a token wider than asked ({what}); it was revoked and not handed out")]
    WiderThanAsked { url: String, what: String },

    /// A revocation of a token this plugin cannot place: it is sent to no host.
    #[error(
        "cannot tell which GitHub host minted this token (not minted by this plugin since it started, e.g. before a \
         restart, and several hosts are configured): it was sent nowhere and stops working at its expiry"
    )]
    UnknownToken,
}

/// Why a scoped token is refused: the scope asks for what this plugin cannot grant. Each message
/// names the repository, permission, owner or host at fault; the host answers 422 with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    #[error("repository {name:?} is not \"owner/name\"")]
    NotOwnerSlashName { name: String },

    #[error(
        "the repositories of one scope must have one owner, found {first_owner} ({first}) and {second_owner} ({second})"
    )]
    MixedOwners { first_owner: String, first: String, second_owner: String, second: String },

    #[error("permission {name}: level {level:?} is not read, write or admin")]
    BadLevel { name: String, level: String },

    #[error("a token reaches at most 500 repositories; the scope names {count}")]
    TooManyRepositories { count: usize },

    #[error("no GitHub App installation is configured for host {host} (hosts served: {served})")]
    UnknownHost { host: String, served: String },

    #[error("no GitHub App installation is configured for owner {owner} at {host} (owners served there: {served})")]
    UnknownOwner { owner: String, host: String, served: String },

    #[error(
        "{} not exist or {} not accessible to the installation on {owner} at {host}",
        plural(repositories, "repository", "repositories", "does", "do"),
        if repositories.len() == 1 { "is" } else { "are" }
    )]
    NotAccessible { repositories: Vec<String>, owner: String, host: String },

    #[error("permission {name}:{asked} is not granted to the installation on {owner} at {host} ({granted})")]
    NotGranted { name: String, asked: String, granted: String, owner: String, host: String },

    #[error("{what} is outside what this plugin is configured to grant on {owner} ({limit})")]
    OutsideConfigured { what: String, owner: String, limit: String },

    /// A 422 this plugin cannot explain further: GitHub's message.
    #[error("GitHub refused the scope for the installation on {owner} at {host}: {message}")]
    GitHub { owner: String, host: String, message: String },
}

/// `repository acme/x does` / `repositories acme/x, acme/y do`.
fn plural(items: &[String], one: &str, many: &str, verb_one: &str, verb_many: &str) -> String {
    match items {
        [only] => format!("{one} {only} {verb_one}"),
        _ => format!("{many} {} {verb_many}", items.join(", ")),
    }
}

/// Why no scoped token was made: the request (a [`Refusal`]) or the minting failed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ScopedError {
    #[error("scope cannot be granted: {0}")]
    Refused(Refusal),
    #[error(transparent)]
    Failed(Error),
}

impl From<Error> for ScopedError {
    fn from(err: Error) -> Self {
        ScopedError::Failed(err)
    }
}

impl From<Refusal> for ScopedError {
    fn from(refusal: Refusal) -> Self {
        ScopedError::Refused(refusal)
    }
}

impl From<ConfigError> for Error {
    fn from(err: ConfigError) -> Self {
        Error::Config(err)
    }
}

/// A moment GitHub named for the next request, on this machine's monotonic and wall clocks.
/// Displays as `2025-01-01T12:00:03Z (in 30 s)`, the wait counted from when it is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryAt {
    instant: Instant,
    wall: SystemTime,
}

impl RetryAt {
    /// `wait` after `received`, the moment GitHub's answer arrived.
    pub(crate) fn after(received: Instant, wait: Duration) -> Self {
        let instant = received + wait;
        RetryAt { instant, wall: SystemTime::now() + instant.saturating_duration_since(Instant::now()) }
    }

    pub fn instant(&self) -> Instant {
        self.instant
    }

    /// On this machine's wall clock.
    pub fn wall(&self) -> SystemTime {
        self.wall
    }

    pub fn remaining(&self) -> Duration {
        self.instant.saturating_duration_since(Instant::now())
    }
}

impl fmt::Display for RetryAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let left = self.remaining();
        let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        write!(f, "{} (in {secs} s)", humantime::format_rfc3339_seconds(self.wall))
    }
}

impl Error {
    /// When GitHub allows the next request, if it said (a rate limit), on the wall clock.
    pub fn not_before(&self) -> Option<SystemTime> {
        self.retry_at().map(|at| at.wall())
    }

    pub(crate) fn retry_at(&self) -> Option<RetryAt> {
        match self {
            Error::RateLimited { retry_at, .. } => Some(*retry_at),
            Error::GaveUp { last, .. } => last.retry_at(),
            _ => None,
        }
    }

    /// Whether trying again later can help: GitHub or the network failing, not our setup.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::RateLimited { .. } | Error::Server { .. } | Error::Timeout { .. } | Error::Transport { .. } => true,
            Error::GaveUp { last, .. } => last.is_transient(),
            _ => false,
        }
    }
}
