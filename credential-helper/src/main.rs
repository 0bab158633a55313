//! The `git-credential-plughost` binary: argument parsing and exit codes; the logic is in the library.

use std::ffi::{OsStr, OsString};
use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use git_credential_plughost::{
    Config, Error, Request, credential_for, erase, gh_wrapper, install, refresher, write_credential,
};

/// git credential helper, token refresher and installer for plughost workspaces.
#[derive(Parser)]
#[command(name = "git-credential-plughost", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// git: print a credential for the request on stdin.
    Get,
    /// git: a credential worked (nothing to do: plughost owns the token).
    Store,
    /// git: a credential was rejected; drop it from the cache if it is ours.
    Erase,
    /// Keep the cache and gh's hosts.yml fresh ahead of expiry until SIGTERM/SIGINT.
    Refresh {
        /// One round, then exit (status 1 if a host failed).
        #[arg(long)]
        once: bool,
    },
    /// Configure git globally for every host and start the refresher; idempotent.
    Install {
        /// Do not start the refresher.
        #[arg(long)]
        no_refresher: bool,
    },
    /// Run the real gh with a fresh token (what the `gh` link made by `install` does).
    #[command(disable_help_flag = true)]
    Gh {
        /// gh's arguments, passed on unchanged.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Print the current token (for `GH_TOKEN=$(git-credential-plughost gh-token) gh ...`).
    GhToken {
        /// Which host's token (default: the first of PLUGHOST_CREDENTIAL_HOSTS).
        #[arg(long)]
        host: Option<String>,
    },
    /// Actions git may add in the future: ignored, as gitcredentials(7) asks.
    #[command(external_subcommand)]
    Other(#[allow(dead_code, reason = "clap needs a field to collect the action into; it is ignored")] Vec<OsString>),
}

fn main() -> ExitCode {
    // Run under the name `gh` (the link `install` puts ahead of the real gh on PATH): every
    // argument is gh's.
    let mut args = std::env::args_os();
    if args.next().is_some_and(|argv0| Path::new(&argv0).file_name() == Some(OsStr::new("gh"))) {
        return run_gh(args.collect());
    }
    // git runs `get` on every fetch and push: it skips building clap's parser, which costs
    // more than answering from the cache.
    if args.next().is_some_and(|a| a == "get") && args.next().is_none() {
        return exit(Config::from_env().map_err(Error::from).and_then(|c| get(&c)));
    }
    let result = match Cli::parse().command {
        Command::Other(_) | Command::Store => Ok(()),
        Command::Get => Config::from_env().map_err(Error::from).and_then(|c| get(&c)),
        Command::Erase => Config::from_env().map_err(Error::from).and_then(|c| erase_cmd(&c)),
        Command::Refresh { once } => {
            Config::from_env().map_err(Error::from).and_then(|c| Ok(refresher::run(&c, once)?))
        }
        Command::Install { no_refresher } => {
            install_cmd(!no_refresher);
            Ok(())
        }
        Command::Gh { args } => return run_gh(args),
        Command::GhToken { host } => Config::from_env().map_err(Error::from).and_then(|c| gh_token(&c, host)),
    };
    exit(result)
}

fn exit(result: Result<(), Error>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("git-credential-plughost: {e}");
            ExitCode::FAILURE
        }
    }
}

fn print_warnings(warnings: &[String]) {
    for w in warnings {
        eprintln!("git-credential-plughost: warning: {w}");
    }
}

fn read_request() -> Result<Request, Error> {
    Request::read(io::stdin().lock()).map_err(|source| Error::Io { action: "read git's request", source })
}

fn get(config: &Config) -> Result<(), Error> {
    let request = read_request()?;
    let (Some(protocol), Some(host)) = (request.protocol.as_deref(), request.host.as_deref()) else {
        return Ok(());
    };
    let Some(rule) = config.rule_for(protocol, host) else {
        return Ok(());
    };
    let mut warnings = Vec::new();
    let result = credential_for(config, &rule.host, &mut warnings);
    print_warnings(&warnings);
    let credential = result?;
    write_credential(io::stdout().lock(), &credential.token, credential.expires_at)
        .map_err(|source| Error::Io { action: "write the credential to git", source })
}

fn erase_cmd(config: &Config) -> Result<(), Error> {
    let request = read_request()?;
    let (Some(protocol), Some(host), Some(password)) =
        (request.protocol.as_deref(), request.host.as_deref(), request.password.as_ref())
    else {
        return Ok(());
    };
    let Some(rule) = config.rule_for(protocol, host) else {
        return Ok(());
    };
    let mut warnings = Vec::new();
    erase(config, &rule.host, &password.0, &mut warnings);
    print_warnings(&warnings);
    Ok(())
}

/// Fail-soft by design: every problem is a warning and the exit status is 0.
fn install_cmd(start_refresher: bool) {
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("git-credential-plughost install: warning: {e}; nothing configured");
            return;
        }
    };
    let report = install::install(&config, start_refresher);
    for line in &report.done {
        eprintln!("git-credential-plughost install: {line}");
    }
    for line in &report.warnings {
        eprintln!("git-credential-plughost install: warning: {line}");
    }
}

fn gh_token(config: &Config, host: Option<String>) -> Result<(), Error> {
    let host = match host {
        Some(h) => h.to_ascii_lowercase(),
        None => config.hosts.first().map(|r| r.host.clone()).ok_or(Error::NoHosts)?,
    };
    let mut warnings = Vec::new();
    let result = credential_for(config, &host, &mut warnings);
    print_warnings(&warnings);
    let credential = result?;
    let mut out = io::stdout().lock();
    writeln!(out, "{}", credential.token.expose())
        .and_then(|()| out.flush())
        .map_err(|source| Error::Io { action: "write the token", source })
}

/// Execs the real gh; returns only when it could not be started (exit 127, as a shell does).
fn run_gh(args: Vec<OsString>) -> ExitCode {
    let config = Config::from_env()
        .map_err(|e| {
            // A broken helper setting must not stop gh: it runs as if the wrapper were not there.
            eprintln!("git-credential-plughost (gh): warning: {e}; running gh without a plughost token");
        })
        .ok();
    let error = gh_wrapper::exec(config.as_ref(), args);
    eprintln!("git-credential-plughost (gh): {error}");
    ExitCode::from(127)
}
