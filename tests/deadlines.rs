//! One deadline for the whole conversation, replies included; a bound on
//! `tcpmux` re-entries; HELP in bounded memory; per-source caps counted by
//! prefix. Each test is a way to hold a process or a listener's slot that
//! the server must not allow.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::socket::{
    AddressFamily, SockFlag, SockType, SockaddrIn, SockaddrIn6, bind, connect, setsockopt, socket,
    sockopt,
};

use common::{
    Listener, PATIENCE, Server, TempDir, ask, no_services, read_reply, wait_for, wait_until,
};
use tcpmuxd::listener::BUSY;
use tcpmuxd::protocol::{TIMED_OUT, TOO_MANY_MUX};

/// The bound on `tcpmux` re-entries, as README and the manual page give it.
const MUX_BOUND: usize = 8;

/// A TCP connection to `addr`, from `from` when given, with a small receive
/// buffer when asked, so that a client that never reads fills it at once.
fn connect_from(from: Option<IpAddr>, small_receive_buffer: bool, addr: SocketAddr) -> TcpStream {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd: OwnedFd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).unwrap();
    if small_receive_buffer {
        // Set before connecting, so the window is small from the start and
        // the kernel does not tune it up.
        setsockopt(&fd, sockopt::RcvBuf, &4096).unwrap();
    }
    match from {
        Some(IpAddr::V4(ip)) => bind(
            fd.as_raw_fd(),
            &SockaddrIn::from(std::net::SocketAddrV4::new(ip, 0)),
        )
        .unwrap(),
        Some(IpAddr::V6(ip)) => bind(
            fd.as_raw_fd(),
            &SockaddrIn6::from(std::net::SocketAddrV6::new(ip, 0, 0, 0)),
        )
        .unwrap(),
        None => {}
    }
    match addr {
        SocketAddr::V4(v4) => connect(fd.as_raw_fd(), &SockaddrIn::from(v4)).unwrap(),
        SocketAddr::V6(v6) => connect(fd.as_raw_fd(), &SockaddrIn6::from(v6)).unwrap(),
    }
    let stream = TcpStream::from(fd);
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream
}

/// A connected pair for inetd mode whose buffers are small on both sides,
/// so that replies the client never reads fill them after a few KiB.
fn small_buffer_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = connect_from(None, true, listener.local_addr().unwrap());
    let (server, _) = listener.accept().unwrap();
    setsockopt(&server, sockopt::SndBuf, &4096).unwrap();
    (client, server)
}

/// Sends `bytes` from a thread of its own, ignoring the error when the
/// server closes first; a client that never reads must not block the test.
fn send_in_background(stream: &TcpStream, bytes: Vec<u8>) -> thread::JoinHandle<()> {
    let mut writer = stream.try_clone().unwrap();
    thread::spawn(move || {
        let _ = writer.write_all(&bytes);
    })
}

/// The most a TCP socket's send buffer can grow to here: a reply the client
/// never reads must be larger than that, and than the client's small
/// receive buffer, for the server to be left waiting to write.
fn send_buffer_max() -> usize {
    fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|text| text.split_whitespace().nth(2)?.parse().ok())
        .unwrap_or(4 << 20)
}

fn tcpmux_lines(count: usize) -> Vec<u8> {
    b"tcpmux\r\n".repeat(count)
}

/// A table of `count` visible services, as root would accept it: owned by
/// root (the test runs as the owner), mode 0644, and a program owned by
/// root. Returns its path and the HELP reply it gives.
fn big_table(dir: &TempDir, count: usize) -> (String, Vec<u8>) {
    let mut text = String::new();
    let mut help = b"tcpmux\r\n".to_vec();
    for i in 0..count {
        // Long names, so that a reply built whole would show in memory.
        let name = format!("a-service-with-a-rather-long-name-to-fill-the-help-list-{i:07}");
        text.push_str(&format!("+{name} nobody /bin/cat\n"));
        help.extend_from_slice(name.as_bytes());
        help.extend_from_slice(b"\r\n");
    }
    let path = dir.path().join("tcpmux.conf");
    fs::write(&path, text).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    (path.to_str().unwrap().to_owned(), help)
}

/// Resident KiB of a process.
fn rss_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap()
}

/// Waits until the server has begun to answer `stream`, without reading.
fn wait_until_answered(stream: &TcpStream) {
    let mut byte = [0u8; 1];
    stream.peek(&mut byte).expect("the server began its reply");
}

// (a) The listener: a client that never reads gives its slot back.

