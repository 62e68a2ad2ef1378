//! The invariants of the pure parsers, one set of checks for two
//! generators: the property tests (`tests/properties.rs`) and the fuzz
//! targets (`fuzz/fuzz_targets/`) include this file by path. Each check is
//! plain `assert!`s: proptest turns a panic into a failing case and shrinks
//! it, libFuzzer into a crash with its input. It uses nothing but the
//! library, so that the fuzz crate can include it; it is not a module of
//! `common`, whose helpers need more.

#![allow(dead_code)] // each includer uses its own part of this

use tcpmuxd::config;
use tcpmuxd::protocol::{self, MAX_NAME_LEN, Request, Step};

/// The request line parser, whatever the bytes: it stops within the cap,
/// never past the LF of a line it accepts, accepts only CR LF lines of
/// printable ASCII, and refuses with a `-` line.
pub fn check_line_parser(bytes: &[u8]) {
    let (step, consumed) = protocol::parse(bytes);
    assert!(consumed <= bytes.len());
    assert!(consumed <= MAX_NAME_LEN + 2, "read {consumed} bytes");
    match step {
        Step::Done(request) => {
            // Done only at the LF of a CR LF, and the name is what came before.
            assert_eq!(&bytes[consumed - 2..consumed], b"\r\n");
            let name = &bytes[..consumed - 2];
            assert!(!name.is_empty() && name.iter().all(u8::is_ascii_graphic));
            match request {
                Request::Help => assert!(name.eq_ignore_ascii_case(b"HELP")),
                Request::Service(s) => assert_eq!(s.as_bytes(), name),
            }
        }
        Step::Failed(error) => {
            assert!(consumed >= 1);
            assert!(error.reply().starts_with(b"-") && error.reply().ends_with(b"\r\n"));
        }
        Step::More => assert_eq!(consumed, bytes.len()),
    }
}

/// The table parser, whatever the text: a table prints back to an equal
/// table, and an error points at a line of the text and says something.
pub fn check_table(text: &str) {
    match config::parse("checked", text) {
        Ok(table) => {
            let printed = table.to_string();
            let again = config::parse("printed", &printed).expect("a printed table parses");
            assert_eq!(again.to_string(), printed);
            assert_eq!(again.services().len(), table.services().len());
            for (a, b) in again.services().iter().zip(&table.services()) {
                let mut b = b.clone();
                b.line = a.line;
                assert_eq!(a, &b);
            }
        }
        Err(e) => {
            assert!(e.line >= 1 && e.line <= text.lines().count(), "{e:?}");
            assert!(!e.message.is_empty());
        }
    }
}
