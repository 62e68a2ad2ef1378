//! A `-` line that ends the connection reaches the client, followed by a
//! clean end of stream, even when the client sent more than the line: the
//! server half-closes, then reads and discards what the client sends, for a
//! bounded time and amount, before it closes. Closing with that input
//! unread would make the kernel reset the connection, and a reset can take
//! the line with it.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use common::{Inetd, PATIENCE, Server, ask, connect, in_handshake, wait_for, wait_until};
use tcpmuxd::listener::BUSY;
use tcpmuxd::protocol::{UNAVAILABLE, UNKNOWN_SERVICE as UNKNOWN};

/// How many times each case is tried: a reset is a race, lost some of the
/// time, so one try proves little.
const TRIES: usize = 50;

/// What the client sends: a line, then 10 KB that no one will read.
fn request(line: &[u8]) -> Vec<u8> {
    [line, &vec![b'x'; 10_000][..]].concat()
}

/// How a client that sent `request` and then read to the end saw the
/// connection end.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The bytes received, then end of stream.
    Clean(Vec<u8>),
    /// The bytes received before a reset.
    Reset(Vec<u8>),
}

/// Sends `request` in one write without closing the sending side, as `nc`
/// and `tcpmux --list` do, then reads until the end of the stream.
fn send_and_read(stream: &mut TcpStream, request: &[u8]) -> End {
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    if let Err(e) = stream.write_all(request) {
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
        return End::Reset(Vec::new());
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return End::Clean(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return End::Reset(got),
            Err(e) => panic!("reading the reply: {e}"),
        }
    }
}

/// Asserts that every try ended with exactly `line` and a clean end,
/// counting the resets for the message.
fn assert_all_clean(ends: &[End], line: &[u8]) {
    let resets = ends.iter().filter(|e| matches!(e, End::Reset(_))).count();
    let lost = ends
        .iter()
        .filter(|e| matches!(e, End::Reset(got) if got.is_empty()))
        .count();
    for end in ends {
        assert_eq!(
            end,
            &End::Clean(line.to_vec()),
            "{resets} of {} tries were reset, {lost} of them before the line",
            ends.len()
        );
    }
}

/// Inetd mode: the binary is the only holder of the server's end.
fn inetd_tries(inetd: &Server, line: &[u8], exit: i32) -> Vec<End> {
    (0..TRIES)
        .map(|_| {
            let Inetd {
                mut client,
                server,
                mut child,
            } = inetd.connect();
            drop(server);
            let end = send_and_read(&mut client, &request(line));
            drop(client);
            assert_eq!(wait_for(&mut child).code(), Some(exit));
            end
        })
        .collect()
}

#[test]
fn inetd_mode_an_unknown_name_then_more_gets_the_line_and_a_clean_end() {
    let ends = inetd_tries(&Server::inetd(), b"nosuch\r\n", 3);
    assert_all_clean(&ends, UNKNOWN);
}

#[test]
fn inetd_mode_a_bad_line_then_more_gets_the_line_and_a_clean_end() {
    let ends = inetd_tries(&Server::inetd(), b"bad\n", 4);
    let line = b"-Bad request: lines must end with CR LF, not a bare LF\r\n";
    assert_all_clean(&ends, line);
}

#[test]
fn inetd_mode_a_broken_table_gets_the_line_and_a_clean_end() {
    let broken = Server::inetd().table("broken\n");
    let ends = inetd_tries(&broken, b"HELP\r\n", 1);
    assert_all_clean(&ends, UNAVAILABLE);
}

fn listener_tries(addr: SocketAddr, line: &[u8]) -> Vec<End> {
    (0..TRIES)
        .map(|_| send_and_read(&mut connect(addr), &request(line)))
        .collect()
}

#[test]
fn listen_mode_an_unknown_name_then_more_gets_the_line_and_a_clean_end() {
    let server = Server::listen().table("").start();
    assert_all_clean(&listener_tries(server.v4, b"nosuch\r\n"), UNKNOWN);
    assert_all_clean(&listener_tries(server.v6, b"nosuch\r\n"), UNKNOWN);
}

#[test]
fn listen_mode_busy_then_more_gets_the_line_and_a_clean_end() {
    let server = Server::listen()
        .table("")
        .args(["--max-connections", "1", "-t", "600"])
        .start();
    // An answered tcpmux shows the one place is taken.
    let _held = in_handshake(server.v4);
    assert_all_clean(&listener_tries(server.v4, b"HELP\r\n"), BUSY);
    assert_all_clean(&listener_tries(server.v6, b"HELP\r\n"), BUSY);
    server.expect_log("outcome=busy");
}

/// The line, then the end of stream, read without closing: the client
/// keeps its end open afterwards.
fn read_line_and_end(stream: &mut TcpStream, line: &[u8]) {
    let mut got = Vec::new();
    stream.read_to_end(&mut got).unwrap();
    assert_eq!(got, line);
}

#[test]
fn inetd_mode_a_client_that_never_closes_holds_the_process_only_for_the_drain() {
    let mut inetd = Server::inetd().args(["-t", "3600"]).connect();
    inetd.send(b"nosuch\r\nmore");
    let Inetd {
        mut client,
        server,
        mut child,
    } = inetd;
    drop(server);
    read_line_and_end(&mut client, UNKNOWN);
    // The client stays, silent and open; the drain's time cap ends the
    // process long before the deadline of an hour.
    assert_eq!(wait_for(&mut child).code(), Some(3));
    drop(client);
}

#[test]
fn listen_mode_a_client_that_never_closes_gives_its_place_back_after_the_drain() {
    let server = Server::listen()
        .table("")
        .args(["--max-connections", "1", "-t", "3600"])
        .start();
    let mut refused = connect(server.v4);
    refused.write_all(b"nosuch\r\nmore").unwrap();
    read_line_and_end(&mut refused, UNKNOWN);
    // Its one place comes back, after the drain, while it stays open and
    // silent.
    server.expect_log("name=nosuch outcome=unknown");
    wait_until("the place never came back", || {
        ask(server.v4, b"HELP\r\n") == b"tcpmux\r\n"
    });
    // A busy client that never closes costs the accept loop nothing either.
    let held = in_handshake(server.v4);
    let mut busy = connect(server.v6);
    busy.write_all(b"HELP\r\nmore").unwrap();
    read_line_and_end(&mut busy, BUSY);
    drop(held);
    wait_until("the place never came back", || {
        ask(server.v6, b"HELP\r\n") == b"tcpmux\r\n"
    });
    drop((refused, busy));
}
