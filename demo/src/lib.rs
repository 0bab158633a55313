//! # plughost-demo
//!
//! The whole story on embedded defaults, on a fresh machine, with no GitHub account:
//!
//! 1. the bundled GitHub API emulator starts on loopback, with a freshly generated App key
//!    (it is not GitHub; it checks App JWTs as GitHub does and mints installation tokens);
//! 2. `plughost serve` starts with the real `github-app-auth` and `static-env` plugins;
//! 3. a workspace token is issued with `plughost workspace-token issue`;
//! 4. the provisioning env chain and the token endpoint are called over HTTP;
//! 5. real `git`, configured by `git-credential-plughost install`, gets a live token through
//!    the credential helper, and the emulator confirms the token is one it minted and still valid.
//!
//! [`Story::run`] does all of it and returns the running pieces; `plughost-demo` (the binary)
//! prints the story and how to call the API; the end-to-end tests assert on it.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, ensure};
use github_emulator::{Emulator, EmulatorConfig, EmulatorHandle, TestCa};
use plughost_testkit::{PluginDir, Serve};

/// The built programs and plugins: the test kit's fixture paths, of which the story uses the
/// host, the credential helper, and the GitHub App and static-env plugins.
pub use plughost_testkit::Fixtures as Artifacts;

fn check(artifacts: &Artifacts) -> anyhow::Result<()> {
    for path in [&artifacts.plughost, &artifacts.credential_helper, &artifacts.github_app_auth, &artifacts.static_env] {
        ensure!(path.exists(), "{} is missing: build the workspace first (scripts/demo does)", path.display());
    }
    Ok(())
}

/// Knobs the tests turn; the demo uses the defaults.
#[derive(Debug, Clone)]
pub struct Options {
    /// Lifetime of the tokens the emulator mints (GitHub: one hour).
    pub token_ttl: Duration,
    /// The plugin's `refresh_margin_secs`.
    pub refresh_margin_secs: u64,
    /// The credential helper's margin (`PLUGHOST_CREDENTIAL_MARGIN_SECS`).
    pub helper_margin_secs: u64,
    pub workspace_id: String,
    /// Serve the emulator over https, as a GitHub Enterprise Server behind a private CA: a
    /// throwaway CA, the plugin's `api_url` at `/api/v3` with that CA as `ca_bundle_path`, and
    /// the emulator's host among the helper's hosts (so gh can be pointed at it).
    pub tls: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            token_ttl: Duration::from_secs(3600),
            refresh_margin_secs: 600,
            helper_margin_secs: 300,
            workspace_id: "ws-demo".to_owned(),
            tls: false,
        }
    }
}

/// The running pieces of the story. Dropping it stops the host and the emulator.
pub struct Story {
    /// `plughost serve`, owning the demo's work directory (see [`Story::work`]). First, so that
    /// on drop the host stops before the emulator does.
    server: Serve,
    pub emulator: EmulatorHandle,
    pub host_url: String,
    pub admin_token: String,
    pub workspace_token: String,
    pub workspace_id: String,
    pub options: Options,
    pub artifacts: Artifacts,
    server_log: std::path::PathBuf,
    /// The throwaway CA's certificate (PEM file), in TLS mode.
    ca_file: Option<std::path::PathBuf>,
}

