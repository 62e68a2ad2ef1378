//! The request line parser: whatever the bytes, it stops within the cap,
//! never past the LF of a line it accepts, and accepts only CR LF lines of
//! printable ASCII.
//!
//! The checks are tests/common/invariants.rs, shared with
//! tests/properties.rs.

#![no_main]

#[path = "../../tests/common/invariants.rs"]
mod invariants;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| invariants::check_line_parser(bytes));
