//! The check every plugin file passes before the dynamic loader sees it (`check_elf` in
//! `host/src/loader/vet.rs`).
//!
//! Asserts: no input panics it; the answer is deterministic; a refusal is one line; and a file it
//! accepts is a 64-bit ELF shared object all of whose segments lie inside the file, as read by
//! `object` independently of the check.
#![no_main]

use libfuzzer_sys::fuzz_target;
use object::read::elf::{ElfFile64, FileHeader as _, ProgramHeader as _};
use plughost::fuzzing::check_elf;
use plughost_fuzz::assert_one_line;

fuzz_target!(|data: &[u8]| {
    let verdict = check_elf(data).map_err(|err| err.to_string());
    assert_eq!(verdict, check_elf(data).map_err(|err| err.to_string()), "not deterministic");
    match verdict {
        Err(message) => assert_one_line(&message),
        Ok(()) => {
            let file = ElfFile64::<object::Endianness>::parse(data).expect("accepted, so it parses");
            let (header, endian) = (file.elf_header(), file.endian());
            assert_eq!(header.e_type(endian), object::elf::ET_DYN);
            for segment in file.elf_program_headers() {
                let end = segment.p_offset(endian).checked_add(segment.p_filesz(endian));
                assert!(end.is_some_and(|end| end <= data.len() as u64), "accepted a segment past the end");
            }
        }
    }
});
