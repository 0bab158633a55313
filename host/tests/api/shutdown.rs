// Graceful shutdown: on SIGTERM or SIGINT a request in flight (a slow provider) still gets its
// answer, new connections are refused, and the process exits 0; idle keep-alive connections and
// half-sent requests do not delay the exit.

use std::time::{Duration, Instant};

use crate::harness::{ADMIN, server};

fn in_flight_request_completes_after(signal: i32) {
    let mut s = server()
        .config("plugin_call_timeout_ms = 10000\n")
        .token_provider("mode = \"slow\"\ndelay_ms = 1500\ntoken = \"ghs_slow_but_fine\"\n")
        .start();
    let url = s.url("/admin/github-installation-token");
    let caller = std::thread::spawn(move || {
        let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
        let mut response = agent.get(&url).header("Authorization", format!("Bearer {ADMIN}")).call().unwrap();
        (response.status().as_u16(), response.body_mut().read_to_string().unwrap())
    });
    std::thread::sleep(Duration::from_millis(400));
    let signalled = Instant::now();
    s.signal(signal);
    let (status, body) = caller.join().unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("ghs_slow_but_fine"));
    let exit = s.wait_exit(Duration::from_secs(10));
    assert!(exit.success(), "exit status {exit}; log:\n{}", s.log());
    assert!(signalled.elapsed() >= Duration::from_millis(900), "the server did not wait for the request");
    assert!(std::net::TcpStream::connect(s.base().trim_start_matches("http://")).is_err(), "still accepting");
    assert!(s.log().contains("finishing requests in flight"), "{}", s.log());
}

#[test]
fn sigterm_lets_the_request_in_flight_finish() {
    in_flight_request_completes_after(libc::SIGTERM);
}

#[test]
fn sigint_lets_the_request_in_flight_finish() {
    in_flight_request_completes_after(libc::SIGINT);
}

#[test]
fn sigterm_does_not_wait_for_half_sent_or_idle_connections() {
    use crate::raw::{self, connect, read_answer, send};
    // Default timeouts (10 s header read, 60 s keep-alive): neither may be what ends them.
    let mut s = server().start();
    let mut idle = connect(&s, Duration::from_secs(10));
    send(&mut idle, &raw::get("/healthz"));
    assert_eq!(read_answer(&mut idle).unwrap().status, 200);
    let mut half = connect(&s, Duration::from_secs(10));
    send(&mut half, "GET /healthz HTTP/1.1\r\nHost: plug");
    std::thread::sleep(Duration::from_millis(200));

    let signalled = Instant::now();
    s.signal(libc::SIGTERM);
    let exit = s.wait_exit(Duration::from_secs(10));
    assert!(exit.success(), "exit status {exit}; log:\n{}", s.log());
    assert!(signalled.elapsed() < Duration::from_secs(2), "exit took {:?}", signalled.elapsed());
}
