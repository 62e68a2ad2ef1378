//! The `tcpmux` client, run as built, against in.tcpmuxd (`--listen`, and
//! inetd mode under `systemd-socket-activate`) and against fake servers
//! played by a thread of the test. Loopback only, bounded in count and time.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::thread;

use common::{Listener, TempDir, install_copy, run_program, socket_activated, table};

fn client() -> &'static Path {
    static CLIENT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| install_copy(env!("CARGO_BIN_EXE_tcpmux"), "tcpmux"))
}

/// Runs `tcpmux` with `input` on standard input: (stdout, stderr, code).
fn run_client(args: &[&str], input: Vec<u8>) -> (Vec<u8>, String, i32) {
    let (out, err, code) = run_program(client(), args, input);
    (out, String::from_utf8_lossy(&err).into_owned(), code)
}

/// Megabytes that are not text, the same on every run.
fn binary_data(len: usize) -> Vec<u8> {
    let mut x: u32 = 2463534242;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// What the client must do against any server with an echo service.
fn check_the_client(host: &str, port: u16) {
    let port = port.to_string();
    assert_eq!(
        run_client(&["-p", &port, "--list", host], vec![]),
        (b"tcpmux\necho\n".to_vec(), String::new(), 0)
    );
    let data = binary_data(3 << 20);
    let (out, err, code) = run_client(&["-p", &port, host, "echo"], data.clone());
    assert_eq!((err.as_str(), code), ("", 0));
    assert!(
        out == data,
        "the relayed data differs: {} bytes back",
        out.len()
    );
    let (out, err, code) = run_client(&["-p", &port, host, "nosuch"], vec![]);
    assert_eq!((out, code), (vec![], 3));
    assert_eq!(
        err,
        format!("tcpmux: {host} nosuch: refused: Service not available; send HELP for a list\n")
    );
}

#[test]
fn the_client_against_the_listener() {
    let dir = TempDir::new("client");
    let table = table(&dir, "+echo nobody /bin/cat\n");
    let server = Listener::start(&["-c", &table]);
    check_the_client("127.0.0.1", server.v4.port());
    check_the_client("::1", server.v6.port());
}

#[test]
fn the_client_against_inetd_mode_under_systemd_socket_activate() {
    let dir = TempDir::new("client-ssa");
    let table = table(&dir, "+echo nobody /bin/cat\n");
    if let Some((_activator, port)) = socket_activated(&["-c", &table, "--log", "none"]) {
        check_the_client("127.0.0.1", port);
    }
}

#[test]
fn the_client_takes_other_servers_reply_styles() {
    for (reply, expected) in [
        (&b"+\r\n"[..], &b"data"[..]),
        (b"+OK\r\n", b"data"),
        (b"+Go\r\n", b"data"),
    ] {
        let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = server.local_addr().unwrap().port().to_string();
        let fake = thread::spawn(move || {
            let (mut conn, _) = server.accept().unwrap();
            let mut name = [0u8; 5];
            conn.read_exact(&mut name).unwrap();
            assert_eq!(&name, b"svc\r\n");
            // The service's first bytes come in the same write as the reply.
            conn.write_all(&[reply, b"data"].concat()).unwrap();
        });
        assert_eq!(
            run_client(&["-p", &port, "127.0.0.1", "svc"], vec![]),
            (expected.to_vec(), String::new(), 0)
        );
        fake.join().unwrap();
    }
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port().to_string();
    let fake = thread::spawn(move || {
        let (mut conn, _) = server.accept().unwrap();
        let mut help = [0u8; 6];
        conn.read_exact(&mut help).unwrap();
        conn.write_all(b"+Available services:\r\nhelp\r\necho\r\n")
            .unwrap();
    });
    assert_eq!(
        run_client(&["-p", &port, "--list", "127.0.0.1"], vec![]),
        (b"help\necho\n".to_vec(), String::new(), 0)
    );
    fake.join().unwrap();
}
