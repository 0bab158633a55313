//! Shared helpers: the test kit's plugin directories with the loader settings these tests use,
//! scans, and a log capture.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use plughost::loader::{self, LoaderConfig, ScanReport};

pub use abi_tests::fixtures;
pub use plughost_testkit::PluginDir;

/// What these tests load a [`PluginDir`] with.
pub trait Load {
    /// The kit's loader configuration, with an init timeout short enough for a hung init to
    /// fail a test quickly.
    fn config(&self) -> LoaderConfig;

    fn scan(&self) -> ScanReport {
        loader::scan(&self.config(), &[]).expect("plugin directory readable")
    }
}

impl Load for PluginDir {
    fn config(&self) -> LoaderConfig {
        LoaderConfig { init_timeout: Duration::from_secs(5), ..self.loader_config() }
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
