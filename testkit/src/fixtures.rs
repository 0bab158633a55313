//! Builds the fixture packages once per test process, into the running test's target directory.
//!
//! Rules the build follows, and why:
//! 1. One fixed set of packages, whatever the caller needs. Cargo unifies features over the
//!    packages of one invocation: two test binaries asking for different sets would build shared
//!    dependencies twice, and each would overwrite the other's binaries in `<target>/<profile>`.
//! 2. One cargo invocation for the whole set, run at most once per process ([`OnceLock`]); after
//!    the first test binary of a run has built it, later ones find every unit fresh.
//! 3. The running test's own target directory and profile, found from `current_exe`
//!    (`<target>/<profile>/deps/<exe>`), and the cargo that runs the tests (`$CARGO`).
//! 4. Without the variables cargo sets for the running test (`CARGO_MANIFEST_DIR`,
//!    `CARGO_PKG_*`, ...). Build scripts that watch one of them (ring's does) would otherwise see
//!    a value the outer `cargo test` never sets, rerun, and leave the outer run a rebuild to do.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Declares the fixture set: one line per package, `field: Kind "package"`. A `Bin` is the
/// executable named like the package; a `Cdylib` is `lib<package, `-` as `_`>.so`.
macro_rules! fixture_set {
    ($($field:ident: $kind:ident $package:literal,)*) => {
        /// Paths of every fixture, in the profile directory of one target directory.
        #[derive(Debug, Clone)]
        pub struct Fixtures {
            /// The cargo target directory (`target`).
            pub target_dir: PathBuf,
            /// `<target_dir>/<profile>`, where the artifacts are (`target/debug`).
            pub profile_dir: PathBuf,
            $(
                #[doc = concat!("Built from the `", $package, "` package.")]
                pub $field: PathBuf,
            )*
        }

        /// Every package [`fixtures`] builds.
        const PACKAGES: &[&str] = &[$($package),*];

        impl Fixtures {
            /// The fixture paths in `profile_dir` (`target/debug`), built or not.
            pub fn in_profile_dir(profile_dir: &Path) -> Fixtures {
                Fixtures {
                    target_dir: profile_dir.parent().unwrap_or(profile_dir).to_owned(),
                    profile_dir: profile_dir.to_owned(),
                    $($field: profile_dir.join(artifact_file(ArtifactKind::$kind, $package)),)*
                }
            }

            fn artifacts(&self) -> Vec<&Path> {
                vec![$(self.$field.as_path()),*]
            }
        }
    };
}

fixture_set! {
    plughost: Bin "plughost",
    credential_helper: Bin "git-credential-plughost",
    github_app_auth: Cdylib "github-app-auth",
    static_env: Cdylib "static-env",
    test_token_provider: Cdylib "test-token-provider",
    append_env: Cdylib "abi-fixture-append-env",
    not_a_plugin: Cdylib "abi-fixture-not-a-plugin",
    numbered: Cdylib "abi-fixture-numbered",
    panicking: Cdylib "abi-fixture-panicking",
    crashing: Cdylib "abi-fixture-crashing",
    crash_at_load: Cdylib "abi-fixture-crash-at-load",
    unresolved_symbol: Cdylib "abi-fixture-unresolved-symbol",
    scoped_provider: Cdylib "abi-fixture-scoped-provider",
}

enum ArtifactKind {
    Bin,
    Cdylib,
}

fn artifact_file(kind: ArtifactKind, package: &str) -> String {
    match kind {
        ArtifactKind::Bin => package.to_owned(),
        ArtifactKind::Cdylib => format!("lib{}.so", package.replace('-', "_")),
    }
}

impl Fixtures {
    /// The cargo profile the fixtures were built in: the profile directory's name (`debug`).
    pub fn profile(&self) -> &str {
        self.profile_dir.file_name().and_then(OsStr::to_str).unwrap_or("debug")
    }
}

/// Builds every fixture on first call in this process; later calls return the same paths.
/// Panics with cargo's output when the build fails.
pub fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let (target_dir, _) = running_build();
        let profile_dir = cargo_build(&workspace_dir().join("Cargo.toml"), PACKAGES, &target_dir, "the test fixtures");
        let fixtures = Fixtures::in_profile_dir(&profile_dir);
        for path in fixtures.artifacts() {
            assert!(path.is_file(), "cargo built the fixtures but {} is missing", path.display());
        }
        fixtures
    })
}

