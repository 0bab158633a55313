//! `install`: wires git (and gh) up inside a workspace; idempotent and fail-soft.
//!
//! For every host in `PLUGHOST_CREDENTIAL_HOSTS` (and for `http://` entries also the
//! `http` URL) the global git config gets exactly two entries, in this order:
//!
//! ```text
//! [credential "https://github.com"]
//!     helper =
//!     helper = /abs/path/to/git-credential-plughost
//! ```
//!
//! The empty entry deliberately drops helpers inherited from the system config (a stale
//! `store` or `cache` helper would otherwise answer first). Existing entries of that key
//! are unset first, so running twice gives the same file. The helper is named by an
//! absolute path, so git finds it whatever `PATH` the calling process has: the path under
//! which `PATH` finds this very binary (e.g. a symlink kept stable across upgrades), else
//! the running file's own path.
//!
//! gh: a link named `gh` to this program is put ahead of the real gh on `PATH` (see
//! `gh_wrapper`): in `PLUGHOST_GH_WRAPPER_DIR`, else in the directory where `PATH` finds this
//! program. An existing `gh` there that is not such a link is left alone, with a warning.

use std::ffi::OsStr;
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::config::Config;
use crate::resolve::open_cache;
use crate::{gh_wrapper, refresher};

/// Rotate the refresher log beyond this size (one line per event, so this is years).
const LOG_ROTATE_BYTES: u64 = 1024 * 1024;

/// What `install` did, and what it could not do.
#[derive(Debug, Default)]
pub struct Report {
    /// Steps done, one line each.
    pub done: Vec<String>,
    /// Problems that did not stop the rest.
    pub warnings: Vec<String>,
}

/// Runs every step; none of them stops the others.
pub fn install(config: &Config, start_refresher: bool) -> Report {
    let mut report = Report::default();
    let cache = open_cache(config, &mut report.warnings);
    if let Some(cache) = &cache {
        report.done.push(format!("cache directory {}", cache.dir().display()));
    }

    configure_git(config, &mut report);

    install_gh_wrapper(config, &mut report);

    if start_refresher {
        match &cache {
            Some(cache) => spawn_refresher(cache, &mut report),
            None => report.warnings.push("refresher not started: no cache directory".to_owned()),
        }
    }
    report
}

/// The `credential.<url>.helper` value naming this binary: the absolute path under which
/// `PATH` finds it (often a stable symlink that survives upgrades), else the running file.
pub fn helper_value() -> Result<String, std::io::Error> {
    let exe = std::env::current_exe()?;
    let real = exe.canonicalize().unwrap_or(exe);
    let on_path = find_on_path("git-credential-plughost")
        .filter(|p| p.is_absolute() && p.canonicalize().is_ok_and(|c| c == real));
    Ok(helper_value_for(on_path.as_deref().unwrap_or(&real)))
}

/// git runs an absolute path as is (appending the action); a path with spaces or quotes
/// needs the `!` shell form, single-quoted.
fn helper_value_for(exe: &Path) -> String {
    let text = exe.to_string_lossy().into_owned();
    let plain = text.chars().all(|c| c.is_ascii_alphanumeric() || "/._+-".contains(c));
    if plain { text } else { format!("!'{}'", text.replace('\'', r"'\''")) }
}

fn configure_git(config: &Config, report: &mut Report) {
    let git_works = Command::new("git").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    if !git_works.is_ok_and(|s| s.success()) {
        report.warnings.push("git not found on PATH; git is not configured".to_owned());
        return;
    }
    let helper = match helper_value() {
        Ok(h) => h,
        Err(e) => {
            report.warnings.push(format!("cannot find this program's own path: {e}; git is not configured"));
            return;
        }
    };
    for rule in &config.hosts {
        let schemes: &[&str] = if rule.allow_http { &["https", "http"] } else { &["https"] };
        for scheme in schemes {
            let key = format!("credential.{scheme}://{}.helper", rule.host);
            // Exit status 5 means "nothing to unset": fine on a first install.
            let steps: [(&[&str], &[i32]); 3] =
                [(&["--unset-all", &key], &[0, 5]), (&["--add", &key, ""], &[0]), (&["--add", &key, &helper], &[0])];
            let failed = steps.iter().find_map(|(args, ok)| git_config(args, ok).err());
            match failed {
                None => report.done.push(format!("git: {key} = '' then {helper}")),
                Some(e) => report.warnings.push(format!("git config --global {key}: {e}")),
            }
        }
    }
}

