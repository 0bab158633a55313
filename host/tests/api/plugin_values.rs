// Values a plugin hands the host never panic it: a plugin name outside the documented set
// (`^[a-z0-9][a-z0-9._-]{0,63}$`) refuses that plugin with one line, in both isolation modes and
// in `plughost plugins check`, while the others load; a token expiring after year 9999 (which
// RFC 3339 cannot write) is a failed answer, 500 with the reason only in the log.

use std::path::PathBuf;

use crate::harness::{ADMIN, PluginDir, fixtures, run_cli, server};

/// The name literal of the `numbered` fixture (`abi_tests::NUMBERED_NAME`), patched in place.
const NUMBERED_NAME: &str = "numbered-plugin-000000";

/// A copy of the `numbered` fixture named `name` (same length as [`NUMBERED_NAME`]), in `dir`.
fn numbered_named(dir: &PluginDir, file_name: &str, name: &[u8]) -> PathBuf {
    assert_eq!(name.len(), NUMBERED_NAME.len());
    let mut bytes = std::fs::read(&fixtures().numbered).unwrap();
    let mut found = 0;
    while let Some(at) = bytes.windows(name.len()).position(|w| w == NUMBERED_NAME.as_bytes()) {
        bytes[at..at + name.len()].copy_from_slice(name);
        found += 1;
    }
    assert!(found > 0, "the name literal is in the fixture");
    let source = dir.write_private(&format!("{file_name}.src"), "");
    std::fs::write(&source, &bytes).unwrap();
    dir.add(&source, file_name)
}

const BAD_NAMES: [(&str, &[u8], &str); 3] = [
    ("10-nul.so", b"numbered\0plugin-000000", r#""numbered\0plugin-000000""#),
    ("11-upper.so", b"Numbered-Plugin-000000", r#""Numbered-Plugin-000000""#),
    ("12-newline.so", b"numbered\nplugin 000000", r#""numbered\nplugin 000000""#),
];

fn refusal(name_debug: &str) -> String {
    format!(
        "invalid plugin name {name_debug}: expected 1 to 64 characters from a-z 0-9 . _ -, starting with a letter \
         or digit"
    )
}

#[test]
fn a_plugin_named_outside_the_documented_set_is_refused_with_one_line_in_both_modes() {
    for mode in ["process", "in-process"] {
        let dir = PluginDir::new();
        for (file, name, _) in BAD_NAMES {
            numbered_named(&dir, file, name);
        }
        let s = server()
            .dir(dir)
            .config(&format!("[isolation]\nmode = \"{mode}\"\n"))
            .plugin("50-env.so", &fixtures().static_env, Some("[vars]\nTZ = \"UTC\"\n"))
            .start();
        let json = s.get("/admin/plugins", Some(ADMIN)).json();
        assert_eq!(json["plugins"].as_array().unwrap().len(), 1, "{mode}: {json}");
        assert_eq!(json["plugins"][0]["name"], "static-env");
        for (file, _, debug) in BAD_NAMES {
            let rejected = json["rejected"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["file"].as_str().unwrap().ends_with(file))
                .unwrap_or_else(|| panic!("{mode}: {file} not refused: {json}"));
            assert_eq!(rejected["error"], refusal(debug).as_str(), "{mode}");
        }
        assert_eq!(s.post("/admin/plugins/reload", Some(ADMIN), None).status, 200);
        let env = s.post("/admin/workspaces/ws-1/env", Some(ADMIN), Some(r#"{"env":{}}"#));
        assert_eq!(env.json()["env"]["TZ"], "UTC", "{mode}");
    }
}

#[test]
fn plugins_check_refuses_a_bad_name_with_one_line() {
    let dir = PluginDir::new();
    let file = numbered_named(&dir, "10-nul.so", BAD_NAMES[0].1);
    let (status, stdout, _) = run_cli(&["plugins", "check", &file.display().to_string()]);
    assert_eq!(status.code(), Some(1), "{stdout}");
    assert_eq!(stdout, format!("FAIL  {}: {}\n", file.display(), refusal(BAD_NAMES[0].2)));
    // Names that fit the set load: the fixture's own.
    let good = numbered_named(&dir, "20-good.so", b"numbered.plugin_000001");
    let (status, stdout, _) = run_cli(&["plugins", "check", &good.display().to_string()]);
    assert!(status.success(), "{stdout}");
}

#[test]
fn a_token_expiring_after_year_9999_is_a_failed_answer_not_a_dropped_connection() {
    for mode in ["process", "in-process"] {
        let s = server()
            .config(&format!("token_cache_ms = 0\n[isolation]\nmode = \"{mode}\"\n"))
            .token_provider("lifetime_secs = 400000000000\n")
            .start();
        let ws = s.issue("ws-1");
        for (path, bearer) in
            [("/admin/github-installation-token", ADMIN), ("/workspaces/ws-1/github-installation-token", ws.as_str())]
        {
            let reply = s.get(path, Some(bearer));
            assert_eq!(reply.status, 500, "{mode} {path}: {}", reply.body);
            assert_eq!(reply.error(), "token refresh failed");
        }
        let log = s.log();
        assert!(log.contains("is after 9999-12-31T23:59:59Z"), "{mode}: {log}");
        assert_eq!(s.get("/readyz", None).status, 200);
    }
}
