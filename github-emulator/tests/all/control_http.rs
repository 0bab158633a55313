//! The `/_emulator/...` control routes, for tests in another process.

use serde_json::json;

use crate::support::*;

#[test]
fn faults_skew_ttl_and_stats_over_http() {
    let emu = emulator();
    let base = emu.base_url();
    assert_eq!(
        call(
            "POST",
            &format!("{base}/_emulator/faults"),
            None,
            Some(&json!({"fault": "status", "status": 503, "count": 2}))
        )
        .status,
        204
    );
    assert_eq!(
        call("POST", &format!("{base}/_emulator/faults"), None, Some(&json!({"fault": "latency", "millis": 10})))
            .status,
        204
    );
    assert_eq!(call("POST", &format!("{base}/_emulator/faults"), None, Some(&json!({"fault": "drop"}))).status, 204);
    // Control routes never consume faults.
    let stats = call("GET", &format!("{base}/_emulator/stats"), None, None);
    assert_eq!(stats.body["pending_faults"], 4);
    assert_eq!(mint(&emu, &good_jwt(), None).status, 503);
    assert_eq!(mint(&emu, &good_jwt(), None).status, 503);
    assert_eq!(mint(&emu, &good_jwt(), None).status, 201);
    let url = format!("{base}/app/installations/{}/access_tokens", github_emulator::TEST_INSTALLATION_ID);
    assert!(try_call("POST", &url, Some(&format!("Bearer {}", good_jwt())), None).is_err());

    assert_eq!(
        call(
            "POST",
            &format!("{base}/_emulator/faults"),
            None,
            Some(&json!({"fault": "status", "status": 500, "count": 9}))
        )
        .status,
        204
    );
    assert_eq!(call("DELETE", &format!("{base}/_emulator/faults"), None, None).status, 204);

    assert_eq!(call("PUT", &format!("{base}/_emulator/clock-skew"), None, Some(&json!({"secs": -600}))).status, 204);
    assert_github_error(&mint(&emu, &good_jwt(), None), 401, "'Issued at'");
    assert_eq!(call("PUT", &format!("{base}/_emulator/clock-skew"), None, Some(&json!({"secs": 0}))).status, 204);
    assert_eq!(call("PUT", &format!("{base}/_emulator/token-ttl"), None, Some(&json!({"secs": 60}))).status, 204);

    let reply = mint(&emu, &good_jwt(), None);
    let token = reply.body["token"].as_str().unwrap();
    let check = call("POST", &format!("{base}/_emulator/tokens/check"), None, Some(&json!({ "token": token })));
    assert_eq!(check.body["valid"], true);
    assert_eq!(check.body["installation_id"], github_emulator::TEST_INSTALLATION_ID);
    let left = humantime::parse_rfc3339(check.body["expires_at"].as_str().unwrap())
        .unwrap()
        .duration_since(std::time::SystemTime::now())
        .unwrap()
        .as_secs();
    assert!(left <= 60, "token-ttl applied: {left}");
    let unknown = call("POST", &format!("{base}/_emulator/tokens/check"), None, Some(&json!({ "token": "ghs_x" })));
    assert_eq!(unknown.body, json!({ "valid": false, "known": false }));

    let stats = call("GET", &format!("{base}/_emulator/stats"), None, None);
    assert_eq!(stats.body["mints"], 2);
    assert_eq!(stats.body["requests"][TOKEN_ROUTE], 6);
    assert_eq!(stats.body["clock_skew_secs"], 0);
    assert_eq!(stats.body["pending_faults"], 0);
    assert!(stats.date.is_some());
}
