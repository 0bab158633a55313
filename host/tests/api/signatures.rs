// Plugin signatures (minisign): with `trusted_keys` in the host config, only a plugin whose
// `<file>.minisig` is a valid signature of its exact bytes by one of those keys loads; the others
// are refused with one line each. `plughost plugins check` and `GET /admin/plugins` name the key
// that signed each plugin and its trusted comment. Without `trusted_keys`, signature files are not
// read. Keys are generated at test time; no private key is committed.

use std::io::Cursor;
use std::path::Path;

use minisign::KeyPair;
use plughost_testkit::StartError;
use serde_json::Value;

use crate::harness::{ADMIN, PluginDir, fixtures, plughost_command, server};

struct Key {
    pair: KeyPair,
    id: String,
}

fn key() -> Key {
    let pair = KeyPair::generate_unencrypted_keypair().unwrap();
    let id = format!("{:016X}", u64::from_le_bytes(pair.pk.keynum().try_into().unwrap()));
    Key { pair, id }
}

impl Key {
    fn base64(&self) -> String {
        self.pair.pk.to_base64()
    }

    /// The `.pub` file's text: an untrusted comment line, then the key.
    fn pub_file(&self) -> String {
        self.pair.pk.to_box().unwrap().to_string()
    }

    /// Writes `<file>.minisig`, a signature of `bytes` with `comment` as its trusted comment.
    fn sign(&self, file: &Path, bytes: &[u8], comment: &str) {
        let signature =
            minisign::sign(Some(&self.pair.pk), &self.pair.sk, Cursor::new(bytes), Some(comment), None).unwrap();
        std::fs::write(signature_of(file), signature.to_string()).unwrap();
    }
}

fn signature_of(file: &Path) -> std::path::PathBuf {
    file.with_file_name(format!("{}.minisig", file.file_name().unwrap().to_str().unwrap()))
}

fn entry<'a>(json: &'a Value, list: &str, file: &str) -> &'a Value {
    json[list]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["file"].as_str().unwrap().ends_with(file))
        .unwrap_or_else(|| panic!("{file} not in {list}: {json}"))
}

#[test]
fn with_trusted_keys_only_plugins_signed_by_one_of_them_load_and_the_list_names_the_signer() {
    let (inline, from_file, stranger) = (key(), key(), key());
    let dir = PluginDir::new();
    let key_file = dir.write_private("keys/vendor.pub", &from_file.pub_file());

    let signed = dir.add(&fixtures().static_env, "10-signed.so");
    inline.sign(&signed, &std::fs::read(&signed).unwrap(), "acme static-env 1.0.0");
    let by_file = dir.add(&fixtures().test_token_provider, "20-by-file.so");
    from_file.sign(&by_file, &std::fs::read(&by_file).unwrap(), "vendor build 42");
    dir.add(&fixtures().append_env, "30-unsigned.so");
    let strange = dir.add(&fixtures().numbered, "40-stranger.so");
    stranger.sign(&strange, &std::fs::read(&strange).unwrap(), "who?");
    let swapped = dir.add(&fixtures().panicking, "50-swapped.so");
    inline.sign(&swapped, &std::fs::read(&fixtures().static_env).unwrap(), "signed another file");
    let garbage = dir.add(&fixtures().crashing, "60-garbage.so");
    std::fs::write(signature_of(&garbage), "not a signature\n").unwrap();

    let config = format!("trusted_keys = [{:?}, {:?}]\n", inline.base64(), key_file.display().to_string());
    let s = server().dir(dir).config(&config).start();
    let json = s.get("/admin/plugins", Some(ADMIN)).json();
    let names: Vec<&str> = json["plugins"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["static-env", "test-token-provider"], "{json}");
    assert_eq!(
        entry(&json, "plugins", "10-signed.so")["signature"],
        serde_json::json!({"key_id": inline.id, "trusted_comment": "acme static-env 1.0.0"})
    );
    assert_eq!(entry(&json, "plugins", "20-by-file.so")["signature"]["key_id"], from_file.id.as_str());
    for (file, error) in [
        ("30-unsigned.so", "not signed by a trusted key: no signature file 30-unsigned.so.minisig".to_owned()),
        (
            "40-stranger.so",
            format!("not signed by a trusted key: signed by key {}, which is not in trusted_keys", stranger.id),
        ),
        ("50-swapped.so", format!("signature does not match: the file is not what key {} signed", inline.id)),
        ("60-garbage.so", "signature file 60-garbage.so.minisig is not a minisign signature".to_owned()),
    ] {
        assert_eq!(entry(&json, "rejected", file)["error"], error.as_str(), "{json}");
    }
    assert_eq!(s.get("/admin/github-installation-token", Some(ADMIN)).status, 200);

    // A signature replaced on disk is checked again at the next reload, file unchanged.
    std::fs::write(signature_of(&s.plugin_dir().join("10-signed.so")), "not a signature\n").unwrap();
    let json = s.post("/admin/plugins/reload", Some(ADMIN), None).json();
    assert_eq!(
        entry(&json, "rejected", "10-signed.so")["error"],
        "signature file 10-signed.so.minisig is not a minisign signature"
    );

    // plugins check: the same decision, before any worker sees the file, naming the signer.
    let config_file = s.dir().write_private("check.toml", &config);
    let check = |file: &Path| {
        let out = plughost_command().arg("--config").arg(&config_file).args(["plugins", "check"]).arg(file).output();
        String::from_utf8_lossy(&out.unwrap().stdout).into_owned()
    };
    assert_eq!(
        check(&by_file),
        format!(
            "ok    {}: test-token-provider 0.1.0 (plughost-sdk 1.1.0), provides env_mutator, token_provider; signed by \
             key {} (\"vendor build 42\")\n",
            by_file.display(),
            from_file.id
        )
    );
    assert_eq!(
        check(&s.plugin_dir().join("30-unsigned.so")),
        format!(
            "FAIL  {}: not signed by a trusted key: no signature file 30-unsigned.so.minisig\n",
            s.plugin_dir().join("30-unsigned.so").display()
        )
    );
}

#[test]
fn without_trusted_keys_signature_files_are_not_read() {
    let dir = PluginDir::new();
    let file = dir.add(&fixtures().static_env, "10-env.so");
    std::fs::write(signature_of(&file), "not a signature\n").unwrap();
    let s = server().dir(dir).start();
    let json = s.get("/admin/plugins", Some(ADMIN)).json();
    assert_eq!(json["plugins"][0]["name"], "static-env", "{json}");
    assert_eq!(json["plugins"][0]["signature"], Value::Null);
}

#[test]
fn an_unusable_trusted_key_stops_the_start_naming_the_setting() {
    for (keys, expected) in [
        ("[\"RWQnot-a-key\"]", "trusted_keys in {config}: entry 1 is not a minisign public key"),
        ("[\"{dir}/missing.pub\"]", "trusted_keys in {config}: entry 1: cannot read {dir}/missing.pub:"),
    ] {
        let dir = PluginDir::new();
        let root = dir.root().display().to_string();
        let config = format!("{root}/plughost.toml");
        match server().dir(dir).config(&format!("trusted_keys = {keys}\n")).try_start() {
            Err(StartError::Exited { status, log }) => {
                assert_eq!(status.code(), Some(2), "{log}");
                let expected = expected.replace("{config}", &config).replace("{dir}", &root);
                assert!(log.lines().any(|l| l.starts_with(&format!("plughost: {expected}"))), "{expected}\n{log}");
            }
            Err(other) => panic!("{other}"),
            Ok(s) => panic!("started with an unusable key; log:\n{}", s.log()),
        }
    }
}