#[test]
fn a_pipelining_client_that_never_reads_gives_its_listener_slot_back() {
    let server = Server::listen()
        .table("")
        .args(["-t", "2", "--max-connections", "1"])
        .start();
    let greedy = connect_from(None, true, server.v4);
    let started = Instant::now();
    // Enough that the +OK replies overflow every buffer on the way.
    let lines = 2 * send_buffer_max() / b"+OK\r\n".len();
    let sender = send_in_background(&greedy, tcpmux_lines(lines));
    // Its log line says the conversation is over; its slot is free once
    // the drain after its refusal ends (at most a second, or 64 KiB).
    let line = server.expect_log(&format!("peer={} ", greedy.local_addr().unwrap()));
    eprintln!("{line} after {:?}", started.elapsed());
    wait_until("the slot never came back", || {
        ask(server.v4, b"HELP\r\n") == b"tcpmux\r\n"
    });
    drop(greedy);
    sender.join().unwrap();
}

#[test]
fn a_help_reply_never_read_ends_at_the_deadline_and_frees_the_slot() {
    let dir = TempDir::new("unread-help");
    // A list longer than every buffer on the way can hold.
    let services = (2 * send_buffer_max() / 64).max(40_000);
    let (table, help) = big_table(&dir, services);
    let server = Listener::start(&["-t", "2", "--max-connections", "1", "-c", &table]);
    let mut greedy = connect_from(None, true, server.v4);
    let started = Instant::now();
    greedy.write_all(b"HELP\r\n").unwrap();
    let line = server.expect_log(&format!("peer={} ", greedy.local_addr().unwrap()));
    let held = started.elapsed();
    eprintln!("{line} after {held:?}");
    assert!(
        line.ends_with("name=HELP outcome=timeout (the client did not read the reply)"),
        "{line}"
    );
    assert_eq!(ask(server.v4, b"HELP\r\n"), help);
    // What the greedy client got is the start of the list, nothing else.
    let got = read_reply(&mut greedy);
    assert!(got.len() < help.len() && help.starts_with(&got));
}

// (b) Inetd mode: the process exits.

#[test]
fn inetd_mode_exits_when_a_pipelining_client_never_reads() {
    let (client, server) = small_buffer_pair();
    let mut inetd = Server::inetd().args(["-t", "1"]).start_on(client, server);
    let sender = send_in_background(&inetd.client, tcpmux_lines(100_000));
    let status = wait_for(&mut inetd.child);
    // The bound on tcpmux ends it before the deadline could.
    assert_eq!(status.code(), Some(4));
    let mut reply = Vec::new();
    inetd.client.shutdown(std::net::Shutdown::Write).ok();
    // Half-closed by the binary's refusal already, perhaps closed.
    let _ = inetd.server.shutdown(std::net::Shutdown::Write);
    inetd.client.read_to_end(&mut reply).unwrap();
    assert_eq!(
        reply,
        [b"+OK\r\n".repeat(MUX_BOUND), TOO_MANY_MUX.to_vec()].concat()
    );
    sender.join().unwrap();
}

#[test]
fn inetd_mode_exits_at_the_deadline_when_a_help_reply_is_never_read() {
    let dir = TempDir::new("inetd-unread-help");
    let (table, help) = big_table(&dir, 40_000);
    let (client, server) = small_buffer_pair();
    let inetd = Server::inetd().table_at(&table).args(["-t", "1"]).syslog();
    let mut conn = inetd.start_on(client, server);
    conn.send(b"HELP\r\n");
    let status = wait_for(&mut conn.child);
    assert_eq!(status.code(), Some(5), "exit 5: the deadline passed");
    let line = inetd.log().line();
    assert!(
        line.ends_with("name=HELP outcome=timeout (the client did not read the reply)"),
        "{line}"
    );
    let (got, _) = conn.finish();
    assert!(got.len() < help.len() && help.starts_with(&got));
}

// (c) `tcpmux` does not restart the clock.

#[test]
fn tcpmux_again_and_again_does_not_restart_the_deadline() {
    let mut inetd = Server::inetd().args(["-t", "1"]).connect();
    let mut reply = Vec::new();
    // Well inside the bound: at one line every 300 ms, 8 lines take 2.4 s,
    // more than the deadline of 1 s.
    for _ in 0..MUX_BOUND {
        let _ = inetd.client.write_all(b"tcpmux\r\n");
        let mut answer = [0u8; 5];
        inetd.client.read_exact(&mut answer).unwrap();
        reply.extend_from_slice(&answer);
        if &answer != b"+OK\r\n" {
            break;
        }
        thread::sleep(Duration::from_millis(300));
    }
    let (rest, code) = inetd.finish();
    reply.extend_from_slice(&rest);
    let accepted = reply.len().saturating_sub(TIMED_OUT.len()) / 5;
    assert_eq!(
        String::from_utf8_lossy(&reply),
        String::from_utf8_lossy(&[b"+OK\r\n".repeat(accepted), TIMED_OUT.to_vec()].concat())
    );
    assert!((1..MUX_BOUND).contains(&accepted), "{accepted} +OK");
    assert_eq!(code, 5);
}

