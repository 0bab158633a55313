// Rescanning the plugin directory, by `POST /admin/plugins/reload` and by SIGHUP: new files
// load, removed ones go, a changed file loads as its new version, a broken new file is
// refused and leaves the running set as it was, a broken new version keeps the old one running.

use std::os::unix::fs::PermissionsExt as _;

use serde_json::Value;

use crate::harness::{ADMIN, fixtures, server};

fn names(json: &Value) -> Vec<String> {
    json["plugins"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_owned()).collect()
}

fn rejected_files(json: &Value) -> Vec<String> {
    json["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert!(r["error"].as_str().is_some_and(|e| !e.is_empty()), "{r}");
            r["file"].as_str().unwrap().rsplit('/').next().unwrap().to_owned()
        })
        .collect()
}

fn write_broken(path: &std::path::Path) {
    std::fs::write(path, b"\x7fELF but not really a shared library").unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn reload_over_http_adds_removes_changes_and_survives_broken_files() {
    let s = server().plugin("10-a.so", &fixtures().static_env, None).start();
    let reload = || {
        let reply = s.post("/admin/plugins/reload", Some(ADMIN), None);
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()
    };
    let before = s.get("/admin/plugins", Some(ADMIN)).json();
    assert_eq!(names(&before), ["static-env"]);
    let old_sha = before["plugins"][0]["sha256"].as_str().unwrap().to_owned();

    // Add.
    s.dir().add(&fixtures().test_token_provider, "20-b.so");
    s.dir().configure("20-b.so", "token = \"ghs_reload\"\n");
    let json = reload();
    assert_eq!(names(&json), ["static-env", "test-token-provider"]);
    assert_eq!(s.get("/admin/github-installation-token", Some(ADMIN)).json()["token"], "ghs_reload");

    // Remove.
    std::fs::remove_file(s.plugin_dir().join("20-b.so")).unwrap();
    assert_eq!(names(&reload()), ["static-env"]);
    assert_eq!(s.get("/admin/github-installation-token", Some(ADMIN)).status, 404);

    // Change: the same file name now holds another plugin.
    s.dir().add(&fixtures().test_token_provider, "10-a.so");
    let json = reload();
    assert_eq!(names(&json), ["test-token-provider"]);
    assert_ne!(json["plugins"][0]["sha256"].as_str().unwrap(), old_sha);
    assert_eq!(s.get("/admin/github-installation-token", Some(ADMIN)).status, 200);

    // A broken new file is refused; the running set is unchanged.
    write_broken(&s.plugin_dir().join("30-broken.so"));
    let json = reload();
    assert_eq!(names(&json), ["test-token-provider"]);
    assert_eq!(rejected_files(&json), ["30-broken.so"]);

    // A broken new version of a running file keeps the running version.
    write_broken(&s.plugin_dir().join("10-a.so"));
    let json = reload();
    assert_eq!(names(&json), ["test-token-provider"]);
    assert_eq!(rejected_files(&json), ["10-a.so", "30-broken.so"]);
    assert_eq!(s.get("/admin/github-installation-token", Some(ADMIN)).status, 200);
    assert_eq!(s.get("/admin/plugins", Some(ADMIN)).json(), json);
}

#[test]
fn sighup_rescans_the_plugin_directory() {
    let s = server().start();
    assert_eq!(names(&s.get("/admin/plugins", Some(ADMIN)).json()), Vec::<String>::new());
    s.dir().add(&fixtures().static_env, "libstatic_env.so");
    write_broken(&s.plugin_dir().join("libbroken.so"));
    s.signal(libc::SIGHUP);
    let json = s.wait_plugins("picked up the new file after SIGHUP", |json| names(json) == ["static-env"]);
    assert_eq!(rejected_files(&json), ["libbroken.so"]);

    std::fs::remove_file(s.plugin_dir().join("libstatic_env.so")).unwrap();
    std::fs::remove_file(s.plugin_dir().join("libbroken.so")).unwrap();
    s.signal(libc::SIGHUP);
    s.wait_plugins("dropped the removed file after SIGHUP", |json| {
        names(json).is_empty() && json["rejected"].as_array().unwrap().is_empty()
    });
    assert_eq!(s.get("/healthz", None).status, 200, "SIGHUP must not stop the server");
}
