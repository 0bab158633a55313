//! Loading settings: TOML keys, environment fallbacks, and errors that name the setting.

use std::collections::HashMap;
use std::time::Duration;

use github_app_auth::{AppIdentity, Config, ConfigError, InstallationTarget};
use github_emulator::shared_test_key;

fn load(toml: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let env: HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Config::from_toml(toml, &|name| env.get(name).cloned(), None)
}

fn key_file() -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), &shared_test_key().private_pem).expect("write key");
    file
}

/// A key file as operators must keep it: mode 0600.
fn write_private(path: &std::path::Path, text: &str) {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).expect("create key");
    std::io::Write::write_all(&mut file, text.as_bytes()).expect("write key");
}

fn toml_str(s: &str) -> String {
    format!("{s:?}")
}

#[test]
fn full_configuration_loads() {
    let key = key_file();
    let config = load(
        &format!(
            r#"
            client_id = "Iv23liABC123"
            installation_id = "42"
            private_key_path = {}
            api_url = "https://ghe.example.com/api/v3/"
            refresh_margin_secs = 300
            repositories = ["widgets"]
            permissions = {{ contents = "read" }}
            request_timeout_secs = 7
            [env]
            token_vars = ["GH_TOKEN"]
            expires_at_var = ""
            "#,
            toml_str(&key.path().display().to_string())
        ),
        &[],
    )
    .expect("loads");
    assert_eq!(config.identity, AppIdentity::ClientId("Iv23liABC123".into()));
    assert_eq!(config.installation, InstallationTarget::Id(42));
    assert_eq!(config.api_url, "https://ghe.example.com/api/v3");
    assert_eq!(config.refresh_margin, Duration::from_secs(300));
    assert_eq!(config.request_timeout, Duration::from_secs(7));
    assert_eq!(config.scope.repositories, ["widgets"]);
    assert_eq!(config.env.token_vars, ["GH_TOKEN"]);
    assert_eq!(config.env.expires_at_var, None);
}

#[test]
fn defaults_and_environment_fallbacks() {
    let pem_one_line = shared_test_key().private_pem.replace('\n', "\\n");
    let config = load(
        "",
        &[("GITHUB_APP_ID", "1001"), ("GITHUB_APP_INSTALLATION_ID", "7"), ("GITHUB_APP_PRIVATE_KEY", &pem_one_line)],
    )
    .expect("loads from the environment alone");
    assert_eq!(config.identity, AppIdentity::AppId(1001));
    assert_eq!(config.installation, InstallationTarget::Id(7));
    assert_eq!(config.api_url, "https://api.github.com");
    assert_eq!(config.refresh_margin, Duration::from_secs(600));
    // No short-lived secret in a workspace's environment unless configured.
    assert!(config.env.token_vars.is_empty() && config.env.expires_at_var.is_none(), "{:?}", config.env);
    assert!(!config.env.is_enabled());
    assert!(config.installations.is_empty());
    assert_eq!(config.host(), "github.com");

    // Configured token variables bring the expiry variable along, as before.
    let with_vars = load(
        "[env]\ntoken_vars = [\"GH_TOKEN\", \"GITHUB_TOKEN\"]",
        &[("GITHUB_APP_ID", "1001"), ("GITHUB_APP_INSTALLATION_ID", "7"), ("GITHUB_APP_PRIVATE_KEY", &pem_one_line)],
    )
    .expect("loads");
    assert_eq!(with_vars.env.token_vars, ["GH_TOKEN", "GITHUB_TOKEN"]);
    assert_eq!(with_vars.env.expires_at_var.as_deref(), Some("GITHUB_TOKEN_EXPIRES_AT"));

    let key = key_file();
    let path = key.path().display().to_string();
    let config = load(
        "app_id = 5\ninstallation_org = \"acme\"",
        &[
            ("GITHUB_APP_ID", "not used: the table wins"),
            ("GITHUB_APP_CLIENT_ID", "IvNotUsed"),
            ("GITHUB_APP_PRIVATE_KEY_PATH", &path),
            ("GITHUB_API_URL", "http://127.0.0.1:9/api/v3"),
        ],
    )
    .expect("loads");
    assert_eq!(config.identity, AppIdentity::AppId(5));
    assert_eq!(config.installation, InstallationTarget::Org("acme".into()));
    assert_eq!(config.api_url, "http://127.0.0.1:9/api/v3");
    let config =
        load("client_id = \"Iv1\"\ninstallation_repo = \"acme/widgets\"", &[("GITHUB_APP_PRIVATE_KEY_PATH", &path)])
            .unwrap();
    assert_eq!(config.installation, InstallationTarget::Repo { owner: "acme".into(), repo: "widgets".into() });
}

