//! `gh` on a live token: the helper, run under the name `gh`, execs the real gh with the current
//! installation token in the variable gh reads for the host.
//!
//! Why a wrapper rather than only keeping `hosts.yml` current (which the refresher also does):
//! a token in gh's environment is read when gh starts, so every gh run gets the token the
//! helper holds at that moment: from its cache, or fetched on the spot (single flight per host,
//! as for git) when the cache is cold or inside the margin. Nothing has to be running in the
//! background, and a token set in the environment by the image cannot shadow it.
//!
//! Rules, followed in order by [`plan`]:
//! 1. Which host gets which variable (gh's own rules): `github.com` is read from `GH_TOKEN`
//!    (then `GITHUB_TOKEN`); every other host from `GH_ENTERPRISE_TOKEN` (then
//!    `GITHUB_ENTERPRISE_TOKEN`). There is one enterprise variable for all enterprise hosts, so
//!    the enterprise host served is the one gh will talk to: `--hostname H` on the command line,
//!    else `GH_HOST`, else the only non-github.com host of `PLUGHOST_CREDENTIAL_HOSTS`. With several
//!    and none named, no enterprise token is set and gh reads `hosts.yml` (kept by the refresher).
//! 2. A value already in one of the host's two variables is replaced when it is an installation
//!    token (`ghs_...`, what plughost and the system it replaces put there; it dies within the
//!    hour), and kept otherwise: a personal access token or OAuth token (`ghp_`, `github_pat_`,
//!    `gho_`, ...) set by the user is their choice, and gh keeps using it.
//! 3. A host whose token cannot be had (plughost unreachable and nothing cached) is a warning on
//!    stderr; gh still runs, on whatever it would have used without the wrapper.
//! 4. The real gh is `PLUGHOST_GH_PATH`, else the first `gh` on `PATH` that is not this program
//!    (compared by device and inode, so symlinks and hard links to the helper are skipped).

use std::ffi::{OsStr, OsString};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::config::Config;
use crate::resolve::credential_for;
use crate::secret::Secret;

/// The variables gh reads a host's token from, first the one that wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenVars {
    /// `GH_TOKEN` or `GH_ENTERPRISE_TOKEN`.
    pub primary: &'static str,
    /// `GITHUB_TOKEN` or `GITHUB_ENTERPRISE_TOKEN`.
    pub secondary: &'static str,
}

/// For `github.com`.
pub const DOTCOM_VARS: TokenVars = TokenVars { primary: "GH_TOKEN", secondary: "GITHUB_TOKEN" };
/// For every other host (GitHub Enterprise Server).
pub const ENTERPRISE_VARS: TokenVars =
    TokenVars { primary: "GH_ENTERPRISE_TOKEN", secondary: "GITHUB_ENTERPRISE_TOKEN" };

/// gh's variables for `host`.
pub fn vars_for(host: &str) -> TokenVars {
    if host.eq_ignore_ascii_case("github.com") { DOTCOM_VARS } else { ENTERPRISE_VARS }
}

/// Whether an environment value may be replaced by a fresh token: installation tokens only.
pub fn is_replaceable(value: &str) -> bool {
    value.trim().starts_with("ghs_")
}

/// Which hosts get a token and through which variables, and why others do not.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Hosts to fetch a token for, with the variables to set.
    pub hosts: Vec<(String, TokenVars)>,
    /// Why a configured host gets nothing (kept user token, ambiguous enterprise host).
    pub notes: Vec<String>,
}

