//! Many git processes at once share one request to plughost through the cache lock.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::*;

#[test]
fn twenty_concurrent_fills_make_one_request() {
    let server = TokenServer::start(3600, 600);
    // Slow answers make every process arrive while the first request is in flight.
    server.set_delay(Duration::from_millis(400));
    let sandbox = Sandbox::new(&server.url);

    let children: Vec<_> = (0..20)
        .map(|_| {
            let mut cmd: Command = sandbox.git(&["credential", "fill"]);
            let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
            use std::io::Write;
            child.stdin.take().unwrap().write_all(b"protocol=https\nhost=github.com\n\n").unwrap();
            child
        })
        .collect();
    let outputs: Vec<_> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();

    let expected = server.current().unwrap().token;
    for out in &outputs {
        assert!(out.status.success(), "{}", stderr(out));
        assert_eq!(password(out).unwrap(), expected);
        assert_eq!(stderr(out), "", "waiting for the lock is silent");
    }
    assert_eq!(server.requests(), 1, "exactly one request for 20 concurrent fills");
}
