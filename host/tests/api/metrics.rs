// `/metrics` exposes the documented families in Prometheus text format, with route templates
// (never concrete workspace ids) as labels.

use crate::harness::{ADMIN, fixtures, server};

#[test]
fn metrics_has_every_family() {
    let s = server().token_provider("").plugin("libbroken.so", &fixtures().static_env, None).start();
    std::fs::write(s.plugin_dir().join("libbroken.so"), b"garbage").unwrap();
    assert_eq!(s.post("/admin/plugins/reload", Some(ADMIN), None).status, 200);
    let ws = s.issue("ws-metrics-42");
    assert_eq!(s.get("/workspaces/ws-metrics-42/github-installation-token", Some(&ws)).status, 200);
    assert_eq!(s.get("/admin/github-installation-token", None).status, 401);
    assert_eq!(s.post("/admin/workspaces/ws-metrics-42/env", Some(ADMIN), Some(r#"{"env":{}}"#)).status, 200);

    let body = s.get("/metrics", None).body;
    for family in [
        "# TYPE plughost_http_requests_total counter",
        "# TYPE plughost_http_request_duration_seconds histogram",
        "# TYPE plughost_token_provider_seconds histogram",
        "# TYPE plughost_env_mutator_seconds histogram",
        "# TYPE plughost_plugins_loaded gauge",
        "# TYPE plughost_plugins_refused gauge",
    ] {
        assert!(body.contains(family), "{family} missing:\n{body}");
    }
    assert!(body.contains("plughost_plugins_loaded 2"), "{body}");
    assert!(body.contains("plughost_plugins_refused 1"), "{body}");
    assert!(
        body.contains(r#"plughost_http_requests_total{route="/workspaces/{id}/github-installation-token",method="GET",status="200"} 1"#),
        "{body}"
    );
    assert!(
        body.contains(
            r#"plughost_http_requests_total{route="/admin/github-installation-token",method="GET",status="401"} 1"#
        ),
        "{body}"
    );
    assert!(body.contains(r#"plughost_token_provider_seconds_bucket{plugin="test-token-provider",le="#), "{body}");
    assert!(!body.contains("ws-metrics-42"), "a workspace id became a label value");
}

#[test]
fn requests_answered_on_every_worker_are_all_counted() {
    // Counts are kept per thread and merged at scrape time: none may be missing or doubled.
    let s = server().start();
    let replies = s.concurrently(8, 50, |s| s.get("/healthz", None));
    assert!(replies.iter().all(|r| r.status == 200));
    let body = s.get("/metrics", None).body;
    assert!(body.contains(r#"plughost_http_requests_total{route="/healthz",method="GET",status="200"} 400"#), "{body}");
    assert!(body.contains(r#"plughost_http_request_duration_seconds_count{route="/healthz"} 400"#), "{body}");
    // A second scrape counts the first one and nothing twice.
    let body = s.get("/metrics", None).body;
    assert!(body.contains(r#"plughost_http_requests_total{route="/healthz",method="GET",status="200"} 400"#), "{body}");
    assert!(body.contains(r#"plughost_http_requests_total{route="/metrics",method="GET",status="200"} 1"#), "{body}");
}
