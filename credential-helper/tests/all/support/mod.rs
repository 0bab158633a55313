//! Shared test fixtures: the token server, the git smart-HTTP bridge and a sandbox that
//! runs the real binary and real git with an isolated HOME and cache.

pub mod git_http;
pub mod proxy;
pub mod token_server;

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub use token_server::{ADMIN_TOKEN, Mode, TokenServer, WORKSPACE_ID, WORKSPACE_TOKEN};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_git-credential-plughost");

/// An isolated environment: HOME, XDG dirs, CONFIGS_DIR with the workspace bearer.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub env: BTreeMap<String, String>,
}

impl Sandbox {
    /// Points the helper at `platform_url` for workspace [`WORKSPACE_ID`].
    pub fn new(platform_url: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for sub in ["home", "xdg-cache", "xdg-config", "configs"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        std::fs::write(root.join("configs/.auth_token"), format!("{WORKSPACE_TOKEN}\n")).unwrap();
        let mut env = BTreeMap::new();
        let mut set = |k: &str, v: &Path| env.insert(k.to_owned(), v.to_string_lossy().into_owned());
        set("HOME", &root.join("home"));
        set("XDG_CACHE_HOME", &root.join("xdg-cache"));
        set("XDG_CONFIG_HOME", &root.join("xdg-config"));
        set("CONFIGS_DIR", &root.join("configs"));
        env.insert("PATH".into(), std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()));
        env.insert("PLATFORM_URL".into(), platform_url.to_owned());
        env.insert("WORKSPACE_ID".into(), WORKSPACE_ID.to_owned());
        env.insert("GIT_CONFIG_NOSYSTEM".into(), "1".into());
        env.insert("GIT_TERMINAL_PROMPT".into(), "0".into());
        env.insert("PLUGHOST_CREDENTIAL_TIMEOUT_SECS".into(), "5".into());
        Self { dir, env }
    }

    pub fn set(&mut self, key: &str, value: &str) -> &mut Self {
        self.env.insert(key.to_owned(), value.to_owned());
        self
    }

    pub fn unset(&mut self, key: &str) -> &mut Self {
        self.env.remove(key);
        self
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The default cache directory under this sandbox's XDG_CACHE_HOME.
    pub fn cache_dir(&self) -> PathBuf {
        self.path("xdg-cache/plughost-credential")
    }

    /// gh's hosts file under this sandbox's XDG_CONFIG_HOME.
    pub fn gh_hosts(&self) -> PathBuf {
        self.path("xdg-config/gh/hosts.yml")
    }

    /// A command with exactly the sandbox environment (nothing inherited: no proxies, no GH_TOKEN).
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear().envs(&self.env).current_dir(self.dir.path());
        cmd
    }

    /// Runs the helper itself with `args` and `stdin`.
    pub fn helper(&self, args: &[&str], stdin: &str) -> Output {
        run(self.command(BIN).args(args), stdin)
    }

    /// `git <helper config> args...`: only our helper, whatever the environment configures.
    pub fn git(&self, args: &[&str]) -> Command {
        let mut cmd = self.command("git");
        cmd.args(["-c", "credential.helper=", "-c", &format!("credential.helper={BIN}")]).args(args);
        cmd
    }

    /// `git credential fill` for `protocol://host`.
    pub fn fill(&self, protocol: &str, host: &str) -> Output {
        run(&mut self.git(&["credential", "fill"]), &format!("protocol={protocol}\nhost={host}\n\n"))
    }

    /// `git credential reject` of `password` for `protocol://host`.
    pub fn reject(&self, protocol: &str, host: &str, password: &str) -> Output {
        let input = format!("protocol={protocol}\nhost={host}\nusername=x-access-token\npassword={password}\n\n");
        run(&mut self.git(&["credential", "reject"]), &input)
    }
}

/// Runs `cmd` with `stdin`, capturing output.
pub fn run(cmd: &mut Command, stdin: &str) -> Output {
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // A program may exit without reading its input (unknown actions): that is not an error here.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

/// `key=value` lines of a credential answer.
pub fn attributes(out: &Output) -> HashMap<String, String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect()
}

/// The password git (or the helper) printed, if any.
pub fn password(out: &Output) -> Option<String> {
    attributes(out).get("password").cloned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Fails if `text` contains any of `secrets` (tokens must only reach git's stdout).
pub fn assert_no_secrets(text: &str, secrets: &[String]) {
    for secret in secrets {
        assert!(!text.contains(secret.as_str()), "a secret leaked into: {text}");
    }
    for fixed in [ADMIN_TOKEN, WORKSPACE_TOKEN] {
        assert!(!text.contains(fixed), "a bearer token leaked into: {text}");
    }
}

/// Every token `server` issued: the secrets a failing path must not print.
pub fn issued_tokens(server: &TokenServer) -> Vec<String> {
    server.issued().into_iter().map(|i| i.token).collect()
}

/// A URL where nothing listens.
pub fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

/// Sleeps until the wall clock's whole second reaches `unix`.
pub fn sleep_until_unix(unix: u64) {
    let now = token_server::now_f64();
    if (unix as f64) > now {
        std::thread::sleep(std::time::Duration::from_secs_f64(unix as f64 - now + 0.05));
    }
}
