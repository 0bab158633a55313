// A client that misbehaves on purpose: a raw TCP connection to the server, which sends what a
// test says (half a request, a body shorter than announced) and reads answers by hand.

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::harness::Server;

/// A raw connection to `server`, reads bounded by `timeout`.
pub fn connect(server: &Server, timeout: Duration) -> TcpStream {
    let stream = TcpStream::connect(server.base().trim_start_matches("http://")).expect("connect");
    stream.set_read_timeout(Some(timeout)).unwrap();
    stream
}

/// Writes `bytes` as they are.
pub fn send(stream: &mut TcpStream, bytes: &str) {
    stream.write_all(bytes.as_bytes()).expect("send");
}

/// A complete `GET path` on a keep-alive connection.
pub fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: plughost\r\n\r\n")
}

/// An answer read by hand: status, lower-case header lines, body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<String>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        let prefix = format!("{name}: ");
        self.headers.iter().find_map(|line| line.strip_prefix(&prefix))
    }
}

/// Reads one answer (head, then `Content-Length` bytes of body). `Err` with the bytes read so far
/// when the server closes the connection or the read times out first.
pub fn read_answer(stream: &mut TcpStream) -> Result<Answer, String> {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
            let mut lines = head.split("\r\n");
            let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
            let headers: Vec<String> = lines.map(str::to_ascii_lowercase).collect();
            let length: usize = headers
                .iter()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|l| l.parse().ok())
                .unwrap_or(0);
            if bytes.len() >= end + 4 + length {
                let body = String::from_utf8_lossy(&bytes[end + 4..end + 4 + length]).into_owned();
                return Ok(Answer { status, headers, body });
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Err(format!("closed after {:?}", String::from_utf8_lossy(&bytes))),
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(err) => return Err(format!("{err} after {:?}", String::from_utf8_lossy(&bytes))),
        }
    }
}

/// How long until the server closes `stream` (end of file or reset), reading and discarding
/// anything it sends; `None` if it is still open when the read timeout passes.
pub fn time_to_close(stream: &mut TcpStream) -> Option<Duration> {
    let started = Instant::now();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => {}
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return None,
            Err(_) => return Some(started.elapsed()),
        }
    }
}