/// Applies rules 1 and 2 to the configured hosts, gh's arguments and its environment.
pub fn plan(config: &Config, args: &[OsString], env: &dyn Fn(&str) -> Option<String>) -> Plan {
    let mut plan = Plan::default();
    let listed = |host: &str| config.hosts.iter().any(|r| r.host == host);
    let mut candidates = Vec::new();
    if listed("github.com") {
        candidates.push("github.com".to_owned());
    }
    let enterprise: Vec<&str> = config.hosts.iter().map(|r| r.host.as_str()).filter(|h| *h != "github.com").collect();
    let named = hostname_arg(args).or_else(|| env("GH_HOST")).map(|h| h.trim().to_ascii_lowercase());
    match (named, enterprise.as_slice()) {
        (_, []) => {}
        (Some(h), _) if h == "github.com" => {}
        (Some(h), _) if listed(&h) => candidates.push(h),
        (Some(_), _) => {}
        (None, [only]) => candidates.push((*only).to_owned()),
        (None, several) => plan.notes.push(format!(
            "several enterprise hosts ({}) and none named by --hostname or GH_HOST: GH_ENTERPRISE_TOKEN is not set",
            several.join(", ")
        )),
    }
    for host in candidates {
        let vars = vars_for(&host);
        let kept = [vars.primary, vars.secondary]
            .into_iter()
            .find(|var| env(var).is_some_and(|v| !v.trim().is_empty() && !is_replaceable(&v)));
        match kept {
            Some(var) => plan
                .notes
                .push(format!("${var} is set to a token that is not an installation token: gh uses it for {host}")),
            None => plan.hosts.push((host, vars)),
        }
    }
    plan
}

/// The host of `--hostname H` / `--hostname=H` among gh's arguments (before a `--`).
fn hostname_arg(args: &[OsString]) -> Option<String> {
    let mut iter = args.iter().map(|a| a.to_str());
    while let Some(arg) = iter.next() {
        match arg? {
            "--" => return None,
            "--hostname" => return iter.next().flatten().map(str::to_owned),
            other => {
                if let Some(value) = other.strip_prefix("--hostname=") {
                    return Some(value.to_owned());
                }
            }
        }
    }
    None
}

/// Why the real gh could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GhError {
    /// No `gh` on `PATH` other than this wrapper.
    #[error("the real gh is not on PATH (only this wrapper is); install gh or set PLUGHOST_GH_PATH")]
    NotFound,
    /// `PLUGHOST_GH_PATH` names this program: running it would loop.
    #[error("PLUGHOST_GH_PATH={path} is this wrapper, not gh")]
    IsThisProgram {
        /// The path given.
        path: PathBuf,
    },
    /// exec failed.
    #[error("cannot run {path}: {source}")]
    Exec {
        /// The gh that was tried.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The real gh: `PLUGHOST_GH_PATH`, else the first executable `gh` on `PATH` that is not this program.
pub fn find_real_gh(gh_path: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = gh_path {
        return Some(path.to_owned());
    }
    let me = std::env::current_exe().ok().and_then(|p| file_id(&p));
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("gh"))
        .filter(|p| crate::install::is_executable(p))
        .find(|p| me.is_none() || file_id(p) != me)
}

