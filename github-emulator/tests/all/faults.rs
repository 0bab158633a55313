//! Injected faults through the Rust handle: statuses, counts, latency, dropped connections.

use std::time::{Duration, Instant};

use github_emulator::Fault;

use crate::support::*;

#[test]
fn each_status_fault_answers_the_next_request_once() {
    let emu = emulator();
    for status in [401u16, 403, 404, 422, 500, 502, 503] {
        emu.inject(Fault::Status(status));
        let reply = mint(&emu, &good_jwt(), None);
        assert_eq!(reply.status, status, "{}", reply.body);
        assert!(reply.body["message"].is_string());
        assert_eq!(mint(&emu, &good_jwt(), None).status, 201, "fault {status} lasted more than one request");
    }
    assert_eq!(emu.mints(), 7);
    assert_eq!(emu.requests(TOKEN_ROUTE), 14);
}

#[test]
fn faults_apply_in_order_for_their_count() {
    let emu = emulator();
    emu.inject_n(Fault::Status(500), 2);
    emu.inject(Fault::Status(404));
    assert_eq!(emu.stats().pending_faults, 3);
    let statuses: Vec<u16> = (0..4).map(|_| mint(&emu, &good_jwt(), None).status).collect();
    assert_eq!(statuses, [500, 500, 404, 201]);
    emu.inject_n(Fault::Status(503), 100);
    emu.clear_faults();
    assert_eq!(mint(&emu, &good_jwt(), None).status, 201);
}

#[test]
fn latency_fault_delays_then_answers() {
    let emu = emulator();
    emu.inject(Fault::Latency(Duration::from_millis(700)));
    let started = Instant::now();
    assert_eq!(mint(&emu, &good_jwt(), None).status, 201);
    assert!(started.elapsed() >= Duration::from_millis(700));
    let started = Instant::now();
    assert_eq!(mint(&emu, &good_jwt(), None).status, 201);
    assert!(started.elapsed() < Duration::from_millis(700));
}

#[test]
fn dropped_connection_gets_no_response() {
    let emu = emulator();
    emu.inject(Fault::DropConnection);
    let url = format!("{}/app/installations/{}/access_tokens", emu.base_url(), github_emulator::TEST_INSTALLATION_ID);
    let result = try_call("POST", &url, Some(&format!("Bearer {}", good_jwt())), None);
    assert!(result.is_err(), "expected a transport error, got status {:?}", result.ok().map(|r| r.status));
    assert_eq!(emu.mints(), 0);
    assert_eq!(mint(&emu, &good_jwt(), None).status, 201);
}
