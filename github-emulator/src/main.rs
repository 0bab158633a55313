#![forbid(unsafe_code)]

//! `github-emulator`: a stand-in for GitHub's App API on your own machine, for demos and for
//! tests that run in another process.
//!
//! ```text
//! cargo run -p github-emulator -- --generate-key-to /tmp/app-key.pem
//! ```
//!
//! prints the listening address and the App/installation it emulates; point a client's
//! `api_url` at it and its `private_key_path` at `/tmp/app-key.pem`. With
//! `--tls-ca-to /tmp/ca.pem` it serves https with a throwaway CA whose certificate it writes
//! there (the client's `ca_bundle_path`). Steer it with
//! `/_emulator/...` (see the crate docs). It is NOT GitHub: its tokens work nowhere else.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use github_emulator::{AppConfig, Emulator, EmulatorConfig, InstallationConfig, TestCa, TestKeyPair};

#[derive(Parser)]
#[command(
    version,
    about = "Emulates GitHub's App API (JWT checks, installation tokens) for tests and demos. Not GitHub."
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8787")]
    listen: SocketAddr,
    #[arg(long, default_value_t = github_emulator::TEST_APP_ID)]
    app_id: u64,
    #[arg(long, default_value = github_emulator::TEST_CLIENT_ID)]
    client_id: String,
    /// PEM file with the App's RSA public key.
    #[arg(long, conflicts_with = "generate_key_to", required_unless_present = "generate_key_to")]
    public_key: Option<PathBuf>,
    /// Generate a key pair, write the PRIVATE key (PKCS#1 PEM) to this file for the client, and
    /// verify JWTs with its public half.
    #[arg(long)]
    generate_key_to: Option<PathBuf>,
    #[arg(long, default_value_t = github_emulator::TEST_INSTALLATION_ID)]
    installation_id: u64,
    /// Account (organization) the installation belongs to.
    #[arg(long, default_value = github_emulator::TEST_ORG)]
    org: String,
    /// Repositories of that account the installation reaches, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "widgets,gadgets,docs")]
    repos: Vec<String>,
    /// A further installation of the App, `ID:ORG:REPO,REPO...` (repeatable), e.g.
    /// `--also-installed 515151:globex:tools,infra`.
    #[arg(long, value_name = "ID:ORG:REPOS")]
    also_installed: Vec<String>,
    /// Lifetime of minted tokens (GitHub: 3600).
    #[arg(long, default_value_t = 3600)]
    token_ttl_secs: u64,
    /// Offset of the emulator's clock from this machine's, in seconds.
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    clock_skew_secs: i64,
    /// Serve https with a throwaway CA made now, and write that CA's certificate (PEM) to this
    /// file for clients to trust (e.g. the plugin's ca_bundle_path).
    #[arg(long)]
    tls_ca_to: Option<PathBuf>,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("github-emulator: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    let public_pem = match (&args.public_key, &args.generate_key_to) {
        (Some(path), _) => {
            std::fs::read_to_string(path).map_err(|e| format!("--public-key: cannot read {}: {e}", path.display()))?
        }
        (None, Some(path)) => {
            let pair = TestKeyPair::generate().map_err(|e| e.to_string())?;
            write_private(path, &pair.private_pem)
                .map_err(|e| format!("--generate-key-to: cannot write {}: {e}", path.display()))?;
            pair.public_pem
        }
        (None, None) => return Err("give --public-key FILE or --generate-key-to FILE".into()),
    };
    let installation = InstallationConfig::new(args.installation_id, args.app_id, &args.org)
        .with_repos(args.repos.iter().map(String::as_str))
        .with_permissions([("contents", "write"), ("metadata", "read"), ("pull_requests", "write")]);
    let mut installations = vec![installation];
    for spec in &args.also_installed {
        let bad = || format!("--also-installed {spec:?}: expected ID:ORG:REPO,REPO...");
        let mut parts = spec.splitn(3, ':');
        let (Some(id), Some(org), Some(repos)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad());
        };
        let id: u64 = id.parse().map_err(|_| bad())?;
        installations.push(
            InstallationConfig::new(id, args.app_id, org)
                .with_repos(repos.split(',').filter(|r| !r.is_empty()))
                .with_permissions([("contents", "write"), ("metadata", "read"), ("pull_requests", "write")]),
        );
    }
    let tls = match &args.tls_ca_to {
        Some(path) => {
            let ca = TestCa::generate().map_err(|e| e.to_string())?;
            std::fs::write(path, ca.ca_pem())
                .map_err(|e| format!("--tls-ca-to: cannot write {}: {e}", path.display()))?;
            Some(ca)
        }
        None => None,
    };
    let config = EmulatorConfig {
        listen: args.listen,
        tls,
        apps: vec![AppConfig::new(args.app_id, &args.client_id, &public_pem)],
        installations,
        token_ttl: Duration::from_secs(args.token_ttl_secs),
        clock_skew_secs: args.clock_skew_secs,
        ..EmulatorConfig::default()
    };
    let handle = Emulator::start(config).map_err(|e| e.to_string())?;
    println!("github-emulator: an EMULATOR of GitHub's App API, not GitHub. Tokens it mints work nowhere else.");
    println!("  api_url (github.com style): {}", handle.base_url());
    println!("  api_url (GHES style):       {}", handle.ghes_base_url());
    println!("  app id {} / client id {}", args.app_id, args.client_id);
    println!("  installation {} on {} with repositories {}", args.installation_id, args.org, args.repos.join(", "));
    if let Some(path) = &args.generate_key_to {
        println!("  App private key (generated): {}", path.display());
    }
    if let Some(path) = &args.tls_ca_to {
        println!("  https with a throwaway CA; its certificate: {}", path.display());
    }
    for spec in &args.also_installed {
        println!("  also installed: {spec}");
    }
    println!("  token lifetime {} s, clock skew {} s", args.token_ttl_secs, args.clock_skew_secs);
    println!("  control: {}/_emulator/stats, /_emulator/faults, /_emulator/clock-skew", handle.base_url());
    handle.wait();
    Ok(())
}

fn write_private(path: &std::path::Path, pem: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // A private key, even a throwaway one, should not be world-readable.
        options.mode(0o600);
    }
    options.open(path)?.write_all(pem.as_bytes())
}
