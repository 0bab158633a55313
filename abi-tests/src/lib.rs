//! # abi-tests
//!
//! Builds real plugin `.so` files, good and broken, and proves how the host treats each
//! (`tests/abi/`). Nothing is mocked: fixtures are compiled by cargo and loaded through the
//! host's real loader and the real `plughost` binary.
//!
//! Fixtures come from two places:
//! - crates under `abi-tests/fixtures/`, workspace members built against this SDK;
//! - SDK variants ([`variants`]) generated from the real SDK source: an independent copy, a 1.1
//!   that adds a capability, a 2.0, and a 1.0.0 with a changed field type.
//!
//! [`fixtures`] builds everything once per test binary, in the test's own target directory
//! (variants in sibling directories, see [`variants`]).

pub mod variants;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Fixtures built from workspace members, in the running test's target directory.
pub struct WorkspaceFixtures {
    pub target_dir: PathBuf,
    /// `debug` or `release`, as the running test or bench.
    pub profile_dir: &'static str,
    pub plughost: PathBuf,
    pub static_env: PathBuf,
    pub append_env: PathBuf,
    pub panicking: PathBuf,
    pub not_a_plugin: PathBuf,
    /// Its name is the literal [`NUMBERED_NAME`], patchable in the file.
    pub numbered: PathBuf,
    /// Dies where its configuration says (segfault, abort, exit, hang, memory).
    pub crashing: PathBuf,
    /// Segfaults in a static initialiser, when the library is mapped.
    pub crash_at_load: PathBuf,
}

/// The name literal inside the `numbered` fixture.
pub const NUMBERED_NAME: &str = "numbered-plugin-000000";

/// Paths of every fixture: the workspace ones (through `Deref`) and the SDK variants.
pub struct Fixtures {
    workspace: &'static WorkspaceFixtures,
    pub sdk_copy: PathBuf,
    pub sdk_1_1: PathBuf,
    pub sdk_2_0: PathBuf,
    pub layout_mismatch: PathBuf,
    /// A host built with SDK 1.1 (`probe-host FILE...`).
    pub probe_host_1_1: PathBuf,
}

impl std::ops::Deref for Fixtures {
    type Target = WorkspaceFixtures;
    fn deref(&self) -> &WorkspaceFixtures {
        self.workspace
    }
}

/// A scratch plugin directory (0755) holding copies of `plugins` (file name, source), and a
/// loader configuration for it with a state directory beside it.
pub fn scratch_plugin_dir(plugins: &[(&str, &Path)]) -> (tempfile::TempDir, plughost::loader::LoaderConfig) {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("temp dir");
    let plugin_dir = dir.path().join("plugins");
    std::fs::create_dir(&plugin_dir).expect("plugin dir");
    std::fs::set_permissions(&plugin_dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    for (name, source) in plugins {
        let to = plugin_dir.join(name);
        std::fs::copy(source, &to).unwrap_or_else(|e| panic!("copy {}: {e}", source.display()));
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let config = plughost::loader::LoaderConfig {
        max_log_level: plughost_sdk::abi::LogLevel::Warn,
        ..plughost::loader::LoaderConfig::new(plugin_dir, dir.path().join("state"))
    };
    (dir, config)
}

/// Builds all fixtures on first call (cargo makes later runs cheap); panics with cargo's output
/// when a build fails.
pub fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(build_all)
}

/// Builds only the workspace fixtures (what the benchmarks need).
pub fn workspace_fixtures() -> &'static WorkspaceFixtures {
    static FIXTURES: OnceLock<WorkspaceFixtures> = OnceLock::new();
    FIXTURES.get_or_init(build_workspace_fixtures)
}

pub fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("abi-tests lives in the workspace").to_owned()
}

/// `<target>` and the profile directory, from the running executable
/// (`<target>/<profile>/deps/<exe>`).
fn target_dir_of_current_exe() -> (PathBuf, &'static str) {
    let exe = std::env::current_exe().expect("current exe");
    let profile_path = exe.parent().and_then(Path::parent).expect("exe under <target>/<profile>/deps");
    let profile = if profile_path.file_name().is_some_and(|n| n == "release") { "release" } else { "debug" };
    (profile_path.parent().expect("target dir").to_owned(), profile)
}

fn cargo(args: &[&str], target_dir: &Path, profile: &str, what: &str) {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    cmd.args(args).arg("--target-dir").arg(target_dir);
    if profile == "release" {
        cmd.arg("--release");
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("running cargo to build {what}: {e}"));
    assert!(out.status.success(), "building {what} failed:\n{}", String::from_utf8_lossy(&out.stderr));
}

fn build_workspace_fixtures() -> WorkspaceFixtures {
    let (target_dir, profile) = target_dir_of_current_exe();
    let workspace = workspace_dir();
    cargo(
        &[
            "build",
            "--manifest-path",
            workspace.join("Cargo.toml").to_str().expect("utf-8 path"),
            "-p",
            "plughost",
            "-p",
            "static-env",
            "-p",
            "abi-fixture-append-env",
            "-p",
            "abi-fixture-panicking",
            "-p",
            "abi-fixture-not-a-plugin",
            "-p",
            "abi-fixture-numbered",
            "-p",
            "abi-fixture-crashing",
            "-p",
            "abi-fixture-crash-at-load",
        ],
        &target_dir,
        profile,
        "the workspace fixtures",
    );
    let out = target_dir.join(profile);
    WorkspaceFixtures {
        plughost: out.join("plughost"),
        static_env: out.join("libstatic_env.so"),
        append_env: out.join("libabi_fixture_append_env.so"),
        panicking: out.join("libabi_fixture_panicking.so"),
        not_a_plugin: out.join("libabi_fixture_not_a_plugin.so"),
        numbered: out.join("libabi_fixture_numbered.so"),
        crashing: out.join("libabi_fixture_crashing.so"),
        crash_at_load: out.join("libabi_fixture_crash_at_load.so"),
        target_dir,
        profile_dir: profile,
    }
}

fn build_all() -> Fixtures {
    let ws = workspace_fixtures();
    let (target_dir, profile) = (&ws.target_dir, ws.profile_dir);
    let workspace = workspace_dir();

    let variants_root = target_dir.join("abi-variants");
    let mut built = Vec::new();
    for variant in [&variants::COPY, &variants::MINOR_1_1, &variants::MAJOR_2, &variants::MISMATCH] {
        let root = variants_root.join(variant.name);
        variants::generate(variant, &workspace, &root).unwrap_or_else(|e| panic!("{e}"));
        let variant_target = variants_root.join(format!("target-{}", variant.target_group));
        cargo(
            &["build", "--manifest-path", root.join("Cargo.toml").to_str().expect("utf-8 path")],
            &variant_target,
            profile,
            &format!("SDK variant {}", variant.name),
        );
        let dir = variant_target.join(profile);
        built.push(dir.join(format!("libvariant_{}.so", variant.name.replace('-', "_"))));
        if variant.name == variants::MINOR_1_1.name {
            built.push(dir.join("probe-host"));
        }
    }
    let [sdk_copy, sdk_1_1, probe_host_1_1, sdk_2_0, layout_mismatch] =
        <[PathBuf; 5]>::try_from(built).expect("five variant artifacts");

    Fixtures { workspace: ws, sdk_copy, sdk_1_1, sdk_2_0, layout_mismatch, probe_host_1_1 }
}