/// The root of this workspace.
pub fn workspace_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("testkit/ lives in the workspace root")
}

/// Runs `cargo build` of `packages` (none: the manifest's default members) of the workspace at
/// `manifest`, into `target_dir`, in the running test's profile; returns the directory the
/// artifacts land in (`<target_dir>/<profile>`). Panics with cargo's output when the build fails;
/// `what` names the build in that message.
pub fn cargo_build(manifest: &Path, packages: &[&str], target_dir: &Path, what: &str) -> PathBuf {
    let (_, profile) = running_build();
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(set_by_cargo_for_the_running_test) {
            command.env_remove(name);
        }
    }
    command.arg("build").arg("--manifest-path").arg(manifest).arg("--target-dir").arg(target_dir);
    match profile.as_str() {
        "debug" => {}
        "release" => {
            command.arg("--release");
        }
        custom => {
            command.args(["--profile", custom]);
        }
    }
    for package in packages {
        command.args(["-p", package]);
    }
    let out = command.output().unwrap_or_else(|e| panic!("running cargo to build {what}: {e}"));
    assert!(out.status.success(), "building {what} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    target_dir.join(profile)
}

/// `<target>` and the profile directory's name, from the running executable
/// (`<target>/<profile>/deps/<exe>`, or `<target>/<profile>/<exe>`, `.../examples/<exe>`).
fn running_build() -> (PathBuf, String) {
    let exe = std::env::current_exe().expect("the path of the running test");
    let mut profile_dir = exe.parent().expect("the test's directory");
    if profile_dir.file_name().is_some_and(|name| name == "deps" || name == "examples") {
        profile_dir = profile_dir.parent().expect("<target>/<profile>");
    }
    let profile = profile_dir.file_name().and_then(OsStr::to_str).expect("a profile directory name").to_owned();
    (profile_dir.parent().expect("the target directory").to_owned(), profile)
}

/// The variables cargo sets for the crate it compiles or runs (the cargo book, "Environment
/// variables Cargo sets for crates"), which a nested cargo must not inherit (rule 4).
fn set_by_cargo_for_the_running_test(name: &str) -> bool {
    matches!(
        name,
        "CARGO_MANIFEST_DIR"
            | "CARGO_MANIFEST_PATH"
            | "CARGO_MANIFEST_LINKS"
            | "CARGO_CRATE_NAME"
            | "CARGO_BIN_NAME"
            | "CARGO_PRIMARY_PACKAGE"
            | "CARGO_TARGET_TMPDIR"
            | "CARGO_RUSTC_CURRENT_DIR"
            | "OUT_DIR"
    ) || name.starts_with("CARGO_PKG_")
        || name.starts_with("CARGO_BIN_EXE_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_names_follow_cargo() {
        let fixtures = Fixtures::in_profile_dir(Path::new("/t/debug"));
        assert_eq!(fixtures.target_dir, Path::new("/t"));
        assert_eq!(fixtures.profile(), "debug");
        assert_eq!(fixtures.credential_helper, Path::new("/t/debug/git-credential-plughost"));
        assert_eq!(fixtures.append_env, Path::new("/t/debug/libabi_fixture_append_env.so"));
        assert_eq!(fixtures.artifacts().len(), PACKAGES.len());
    }

    #[test]
    fn the_nested_cargo_keeps_the_user_settings_and_drops_the_running_crates() {
        for name in ["CARGO_MANIFEST_DIR", "CARGO_PKG_NAME", "CARGO_BIN_EXE_plughost", "OUT_DIR"] {
            assert!(set_by_cargo_for_the_running_test(name), "{name}");
        }
        for name in ["CARGO_HOME", "CARGO_TARGET_DIR", "CARGO_BUILD_JOBS", "CARGO_PROFILE_DEV_DEBUG", "RUSTFLAGS"] {
            assert!(!set_by_cargo_for_the_running_test(name), "{name}");
        }
    }
}
