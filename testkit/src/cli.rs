//! The `plughost` CLI, as an operator runs it but without the test process's `PLUGHOST_*`
//! settings leaking in.

use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};

use crate::fixtures::fixtures;

/// The fixture `plughost` with no stdin and inherited `PLUGHOST_*` removed: add arguments
/// and the environment a test means to give it.
pub fn plughost_command() -> Command {
    command_without_settings(&fixtures().plughost)
}

/// `program` with no stdin and inherited `PLUGHOST_*` removed.
pub(crate) fn command_without_settings(program: &Path) -> Command {
    let mut command = Command::new(program);
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(|name| name.starts_with("PLUGHOST_")) {
            command.env_remove(name);
        }
    }
    command.stdin(Stdio::null());
    command
}

/// Runs `plughost ARGS...` to the end: (status, stdout, stderr).
pub fn run_cli(args: &[&str]) -> (ExitStatus, String, String) {
    let output = plughost_command().args(args).output().expect("run plughost");
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
