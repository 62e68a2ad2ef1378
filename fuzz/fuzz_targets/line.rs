//! The request line parser: whatever the bytes, it stops within the cap,
//! never past the LF of a line it accepts, and accepts only CR LF lines of
//! printable ASCII.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tcpmuxd::protocol::{self, MAX_NAME_LEN, Request, Step};

fuzz_target!(|bytes: &[u8]| {
    let (step, consumed) = protocol::parse(bytes);
    assert!(consumed <= bytes.len());
    assert!(consumed <= MAX_NAME_LEN + 2);
    match step {
        Step::Done(request) => {
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
});