#[test]
fn the_default_retry_deadline_fits_inside_the_hosts_call_timeout() {
    let config = load("app_id = 1\ninstallation_id = 2", &[("GITHUB_APP_PRIVATE_KEY", &shared_test_key().private_pem)])
        .expect("loads");
    // plughost's default plugin_call_timeout_ms is 10 s: past it the caller gets 504, not our 500.
    assert_eq!(config.retry_deadline, Duration::from_secs(8));
    assert_eq!(config.retry_deadline, github_app_auth::DEFAULT_RETRY_DEADLINE);
}

#[test]
fn min_validity_defaults_to_a_minute_with_key_and_environment_fallback() {
    let pem = shared_test_key().private_pem.clone();
    let base = "app_id = 1\ninstallation_id = 2";
    let key = [("GITHUB_APP_PRIVATE_KEY", pem.as_str())];
    assert_eq!(load(base, &key).unwrap().min_validity, Duration::from_secs(60));
    assert_eq!(github_app_auth::DEFAULT_MIN_VALIDITY, Duration::from_secs(60));
    let from_key = load(&format!("{base}\nmin_validity_secs = 120"), &key).unwrap();
    assert_eq!(from_key.min_validity, Duration::from_secs(120));
    let env = [key[0], ("GITHUB_APP_MIN_VALIDITY_SECS", "30")];
    assert_eq!(load(base, &env).unwrap().min_validity, Duration::from_secs(30));
    assert_eq!(load(&format!("{base}\nmin_validity_secs = 90"), &env).unwrap().min_validity, Duration::from_secs(90));

    let e = error(&format!("{base}\nmin_validity_secs = 0"), &key);
    assert!(e.starts_with("min_validity_secs: 0 is not between 1 and"), "{e}");
    let e = error(&format!("{base}\nmin_validity_secs = 3600"), &key);
    assert!(e.starts_with("min_validity_secs: 3600"), "{e}");
    let e = error(base, &[key[0], ("GITHUB_APP_MIN_VALIDITY_SECS", "1m")]);
    assert!(e.starts_with("GITHUB_APP_MIN_VALIDITY_SECS:"), "{e}");
}

#[test]
fn relative_key_path_is_resolved_against_the_config_folder() {
    let dir = tempfile::tempdir().unwrap();
    write_private(&dir.path().join("app.pem"), &shared_test_key().private_pem);
    let toml = "app_id = 1\ninstallation_id = 2\nprivate_key_path = \"app.pem\"";
    Config::from_toml(toml, &|_| None, Some(dir.path())).expect("found beside the config");
}

fn error(toml: &str, env: &[(&str, &str)]) -> String {
    load(toml, env).expect_err("refused").to_string()
}