impl Story {
    /// Runs steps 1-5, narrating to `out`.
    pub fn run(artifacts: Artifacts, options: Options, out: &mut dyn Write) -> anyhow::Result<Story> {
        check(&artifacts)?;
        let work = PluginDir::with_prefix("plughost-demo-");
        let root = work.root();

        // 1. The emulator, with a fresh App key.
        // Generated at run time (one per process): no private key is committed anywhere.
        let key = github_emulator::shared_test_key();
        let ca = if options.tls { Some(TestCa::generate().context("generating a throwaway CA")?) } else { None };
        let mut emulator_config = EmulatorConfig::with_test_app(&key.public_pem).token_ttl(options.token_ttl);
        if let Some(ca) = &ca {
            emulator_config = emulator_config.tls(ca);
        }
        let emulator = Emulator::start(emulator_config).context("starting the GitHub API emulator")?;
        writeln!(
            out,
            "1. GitHub API emulator at {} (an emulator, NOT GitHub: it checks App JWTs as GitHub does and mints tokens valid only here)",
            emulator.base_url()
        )?;

        // 2. The host with both plugins.
        let key_path = work.write_private("app-private-key.pem", &key.private_pem);
        let ca_file = ca.as_ref().map(|ca| work.write_private("test-ca.pem", ca.ca_pem()));
        let (api_url, ca_setting) = match &ca_file {
            None => (emulator.base_url(), String::new()),
            Some(path) => (emulator.ghes_base_url(), format!("ca_bundle_path = {:?}\n", path.display().to_string())),
        };
        work.add(&artifacts.static_env, "10-static-env.so");
        work.configure_private("10-static-env.so", "[vars]\nTZ = \"UTC\"\nPLATFORM = \"plughost-demo\"\n");
        work.add(&artifacts.github_app_auth, "20-github-app-auth.so");
        work.configure_private(
            "20-github-app-auth.so",
            &format!(
                "app_id = {}\ninstallation_id = {}\nprivate_key_path = {:?}\napi_url = {:?}\nrefresh_margin_secs = {}\n{ca_setting}",
                github_emulator::TEST_APP_ID,
                github_emulator::TEST_INSTALLATION_ID,
                key_path.display().to_string(),
                api_url,
                options.refresh_margin_secs,
            ),
        );
        let admin_token = random_token()?;
        let server_log = root.join("plughost.log");
        let state_dir = work.state_dir().to_owned();
        let server = Serve::builder()
            .binary(&artifacts.plughost)
            .admin_token(Some(&admin_token))
            .rust_log("info")
            .env("NO_COLOR", "1")
            // Names the provider of the GitHub routes outright (the operator's setting; a
            // provider may also declare GitHub itself, see docs/operator.md).
            .env("PLUGHOST_GITHUB_TOKEN_PROVIDER", "github-app-auth")
            .log_file(&server_log)
            .dir(work)
            .try_start()
            .context("starting plughost serve")?;
        let host_url = server.base().to_owned();
        let plugins: serde_json::Value = get_json(&format!("{host_url}/admin/plugins"), &admin_token)?;
        writeln!(out, "2. plughost serving at {host_url}; plugins loaded:")?;
        for p in plugins["plugins"].as_array().into_iter().flatten() {
            writeln!(
                out,
                "     {} {} ({}) from {}",
                p["name"].as_str().unwrap_or("?"),
                p["version"].as_str().unwrap_or("?"),
                p["capabilities"],
                p["file"].as_str().unwrap_or("?")
            )?;
        }

        // 3. A workspace token, through the CLI against the same state directory.
        let issued = Command::new(&artifacts.plughost)
            .args(["workspace-token", "issue", &options.workspace_id, "--state-dir"])
            .arg(&state_dir)
            .output()
            .context("running plughost workspace-token issue")?;
        ensure!(issued.status.success(), "workspace-token issue failed: {}", String::from_utf8_lossy(&issued.stderr));
        let workspace_token = String::from_utf8(issued.stdout)?.trim().to_owned();
        writeln!(
            out,
            "3. workspace token issued for {} (shown once; only its SHA-256 is stored)",
            options.workspace_id
        )?;

        // 4. The provisioning env chain, then the token endpoint with the workspace's bearer.
        let env: serde_json::Value = ureq::post(&format!("{host_url}/admin/workspaces/{}/env", options.workspace_id))
            .header("Authorization", &format!("Bearer {admin_token}"))
            .send_json(serde_json::json!({"env": {"HOME": "/home/agent"}}))?
            .body_mut()
            .read_json()?;
        let names: Vec<&str> =
            env["env"].as_object().map(|m| m.keys().map(String::as_str).collect()).unwrap_or_default();
        // github-app-auth writes no token by default: one in the environment would be dead in an
        // hour, while git and gh ask the credential helper for a live one.
        writeln!(out, "4. provisioning env after the chain: {names:?} (no token in it: git and gh ask the helper)")?;
        let served: serde_json::Value = get_json(
            &format!("{host_url}/workspaces/{}/github-installation-token", options.workspace_id),
            &workspace_token,
        )?;
        writeln!(
            out,
            "   token endpoint: a {}-character token, expires_at {}",
            served["token"].as_str().map_or(0, str::len),
            served["expires_at"]
        )?;

        let story = Story {
            emulator,
            host_url,
            admin_token,
            workspace_token,
            workspace_id: options.workspace_id.clone(),
            options,
            artifacts,
            server,
            server_log,
            ca_file,
        };

        // 5. git, wired by the helper's installer, asks for credentials for the GitHub host.
        story.install_credential_helper()?;
        let fill = story.git_credential_fill()?;
        ensure!(story.emulator.is_token_valid(&fill.password), "git was handed a token the emulator does not accept");
        writeln!(
            out,
            "5. git credential fill for https://{}: username={}, a live installation token (the emulator confirms it), password_expiry_utc={}",
            story.git_host(),
            fill.username,
            fill.expiry_utc
        )?;
        Ok(story)
    }

