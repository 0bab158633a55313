//! Checks a file before the dynamic loader ever sees it.
//!
//! `dlopen` runs a library's static initialisers and maps its segments: a truncated file can
//! fault the process when a mapped page past its end is touched, and any shared library dropped
//! into the directory would run code. So the file's ownership, type and permissions are checked
//! ([`crate::trust`], on the descriptor the bytes are then read from), its ELF headers parsed,
//! every segment checked to lie inside the file, and the plugin entry symbol looked up in its
//! dynamic symbol table, all by reading bytes, before it is opened.

use object::elf;
use object::read::elf::{ElfFile64, FileHeader as _, ProgramHeader as _};
use object::{Endianness, Object as _, ObjectSymbol as _};

use super::LoadError;

use plughost_sdk::host::ENTRY_SYMBOL;

/// Parses `bytes` as an ELF shared object for this machine that exports the plugin entry symbol.
pub fn check_elf(bytes: &[u8]) -> Result<(), LoadError> {
    if bytes.len() < 4 || &bytes[..4] != b"\x7fELF" {
        return Err(LoadError::NotElf("no ELF header (not a shared library)".to_owned()));
    }
    let file = ElfFile64::<Endianness>::parse(bytes)
        .map_err(|err| LoadError::NotElf(format!("malformed or truncated ELF file: {err}")))?;
    let header = file.elf_header();
    let endian = file.endian();
    if header.e_type(endian) != elf::ET_DYN {
        return Err(LoadError::NotElf("an ELF file, but not a shared library".to_owned()));
    }
    if header.e_machine(endian) != host_machine() {
        return Err(LoadError::NotElf(format!(
            "built for another architecture (ELF machine {})",
            header.e_machine(endian)
        )));
    }
    for segment in file.elf_program_headers() {
        let end = segment.p_offset(endian).saturating_add(segment.p_filesz(endian));
        if end > bytes.len() as u64 {
            return Err(LoadError::NotElf(format!(
                "truncated: a segment ends at byte {end} but the file has {} bytes",
                bytes.len()
            )));
        }
    }
    let exported =
        file.dynamic_symbols().any(|sym| sym.is_definition() && sym.name_bytes().ok() == Some(ENTRY_SYMBOL.as_bytes()));
    if !exported {
        return Err(LoadError::NotAPlugin);
    }
    Ok(())
}

fn host_machine() -> u16 {
    if cfg!(target_arch = "x86_64") {
        elf::EM_X86_64
    } else if cfg!(target_arch = "aarch64") {
        elf::EM_AARCH64
    } else {
        elf::EM_NONE
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn refuses_non_elf_and_empty_files() {
        assert!(matches!(check_elf(b""), Err(LoadError::NotElf(_))));
        assert!(matches!(check_elf(b"#!/bin/sh\necho hi\n"), Err(LoadError::NotElf(_))));
        assert!(matches!(check_elf(b"\x7fELF\x02\x01\x01"), Err(LoadError::NotElf(_))));
    }

    /// The fuzz seeds, so that the fuzzer starts from every verdict: a few-KiB shared object exporting
    /// the entry symbol passes, the same without it is not a plugin, with a segment past the end
    /// of the file it is truncated.
    #[test]
    fn the_fuzz_seeds_reach_every_verdict() {
        let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/elf_vetting");
        let plugin = std::fs::read(seeds.join("plugin_entry_only.so")).unwrap();
        check_elf(&plugin).unwrap();
        let other = std::fs::read(seeds.join("no_entry_symbol.so")).unwrap();
        assert!(matches!(check_elf(&other), Err(LoadError::NotAPlugin)));
        let truncated = std::fs::read(seeds.join("segment_past_the_end.so")).unwrap();
        let truncated = check_elf(&truncated).unwrap_err().to_string();
        assert!(truncated.starts_with("truncated: a segment ends at byte"), "{truncated}");
    }
}
