//! git's input is bounded: an endless line (or endless input) ends in one clear error line and
//! exit 1 after at most a little more than the limit was read, never in unbounded memory.

use std::io::Write;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::support::*;

/// What the writer gives up at, so a helper without limits still ends the test.
const WRITE_CAP: u64 = 64 * 1024 * 1024;

/// Feeds `head` and then `filler` forever to `get` on stdin; returns the exit code, stderr and
/// how many bytes the helper took before it stopped reading.
fn feed_endlessly(sandbox: &Sandbox, head: &[u8], filler: &'static [u8]) -> (Option<i32>, String, u64) {
    let mut child = sandbox
        .command(BIN)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let written = Arc::new(AtomicU64::new(0));
    let counter = written.clone();
    let head = head.to_vec();
    let writer = std::thread::spawn(move || {
        if stdin.write_all(&head).is_err() {
            return;
        }
        counter.fetch_add(head.len() as u64, Ordering::SeqCst);
        // Stops when the helper closes its end (EPIPE) or at the cap.
        while counter.load(Ordering::SeqCst) < WRITE_CAP {
            if stdin.write_all(filler).is_err() {
                return;
            }
            counter.fetch_add(filler.len() as u64, Ordering::SeqCst);
        }
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("the helper still reads after {} bytes", written.load(Ordering::SeqCst));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    writer.join().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.stdout.is_empty(), "no credential on stdout");
    (status.code(), stderr(&out), written.load(Ordering::SeqCst))
}

#[test]
fn an_endless_line_is_refused_after_a_bounded_read() {
    let server = TokenServer::start(3600, 600);
    let sandbox = Sandbox::new(&server.url);
    let (code, err, taken) = feed_endlessly(&sandbox, b"protocol=https\nhost=github.com\npath=", &[b'a'; 8192]);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains("cannot read git's request") && err.contains("line longer than"), "{err}");
    // The limit, plus what the pipe buffers (64 KiB on Linux) and one filler chunk.
    assert!(taken < 1024 * 1024, "read {taken} bytes of one line before refusing it");
    assert_eq!(server.requests(), 0);
}

#[test]
fn endless_short_lines_are_refused_after_a_bounded_read() {
    let server = TokenServer::start(3600, 600);
    let sandbox = Sandbox::new(&server.url);
    let (code, err, taken) =
        feed_endlessly(&sandbox, b"protocol=https\nhost=github.com\n", b"wwwauth[]=Basic realm=x\n");
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("cannot read git's request") && err.contains("longer than"), "{err}");
    assert!(taken < 1024 * 1024, "read {taken} bytes before refusing the request");
    assert_eq!(server.requests(), 0);
}
