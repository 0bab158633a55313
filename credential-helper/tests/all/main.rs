//! Behaviour tests of `git-credential-plughost`: the real binary, driven by real git,
//! against an in-test token server standing in for plughost.
//!
//! Each module is one behaviour; `support` holds the fixtures.

mod concurrency;
mod erase;
mod failures;
mod fallback;
mod get;
mod input_limits;
mod install;
mod refresher;
mod smart_http;
mod support;
mod transport;
