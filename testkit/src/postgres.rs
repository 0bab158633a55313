//! [`PgCluster`]: a throwaway PostgreSQL server for the store tests: `initdb` and `pg_ctl` from
//! Debian's `postgresql` package (found under `/usr/lib/postgresql/<version>/bin` at run time),
//! a data directory and a unix socket in a temporary directory, removed on drop.
//!
//! PostgreSQL refuses to run as root, and CI and development machines run tests as root: the
//! cluster's commands then run as the `postgres` user (`runuser -u postgres`), in a temporary
//! directory handed to that user. As any other user they run as that user, directly.
//!
//! The server listens on its socket only (`listen_addresses = ''`): nothing else on the machine
//! can reach it over TCP, and parallel tests never fight over a port.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The OS user that runs the cluster when the tests run as root, and the cluster's superuser
/// (whatever the OS user: connections over the socket are trusted).
const PG_USER: &str = "postgres";

/// Why a cluster could not be set up or controlled.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin (apt-get install postgresql)")]
    NotInstalled,
    #[error("{action}: {err}")]
    Io { action: String, err: std::io::Error },
    #[error("{command} failed ({status}): {stderr}")]
    Command { command: String, status: std::process::ExitStatus, stderr: String },
    #[error("the server did not accept connections within {0:?}")]
    NotReady(Duration),
}

/// A running throwaway cluster. Dropping it stops the server (immediate mode) and removes its
/// directory.
pub struct PgCluster {
    bin: PathBuf,
    /// Holds `data/` and `socket/`; removed on drop.
    dir: tempfile::TempDir,
    as_root: bool,
    user: String,
}

impl PgCluster {
    /// initdb, then start. Panics (naming the step) when it cannot: a test that needs
    /// PostgreSQL cannot run without it.
    pub fn start() -> PgCluster {
        PgCluster::try_start().unwrap_or_else(|err| panic!("cannot start a PostgreSQL cluster: {err}"))
    }

    pub fn try_start() -> Result<PgCluster, PgError> {
        let bin = server_bin_dir()?;
        let as_root = is_root();
        let dir = tempfile::Builder::new()
            .prefix("plughost-pg-")
            .tempdir()
            .map_err(|err| PgError::Io { action: "create the cluster directory".into(), err })?;
        let user = PG_USER.to_owned();
        let cluster = PgCluster { bin, dir, as_root, user };
        std::fs::create_dir(cluster.socket_dir())
            .map_err(|err| PgError::Io { action: "create the socket directory".into(), err })?;
        if as_root {
            // The temporary directory is root's, mode 0700: hand the whole tree to postgres.
            cluster.run(Command::new("chown").args(["-R", PG_USER]).arg(cluster.dir.path()))?;
        }
        let data = cluster.data_dir();
        cluster.run(
            cluster
                .pg_command("initdb")
                .args(["--auth=trust", "--encoding=UTF8", "--no-sync", "--username"])
                .arg(&cluster.user)
                .arg("-D")
                .arg(&data),
        )?;
        cluster.start_server()?;
        Ok(cluster)
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The directory of the server's unix socket (its `host`).
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("socket")
    }

    /// A URL for database `dbname` over the socket, as `PLUGHOST_STORE_URL` takes it.
    pub fn url(&self, dbname: &str) -> String {
        format!("postgres://{}@/{dbname}?host={}", self.user, self.socket_dir().display())
    }

    /// Creates database `name` (empty) and returns its URL.
    pub fn create_database(&self, name: &str) -> String {
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""));
        self.url(name)
    }

    /// Runs `sql` in `dbname` with psql; returns its unaligned, tuples-only output. Panics on failure.
    pub fn psql(&self, dbname: &str, sql: &str) -> String {
        let output = self
            .run(
                self.pg_command("psql")
                    .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
                    .arg(self.socket_dir())
                    .args(["-U", &self.user, "-d", dbname, "-c", sql]),
            )
            .unwrap_or_else(|err| panic!("psql {sql:?}: {err}"));
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// Stops the server (fast mode: open connections are closed at once).
    pub fn stop_server(&self) -> Result<(), PgError> {
        self.run(self.pg_command("pg_ctl").args(["stop", "-m", "fast", "-w", "-D"]).arg(self.data_dir())).map(drop)
    }

    /// Starts the server on the existing data directory and waits until it accepts connections.
    pub fn start_server(&self) -> Result<(), PgError> {
        let options =
            format!("-c listen_addresses='' -c unix_socket_directories='{}' -c fsync=off", self.socket_dir().display());
        let log = self.dir.path().join("server.log");
        self.run(
            self.pg_command("pg_ctl")
                .args(["start", "-w", "-t", "60", "-D"])
                .arg(self.data_dir())
                .arg("-l")
                .arg(&log)
                .args(["-o", &options]),
        )?;
        self.wait_ready(Duration::from_secs(30))
    }

    fn wait_ready(&self, timeout: Duration) -> Result<(), PgError> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut ready = self.pg_command("pg_isready");
            ready.arg("-q").arg("-h").arg(self.socket_dir()).args(["-U", &self.user, "-d", "postgres"]);
            if ready.status().is_ok_and(|status| status.success()) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(PgError::NotReady(timeout));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A command of the server's binaries, run as the cluster's user.
    fn pg_command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_root {
            let mut command = Command::new("runuser");
            command.args(["-u", PG_USER, "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }

    fn run(&self, command: &mut Command) -> Result<Output, PgError> {
        let shown = format!("{command:?}");
        let output = command
            .current_dir(self.dir.path())
            .env("LC_ALL", "C.UTF-8")
            .output()
            .map_err(|err| PgError::Io { action: format!("run {shown}"), err })?;
        if !output.status.success() {
            return Err(PgError::Command {
                command: shown,
                status: output.status,
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            });
        }
        Ok(output)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self.run(self.pg_command("pg_ctl").args(["stop", "-m", "immediate", "-w", "-D"]).arg(self.data_dir()));
    }
}

/// `/usr/lib/postgresql/<highest version>/bin`, where Debian's `postgresql` puts the server.
fn server_bin_dir() -> Result<PathBuf, PgError> {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .map_err(|_| PgError::NotInstalled)?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).ok_or(PgError::NotInstalled)
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    #[allow(unsafe_code)]
    unsafe {
        libc::geteuid() == 0
    }
}