    /// The demo's work directory: HOME, plugin dir, state dir, git config of the demo workspace.
    pub fn work(&self) -> &Path {
        self.server.dir().root()
    }

    /// The git host the story's credentials are for: the emulator's, as git names it. The
    /// helper asks plughost for that host's token (`?host=`), and github-app-auth serves the host
    /// of its `api_url`.
    pub fn git_host(&self) -> String {
        self.emulator_host()
    }

    /// The emulator's `host:port` as git and gh name it (a GitHub Enterprise Server host).
    pub fn emulator_host(&self) -> String {
        self.emulator.addr().to_string()
    }

    /// The environment of a process inside the demo workspace. `PATH` starts with the
    /// workspace's `bin`, where the helper is (and where its installer puts the `gh` link).
    pub fn workspace_env(&self) -> Vec<(String, String)> {
        let root = self.work();
        let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".to_owned());
        let hosts = format!("github.com,{}", self.emulator_host());
        let mut tls = Vec::new();
        if let Some(ca_file) = &self.ca_file {
            // gh (Go) trusts the throwaway CA through SSL_CERT_FILE.
            tls.push(("SSL_CERT_FILE".into(), ca_file.display().to_string()));
        }
        let mut env: Vec<(String, String)> = vec![
            ("PATH".into(), format!("{}:{path}", root.join("bin").display())),
            ("PLUGHOST_CREDENTIAL_HOSTS".into(), hosts),
            ("HOME".into(), root.join("home").display().to_string()),
            ("XDG_CONFIG_HOME".into(), root.join("home/.config").display().to_string()),
            ("PLATFORM_URL".into(), self.host_url.clone()),
            ("WORKSPACE_ID".into(), self.workspace_id.clone()),
            ("CONFIGS_DIR".into(), root.join("configs").display().to_string()),
            ("PLUGHOST_CREDENTIAL_CACHE_DIR".into(), root.join("credential-cache").display().to_string()),
            ("PLUGHOST_CREDENTIAL_MARGIN_SECS".into(), self.options.helper_margin_secs.to_string()),
            ("GIT_CONFIG_NOSYSTEM".into(), "1".into()),
            ("NO_PROXY".into(), "127.0.0.1,localhost".into()),
        ];
        env.extend(tls);
        env
    }

    /// `git-credential-plughost install` inside the workspace (no refresher: the demo is short).
    fn install_credential_helper(&self) -> anyhow::Result<()> {
        let work = self.server.dir();
        std::fs::create_dir_all(work.root().join("home"))?;
        work.write_private("configs/.auth_token", &self.workspace_token);
        // The helper on the workspace's PATH, as an image installs it.
        let bin = work.root().join("bin");
        std::fs::create_dir_all(&bin)?;
        let on_path = bin.join("git-credential-plughost");
        if !on_path.exists() {
            std::os::unix::fs::symlink(&self.artifacts.credential_helper, &on_path)?;
        }
        let out = Command::new(&self.artifacts.credential_helper)
            .args(["install", "--no-refresher"])
            .envs(self.workspace_env())
            .output()
            .context("running git-credential-plughost install")?;
        ensure!(out.status.success(), "install failed: {}", String::from_utf8_lossy(&out.stderr));
        Ok(())
    }

    /// `git credential fill` for the story's git host ([`Story::git_host`]), through the
    /// installed helper.
    pub fn git_credential_fill(&self) -> anyhow::Result<Filled> {
        self.git_credential_fill_for(&self.git_host())
    }

