//! `--max-rate-per-source` and `--rate-backoff` in `--listen` mode: a
//! source over N new connections a second is refused for the back-off,
//! other sources are served meanwhile, and it is served again after.

mod common;

use std::io::Write;

use common::{Server, ask_from, connect_from, read_reply, wait_until};
use tcpmuxd::listener::RATE_LIMITED;

/// A listener's log line without its `in.tcpmuxd[pid]: `.
fn event(line: &str) -> &str {
    line.split_once("]: ").map_or(line, |(_, event)| event)
}

#[test]
fn a_source_over_the_rate_backs_off_and_no_other_source_does() {
    let server = Server::listen()
        .table("")
        .args(["--max-rate-per-source", "5", "--rate-backoff", "1"])
        .start();
    // A hundred quick connections from 127.0.0.2: each sends its request
    // and ends its sending side at once, so that the refused ones are
    // drained to a clean end; the replies are read after.
    let streams: Vec<_> = (0..100)
        .map(|_| {
            let mut stream = connect_from("127.0.0.2", server.v4);
            stream.write_all(b"HELP\r\n").unwrap();
            stream.shutdown(std::net::Shutdown::Write).unwrap();
            stream
        })
        .collect();
    let replies: Vec<Vec<u8>> = streams
        .into_iter()
        .map(|mut stream| read_reply(&mut stream))
        .collect();
    for (i, reply) in replies.iter().enumerate() {
        let expected: &[u8] = if i < 5 { b"tcpmux\r\n" } else { RATE_LIMITED };
        assert_eq!(reply, expected, "connection {i}");
    }
    assert_eq!(
        RATE_LIMITED,
        b"-Too many new connections; try again later\r\n"
    );
    // The refusal that starts the back-off says why; the others are short.
    let first = server.expect_log("outcome=rate-limited");
    let first = event(&first);
    assert!(first.starts_with("peer=127.0.0.2:"), "{first}");
    assert!(
        first.ends_with(
            " outcome=rate-limited (more than 5 new connections a second from 127.0.0.2; \
             refused for 1 s)"
        ),
        "{first}"
    );
    let next = server.expect_log("outcome=rate-limited");
    assert!(event(&next).ends_with(" outcome=rate-limited"), "{next}");

    // Another source is served meanwhile.
    assert_eq!(ask_from("127.0.0.3", server.v4, b"HELP\r\n"), b"tcpmux\r\n");
    // After the back-off the first source is served again.
    wait_until("127.0.0.2 was never served again", || {
        ask_from("127.0.0.2", server.v4, b"HELP\r\n") == b"tcpmux\r\n"
    });
}
