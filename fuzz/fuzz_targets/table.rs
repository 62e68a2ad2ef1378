//! The table parser: whatever the text, it returns a table or an error that
//! points inside the text, and a table prints back to an equal table.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tcpmuxd::config;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    match config::parse("fuzz", text) {
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
            assert!(e.line >= 1 && e.line <= text.lines().count());
            assert!(!e.message.is_empty());
        }
    }
});