#[test]
fn every_error_names_its_setting() {
    let key = key_file();
    let key_path = toml_str(&key.path().display().to_string());
    let ok_rest = format!("installation_id = 1\nprivate_key_path = {key_path}");

    let missing = error(&ok_rest, &[]);
    assert!(missing.starts_with("app_id: missing"), "{missing}");
    let e = error(&format!("app_id = -3\n{ok_rest}"), &[]);
    assert!(e.starts_with("app_id: expected a positive integer"), "{e}");
    let e = error(&format!("client_id = \"has spaces\"\n{ok_rest}"), &[]);
    assert!(e.starts_with("client_id:"), "{e}");
    let e = error(&format!("app_id = 1\nprivate_key_path = {key_path}"), &[]);
    assert!(e.starts_with("installation_id: missing"), "{e}");
    let e = error(
        &format!("app_id = 1\ninstallation_id = 1\ninstallation_org = \"x\"\nprivate_key_path = {key_path}"),
        &[],
    );
    assert!(e.starts_with("installation_id: set only one"), "{e}");
    let e = error("app_id = 1\ninstallation_repo = \"nope\"\nprivate_key_path = \"/x\"", &[]);
    assert!(e.starts_with("installation_repo:"), "{e}");

    let e = error("app_id = 1\ninstallation_id = 1\nprivate_key_path = \"/nonexistent/app.pem\"", &[]);
    assert!(e.starts_with("private_key_path: cannot read /nonexistent/app.pem: No such file"), "{e}");
    let e = error("app_id = 1\ninstallation_id = 1", &[("GITHUB_APP_PRIVATE_KEY_PATH", "/nonexistent/env.pem")]);
    assert!(e.starts_with("GITHUB_APP_PRIVATE_KEY_PATH: cannot read /nonexistent/env.pem"), "{e}");
    let e = error("app_id = 1\ninstallation_id = 1", &[]);
    assert!(e.starts_with("private_key_path: missing"), "{e}");
    let e = error(&format!("app_id = 1\ninstallation_id = 1\nprivate_key = \"x\"\nprivate_key_path = {key_path}"), &[]);
    assert!(e.starts_with("private_key: set either"), "{e}");

    let public = shared_test_key().public_pem.clone();
    let e = error(&format!("app_id = 1\ninstallation_id = 1\nprivate_key = {}", toml_str(&public)), &[]);
    assert!(e.starts_with("private_key: not an RSA private key"), "{e}");
    let broken = shared_test_key().private_pem.replacen("MII", "MIA", 1);
    let e = error(&format!("app_id = 1\ninstallation_id = 1\nprivate_key = {}", toml_str(&broken)), &[]);
    assert!(e.starts_with("private_key: not an RSA private key"), "{e}");

    for (url, why) in
        [("ftp://x", "http"), ("not a url", "URL"), ("https://h/api?x=1", "query"), ("https://u:p@h", "credentials")]
    {
        let e = error(&format!("api_url = {}\napp_id = 1\n{ok_rest}", toml_str(url)), &[]);
        assert!(e.starts_with("api_url:") && e.contains(why), "{url}: {e}");
    }
    let e = error(&format!("app_id = 1\n{ok_rest}"), &[("GITHUB_API_URL", "gopher://x")]);
    assert!(e.starts_with("GITHUB_API_URL:"), "{e}");

    let e = error(&format!("app_id = 1\nrefresh_margin_secs = 3600\n{ok_rest}"), &[]);
    assert!(e.starts_with("refresh_margin_secs: 3600 is not below"), "{e}");
    let e = error(&format!("app_id = 1\nrefresh_margin_secs = \"ten\"\n{ok_rest}"), &[]);
    assert!(e.starts_with("refresh_margin_secs:"), "{e}");
    let e = error(&format!("app_id = 1\npermissions = {{ contents = \"all\" }}\n{ok_rest}"), &[]);
    assert!(e.starts_with("permissions.contents:"), "{e}");
    let e = error(&format!("app_id = 1\napp_idd = 2\n{ok_rest}"), &[]);
    assert!(e.starts_with("app_idd: unknown setting"), "{e}");
    let e = error(&format!("app_id = 1\n{ok_rest}\n[env]\ntoken_vars = [\"1BAD\"]"), &[]);
    assert!(e.starts_with("env.token_vars:"), "{e}");
    let e = error(&format!("app_id = 1\nrequest_timeout_secs = 0\n{ok_rest}"), &[]);
    assert!(e.starts_with("request_timeout_secs:"), "{e}");
}

#[test]
fn toml_syntax_errors_do_not_quote_the_key() {
    let pem = &shared_test_key().private_pem;
    // An unterminated multi-line string holding the key.
    let toml = format!("app_id = 1\nprivate_key = \"\"\"{pem}\ninstallation_id = = 3\n");
    let e = error(&toml, &[]);
    assert!(e.starts_with("configuration: not valid TOML"), "{e}");
    let body_line = pem.lines().nth(1).unwrap();
    assert!(!e.contains(body_line), "the key leaked into: {e}");
    // A key where an id belongs.
    let e = error(&format!("app_id = {}\ninstallation_id = 1\nprivate_key_path = \"/x\"", toml_str(pem)), &[]);
    assert!(e.starts_with("app_id:") && !e.contains(body_line), "{e}");
}