/// Device and inode: the same file whatever the path (symlink or hard link).
pub(crate) fn file_id(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Runs the real gh with `args` and fresh tokens; returns only if gh could not be started.
/// Without a configuration (the helper's settings are broken) gh runs with its environment as is.
pub fn exec(config: Option<&Config>, args: Vec<OsString>) -> GhError {
    let env = |name: &str| std::env::var(name).ok();
    let mut set: Vec<(&'static str, Secret)> = Vec::new();
    let mut warnings = Vec::new();
    if let Some(config) = config {
        // The plan's notes explain skipped hosts to tests and readers; printing them on every
        // gh run would be noise, as the user chose those settings.
        for (host, vars) in plan(config, &args, &env).hosts {
            match credential_for(config, &host, &mut warnings) {
                Ok(credential) => {
                    if env(vars.secondary).is_some_and(|v| is_replaceable(&v)) {
                        set.push((vars.secondary, credential.token.clone()));
                    }
                    set.push((vars.primary, credential.token));
                }
                Err(e) => warnings.push(format!("gh runs without a plughost token for {host}: {e}")),
            }
        }
    }
    for w in &warnings {
        eprintln!("git-credential-plughost (gh): warning: {w}");
    }
    let gh_path = match config {
        Some(c) => c.gh_path.clone(),
        None => std::env::var_os("PLUGHOST_GH_PATH").filter(|v| !v.is_empty()).map(PathBuf::from),
    };
    let Some(gh) = find_real_gh(gh_path.as_deref()) else {
        return GhError::NotFound;
    };
    if std::env::current_exe().ok().and_then(|me| file_id(&me)).is_some_and(|me| file_id(&gh) == Some(me)) {
        return GhError::IsThisProgram { path: gh };
    }
    let mut command = Command::new(&gh);
    command.arg0(OsStr::new("gh")).args(args);
    for (var, token) in &set {
        command.env(var, token.expose());
    }
    GhError::Exec { path: gh, source: command.exec() }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(hosts: &str) -> Config {
        let map = HashMap::from([("PLUGHOST_CREDENTIAL_HOSTS".to_owned(), hosts.to_owned())]);
        Config::from_lookup(|k| map.get(k).cloned()).unwrap()
    }

    fn plan_with(hosts: &str, args: &[&str], env: &[(&str, &str)]) -> Plan {
        let env: HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        plan(&config(hosts), &args, &|k| env.get(k).cloned())
    }

    fn hosts(plan: &Plan) -> Vec<(&str, &str)> {
        plan.hosts.iter().map(|(h, v)| (h.as_str(), v.primary)).collect()
    }

    #[test]
    fn dotcom_and_the_one_enterprise_host() {
        let p = plan_with("github.com,ghe.example.com:8443", &["api", "/user"], &[]);
        assert_eq!(hosts(&p), [("github.com", "GH_TOKEN"), ("ghe.example.com:8443", "GH_ENTERPRISE_TOKEN")]);
        assert!(p.notes.is_empty());
    }

    #[test]
    fn several_enterprise_hosts_need_a_name() {
        let p = plan_with("a.example,b.example", &["api", "/user"], &[]);
        assert!(p.hosts.is_empty());
        assert!(p.notes[0].contains("a.example, b.example"), "{:?}", p.notes);
        let p = plan_with("a.example,b.example", &["api", "/user"], &[("GH_HOST", "B.example")]);
        assert_eq!(hosts(&p), [("b.example", "GH_ENTERPRISE_TOKEN")]);
        let p =
            plan_with("a.example,b.example", &["api", "--hostname", "a.example", "/x"], &[("GH_HOST", "b.example")]);
        assert_eq!(hosts(&p), [("a.example", "GH_ENTERPRISE_TOKEN")]);
        let p = plan_with("a.example,b.example", &["api", "--hostname=b.example", "/x"], &[]);
        assert_eq!(hosts(&p), [("b.example", "GH_ENTERPRISE_TOKEN")]);
        let p = plan_with("a.example,b.example", &["api", "--", "--hostname=b.example"], &[]);
        assert!(p.hosts.is_empty());
        let p = plan_with("a.example", &["api", "/x"], &[("GH_HOST", "unlisted.example")]);
        assert!(p.hosts.is_empty(), "a host the helper does not answer for gets nothing");
    }

    #[test]
    fn installation_tokens_are_replaced_user_tokens_kept() {
        let p = plan_with("github.com", &[], &[("GH_TOKEN", "ghs_stale")]);
        assert_eq!(hosts(&p), [("github.com", "GH_TOKEN")]);
        let p = plan_with("github.com", &[], &[("GITHUB_TOKEN", "ghp_mine")]);
        assert!(p.hosts.is_empty());
        assert!(p.notes[0].contains("$GITHUB_TOKEN"), "{:?}", p.notes);
        assert!(!p.notes[0].contains("ghp_mine"), "notes never show a token");
        let p = plan_with("ghe.example", &[], &[("GH_ENTERPRISE_TOKEN", "github_pat_x"), ("GH_TOKEN", "ghp_y")]);
        assert!(p.hosts.is_empty());
        let p = plan_with("ghe.example", &[], &[("GH_TOKEN", "ghp_y")]);
        assert_eq!(hosts(&p), [("ghe.example", "GH_ENTERPRISE_TOKEN")], "GH_TOKEN is github.com's only");
    }
}
