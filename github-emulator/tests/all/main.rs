//! Behaviour of the GitHub emulator over real HTTP (ureq against the server on loopback).
//! One module per behaviour; `support` holds the client and JWT helpers.

mod app_jwt;
mod binary;
mod clock_skew;
mod control_http;
mod discovery;
mod faults;
mod rate_limits;
mod scoping;
mod support;
mod tls;
mod tokens;
