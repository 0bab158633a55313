//! `GET /openapi.json` against the router that serves it: the document lists exactly the
//! methods and paths the router answers, and describes bodies, errors and auth.

use std::collections::BTreeSet;

use plughost_testkit::{Serve, fixtures};

use crate::harness::ADMIN;

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];
/// Routes anyone may call; every other needs a bearer.
const PUBLIC: [&str; 4] = ["/healthz", "/readyz", "/metrics", "/openapi.json"];

fn document(s: &Serve) -> serde_json::Value {
    let reply = s.get("/openapi.json", None);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.content_type.as_deref(), Some("application/json"));
    reply.json()
}

/// Which (method, path template) the router serves, found by asking it: the router answers 405
/// for a method it does not route on a known path, and its own 404 (`not found`) for an unknown
/// path; anything else comes from a handler. Candidates are every template the router declares
/// (`plughost::api::ROUTES`) and every path the document lists.
#[test]
fn the_document_lists_exactly_the_routes_the_router_serves() {
    let s = Serve::builder().plugin("tokens.so", &fixtures().test_token_provider, None).start();
    let doc = document(&s);
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|k| METHODS.contains(&k.to_uppercase().as_str()))
                .map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect();
    let templates: BTreeSet<String> = plughost::api::ROUTES
        .iter()
        .map(|t| t.to_string())
        .chain(doc["paths"].as_object().unwrap().keys().cloned())
        .collect();
    let mut served = BTreeSet::new();
    for template in &templates {
        let path = template.replace("{id}", "ws-openapi").replace("{provider}", "no-such-provider");
        for method in METHODS {
            let reply = s.request(method, &path, Some(ADMIN), None);
            let router_404 = reply.status == 404 && reply.json()["error"] == "not found";
            if reply.status != 405 && !router_404 {
                served.insert((method.to_owned(), template.clone()));
            }
        }
    }
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && unserved.is_empty(),
        "served, not documented: {undocumented:?}; documented, not served: {unserved:?}"
    );
}

#[test]
fn the_document_describes_bodies_errors_and_auth() {
    let s = Serve::builder().start();
    let doc = document(&s);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{}", doc["openapi"]);
    let schemes = &doc["components"]["securitySchemes"];
    for scheme in ["admin", "workspace"] {
        assert_eq!(schemes[scheme]["type"], "http", "{scheme}");
        assert_eq!(schemes[scheme]["scheme"], "bearer", "{scheme}");
    }
    let error = &doc["components"]["schemas"]["ErrorAnswer"];
    assert_eq!(error["properties"]["error"]["type"], "string");
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            assert!(!responses.is_empty(), "{method} {path}");
            if PUBLIC.contains(&path.as_str()) {
                assert!(op.get("security").is_none(), "{method} {path} is public");
                continue;
            }
            let security: Vec<&str> = op["security"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|s| s.as_object().unwrap().keys())
                .map(String::as_str)
                .collect();
            let expected: &[&str] = if path.starts_with("/admin/") { &["admin"] } else { &["workspace", "admin"] };
            assert_eq!(security, expected, "{method} {path}");
            let unauthorized = &responses["401"]["content"]["application/json"]["schema"]["$ref"];
            assert_eq!(unauthorized, "#/components/schemas/ErrorAnswer", "{method} {path}");
            for (status, response) in responses {
                if !status.starts_with('2') {
                    let body = &response["content"]["application/json"]["schema"]["$ref"];
                    assert_eq!(body, "#/components/schemas/ErrorAnswer", "{method} {path} {status}");
                }
            }
        }
    }
    let env = &doc["paths"]["/admin/workspaces/{id}/env"]["post"];
    assert_eq!(env["requestBody"]["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/EnvBody");
    let plugins = &doc["components"]["schemas"]["PluginsBody"]["properties"];
    assert!(plugins.get("plugins").is_some() && plugins.get("rejected").is_some(), "{plugins}");
}