fn git_config(args: &[&str], ok_codes: &[i32]) -> Result<(), String> {
    let out = Command::new("git")
        .args(["config", "--global"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    match out.status.code() {
        Some(code) if ok_codes.contains(&code) => Ok(()),
        _ => Err(format!("{} ({})", String::from_utf8_lossy(&out.stderr).trim(), out.status)),
    }
}

/// Links `gh` to this program ahead of the real gh on `PATH`; idempotent.
fn install_gh_wrapper(config: &Config, report: &mut Report) {
    let Some(real) = gh_wrapper::find_real_gh(config.gh_path.as_deref()) else {
        report.warnings.push(
            "gh not found on PATH: no gh wrapper installed (the refresher still keeps gh's hosts.yml current)"
                .to_owned(),
        );
        return;
    };
    for var in ["GH_TOKEN", "GITHUB_TOKEN", "GH_ENTERPRISE_TOKEN", "GITHUB_ENTERPRISE_TOKEN"] {
        match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() && !gh_wrapper::is_replaceable(&v) => report.warnings.push(format!(
                "{var} is set to a token that is not an installation token: gh (and the wrapper) keep using it, not plughost's"
            )),
            _ => {}
        }
    }
    let me = match std::env::current_exe() {
        Ok(exe) => exe.canonicalize().unwrap_or(exe),
        Err(e) => {
            report.warnings.push(format!("no gh wrapper: cannot find this program's own path: {e}"));
            return;
        }
    };
    let on_path = find_on_path("git-credential-plughost").filter(|p| p.canonicalize().is_ok_and(|c| c == me));
    let Some(dir) =
        config.gh_wrapper_dir.clone().or_else(|| on_path.as_deref().and_then(Path::parent).map(Path::to_owned))
    else {
        report.warnings.push(format!(
            "no gh wrapper: this program is not on PATH; set PLUGHOST_GH_WRAPPER_DIR to a directory ahead of {} on PATH",
            real.display()
        ));
        return;
    };
    let link = dir.join("gh");
    // The link names the path PATH finds this program under (a stable symlink across upgrades).
    let target = on_path.unwrap_or_else(|| me.clone());
    match std::fs::symlink_metadata(&link) {
        Ok(_) if gh_wrapper::file_id(&link) == gh_wrapper::file_id(&me) => {
            report.done.push(format!("gh wrapper already at {}", link.display()));
        }
        Ok(_) => {
            report.warnings.push(format!(
                "no gh wrapper: {} exists and is not this program; left alone (remove it, or set PLUGHOST_GH_WRAPPER_DIR)",
                link.display()
            ));
            return;
        }
        Err(_) => {
            let tmp = dir.join(format!(".gh.{}.tmp", std::process::id()));
            let made = std::fs::create_dir_all(&dir)
                .and_then(|()| std::os::unix::fs::symlink(&target, &tmp))
                .and_then(|()| std::fs::rename(&tmp, &link));
            if let Err(e) = made {
                let _ = std::fs::remove_file(&tmp);
                report.warnings.push(format!("no gh wrapper: cannot create {}: {e}", link.display()));
                return;
            }
            report.done.push(format!("gh wrapper {} -> {}", link.display(), target.display()));
        }
    }
    if !precedes_on_path(&dir, real.parent().unwrap_or(Path::new("/"))) {
        report.warnings.push(format!(
            "{} is not ahead of {} on PATH: gh runs without the wrapper until it is (or use `git-credential-plughost gh ...`)",
            dir.display(),
            real.display()
        ));
    }
}

/// Whether `dir` comes before `other` on `PATH`.
fn precedes_on_path(dir: &Path, other: &Path) -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    let same = |a: &Path, b: &Path| a == b || a.canonicalize().ok().is_some_and(|c| b.canonicalize().ok() == Some(c));
    let entries: Vec<PathBuf> = std::env::split_paths(&path).collect();
    let first = |d: &Path| entries.iter().position(|e| same(e, d));
    match (first(dir), first(other)) {
        (Some(a), Some(b)) => a < b,
        (Some(_), None) => true,
        _ => false,
    }
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|p| is_executable(p))
}

pub(crate) fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn spawn_refresher(cache: &crate::cache::Cache, report: &mut Report) {
    match refresher::is_running(cache) {
        Ok(true) => {
            report.done.push("refresher already running".to_owned());
            return;
        }
        Ok(false) => {}
        Err(e) => {
            report.warnings.push(format!("refresher not started: {e}"));
            return;
        }
    }
    let log_path = cache.dir().join("refresher.log");
    if log_path.metadata().is_ok_and(|m| m.len() > LOG_ROTATE_BYTES) {
        let _ = std::fs::rename(&log_path, cache.dir().join("refresher.log.1"));
    }
    let log = OpenOptions::new().create(true).append(true).mode(0o600).open(&log_path);
    let (log_out, log_err) = match log.and_then(|f| Ok((f.try_clone()?, f))) {
        Ok(pair) => pair,
        Err(e) => {
            report.warnings.push(format!("refresher not started: cannot open {}: {e}", log_path.display()));
            return;
        }
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            report.warnings.push(format!("refresher not started: cannot find this program's own path: {e}"));
            return;
        }
    };
    let mut command = Command::new(&exe);
    command.arg(OsStr::new("refresh")).stdin(Stdio::null()).stdout(log_out).stderr(log_err);
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent; it runs in
    // the forked child before exec. A new session detaches the refresher from the terminal
    // and process group of whoever ran `install`, so their exit or Ctrl-C does not stop it.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    match command.spawn() {
        Ok(child) => report.done.push(format!("refresher started (pid {}, log {})", child.id(), log_path.display())),
        Err(e) => report.warnings.push(format!("refresher not started: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helper_value_quotes_only_when_needed() {
        assert_eq!(
            helper_value_for(Path::new("/usr/local/bin/git-credential-plughost")),
            "/usr/local/bin/git-credential-plughost"
        );
        assert_eq!(helper_value_for(Path::new("/opt/my tools/it's")), r"!'/opt/my tools/it'\''s'");
    }
}