    /// `git credential fill` for `https://{host}`, through the installed helper.
    pub fn git_credential_fill_for(&self, host: &str) -> anyhow::Result<Filled> {
        let mut child = Command::new("git")
            .args(["credential", "fill"])
            .envs(self.workspace_env())
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running git (is it installed?)")?;
        child.stdin.take().context("git stdin")?.write_all(format!("protocol=https\nhost={host}\n\n").as_bytes())?;
        let out = child.wait_with_output()?;
        ensure!(out.status.success(), "git credential fill failed: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout)?;
        let field = |name: &str| {
            text.lines().find_map(|l| l.strip_prefix(name).and_then(|l| l.strip_prefix('='))).map(str::to_owned)
        };
        Ok(Filled {
            username: field("username").context("git returned no username")?,
            password: field("password").context("git returned no password")?,
            expiry_utc: field("password_expiry_utc").and_then(|v| v.parse().ok()).unwrap_or(0),
        })
    }

    /// Every `gh` on the workspace's `PATH`, in order: the helper's `gh` link first once
    /// installed, then the real gh.
    pub fn gh_on_path(&self) -> Vec<std::path::PathBuf> {
        let env = self.workspace_env();
        let path = env.iter().find(|(k, _)| k == "PATH").map(|(_, v)| v.clone()).unwrap_or_default();
        std::env::split_paths(&path).map(|d| d.join("gh")).filter(|p| p.exists()).collect()
    }

    /// `program` (a gh) inside the workspace, talking to the emulator as a GitHub Enterprise
    /// Server (`GH_HOST`); nothing inherited from the test's environment.
    pub fn gh_command(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        command
            .env_clear()
            .envs(self.workspace_env())
            .env("GH_HOST", self.emulator_host())
            .env("GH_NO_UPDATE_NOTIFIER", "1")
            .env("GH_PROMPT_DISABLED", "1")
            .stdin(Stdio::null());
        command
    }

    /// Stops `plughost serve` (the emulator keeps running, the work directory stays).
    pub fn stop_host(&mut self) {
        self.server.kill();
    }

    /// Everything the host logged so far.
    pub fn host_log(&self) -> String {
        self.server.log()
    }

    /// How to call the API by hand while the demo runs.
    pub fn print_api_help(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let url = &self.host_url;
        writeln!(out, "\nThe host keeps serving. Try:")?;
        writeln!(out, "  export PLUGHOST_ADMIN_TOKEN={}", self.admin_token)?;
        writeln!(out, "  curl -s -H \"Authorization: Bearer $PLUGHOST_ADMIN_TOKEN\" {url}/admin/plugins")?;
        writeln!(
            out,
            "  curl -s -H \"Authorization: Bearer $PLUGHOST_ADMIN_TOKEN\" {url}/admin/github-installation-token"
        )?;
        writeln!(
            out,
            "  curl -s -X POST -H \"Authorization: Bearer $PLUGHOST_ADMIN_TOKEN\" -d '{{\"env\":{{}}}}' {url}/admin/workspaces/ws-1/env"
        )?;
        writeln!(
            out,
            "  curl -s -X POST -H \"Authorization: Bearer $PLUGHOST_ADMIN_TOKEN\" {url}/admin/workspaces/ws-1/tokens"
        )?;
        writeln!(out, "  curl -s {url}/metrics | grep plughost_")?;
        writeln!(out, "Host log: {}", self.server_log.display())?;
        Ok(())
    }
}

/// What git answered.
pub struct Filled {
    pub username: String,
    pub password: String,
    pub expiry_utc: u64,
}

impl std::fmt::Debug for Filled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filled")
            .field("username", &self.username)
            .field("password", &"[REDACTED]")
            .field("expiry_utc", &self.expiry_utc)
            .finish()
    }
}

fn random_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .context("reading /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn get_json(url: &str, bearer: &str) -> anyhow::Result<serde_json::Value> {
    Ok(ureq::get(url)
        .header("Authorization", &format!("Bearer {bearer}"))
        .call()
        .with_context(|| format!("GET {url}"))?
        .body_mut()
        .read_json()?)
}
