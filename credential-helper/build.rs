//! Links the unwinder into the binary (libgcc_eh.a) instead of loading libgcc_s.so at start.
//!
//! git starts this program on every fetch and push; most of a warm `get` is process start-up.
//! Measured on a 2-core VM: loading libgcc_s.so, with its constructor probing CPU features
//! (`cpuid`, a VM exit under virtualization), costs about 0.1 ms of CPU, more than all of the
//! helper's own work. rustc links `-lgcc_s` on linux-gnu; a linker script of that name, found
//! first on the search path, turns it into the static `libgcc_eh.a` (the same unwinder; panics
//! still unwind in test builds). Only where the C compiler has `libgcc_eh.a`; elsewhere
//! nothing changes.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let gnu_linux = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu");
    if !gnu_linux {
        return;
    }
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let found = Command::new(cc)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    // cc prints the bare name when it has no such file.
    if !found.is_some_and(|p| p.is_absolute() && p.is_file()) {
        return;
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("libgcc_s.so"), "INPUT(-lgcc_eh)\n").expect("OUT_DIR is writable");
    println!("cargo:rustc-link-search=native={}", out.display());
}
