//! The binary as inetd runs it: an accepted TCP socket on fds 0, 1 and 2, or
//! a pipe. Every reply is checked byte for byte, with the exit status.

mod common;

use std::io::Write;
use std::thread;
use std::time::{Duration, Instant};

use common::{Server, Syslog, run_piped};

/// The reply to an unknown name, pinned here, where the README's table of
/// replies points; other tests use `tcpmuxd::protocol::UNKNOWN_SERVICE`.
const UNKNOWN: &[u8] = b"-Service not available; send HELP for a list\r\n";

#[test]
fn piped_help_lists_tcpmux() {
    let (out, err, code) = run_piped(&[], b"HELP\r\n");
    assert_eq!(out, b"tcpmux\r\n");
    assert_eq!(err, b"", "nothing but the reply may reach the client");
    assert_eq!(code, 0);
}

#[test]
fn the_table_of_inputs_and_replies() {
    let cases: &[(&[u8], &[u8], i32)] = &[
        (b"HELP\r\n", b"tcpmux\r\n", 0),
        (b"help\r\n", b"tcpmux\r\n", 0),
        (
            b"tcpmux\r\nTCPMUX\r\nhelp\r\n",
            b"+OK\r\n+OK\r\ntcpmux\r\n",
            0,
        ),
        (
            &b"tcpmux\r\n".repeat(9),
            &[
                b"+OK\r\n".repeat(8),
                b"-Bad request: at most 8 tcpmux requests per connection\r\n".to_vec(),
            ]
            .concat(),
            4,
        ),
        (b"echo\r\n", UNKNOWN, 3),
        (
            b"tcpmux\r\nnosuch\r\n",
            b"+OK\r\n-Service not available; send HELP for a list\r\n",
            3,
        ),
        (
            b"HELP\n",
            b"-Bad request: lines must end with CR LF, not a bare LF\r\n",
            4,
        ),
        (
            b"HE\rLP\r\n",
            b"-Bad request: a CR must be followed by LF\r\n",
            4,
        ),
        (
            b"HE\0LP\r\n",
            b"-Bad request: control characters are not allowed\r\n",
            4,
        ),
        (
            b"\tHELP\r\n",
            b"-Bad request: control characters are not allowed\r\n",
            4,
        ),
        (
            b"HEL\x7f\r\n",
            b"-Bad request: control characters are not allowed\r\n",
            4,
        ),
        (
            "caf\u{e9}\r\n".as_bytes(),
            b"-Bad request: service names are ASCII\r\n",
            4,
        ),
        (
            b"tcp mux\r\n",
            b"-Bad request: service names contain no spaces\r\n",
            4,
        ),
        (
            b"\r\n",
            b"-Bad request: empty service name; send HELP for a list\r\n",
            4,
        ),
        (b"tcp", b"", 6),
        (b"", b"", 6),
    ];
    let server = Server::inetd();
    for (input, reply, code) in cases {
        let got = server.ask(input);
        assert_eq!(
            (got.text(), got.code),
            (String::from_utf8_lossy(reply).into_owned(), *code),
            "input {:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn a_name_of_256_bytes_is_read_and_one_of_257_refused() {
    let mut line = vec![b'x'; 256];
    line.extend_from_slice(b"\r\n");
    assert_eq!(Server::inetd().ask(&line), (UNKNOWN, 3));

    let mut line = vec![b'x'; 257];
    line.extend_from_slice(b"\r\n");
    let too_long = b"-Bad request: service names are at most 256 bytes\r\n";
    assert_eq!(Server::inetd().ask(&line), (too_long, 4));
}

/// A refusal drains what follows its line (`tests/refusals.rs`); HELP
/// leaves it unread.
#[test]
fn bytes_after_the_answered_line_stay_unread() {
    let mut inetd = Server::inetd().connect();
    inetd.send(b"tcpmux\r\nHELP\r\nFOR-THE-SERVICE\0\xff\r\n");
    let (reply, code) = inetd.finish();
    assert_eq!(reply, b"+OK\r\ntcpmux\r\n");
    assert_eq!(code, 0);
    assert_eq!(inetd.unread(), b"FOR-THE-SERVICE\0\xff\r\n");

    let mut inetd = Server::inetd().connect();
    inetd.send(b"HELP\r\nrest");
    assert_eq!(inetd.finish(), (b"tcpmux\r\n".to_vec(), 0));
    assert_eq!(inetd.unread(), b"rest");
}

#[test]
fn a_megabyte_without_a_newline_is_refused_after_257_bytes() {
    let mut inetd = Server::inetd().connect();
    let mut writer = inetd.client.try_clone().unwrap();
    let sender = thread::spawn(move || {
        writer.write_all(&vec![b'a'; 1 << 20]).unwrap();
        writer.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let status = common::wait_for(&mut inetd.child);
    assert_eq!(status.code(), Some(4));
    // The binary read 256 name bytes and the one too many, then, after its
    // refusal, drained at most 64 KiB (tcpmuxd::close::DRAIN_BYTES).
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut inetd.server, &mut rest).unwrap();
    let read = (1 << 20) - rest.len();
    assert!(
        (257..=257 + tcpmuxd::close::DRAIN_BYTES).contains(&read),
        "{read}"
    );
    sender.join().unwrap();
    let (reply, _) = inetd.finish();
    assert_eq!(
        reply,
        b"-Bad request: service names are at most 256 bytes\r\n"
    );
}

#[test]
fn the_deadline_covers_the_whole_line_however_it_dribbles_in() {
    let mut inetd = Server::inetd().args(["--timeout", "1"]).connect();
    let start = Instant::now();
    // One byte every 200 ms keeps each read short, but not the line.
    for &byte in b"tcpmuxtcpmux" {
        if inetd.child.try_wait().unwrap().is_some() {
            break;
        }
        let _ = std::io::Write::write_all(&mut inetd.client, &[byte]);
        thread::sleep(Duration::from_millis(200));
    }
    let (reply, code) = inetd.finish();
    assert_eq!(reply, b"-Timed out waiting for a service name\r\n");
    assert_eq!(code, 5);
    assert!(start.elapsed() >= Duration::from_secs(1));
}

#[test]
fn silence_times_out() {
    let mut inetd = Server::inetd().args(["-t", "1"]).connect();
    let (reply, code) = inetd.finish();
    assert_eq!(reply, b"-Timed out waiting for a service name\r\n");
    assert_eq!(code, 5);
}

#[test]
fn a_syslog_line_per_connection_and_nothing_to_the_client() {
    let answer = Server::inetd().syslog().ask(b"tcpmux\r\nHELP\r\n");
    assert_eq!(answer, (b"+OK\r\ntcpmux\r\n", 0));
    // Facility daemon (3), severity info (6): priority 3 * 8 + 6.
    let line = answer.log_line();
    assert!(line.starts_with("<30>"), "{line}");
    let (pid, client) = (answer.pid, answer.client);
    let expected = format!("in.tcpmuxd[{pid}]: peer={client} name=HELP outcome=help tcpmux=1");
    assert!(line.ends_with(&expected), "{line}");
    assert_eq!(answer.log.len(), 1, "{:?}", answer.log);
}

/// `--log journal`: each line is one datagram of the journal's native
/// protocol, with the event's fields apart, and nothing reaches the client.
#[test]
fn the_journal_gets_each_line_with_its_fields_apart() {
    // A datagram socket of the test's own stands for the journal's.
    let journal = Syslog::new();
    let path = journal.path();
    let args = ["--log", "journal", "--journal-socket", &path];
    let answer = Server::inetd().args(args).ask(b"tcpmux\r\nHELP\r\n");
    assert_eq!(answer, (b"+OK\r\ntcpmux\r\n", 0));
    let client = answer.client;
    let expected = format!(
        "MESSAGE=peer={client} name=HELP outcome=help tcpmux=1\n\
         PRIORITY=6\n\
         SYSLOG_IDENTIFIER=in.tcpmuxd\n\
         SYSLOG_FACILITY=3\n\
         PEER={client}\n\
         SERVICE=HELP\n\
         OUTCOME=help\n"
    );
    assert_eq!(journal.rest(), [expected]);

    // An error, with no name: priority 3, and no SERVICE= field.
    let answer = Server::inetd().table("+echo\n").args(args).ask(b"HELP\r\n");
    assert_eq!(answer.code, 1);
    let client = answer.client;
    let logged = journal.rest();
    assert_eq!(logged.len(), 1, "{logged:?}");
    let datagram = &logged[0];
    let start = format!("MESSAGE=peer={client} outcome=config-error (");
    let end = format!(
        "\nPRIORITY=3\n\
         SYSLOG_IDENTIFIER=in.tcpmuxd\n\
         SYSLOG_FACILITY=3\n\
         PEER={client}\n\
         OUTCOME=config-error\n"
    );
    assert!(
        datagram.starts_with(&start) && datagram.ends_with(&end),
        "{datagram:?}"
    );
}

#[test]
fn a_bad_line_is_logged_by_what_was_received() {
    let answer = Server::inetd().syslog().ask(b"ev\x1bil\r\n");
    assert_eq!(answer.code, 4);
    let line = answer.log_line();
    assert!(
        line.ends_with(" name=ev outcome=bad-line (control byte)"),
        "{line}"
    );
}

#[test]
fn a_missing_syslog_socket_fails_nothing() {
    let server = Server::inetd().args(["--syslog-socket", "/nonexistent/log"]);
    assert_eq!(server.ask(b"HELP\r\n"), (b"tcpmux\r\n", 0));
}

#[test]
fn an_argument_error_goes_to_syslog_never_to_the_client() {
    let answer = Server::inetd()
        .syslog()
        .args(["--timeout", "0"])
        .ask(b"HELP\r\n");
    assert_eq!(answer, (b"", 2));
    let line = answer.log_line();
    assert!(line.starts_with("<27>"), "daemon.err: {line}");
    assert!(line.contains("--timeout"), "{line}");
}

#[test]
fn help_and_version_print_for_a_person() {
    let (out, _, code) = run_piped(&["--help"], b"");
    assert_eq!(code, 0);
    let help = String::from_utf8(out).unwrap();
    assert!(help.contains("--timeout <SECONDS>"), "{help}");
    assert!(help.contains("Exit status:"), "{help}");
    let (out, _, code) = run_piped(&["--version"], b"");
    assert_eq!(code, 0);
    assert_eq!(
        out,
        format!("in.tcpmuxd {}\n", env!("CARGO_PKG_VERSION")).as_bytes()
    );
}