#[test]
fn the_documented_example_loads() {
    let lib = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/lib.rs")).expect("lib.rs");
    let example: String = lib
        .lines()
        .map(|l| l.strip_prefix("//!").unwrap_or(l).strip_prefix(' ').unwrap_or_default())
        .skip_while(|l| *l != "```toml")
        .skip(1)
        .take_while(|l| *l != "```")
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(example.contains("refresh_margin_secs"), "found the example: {example}");
    let dir = tempfile::tempdir().unwrap();
    write_private(&dir.path().join("app.pem"), &shared_test_key().private_pem);
    write_private(&dir.path().join("ghes-app.pem"), &shared_test_key().private_pem);
    let config = Config::from_toml(&example, &|_| None, Some(dir.path())).expect("the documented example is valid");
    assert_eq!(config.identity, AppIdentity::AppId(123456));
    assert_eq!(config.installation, InstallationTarget::Id(7890));
    assert_eq!(config.refresh_margin, Duration::from_secs(600));
    assert!(!config.env.is_enabled(), "the documented default writes nothing");
    let hosts: Vec<(String, Option<&str>)> =
        config.installations.iter().map(|i| (i.host(), i.configured_owner())).collect();
    assert_eq!(hosts, [("github.com".into(), Some("globex")), ("ghe.example.com".into(), Some("platform"))]);
}

#[test]
fn a_key_file_open_to_group_or_others_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let key = key_file();
    let path = key.path().display().to_string();
    let toml = format!("app_id = 1\ninstallation_id = 1\nprivate_key_path = {}", toml_str(&path));
    for mode in [0o644, 0o640, 0o604, 0o660] {
        std::fs::set_permissions(key.path(), std::fs::Permissions::from_mode(mode)).unwrap();
        let expected =
            format!("{path} is open to group or others (mode {mode:o}); it must be private to its owner (chmod 600)");
        assert_eq!(error(&toml, &[]), format!("private_key_path: {expected}"));
        let from_env = error("app_id = 1\ninstallation_id = 1", &[("GITHUB_APP_PRIVATE_KEY_PATH", &path)]);
        assert_eq!(from_env, format!("GITHUB_APP_PRIVATE_KEY_PATH: {expected}"));
    }
    for mode in [0o600, 0o400] {
        std::fs::set_permissions(key.path(), std::fs::Permissions::from_mode(mode)).unwrap();
        load(&toml, &[]).unwrap_or_else(|e| panic!("mode {mode:o}: {e}"));
    }

    // Through the real `plughost serve`: the plugin is refused with that line.
    std::fs::set_permissions(key.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let s = plughost_testkit::Serve::builder()
        .plugin("libgithub_app_auth.so", &plughost_testkit::fixtures().github_app_auth, Some(&toml))
        .start();
    let json = s.get("/admin/plugins", Some(plughost_testkit::ADMIN_TOKEN)).json();
    let refused = json["rejected"][0]["error"].as_str().unwrap_or_else(|| panic!("{json}"));
    let expected = format!(
        "private_key_path: {path} is open to group or others (mode 644); it must be private to its owner (chmod 600)"
    );
    assert!(refused.ends_with(&expected), "{refused}");
}

