//! The `tcpmux` client, run as built, against in.tcpmuxd (`--listen`, and
//! inetd mode under `systemd-socket-activate`) and against fake servers
//! played by a thread of the test. Loopback only, bounded in count and time.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use common::{PATIENCE, Server, TempDir, install_copy, run_program, socket_activated, table};
use tcpmuxd::listener::BUSY;

fn client() -> &'static Path {
    static CLIENT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| install_copy(env!("CARGO_BIN_EXE_tcpmux"), "tcpmux"))
}

/// Runs `tcpmux` with `input` on standard input: (stdout, stderr, code).
fn run_client(args: &[&str], input: Vec<u8>) -> (Vec<u8>, String, i32) {
    let (out, err, code) = run_program(client(), args, input);
    (out, String::from_utf8_lossy(&err).into_owned(), code)
}

/// What the client must do against any server with an echo service.
fn check_the_client(host: &str, port: u16) {
    let port = port.to_string();
    assert_eq!(
        run_client(&["-p", &port, "--list", host], vec![]),
        (b"tcpmux\necho\n".to_vec(), String::new(), 0)
    );
    let data = common::binary_data(3 << 20);
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
    let server = Server::listen().table("+echo nobody /bin/cat\n").start();
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

/// A fake server on a loopback port: the test's thread plays it with the
/// accepted connection and returns what it likes.
fn fake_server<T: Send + 'static>(
    play: impl FnOnce(TcpStream) -> T + Send + 'static,
) -> (String, thread::JoinHandle<T>) {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port().to_string();
    let thread = thread::spawn(move || {
        let (conn, _) = server.accept().unwrap();
        conn.set_read_timeout(Some(PATIENCE)).unwrap();
        play(conn)
    });
    (port, thread)
}

/// Waits until `len` bytes the client sent are in `conn`, without reading
/// them: a server that answers without reading leaves them there.
fn wait_for_unread(conn: &TcpStream, len: usize) {
    let mut buf = vec![0u8; len];
    while conn.peek(&mut buf).unwrap() < len {
        thread::yield_now();
    }
}

/// The kernel resets the connection at once when it is closed this way.
fn close_with_reset(conn: TcpStream) {
    let linger = nix::sys::socket::sockopt::Linger;
    let zero = nix::libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    nix::sys::socket::setsockopt(&conn, linger, &zero).unwrap();
}

#[test]
fn a_reset_after_the_servers_line_reports_the_line() {
    // A busy server answers without reading the request, and closing with
    // it unread resets the connection right after the line.
    for (args, request, what) in [
        (&["127.0.0.1", "svc"][..], "svc\r\n", "svc"),
        (&["--list", "127.0.0.1"], "HELP\r\n", "HELP"),
    ] {
        let (port, fake) = fake_server(move |mut conn| {
            wait_for_unread(&conn, request.len());
            conn.write_all(BUSY).unwrap();
        });
        assert_eq!(
            run_client(&[&["-p", &port][..], args].concat(), vec![]),
            (
                vec![],
                format!("tcpmux: 127.0.0.1 {what}: refused: Server busy; try again later\n"),
                3
            )
        );
        fake.join().unwrap();
    }
    // A line cut short by the reset is still the server's refusal.
    let (port, fake) = fake_server(|mut conn| {
        let mut name = [0u8; 5];
        conn.read_exact(&mut name).unwrap();
        conn.write_all(b"-Going away").unwrap();
        close_with_reset(conn);
    });
    assert_eq!(
        run_client(&["-p", &port, "127.0.0.1", "svc"], vec![]),
        (
            vec![],
            "tcpmux: 127.0.0.1 svc: refused: Going away\n".into(),
            3
        )
    );
    fake.join().unwrap();
}

#[test]
fn the_listeners_busy_line_is_reported_not_its_reset() {
    let server = Server::listen()
        .table("")
        .args(["--max-connections", "1", "-t", "30"])
        .start();
    // An answered tcpmux shows the held connection has the one place.
    let _held = common::in_handshake(server.v4);
    let port = server.v4.port().to_string();
    for args in [&["--list", "127.0.0.1"][..], &["127.0.0.1", "echo"]] {
        let what = if args[0] == "--list" { "HELP" } else { "echo" };
        let (out, err, code) = run_client(&[&["-p", &port][..], args].concat(), vec![]);
        assert_eq!(
            (out, err, code),
            (
                vec![],
                format!("tcpmux: 127.0.0.1 {what}: refused: Server busy; try again later\n"),
                3
            )
        );
    }
}

