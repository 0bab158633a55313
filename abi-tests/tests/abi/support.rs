//! Shared helpers: plugin directories with safe permissions, scans, and a log capture.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use plughost::loader::{self, LoaderConfig, ScanReport};
use plughost_sdk::abi::LogLevel;

pub use abi_tests::fixtures;

/// A plugin directory (0755) and a state directory, deleted on drop.
pub struct PluginDir {
    pub dir: tempfile::TempDir,
    pub state: tempfile::TempDir,
    pub plugin_configs: BTreeMap<String, toml::Table>,
}

impl PluginDir {
    pub fn new() -> PluginDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        PluginDir { dir, state: tempfile::tempdir().unwrap(), plugin_configs: BTreeMap::new() }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Copies `so` in as `name`, mode 0755.
    pub fn add(&self, so: &Path, name: &str) -> PathBuf {
        let to = self.path().join(name);
        std::fs::copy(so, &to).unwrap_or_else(|e| panic!("copy {}: {e}", so.display()));
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).unwrap();
        to
    }

    /// Writes `<stem>.toml` beside the plugin file `name`.
    pub fn configure(&self, name: &str, toml: &str) {
        let path = self.path().join(name).with_extension("toml");
        std::fs::write(&path, toml).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }

    pub fn config(&self) -> LoaderConfig {
        LoaderConfig {
            plugin_dir: self.path().to_owned(),
            state_dir: self.state.path().to_owned(),
            plugin_configs: self.plugin_configs.clone(),
            max_log_level: LogLevel::Info,
            init_timeout: std::time::Duration::from_secs(5),
        }
    }

    pub fn scan(&self) -> ScanReport {
        loader::scan(&self.config(), &[]).expect("plugin directory readable")
    }
}

/// The refusal message of `file_name` in `report`.
pub fn refusal(report: &ScanReport, file_name: &str) -> String {
    report
        .rejected
        .iter()
        .find(|r| r.file.file_name().is_some_and(|n| n == file_name))
        .map(|r| r.error.to_string())
        .unwrap_or_else(|| panic!("{file_name} was not refused; loaded: {:?}", report.plugins))
}

pub fn names(report: &ScanReport) -> Vec<&str> {
    report.plugins.iter().map(|p| p.name.as_str()).collect()
}

/// Everything logged through `tracing` in this test process (installed on first use).
pub fn captured_logs() -> String {
    let buffer = log_buffer();
    let bytes = buffer.lock().unwrap();
    String::from_utf8_lossy(&bytes).into_owned()
}

pub fn capture_logs() {
    let _ = log_buffer();
}

fn log_buffer() -> Arc<Mutex<Vec<u8>>> {
    static BUFFER: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUFFER
        .get_or_init(|| {
            let buffer = Arc::new(Mutex::new(Vec::new()));
            let writer = SharedWriter(Arc::clone(&buffer));
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::DEBUG)
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .init();
            buffer
        })
        .clone()
}

#[derive(Clone)]
struct SharedWriter(Arc<Mutex<Vec<u8>>>);

impl Write for SharedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