#[test]
fn installations_inherit_the_app_and_name_their_owner() {
    let key = key_file();
    let other_key = key_file();
    let toml = format!(
        r#"
        client_id = "Iv23liABC123"
        installation_id = 42
        private_key_path = {key}
        permissions = {{ contents = "read" }}
        refresh_margin_secs = 300
        [[installations]]
        owner = "globex"
        installation_id = 43
        [[installations]]
        installation_org = "platform"
        api_url = "https://ghe.example.com/api/v3"
        app_id = 7
        private_key_path = {other}
        "#,
        key = toml_str(&key.path().display().to_string()),
        other = toml_str(&other_key.path().display().to_string()),
    );
    let config = load(&toml, &[]).expect("loads");
    assert_eq!(config.installation, InstallationTarget::Id(42));
    assert_eq!((config.host(), config.configured_owner()), ("github.com".to_owned(), None));
    let [globex, ghes] = &config.installations[..] else { panic!("two more: {:?}", config.installations) };
    assert_eq!(globex.identity, AppIdentity::ClientId("Iv23liABC123".into()), "the app is inherited");
    assert_eq!((globex.installation.clone(), globex.configured_owner()), (InstallationTarget::Id(43), Some("globex")));
    assert_eq!(globex.refresh_margin, Duration::from_secs(300), "plugin-wide settings too");
    assert!(globex.scope.permissions.is_empty(), "the default installation's scope is its own");
    assert_eq!(ghes.identity, AppIdentity::AppId(7), "an entry's app replaces client_id and app_id");
    assert_eq!((ghes.host(), ghes.configured_owner()), ("ghe.example.com".to_owned(), Some("platform")));
    assert_eq!(ghes.installation, InstallationTarget::Org("platform".into()));
}

#[test]
fn hosts_are_named_as_git_names_them() {
    for (api_url, host) in [
        ("https://api.github.com", "github.com"),
        ("https://api.github.com/", "github.com"),
        ("https://ghe.example.com/api/v3", "ghe.example.com"),
        ("https://GHE.example.com:8443/api/v3", "ghe.example.com:8443"),
        ("https://ghe.example.com:443/api/v3", "ghe.example.com"),
        ("https://api.acme.ghe.com", "acme.ghe.com"),
        ("http://127.0.0.1:8787", "127.0.0.1:8787"),
        ("http://127.0.0.1:8787/api/v3", "127.0.0.1:8787"),
    ] {
        assert_eq!(github_app_auth::host_of_api_url(api_url), host, "{api_url}");
    }
    let key = key_file();
    let toml = format!(
        "app_id = 1\ninstallation_id = 1\nprivate_key_path = {}\napi_url = \"https://10.0.0.5/api/v3\"\nhost = \"GHE.corp\"\n",
        toml_str(&key.path().display().to_string())
    );
    assert_eq!(load(&toml, &[]).unwrap().host(), "ghe.corp", "an explicit host wins");
}

#[test]
fn installation_errors_name_the_entry_and_the_setting() {
    let key = key_file();
    let base = format!(
        "app_id = 1\ninstallation_id = 1\nprivate_key_path = {}\n",
        toml_str(&key.path().display().to_string())
    );
    for (entries, expected) in [
        (
            "[[installations]]\ninstallation_id = 9\n",
            "installations[0].owner: missing: an installation given by installation_id needs the owner",
        ),
        (
            "[[installations]]\nowner = \"globex\"\nrefresh_margin_secs = 5\n",
            "installations[0].refresh_margin_secs: not a setting of an installation; known: owner,",
        ),
        (
            "[[installations]]\nowner = \"globex\"\n[[installations]]\nowner = \"GLOBEX\"\ninstallation_id = 3\n",
            "installations[1].owner: globex on github.com is already served by an earlier installation",
        ),
        (
            "[[installations]]\nowner = \"globex\"\ninstallation_org = \"initech\"\n",
            "installations[0].owner: names another account than installation_org",
        ),
        ("[[installations]]\nowner = \"a/b\"\n", "installations[0].owner: expected an organization or user login"),
        (
            "[[installations]]\nowner = \"globex\"\nprivate_key = \"hunter2-not-a-key\"\n",
            "installations[0].private_key: not an RSA private key",
        ),
        (
            "[[installations]]\nowner = \"globex\"\napi_url = \"ftp://x\"\n",
            "installations[0].api_url: not a usable API URL",
        ),
        ("installations = 3\n", "installations: invalid type"),
        ("host = \"https://ghe.example.com\"\n", "host: expected a host as git names it"),
    ] {
        let e = error(&format!("{base}{entries}"), &[]);
        assert!(e.starts_with(expected), "{entries}: {e}");
        assert!(!e.contains("hunter2"), "{e}");
    }
}
