// What a connection may cost the server: a client that sends half a request head is closed after
// the header-read timeout; an idle keep-alive connection after the (longer) keep-alive timeout;
// connections beyond the limit wait until a slot frees; a request that takes too long (here, a
// body that never arrives) gets a JSON 503 and its connection closes. Timeouts and limits that
// make no sense stop the start, naming the setting.

use std::time::{Duration, Instant};

use crate::harness::{ADMIN, Server, run_cli, server};
use crate::raw::{self, connect, read_answer, send, time_to_close};

/// Whether `text` reaches the server's log within 5 s (the kit reads the log on its own thread).
fn eventually_logged(s: &Server, text: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !s.log().contains(text) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

#[test]
fn a_half_sent_request_head_is_closed_after_the_header_read_timeout() {
    let s = server().config("header_read_timeout_ms = 600\n").start();
    let mut half = connect(&s, Duration::from_secs(10));
    send(&mut half, "GET /healthz HTTP/1.1\r\nHost: plughost\r\n");
    let mut silent = connect(&s, Duration::from_secs(10));

    for (what, stream) in [("half a request head", &mut half), ("nothing at all", &mut silent)] {
        let closed = time_to_close(stream).unwrap_or_else(|| panic!("{what}: still open after 10 s"));
        assert!(closed < Duration::from_secs(3), "{what}: closed after {closed:?}");
    }
    // A client that is merely slow, within the timeout, is served.
    let mut slow = connect(&s, Duration::from_secs(10));
    send(&mut slow, "GET /healthz HTTP/1.1\r\n");
    std::thread::sleep(Duration::from_millis(200));
    send(&mut slow, "Host: plughost\r\n\r\n");
    assert_eq!(read_answer(&mut slow).unwrap().status, 200);
}

#[test]
fn an_idle_keep_alive_connection_lasts_the_keep_alive_timeout_not_the_header_timeout() {
    let s = server().config("header_read_timeout_ms = 300\nkeep_alive_timeout_ms = 2000\n").start();
    let mut conn = connect(&s, Duration::from_secs(10));
    send(&mut conn, &raw::get("/healthz"));
    assert_eq!(read_answer(&mut conn).unwrap().status, 200);
    // Idle for longer than the header timeout: still open, and serves the next request.
    std::thread::sleep(Duration::from_millis(900));
    send(&mut conn, &raw::get("/healthz"));
    assert_eq!(read_answer(&mut conn).expect("the keep-alive connection still serves").status, 200);
    // Then closed once idle for the keep-alive timeout.
    let closed = time_to_close(&mut conn).expect("an idle connection is closed");
    assert!(closed > Duration::from_millis(1500) && closed < Duration::from_secs(4), "closed after {closed:?}");
}

#[test]
fn connections_beyond_the_limit_wait_until_one_closes() {
    // The kit's own keep-alive connection (from waiting for /readyz) closes after 300 ms idle.
    let s = server().config("max_connections = 2\nkeep_alive_timeout_ms = 300\n").start();
    std::thread::sleep(Duration::from_millis(800));
    // Two connections that have not sent a request yet (the header timeout is 10 s) hold both slots.
    let first = connect(&s, Duration::from_secs(10));
    let _second = connect(&s, Duration::from_secs(10));

    let mut third = connect(&s, Duration::from_millis(1500));
    send(&mut third, &raw::get("/healthz"));
    let waiting = read_answer(&mut third);
    assert!(waiting.is_err(), "a third connection must wait: {waiting:?}");

    drop(first);
    third.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(read_answer(&mut third).expect("served once a slot is free").status, 200);
    assert!(eventually_logged(&s, "connection limit reached"), "{}", s.log());
}

#[test]
fn a_request_that_outlasts_the_request_timeout_gets_a_json_503_and_its_connection_closes() {
    let s = server().config("request_timeout_ms = 1500\nplugin_call_timeout_ms = 1000\n").start();
    let mut conn = connect(&s, Duration::from_secs(10));
    // The body announces 100 bytes and sends 10.
    send(
        &mut conn,
        &format!(
            "POST /admin/workspaces/ws-1/env HTTP/1.1\r\nHost: plughost\r\nAuthorization: Bearer {ADMIN}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"env\":{{}}"
        ),
    );
    let started = Instant::now();
    let answer = read_answer(&mut conn).expect("an answer before the read timeout");
    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(answer.body, r#"{"error":"request timed out"}"#);
    assert_eq!(answer.header("connection"), Some("close"));
    assert!(started.elapsed() < Duration::from_secs(4), "answered after {:?}", started.elapsed());
    assert!(time_to_close(&mut conn).is_some(), "the connection is closed");
    assert!(eventually_logged(&s, "request timed out"), "{}", s.log());
    assert_eq!(s.get("/healthz", None).status, 200, "the server goes on");
}

#[test]
fn limits_that_make_no_sense_stop_the_start_naming_the_setting() {
    for (toml, expected) in [
        ("max_connections = 0\n", "max_connections in "),
        ("header_read_timeout_ms = 0\n", "header_read_timeout_ms in "),
        ("keep_alive_timeout_ms = 0\n", "keep_alive_timeout_ms in "),
        ("request_timeout_ms = 5000\nplugin_call_timeout_ms = 5000\n", "must be longer than plugin_call_timeout_ms"),
        ("plugin_call_timeout_ms = 60000\n", "the default (30s) must be longer than plugin_call_timeout_ms (60s)"),
    ] {
        let dir = crate::harness::PluginDir::new();
        let config = dir.write_private("plughost.toml", toml);
        let (status, _, stderr) = run_cli(&[
            "--config",
            &config.display().to_string(),
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--plugin-dir",
            &dir.plugin_dir().display().to_string(),
            "--state-dir",
            &dir.state_dir().display().to_string(),
        ]);
        assert_eq!(status.code(), Some(2), "{toml}: {stderr}");
        assert!(stderr.contains(expected), "{toml}: {stderr}");
    }
}

#[test]
fn a_reload_that_outlasts_the_request_timeout_still_completes() {
    let s = server().config("request_timeout_ms = 1500\nplugin_call_timeout_ms = 1000\n").start();
    let so = &crate::harness::fixtures().test_token_provider;
    s.dir().add(so, "libtest_token_provider.so");
    s.dir().configure("libtest_token_provider.so", "init_delay_ms = 2500\ntoken = \"ghs_after_the_reload\"\n");
    let reply = s.post("/admin/plugins/reload", Some(ADMIN), None);
    assert_eq!((reply.status, reply.error()), (503, "request timed out".to_owned()));
    s.wait_plugins("loaded by the reload", |json| json["plugins"].as_array().is_some_and(|p| p.len() == 1));
    let token = s.get("/admin/github-installation-token", Some(ADMIN));
    assert_eq!(token.json()["token"], "ghs_after_the_reload");
}
