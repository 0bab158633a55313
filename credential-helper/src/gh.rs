//! Keeps the GitHub CLI logged in with the current token, through its own `hosts.yml`.
//!
//! gh reads `oauth_token` for a host from `$GH_CONFIG_DIR/hosts.yml` (else
//! `$XDG_CONFIG_HOME/gh`, else `~/.config/gh`) unless `GH_TOKEN`/`GITHUB_TOKEN` is set,
//! which overrides it. Since gh 2.40 the file is in the multi-account layout:
//!
//! ```yaml
//! github.com:
//!     users:
//!         x-access-token:
//!             oauth_token: ghs_...
//!     git_protocol: https
//!     oauth_token: ghs_...
//!     user: x-access-token
//! ```
//!
//! The host-level `oauth_token`/`user` keep older gh versions working. gh migrates a
//! config without `version: "1"` in `config.yml` by asking the API who the user is,
//! which an installation token cannot answer; so the version is written if absent.
//!
//! Only the block of the host written is replaced, line by line: other hosts' entries,
//! comments and formatting stay byte for byte.

use std::fs;
use std::io;
use std::path::Path;

use crate::fsutil::{self, PathError};
use crate::protocol::USERNAME;
use crate::secret::Secret;

/// Writes `token` for `host` into `<dir>/hosts.yml` (0600, atomic), keeping every other host.
pub fn write_token(dir: &Path, host: &str, token: &Secret) -> Result<(), PathError> {
    fsutil::private_dir(dir)?;
    let hosts = dir.join("hosts.yml");
    let old = read_or_empty(&hosts)?;
    fsutil::write_atomic(&hosts, replace_host_block(&old, host, token).as_bytes())?;

    let config = dir.join("config.yml");
    let config_text = read_or_empty(&config)?;
    if !config_text.lines().any(|l| l.starts_with("version:")) {
        let mut updated = String::from("version: \"1\"\n");
        if config_text.trim() != "{}" {
            updated.push_str(&config_text);
        }
        fsutil::write_atomic(&config, updated.as_bytes())?;
    }
    Ok(())
}

fn read_or_empty(path: &Path) -> Result<String, PathError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(PathError::new("cannot read", path, e)),
    }
}

/// YAML scalar: plain when it is safe, else a double-quoted (JSON-compatible) string.
fn scalar(value: &str) -> String {
    let plain = !value.is_empty()
        && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'))
        && !value.starts_with(['-', '.']);
    if plain { value.to_owned() } else { serde_json::to_string(value).expect("strings serialise") }
}

/// The top-level key of a YAML line, if the line starts a top-level mapping entry.
///
/// A host with a port holds a colon: the key ends at the closing quote of a quoted key, else at
/// the first `: ` or a colon ending the line (`127.0.0.1:8443:` as gh writes it).
fn top_level_key(line: &str) -> Option<String> {
    if line.starts_with([' ', '\t', '#', '-']) || line.starts_with("...") || line.trim().is_empty() {
        return None;
    }
    let line = line.trim_end();
    for quote in ['"', '\''] {
        if let Some(rest) = line.strip_prefix(quote) {
            let end = rest.find(quote)?;
            return rest[end + 1..].trim_start().starts_with(':').then(|| rest[..end].to_owned());
        }
    }
    let end = line.find(": ").or_else(|| line.strip_suffix(':').map(str::len))?;
    Some(line[..end].trim().to_owned())
}

fn replace_host_block(old: &str, host: &str, token: &Secret) -> String {
    let t = scalar(token.expose());
    let block = format!(
        "{h}:\n    users:\n        {u}:\n            oauth_token: {t}\n    git_protocol: https\n    oauth_token: {t}\n    user: {u}\n",
        h = scalar(host),
        u = USERNAME,
    );
    // gh writes an empty mapping as `{}`; anything else is kept.
    let old = if old.trim() == "{}" { "" } else { old };
    let mut out = String::with_capacity(old.len() + block.len());
    let mut in_ours = false;
    let mut written = false;
    for line in old.split_inclusive('\n') {
        if let Some(key) = top_level_key(line) {
            in_ours = key == host;
            if in_ours && !written {
                out.push_str(&block);
                written = true;
            }
        }
        if !in_ours {
            out.push_str(line);
        }
    }
    if !written {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&block);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn replaces_only_our_host() {
        let old = "# managed\nghe.example.com:\n    user: alice\n    oauth_token: gho_alice\n    git_protocol: ssh\ngithub.com:\n    oauth_token: ghs_old\n    user: x-access-token\nother.host:\n    user: bob\n";
        let new = replace_host_block(old, "github.com", &Secret::new("ghs_new").unwrap());
        assert!(new.starts_with(
            "# managed\nghe.example.com:\n    user: alice\n    oauth_token: gho_alice\n    git_protocol: ssh\n"
        ));
        assert!(new.contains("github.com:\n    users:\n        x-access-token:\n            oauth_token: ghs_new\n    git_protocol: https\n    oauth_token: ghs_new\n    user: x-access-token\n"));
        assert!(new.ends_with("other.host:\n    user: bob\n"));
        assert!(!new.contains("ghs_old"));
        assert_eq!(replace_host_block(&new, "github.com", &Secret::new("ghs_new").unwrap()), new);
    }

    #[test]
    fn hosts_with_ports_are_replaced_not_repeated() {
        let (t1, t2) = (Secret::new("ghs_1").unwrap(), Secret::new("ghs_2").unwrap());
        let once = replace_host_block("", "127.0.0.1:8443", &t1);
        let twice = replace_host_block(&once, "127.0.0.1:8443", &t2);
        assert_eq!(twice, once.replace("ghs_1", "ghs_2"));
        // As gh itself writes such a key (plain), and other hosts with ports stay.
        let gh_written = "127.0.0.1:8443:\n    oauth_token: ghs_old\nghe.example:9443:\n    user: bob\n";
        let out = replace_host_block(gh_written, "127.0.0.1:8443", &t2);
        assert!(!out.contains("ghs_old"), "{out}");
        assert!(out.ends_with("ghe.example:9443:\n    user: bob\n"), "{out}");
        assert_eq!(out.matches("127.0.0.1:8443").count(), 1, "{out}");
    }

    #[test]
    fn appends_to_empty_or_missing_newline() {
        let t = Secret::new("ghs_1").unwrap();
        assert!(replace_host_block("{}\n", "github.com", &t).starts_with("github.com:\n"));
        let out = replace_host_block("a.host:\n    user: z", "github.com", &t);
        assert!(out.starts_with("a.host:\n    user: z\ngithub.com:\n"));
    }

    #[test]
    fn writes_private_files_and_config_version() {
        let dir = tempfile::tempdir().unwrap();
        let gh = dir.path().join("gh");
        fs::create_dir_all(&gh).unwrap();
        fs::write(gh.join("config.yml"), "editor: vim\n").unwrap();
        write_token(&gh, "github.com", &Secret::new("ghs_1").unwrap()).unwrap();
        write_token(&gh, "github.com", &Secret::new("ghs_2").unwrap()).unwrap();
        let hosts = fs::read_to_string(gh.join("hosts.yml")).unwrap();
        assert_eq!(hosts.matches("ghs_2").count(), 2);
        assert!(!hosts.contains("ghs_1"));
        assert_eq!(fs::metadata(gh.join("hosts.yml")).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read_to_string(gh.join("config.yml")).unwrap(), "version: \"1\"\neditor: vim\n");
    }
}
