//! `--listen`: in.tcpmuxd as its own super-server. Loopback only, bounded
//! in count and time. The `tcpmux` client's tests are in `tests/client.rs`.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    Server, ask, binary, connect, in_handshake, no_services, wait_for, wait_until, zombie_children,
};
use tcpmuxd::listener::BUSY;

#[test]
fn it_answers_like_inetd_mode_on_ipv4_and_ipv6() {
    let server = Server::listen().table("+echo nobody /bin/cat\n").start();
    for addr in [server.v4, server.v6] {
        assert_eq!(ask(addr, b"HELP\r\n"), b"tcpmux\r\necho\r\n");
        assert_eq!(
            ask(addr, b"tcpmux\r\nhelp\r\n"),
            b"+OK\r\ntcpmux\r\necho\r\n"
        );
        assert_eq!(
            ask(addr, b"nosuch\r\n"),
            b"-Service not available; send HELP for a list\r\n"
        );
        assert_eq!(
            ask(addr, b"bad\n"),
            b"-Bad request: lines must end with CR LF, not a bare LF\r\n"
        );
        assert_eq!(ask(addr, b"ECHO\r\nhello\r\n"), b"+Go\r\nhello\r\n");
    }
    let line = server.expect_log("outcome=launch ");
    assert!(
        line.contains("name=echo outcome=launch user=nobody"),
        "{line}"
    );
}

#[test]
fn two_hundred_clients_at_once_are_all_answered() {
    let server = Server::listen()
        .table("")
        .args(["--max-per-source", "512", "--max-connections", "512"])
        .start();
    let all_connected = Arc::new(Barrier::new(200));
    let clients: Vec<_> = (0..200)
        .map(|i| {
            let addr = if i % 2 == 0 { server.v4 } else { server.v6 };
            let all_connected = Arc::clone(&all_connected);
            thread::spawn(move || {
                let mut stream = connect(addr);
                // Hold every connection open until all are connected.
                all_connected.wait();
                let request: &[u8] = match i % 3 {
                    0 => b"HELP\r\n",
                    1 => b"tcpmux\r\nHELP\r\n",
                    _ => b"nosuch\r\n",
                };
                stream.write_all(request).unwrap();
                let mut reply = Vec::new();
                stream.read_to_end(&mut reply).unwrap();
                (i, reply)
            })
        })
        .collect();
    for client in clients {
        let (i, reply) = client.join().unwrap();
        let expected: &[u8] = match i % 3 {
            0 => b"tcpmux\r\n",
            1 => b"+OK\r\ntcpmux\r\n",
            _ => b"-Service not available; send HELP for a list\r\n",
        };
        assert_eq!(reply, expected, "client {i}");
    }
}

#[test]
fn the_total_cap_holds() {
    let server = Server::listen()
        .table("")
        .args(["--max-connections", "2", "-t", "30"])
        .start();
    let _a = connect(server.v4);
    let _b = connect(server.v6);
    server.wait_for_connections(2);
    assert_eq!(ask(server.v4, b"HELP\r\n"), BUSY);
    assert_eq!(ask(server.v6, b"HELP\r\n"), BUSY);
    server.expect_log("outcome=busy");
    drop(_a);
    // The slot comes back when the silent client goes away.
    wait_until("the slot never came back", || {
        ask(server.v4, b"HELP\r\n") == b"tcpmux\r\n"
    });
}

#[test]
fn the_per_source_cap_holds() {
    let server = Server::listen()
        .table("")
        .args(["--max-per-source", "1", "-t", "30"])
        .start();
    let _held = connect(server.v4);
    server.wait_for_connections(1);
    assert_eq!(ask(server.v4, b"HELP\r\n"), BUSY);
    // ::1 is another source.
    assert_eq!(ask(server.v6, b"HELP\r\n"), b"tcpmux\r\n");
}

#[test]
fn a_silent_client_times_out_while_others_are_served() {
    let server = Server::listen().table("").args(["-t", "1"]).start();
    let mut silent = connect(server.v4);
    let start = Instant::now();
    assert_eq!(ask(server.v4, b"HELP\r\n"), b"tcpmux\r\n");
    let mut reply = Vec::new();
    silent.read_to_end(&mut reply).unwrap();
    assert_eq!(reply, b"-Timed out waiting for a service name\r\n");
    assert!(start.elapsed() >= Duration::from_secs(1));
    server.expect_log("name=- outcome=timeout");
}

#[test]
fn sigterm_stops_accepting_and_finishes_the_handshakes_under_way() {
    let mut server = Server::listen().table("").args(["-t", "10"]).start();
    let mut in_flight = in_handshake(server.v4);
    server.signal(nix::sys::signal::Signal::SIGTERM);
    server.expect_log("SIGTERM: no new connections");
    assert!(TcpStream::connect(server.v4).is_err(), "still accepting");
    in_flight.write_all(b"HELP\r\n").unwrap();
    let mut reply = Vec::new();
    in_flight.read_to_end(&mut reply).unwrap();
    assert_eq!(reply, b"tcpmux\r\n");
    assert_eq!(wait_for(&mut server.child).code(), Some(0));
}

#[test]
fn sighup_rereads_the_table_and_keeps_the_old_one_if_broken() {
    let server = Server::listen().table("+one nobody /bin/true\n").start();
    assert_eq!(ask(server.v4, b"HELP\r\n"), b"tcpmux\r\none\r\n");
    server.write_table("+two nobody /bin/true\n");
    server.signal(nix::sys::signal::Signal::SIGHUP);
    let line = server.expect_log("re-read, ");
    assert!(line.ends_with("re-read, 1 service"), "{line}");
    assert_eq!(ask(server.v4, b"HELP\r\n"), b"tcpmux\r\ntwo\r\n");
    server.write_table("+three nobody\n");
    server.signal(nix::sys::signal::Signal::SIGHUP);
    let line = server.expect_log("SIGHUP: keeping the old table");
    assert!(
        line.ends_with(":1:14: missing the program (an absolute path such as /usr/bin/foo)"),
        "{line}"
    );
    assert_eq!(ask(server.v4, b"HELP\r\n"), b"tcpmux\r\ntwo\r\n");
}

#[test]
fn bind_failures_name_the_address_and_exit_9() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (_dir, empty) = no_services();
    let out = Command::new(binary())
        .args(["--listen", &addr, "-c", &empty])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(9));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.ends_with(&format!(
            "cannot listen on {addr}: Address already in use\n"
        )),
        "{err}"
    );

    if common::root() {
        use std::os::unix::process::CommandExt;
        let out = Command::new(binary())
            .args(["--listen", "127.0.0.1", "-c", &empty])
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(9));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.ends_with("cannot listen on 127.0.0.1:1: Permission denied\n"),
            "{err}"
        );
    }
}

#[test]
fn services_are_reaped_and_a_crashing_one_harms_nothing() {
    let server = Server::listen();
    let crash = server.dir().join("crash");
    fs::write(&crash, "#!/bin/sh\nkill -SEGV $$\n").unwrap();
    fs::set_permissions(&crash, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let server = server
        .table("+true nobody /bin/true\n+crash nobody {dir}/crash\n")
        .start();
    for _ in 0..10 {
        assert_eq!(ask(server.v4, b"true\r\n"), b"+Go\r\n");
        assert_eq!(ask(server.v6, b"crash\r\n"), b"+Go\r\n");
    }
    assert_eq!(ask(server.v4, b"HELP\r\n"), b"tcpmux\r\ntrue\r\ncrash\r\n");
    wait_until("zombies left", || zombie_children(server.child.id()) == 0);
}
