//! `--accept-proxy`: behind a front end that sends the PROXY protocol, in
//! both modes. From a listed source the header's client is the peer for
//! the address rules, HELP's list, the caps, the launched program's
//! environment and the log, which names the front end too; a listed source
//! without a valid header is refused; from any other source a PROXY line
//! is just a bad request. The request line and what follows it stay for
//! the service.

mod common;

use common::probe_report as report;

use std::io::{Read, Write};
use std::net::SocketAddr;

use common::{PATIENCE, Server, ask, connect, read_reply, root};
use tcpmuxd::listener::{BUSY, RATE_LIMITED};
use tcpmuxd::proxy;
use tcpmuxd::session::NO_PROXY_HEADER;

/// The probe for clients of 192.0.2.0/24 only, and echo for everyone else.
const TABLE: &str = "\
+probe nobody allow=192.0.2.0/24 {dir}/probe
+echo nobody deny=192.0.2.0/24 /bin/cat
";

fn client() -> SocketAddr {
    "192.0.2.7:40000".parse().unwrap()
}

/// The address the client reached, as the front end says.
fn front() -> SocketAddr {
    "198.51.100.1:1".parse().unwrap()
}

/// Both versions of a header for [`client`].
fn headers() -> [(&'static str, Vec<u8>); 2] {
    [
        ("v1", proxy::v1(Some(client()), Some(front()))),
        ("v2", proxy::v2(Some(client()), Some(front()), "probe")),
    ]
}

fn with(header: &[u8], request: &[u8]) -> Vec<u8> {
    [header, request].concat()
}

fn inetd() -> Server {
    Server::inetd()
        .probe()
        .table(TABLE)
        .syslog()
        .args(["--accept-proxy", "127.0.0.0/8"])
}

#[test]
fn inetd_mode_takes_the_peer_from_the_header() {
    let server = inetd();
    for (version, header) in headers() {
        let answer = server.ask(&with(&header, b"HELP\r\n"));
        assert_eq!(answer, (b"tcpmux\r\nprobe\r\n", 0), "{version}");
        let via = answer.client;
        let expected = format!("]: peer=192.0.2.7:40000 via={via} name=HELP outcome=help");
        assert!(answer.log_line().ends_with(&expected), "{answer:?}");

        let answer = server.ask(&with(&header, b"echo\r\nhello\r\n"));
        assert_eq!(
            answer.reply,
            tcpmuxd::protocol::UNKNOWN_SERVICE,
            "{version}"
        );
        let via = answer.client;
        let expected = format!("]: peer=192.0.2.7:40000 via={via} name=echo outcome=denied");
        assert!(answer.log_line().ends_with(&expected), "{answer:?}");
    }
}

#[test]
fn inetd_mode_gives_the_program_the_headers_client_and_the_bytes_after_the_line() {
    if !root() {
        return;
    }
    let server = inetd();
    for (version, header) in headers() {
        let answer = server.ask(&with(&header, b"probe\r\nhello\r\n"));
        assert_eq!(answer.code, 0, "{version}: {answer:?}");
        assert!(answer.reply.starts_with(b"+Go\r\n"), "{answer:?}");
        assert_eq!(
            report(&answer.reply, "env TCPREMOTEIP="),
            "env TCPREMOTEIP=192.0.2.7"
        );
        assert_eq!(
            report(&answer.reply, "env TCPREMOTEPORT="),
            "env TCPREMOTEPORT=40000"
        );
        assert_eq!(
            report(&answer.reply, "env TCPLOCALIP="),
            "env TCPLOCALIP=198.51.100.1"
        );
        assert_eq!(report(&answer.reply, "read="), "read=hello");
        let via = answer.client;
        let expected = format!("]: peer=192.0.2.7:40000 via={via} name=probe outcome=launch ");
        assert!(answer.log_line().contains(&expected), "{answer:?}");
    }
}

#[test]
fn inetd_mode_refuses_a_listed_source_without_a_header() {
    let answer = inetd().ask(b"HELP\r\n");
    assert_eq!(answer, (NO_PROXY_HEADER, 4));
    assert_eq!(
        NO_PROXY_HEADER,
        b"-Bad request: a PROXY protocol header was expected\r\n"
    );
    let peer = answer.client;
    let expected = format!("]: peer={peer} outcome=bad-line (no PROXY protocol header)");
    assert!(answer.log_line().ends_with(&expected), "{answer:?}");

    // A header that is not a valid one is named in the log.
    let answer = inetd().ask(b"PROXY TCP4 192.0.2.7\r\nHELP\r\n");
    assert_eq!(answer, (NO_PROXY_HEADER, 4));
    assert!(
        answer
            .log_line()
            .ends_with("(a PROXY v1 line whose fields are not a protocol and two addresses)"),
        "{answer:?}"
    );
}

#[test]
fn inetd_mode_takes_nothing_for_a_header_from_an_unlisted_source() {
    let request = with(&proxy::v1(Some(client()), Some(front())), b"HELP\r\n");
    let today = Server::inetd().ask(&request);
    assert_eq!(
        today,
        (b"-Bad request: service names contain no spaces\r\n", 4)
    );
    let answer = Server::inetd()
        .syslog()
        .args(["--accept-proxy", "192.0.2.0/24"])
        .ask(&request);
    assert_eq!(answer, (today.reply, 4));
    let peer = answer.client;
    let expected = format!("]: peer={peer} name=PROXY outcome=bad-line (space in name)");
    assert!(answer.log_line().ends_with(&expected), "{answer:?}");
}

/// A listener's log line without its `in.tcpmuxd[pid]: `.
fn event(line: &str) -> &str {
    line.split_once("]: ").map_or(line, |(_, event)| event)
}

/// A listener that takes headers from 127.0.0.1; ::1 is another source.
fn listener(args: &[&str]) -> common::Listener {
    let mut server = Server::listen()
        .probe()
        .table(TABLE)
        .args(["--accept-proxy", "127.0.0.1"]);
    for arg in args {
        server = server.args([*arg]);
    }
    server.start()
}

#[test]
fn listen_mode_takes_the_peer_from_the_header() {
    let server = listener(&[]);
    for (version, header) in headers() {
        let reply = ask(server.v4, &with(&header, b"HELP\r\n"));
        assert_eq!(reply, b"tcpmux\r\nprobe\r\n", "{version}");
        let logged = server.expect_log("name=HELP");
        let line = event(&logged);
        assert!(
            line.starts_with("peer=192.0.2.7:40000 via=127.0.0.1:"),
            "{line}"
        );
        assert!(line.ends_with(" name=HELP outcome=help"), "{line}");
        let reply = ask(server.v4, &with(&header, b"echo\r\n"));
        assert_eq!(reply, tcpmuxd::protocol::UNKNOWN_SERVICE, "{version}");
        server.expect_log("name=echo outcome=denied");
    }
    if root() {
        for (version, header) in headers() {
            let reply = ask(server.v4, &with(&header, b"probe\r\nhello\r\n"));
            assert!(reply.starts_with(b"+Go\r\n"), "{version}");
            assert_eq!(
                report(&reply, "env TCPREMOTEIP="),
                "env TCPREMOTEIP=192.0.2.7"
            );
            assert_eq!(report(&reply, "read="), "read=hello");
            let logged = server.expect_log("name=probe outcome=launch");
            let line = event(&logged);
            assert!(line.starts_with("peer=192.0.2.7:40000 via="), "{line}");
        }
    }
}

#[test]
fn listen_mode_refuses_a_listed_source_without_a_header_and_not_the_others() {
    let server = listener(&[]);
    assert_eq!(ask(server.v4, b"HELP\r\n"), NO_PROXY_HEADER);
    let logged = server.expect_log("outcome=bad-line");
    let line = event(&logged);
    assert!(line.starts_with("peer=127.0.0.1:"), "{line}");
    assert!(
        line.ends_with(" outcome=bad-line (no PROXY protocol header)"),
        "{line}"
    );

    // ::1 is not listed: served as ever, and a PROXY line is a bad request.
    assert_eq!(ask(server.v6, b"HELP\r\n"), b"tcpmux\r\necho\r\n");
    let header = proxy::v1(Some(client()), Some(front()));
    assert_eq!(
        ask(server.v6, &with(&header, b"HELP\r\n")),
        b"-Bad request: service names contain no spaces\r\n"
    );
    let logged = server.expect_log("name=PROXY");
    let line = event(&logged);
    assert!(line.starts_with("peer=[::1]:"), "{line}");
}

/// The front end is not a source of its own: its clients are, each under
/// `--max-per-source`.
#[test]
fn listen_mode_caps_the_headers_client_not_the_front_end() {
    let server = listener(&["--max-per-source", "1", "-t", "30"]);
    let held = |client: &str| {
        let client: SocketAddr = client.parse().unwrap();
        let mut stream = connect(server.v4);
        stream
            .write_all(&with(
                &proxy::v1(Some(client), Some(front())),
                b"tcpmux\r\n",
            ))
            .unwrap();
        let mut ok = [0u8; 5];
        stream.read_exact(&mut ok).unwrap();
        assert_eq!(&ok, tcpmuxd::protocol::MUX_ACCEPT);
        stream
    };
    // Two connections from the front end, for two clients: both served.
    let _first = held("192.0.2.7:40000");
    let _second = held("192.0.2.8:40000");
    // A second one for 192.0.2.7 is over its cap.
    let mut stream = connect(server.v4);
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let header = proxy::v2(Some(client()), Some(front()), "");
    stream.write_all(&with(&header, b"HELP\r\n")).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(read_reply(&mut stream), BUSY);
    let logged = server.expect_log("outcome=busy");
    let line = event(&logged);
    assert!(
        line.starts_with("peer=192.0.2.7:40000 via=127.0.0.1:"),
        "{line}"
    );
    assert!(line.ends_with(" outcome=busy"), "{line}");
}

/// The rate limit, too, is the header's client's, not the front end's.
#[test]
fn listen_mode_limits_the_rate_of_the_headers_client() {
    let server = listener(&["--max-rate-per-source", "1", "--rate-backoff", "3600"]);
    let from = |client: &str| {
        let client: SocketAddr = client.parse().unwrap();
        let header = proxy::v1(Some(client), Some(front()));
        ask(server.v4, &with(&header, b"HELP\r\n"))
    };
    assert_eq!(from("192.0.2.7:40000"), b"tcpmux\r\nprobe\r\n");
    assert_eq!(from("192.0.2.7:40001"), RATE_LIMITED);
    let logged = server.expect_log("outcome=rate-limited");
    let line = event(&logged);
    assert!(
        line.starts_with("peer=192.0.2.7:40001 via=127.0.0.1:"),
        "{line}"
    );
    assert_eq!(from("192.0.2.8:40000"), b"tcpmux\r\nprobe\r\n");
}
