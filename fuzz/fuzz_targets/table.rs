//! The table parser: whatever the text, it returns a table or an error that
//! points inside the text, and a table prints back to an equal table.
//!
//! The checks are tests/common/invariants.rs, shared with
//! tests/properties.rs.

#![no_main]

#[path = "../../tests/common/invariants.rs"]
mod invariants;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(text) = std::str::from_utf8(bytes) {
        invariants::check_table(text);
    }
});
