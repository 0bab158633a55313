#![forbid(unsafe_code)]

//! An emulator of the GitHub REST API routes a GitHub App uses, for tests and demos.
//!
//! It is a real HTTP/1.1 server (axum on tokio, bound to loopback by default) that checks App
//! JWTs the way GitHub does and mints opaque installation tokens. It is NOT GitHub: nothing it
//! issues works anywhere else, and its `/_emulator/...` control routes are unauthenticated.
//!
//! # Design
//!
//! - [`Emulator::start`] binds the listener on the calling thread (so the address is known at
//!   once) and serves on a small tokio runtime of its own, on its own thread: tests written with
//!   plain std threads and async tests can both use it, and dropping the handle stops it.
//! - Every GitHub route is answered both at `/...` (github.com) and at `/api/v3/...`
//!   (GitHub Enterprise Server).
//! - TLS mode ([`EmulatorConfig::tls`]): https with a server certificate from a [`TestCa`], a
//!   throwaway CA generated at run time, as GitHub Enterprise Server behind a private CA is met
//!   in the field: clients succeed only when told to trust that CA.
//! - The emulator has its own clock: a configurable skew shifts the time it checks `iat`/`exp`
//!   against and the time it reports in every response's `Date` header, so clients can be tested
//!   on their recovery from clock skew.
//! - Faults are a queue consumed one per GitHub-route request: answer with a status, add
//!   latency, drop the connection without answering, or start one of GitHub's rate limits.
//!   A rate limit, like GitHub's, refuses every GitHub-route request until the time it named
//!   (`x-ratelimit-reset` for the primary limit, `Retry-After` for a secondary one); queued
//!   faults wait meanwhile. The control routes never consume faults.
//! - Every GitHub-route request is logged with its arrival time and answer
//!   ([`EmulatorHandle::attempts`]), so tests can check when a client asked, not only how often.
//!
//! # Current features
//!
//! - `POST /app/installations/{id}/access_tokens` (JWT; down-scoping by `repositories`,
//!   `repository_ids`, `permissions`), `DELETE /installation/token` (installation token),
//!   `GET /app`, `GET /app/installations`, `GET /app/installations/{id}`,
//!   `GET /orgs/{org}/installation`, `GET /repos/{owner}/{repo}/installation` (JWT),
//!   `GET /installation/repositories`, `GET /repos/{owner}/{repo}` and
//!   `GET`/`PUT /repos/{owner}/{repo}/contents/{path}` (installation token).
//! - Scopes checked as GitHub checks them: a token request may name only repositories (by name
//!   or id) of its own installation, at most 500, and no permission above the installation's
//!   (422 with GitHub's messages otherwise). A scoped token then reaches exactly that: other
//!   repositories answer 404 (as GitHub hides what a token cannot see), a missing permission
//!   403 `Resource not accessible by integration` (contents: `read` to `GET`, `write` to `PUT`).
//! - `DELETE /installation/token` kills that token at once (401 `Bad credentials` from then
//!   on, including for a second `DELETE`); other tokens keep working.
//! - Several Apps and installations ([`EmulatorConfig::with_installation`], `--also-installed`),
//!   each on its own account with its own repositories; an App is installed once per account.
//! - Control over HTTP, for tests in another process (JSON bodies):
//!
//! | route | body | answer |
//! | --- | --- | --- |
//! | `GET /_emulator/stats` | | `{"mints","requests":{"POST /app/installations/{id}/access_tokens":n,..},"clock_skew_secs","pending_faults"}` |
//! | `GET /_emulator/attempts` | | `[{"route","at","status"}]`: every GitHub-route request, `at` RFC 3339 with milliseconds (machine clock), `status` `null` for a dropped connection |
//! | `POST /_emulator/faults` | `{"fault":"status","status":503,"count":2}`, `{"fault":"latency","millis":2000}`, `{"fault":"drop"}`, `{"fault":"primary_rate_limit","reset_in_secs":60,"status":429}`, `{"fault":"secondary_rate_limit","retry_after_secs":60}` (`count` defaults to 1, a rate limit's `status` to 403) | 204 |
//! | `DELETE /_emulator/faults` | | 204; also ends a rate limit in force |
//! | `PUT /_emulator/clock-skew` | `{"secs":-600}` | 204 |
//! | `PUT /_emulator/token-ttl` | `{"secs":8}` | 204 |
//! | `POST /_emulator/tokens/check` | `{"token":"ghs_..."}` | `{"valid","known","revoked","installation_id","expires_at","repositories","permissions"}` |
//!
//! - Stricter than GitHub in one place: a request must send an `Accept` that allows JSON
//!   (GitHub assumes JSON when it is absent), so clients are checked for sending it.
//!
//! # Non-features
//!
//! No client certificates, no webhooks, no rate-limit headers outside injected rate limits (and no counting of requests
//! against a limit), no OAuth user flows, no pagination (lists are answered
//! whole), no HTTP/2.
//!
//! # The public interface is:
pub use config::{AccountType, AppConfig, EmulatorConfig, InstallationConfig, RepoConfig};
pub use config::{TEST_APP_ID, TEST_CLIENT_ID, TEST_INSTALLATION_ID, TEST_ORG};
pub use faults::Fault;
pub use keys::{KeyError, TestKeyPair, shared_test_key};
pub use server::{Attempt, Emulator, EmulatorHandle, StartError, Stats, TokenInfo};
pub use tls::{TestCa, TlsError};

mod api;
mod auth;
mod config;
mod control;
mod faults;
mod keys;
mod server;
mod state;
mod tls;
