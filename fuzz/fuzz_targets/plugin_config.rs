//! The plugin side of configuration: `InitContext::config` (`plugin-sdk/src/plugin.rs`), typed
//! deserialisation into a configuration struct like a vendor's, with errors naming the key.
//!
//! Asserts: nothing panics; the answer is deterministic; an error is one line, starts with
//! `invalid configuration` and never quotes a value of the input longer than 12 characters (a
//! value may be a secret, such as the private key below).
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use plughost_fuzz::{assert_no_value_quoted, assert_one_line};
use plughost_sdk::InitContext;
use serde::Deserialize;

/// A configuration with the shapes vendors use: required and optional keys, a secret, an enum,
/// a map, a list, a nested table, unknown keys refused.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // read through Debug only
struct Config {
    app_id: u64,
    private_key: String,
    api_url: Option<String>,
    #[serde(default)]
    overwrite: bool,
    #[serde(default)]
    mode: Mode,
    #[serde(default)]
    vars: BTreeMap<String, String>,
    #[serde(default)]
    hosts: Vec<String>,
    retry: Option<Retry>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Mode {
    #[default]
    InProcess,
    Process,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Retry {
    attempts: u8,
    backoff_ms: u32,
}

fn message_of(text: &str) -> Option<String> {
    InitContext::for_tests(text).config::<Config>().err().map(|err| err.message().to_owned())
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Some(message) = message_of(text) else { return };
    assert_eq!(Some(&message), message_of(text).as_ref(), "not deterministic");
    assert!(message.starts_with("invalid configuration"), "{message}");
    assert_one_line(&message);
    assert_no_value_quoted(text, message_of);
});