// (d) The bound on re-entries.

#[test]
fn tcpmux_is_accepted_at_most_eight_times() {
    let mut inetd = Server::inetd().connect();
    inetd.send(&[tcpmux_lines(MUX_BOUND + 1), b"rest".to_vec()].concat());
    let (reply, code) = inetd.finish();
    assert_eq!(
        String::from_utf8_lossy(&reply),
        String::from_utf8_lossy(&[b"+OK\r\n".repeat(MUX_BOUND), TOO_MANY_MUX.to_vec()].concat())
    );
    assert_eq!(code, 4);
    // The refusal drains what follows it (tests/refusals.rs); that the
    // ninth line is read and no further is the session's unit test.
    assert_eq!(inetd.unread(), b"");

    let mut inetd = Server::inetd().connect();
    inetd.send(&[tcpmux_lines(MUX_BOUND), b"HELP\r\n".to_vec()].concat());
    let (reply, code) = inetd.finish();
    assert_eq!(
        reply,
        [b"+OK\r\n".repeat(MUX_BOUND), b"tcpmux\r\n".to_vec()].concat()
    );
    assert_eq!(code, 0);
}

// (e) HELP's memory does not grow with the table.

#[test]
fn help_to_clients_that_never_read_costs_no_memory_per_service() {
    let clients = 32;
    let dir = TempDir::new("help-memory");
    let (table, help) = big_table(&dir, 100_000);
    let server = Listener::start(&["-c", &table, "-t", "60", "--max-per-source", "64"]);
    let pid = server.child.id();
    // A first HELP read to the end, so the baseline has every lazily
    // touched page of the path.
    assert_eq!(ask(server.v4, b"HELP\r\n"), help);
    let baseline = rss_kib(pid);
    let greedy: Vec<TcpStream> = (0..clients)
        .map(|_| {
            let mut stream = connect_from(None, true, server.v4);
            stream.write_all(b"HELP\r\n").unwrap();
            stream
        })
        .collect();
    for stream in &greedy {
        wait_until_answered(stream);
    }
    let held = rss_kib(pid);
    // Each connection may cost its thread's stack (128 KiB) and a buffer of
    // a few KiB; a reply built whole would cost some 6 MiB each here.
    let bound = baseline + 16 * 1024;
    eprintln!(
        "listener VmRSS with {} services: {baseline} KiB after one HELP, {held} KiB with \
         {clients} HELP replies unread (bound {bound} KiB); the full reply is {} KiB",
        100_000,
        help.len() / 1024
    );
    assert!(held <= bound, "{held} KiB > {bound} KiB");
}

// Per-source caps by prefix.

#[test]
fn per_source_caps_count_ipv4_sources_by_prefix() {
    let (_dir, empty) = no_services();
    let one: IpAddr = "127.0.0.1".parse().unwrap();
    let two: IpAddr = "127.0.0.2".parse().unwrap();
    for (prefix, second_gets) in [
        (None, &b"tcpmux\r\n"[..]),
        (Some("24"), BUSY),
        (Some("32"), b"tcpmux\r\n"),
    ] {
        let mut args = vec!["--max-per-source", "1", "-t", "30", "-c", &empty];
        if let Some(len) = prefix {
            args.extend(["--ipv4-source-prefix", len]);
        }
        let server = Listener::start(&args);
        // An answered tcpmux shows the first holds its slot.
        let mut first = connect_from(Some(one), false, server.v4);
        first.write_all(b"tcpmux\r\n").unwrap();
        let mut ok = [0u8; 5];
        first.read_exact(&mut ok).unwrap();
        assert_eq!(&ok, b"+OK\r\n");
        let mut second = connect_from(Some(two), false, server.v4);
        let _ = second.write_all(b"HELP\r\n");
        let _ = second.shutdown(std::net::Shutdown::Write);
        assert_eq!(read_reply(&mut second), second_gets, "prefix {prefix:?}");
    }
}

#[test]
fn the_prefix_lengths_are_range_checked() {
    for (flag, bad) in [
        ("--ipv4-source-prefix", "0"),
        ("--ipv4-source-prefix", "33"),
        ("--ipv6-source-prefix", "0"),
        ("--ipv6-source-prefix", "129"),
    ] {
        let (_, err, code) = common::run_piped(&["--listen", "127.0.0.1:0", flag, bad], b"");
        assert_eq!(code, 2, "{flag} {bad}: {}", String::from_utf8_lossy(&err));
    }
}
