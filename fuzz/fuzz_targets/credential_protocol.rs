//! git's credential protocol as the helper reads it (`credential-helper/src/protocol.rs`).
//!
//! Asserts: reading never panics; reading byte by byte gives the same answer as reading at once;
//! only a request over `MAX_REQUEST`, or with a line over `MAX_LINE`, is refused; `Debug` never shows the password; and what was
//! read, written back as lines, reads back the same.
#![no_main]

use std::io::BufReader;

use git_credential_plughost::{MAX_LINE, MAX_REQUEST, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let request = Request::read(data);
    match (&request, Request::read(BufReader::with_capacity(1, data))) {
        (Ok(at_once), Ok(byte_by_byte)) => assert_eq!(*at_once, byte_by_byte),
        (Err(_), Err(_)) => {}
        (at_once, byte_by_byte) => panic!("chunking changed the answer: {at_once:?} vs {byte_by_byte:?}"),
    }
    let Ok(request) = request else {
        // The lines read: up to the blank line that ends a request.
        let longest_line = data
            .split(|&b| b == b'\n')
            .take_while(|line| !line.is_empty() && *line != b"\r")
            .map(<[u8]>::len)
            .max()
            .unwrap_or(0);
        assert!(data.len() > MAX_REQUEST || longest_line > MAX_LINE, "a request within the limits was refused");
        return;
    };

    if let Some(password) = &request.password {
        let mut other = request.clone();
        other.password = Some(password.clone()).map(|mut p| {
            p.0 = format!("{}-other", p.0);
            p
        });
        assert_eq!(format!("{request:?}"), format!("{other:?}"), "Debug shows the password");
    }

    // Values never hold a line break, so `key=value` lines carry them; CRLF keeps a trailing CR.
    let mut written = String::new();
    for (key, value) in [
        ("protocol", request.protocol.as_deref()),
        ("host", request.host.as_deref()),
        ("username", request.username.as_deref()),
        ("password", request.password.as_ref().map(|p| p.0.as_str())),
    ] {
        if let Some(value) = value {
            assert!(!value.contains('\n'), "{key} holds a line break");
            written.push_str(&format!("{key}={value}\r\n"));
        }
    }
    written.push_str("\r\n");
    if written.len() <= MAX_REQUEST {
        assert_eq!(Request::read(written.as_bytes()).expect("a request within the limit"), request);
    }
});