/// The resident memory high-water mark of a running process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_huge_list_is_streamed_in_little_memory() {
    // 16 MiB of short names: held whole, they cost the client 476 MB.
    let mut reply = b"+Available services:\r\n".to_vec();
    let mut expected = Vec::new();
    let mut i = 0u32;
    while reply.len() < 16 << 20 {
        let name = format!("s{i:x}");
        reply.extend_from_slice(format!("{name}\r\n").as_bytes());
        expected.extend_from_slice(format!("{name}\n").as_bytes());
        i += 1;
    }
    let (close, closing) = std::sync::mpsc::channel::<()>();
    let (port, fake) = fake_server(move |mut conn| {
        let mut help = [0u8; 6];
        conn.read_exact(&mut help).unwrap();
        assert_eq!(&help, b"HELP\r\n");
        conn.write_all(&reply).unwrap();
        // Open until the test has seen every name, so the client is still
        // there to be measured; a client that waits for the end to print
        // fails the test rather than hangs it.
        let _ = closing.recv_timeout(PATIENCE);
    });
    let mut child = Command::new(client())
        .args(["-p", &port, "--list", "127.0.0.1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut out = vec![0u8; expected.len()];
    // Every name reaches standard output before the server closes.
    stdout.read_exact(&mut out).unwrap();
    let peak = peak_rss_kib(child.id());
    close.send(()).unwrap();
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).unwrap();
    assert_eq!(common::wait_for(&mut child).code(), Some(0));
    fake.join().unwrap();
    assert!(rest.is_empty() && out == expected, "the names differ");
    eprintln!(
        "tcpmux --list of {i} names, {} bytes: peak RSS {peak} KiB",
        out.len()
    );
    assert!(peak < 8 << 10, "peak RSS {peak} KiB");
}

#[test]
fn one_deadline_covers_the_whole_handshake() {
    // A byte every half second keeps a timeout per read waiting for ever;
    // the deadline of -t 1 ends it after about two bytes. The server stops
    // at 24 bytes (12 s), so a client that waits for them all fails.
    for (args, reply, what) in [
        (
            &["--list", "127.0.0.1"][..],
            &b"+Available services:\r\nname\r\n"[..],
            "HELP",
        ),
        (
            &["127.0.0.1", "svc"],
            b"+Go ahead, it is all yours\r\n",
            "svc",
        ),
    ] {
        let (port, fake) = fake_server(move |mut conn| {
            let mut request = [0u8; 5];
            conn.read_exact(&mut request).unwrap();
            for byte in reply.iter().take(24) {
                if conn.write_all(&[*byte]).is_err() {
                    break;
                }
                thread::sleep(Duration::from_millis(500));
            }
        });
        let (out, err, code) = run_client(&[&["-t", "1", "-p", &port][..], args].concat(), vec![]);
        assert_eq!(
            (out, err, code),
            (
                vec![],
                format!("tcpmux: 127.0.0.1 {what}: timed out waiting for the reply\n"),
                5
            )
        );
        fake.join().unwrap();
    }
}

#[test]
fn service_by_flag_or_environment_ignores_a_proxy_callers_port() {
    // git runs GIT_PROXY_COMMAND as `COMMAND HOST PORT`, PORT being 9418.
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)]);
    let cases: [Case; 3] = [
        (&["-s", "svc", "127.0.0.1", "9418"], &[]),
        (&["--service", "svc", "127.0.0.1"], &[]),
        (&["127.0.0.1", "9418"], &[("TCPMUX_PROXY_SERVICE", "svc")]),
    ];
    for (args, env) in cases {
        let (port, fake) = fake_server(|mut conn| {
            let mut name = [0u8; 5];
            conn.read_exact(&mut name).unwrap();
            conn.write_all(b"+\r\nhello").unwrap();
            name
        });
        let out = Command::new(client())
            .args(args)
            .envs(env.iter().copied())
            .env("TCPMUX_PORT", &port)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(fake.join().unwrap(), *b"svc\r\n", "{args:?}");
        assert_eq!(
            (out.stdout, out.status.code()),
            (b"hello".to_vec(), Some(0))
        );
    }
    // What is not a port there is a mistake, and so is -s with --list.
    for args in [
        &["-s", "svc", "127.0.0.1", "echo"][..],
        &["-l", "-s", "svc", "127.0.0.1"],
    ] {
        let (out, err, code) = run_client(args, vec![]);
        assert_eq!((out, code), (vec![], 2), "{err}");
    }
    let (out, err, code) = run_client(&["-s", "svc", "127.0.0.1", "echo"], vec![]);
    assert_eq!((out, code), (vec![], 2));
    assert!(
        err.starts_with(
            "error: with --service svc, the operand after HOST is a port, ignored, not \"echo\"\n"
        ),
        "{err}"
    );
}
