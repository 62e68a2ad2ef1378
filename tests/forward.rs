//! Reaching running daemons: `tcp:` and `unix:` forwards relayed byte for
//! byte with half-closes passed on and the PROXY header first, and `pass:`
//! handing the connection itself over; in both modes.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;

use common::{PATIENCE, Running, Server, TempDir};
use tcpmuxd::protocol::UNAVAILABLE;

/// A backend that greets first (as ssh and SMTP servers do), then hands
/// back everything it got, headers included, once the client is done.
fn greeting_backend(listener: TcpListener) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(PATIENCE)).unwrap();
        conn.write_all(b"220 hello first\r\n").unwrap();
        let mut got = Vec::new();
        conn.read_to_end(&mut got).unwrap();
        conn.write_all(b"bye after your end\r\n").unwrap();
        got
    })
}

#[test]
fn a_tcp_forward_relays_both_ways_with_the_proxy_header_first() {
    for mode in ["inetd", "listen"] {
        for (proxy, version) in [("proxy=v1", "v1"), ("proxy=v2", "v2"), ("", "none")] {
            let backend = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = backend.local_addr().unwrap().port();
            let got = greeting_backend(backend);
            let table = format!("+web nobody {proxy} tcp:127.0.0.1:{port}\n");
            let (reply, client) = match mode {
                "inetd" => {
                    let answer = Server::inetd().table(&table).ask(b"web\r\nGET /\r\n");
                    assert_eq!(answer.code, 0, "{mode} {version}");
                    (answer.reply, answer.client)
                }
                _ => {
                    let server = Server::listen().table(&table).start();
                    let mut stream = common::connect(server.v4);
                    let client = stream.local_addr().unwrap();
                    stream.write_all(b"web\r\nGET /\r\n").unwrap();
                    stream.shutdown(Shutdown::Write).unwrap();
                    (common::read_reply(&mut stream), client)
                }
            };
            // +Go once the backend is there, its greeting, then its answer
            // to the client's end: the half-close went both ways.
            assert_eq!(
                String::from_utf8_lossy(&reply),
                "+Go\r\n220 hello first\r\nbye after your end\r\n",
                "{mode} {version}"
            );
            let got = got.join().unwrap();
            let header_len = match version {
                "v1" => {
                    let line = format!("PROXY TCP4 127.0.0.1 127.0.0.1 {} ", client.port());
                    assert!(got.starts_with(line.as_bytes()), "{mode}: {got:?}");
                    got.iter().position(|b| *b == b'\n').unwrap() + 1
                }
                "v2" => {
                    assert_eq!(&got[..12], &tcpmuxd::proxy::V2_SIGNATURE, "{mode}");
                    let header = &got[..16 + usize::from(u16::from_be_bytes([got[14], got[15]]))];
                    let tlvs = tcpmuxd::proxy::v2_tlvs(header);
                    assert_eq!(tlvs, vec![(tcpmuxd::proxy::TLV_SERVICE, b"web".as_slice())]);
                    let parsed = tcpmuxd::proxy::parse(header);
                    let tcpmuxd::proxy::Parse::Done(h, n) = parsed else {
                        panic!("{mode}: {parsed:?}");
                    };
                    assert_eq!(h.addresses.unwrap().0, client, "{mode}");
                    n
                }
                _ => 0,
            };
            // The bytes the client sent after its request line reach the
            // daemon, after the header and nothing else.
            assert_eq!(&got[header_len..], b"GET /\r\n", "{mode} {version}");
        }
    }
}

#[test]
fn a_hundred_mebibytes_cross_a_forward_intact() {
    let backend = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = backend.local_addr().unwrap().port();
    // The backend echoes everything back.
    let echo = thread::spawn(move || {
        let (mut conn, _) = backend.accept().unwrap();
        let mut back = conn.try_clone().unwrap();
        std::io::copy(&mut conn, &mut back).unwrap();
        back.shutdown(Shutdown::Write).unwrap();
    });
    let server = Server::listen()
        .table(&format!("+echo nobody tcp:127.0.0.1:{port}\n"))
        .start();
    let mut stream = common::connect(server.v4);
    stream.write_all(b"echo\r\n").unwrap();
    let mut go = [0u8; 5];
    stream.read_exact(&mut go).unwrap();
    assert_eq!(&go, b"+Go\r\n");
    const SIZE: usize = 100 << 20;
    let mut sender = stream.try_clone().unwrap();
    let sending = thread::spawn(move || {
        let block: Vec<u8> = (0..65536u32).map(|i| (i * 7 % 251) as u8).collect();
        for _ in 0..SIZE / block.len() {
            sender.write_all(&block).unwrap();
        }
        sender.shutdown(Shutdown::Write).unwrap();
    });
    let mut got = 0usize;
    let mut buf = vec![0u8; 65536];
    let mut wrong = None;
    loop {
        let n = stream.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        for (i, b) in buf[..n].iter().enumerate() {
            let at = got + i;
            if wrong.is_none() && *b != ((at % 65536) as u32 * 7 % 251) as u8 {
                wrong = Some(at);
            }
        }
        got += n;
    }
    sending.join().unwrap();
    echo.join().unwrap();
    assert_eq!((got, wrong), (SIZE, None));
}

#[test]
fn a_unix_forward_and_a_refused_backend() {
    let dir = TempDir::new("unixfwd");
    let path = dir.path().join("daemon.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let daemon = thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        conn.write_all(b"unix daemon here\r\n").unwrap();
        let mut got = Vec::new();
        conn.read_to_end(&mut got).unwrap();
        got
    });
    let server = Server::inetd().table(&format!("+db root unix:{}\n", path.display()));
    let answer = server.ask(b"db\r\nselect 1;\r\n");
    assert_eq!(answer, ("+Go\r\nunix daemon here\r\n", 0));
    assert_eq!(daemon.join().unwrap(), b"select 1;\r\n");

    // Nothing listens: no + was sent, so the client gets the - line.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = Server::inetd()
        .table(&format!("+gone nobody tcp:127.0.0.1:{port}\n"))
        .syslog();
    let answer = server.ask(b"gone\r\n");
    assert_eq!(answer, (UNAVAILABLE, 8));
    assert!(
        answer.log_line().ends_with(&format!(
            "name=gone outcome=launch-failed (cannot reach tcp:127.0.0.1:{port}: Connection refused (os error 111))"
        )),
        "{}",
        answer.log_line()
    );
}

/// The example receiver that cargo builds beside the tests.
fn pass_receiver() -> PathBuf {
    let mut path = std::env::current_exe().unwrap();
    path.pop();
    if path.ends_with("deps") {
        path.pop();
    }
    path.join("examples/pass_receiver")
}

#[test]
fn a_passed_connection_is_the_daemons_own() {
    let receiver = pass_receiver();
    if !receiver.exists() {
        // `cargo test` builds the examples; a lone `--test forward` may not.
        assert!(
            std::env::var_os("TCPMUXD_REQUIRE_ROOT").is_none(),
            "no {}",
            receiver.display()
        );
        return;
    }
    let dir = TempDir::new("pass");
    let socket = dir.path().join("echo.sock");
    let mut daemon = Command::new(&receiver)
        .arg(&socket)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = std::io::BufReader::new(daemon.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut said, &mut line).unwrap();
    assert_eq!(line, format!("listening on {}\n", socket.display()));
    fs::set_permissions(&socket, fs::Permissions::from_mode(0o666)).unwrap();
    let _daemon = Running(daemon);
    let table = format!("+echo nobody pass:{}\n", socket.display());
    for mode in ["inetd", "listen"] {
        let (reply, client) = if mode == "inetd" {
            // Run by hand: the test must keep no copy of the server's end,
            // whose shutdown would cut the daemon's connection too.
            let server = Server::inetd().table(&table);
            let (mut client, end) = common::tcp_pair();
            let fd =
                |s: &TcpStream| Stdio::from(std::os::fd::OwnedFd::from(s.try_clone().unwrap()));
            let mut child = Command::new(common::binary())
                .args(server.argv())
                .stdin(fd(&end))
                .stdout(fd(&end))
                .stderr(fd(&end))
                .spawn()
                .unwrap();
            drop(end);
            client.write_all(b"echo\r\nhi there\r\n").unwrap();
            client.shutdown(Shutdown::Write).unwrap();
            client.set_read_timeout(Some(PATIENCE)).unwrap();
            assert_eq!(common::wait_for(&mut child).code(), Some(0));
            let addr = client.local_addr().unwrap();
            (common::read_reply(&mut client), addr)
        } else {
            let server = Server::listen().table(&table).start();
            let mut stream = common::connect(server.v4);
            let client = stream.local_addr().unwrap();
            stream.write_all(b"echo\r\nhi there\r\n").unwrap();
            stream.shutdown(Shutdown::Write).unwrap();
            (common::read_reply(&mut stream), client)
        };
        // The daemon greets the real client and echoes what came after the
        // request line: the bytes stayed in the socket it was given.
        assert_eq!(
            String::from_utf8_lossy(&reply),
            format!("+Go\r\nhello {client}, this is echo\r\nhi there\n"),
            "{mode}"
        );
        line.clear();
        std::io::BufRead::read_line(&mut said, &mut line).unwrap();
        assert_eq!(
            line,
            format!("passed service=echo client={client}\n"),
            "{mode}"
        );
    }
}

#[test]
fn the_table_says_what_a_target_takes() {
    let dir = TempDir::new("targets");
    let cases = [
        (
            "+a nobody tcp:127.0.0.1\n",
            ":1:15: tcp: is written tcp:HOST:PORT",
        ),
        (
            "+a nobody tcp:127.0.0.1:0\n",
            ":1:25: port \"0\" is not 1 to 65535",
        ),
        (
            "+a nobody tcp:[nope]:1\n",
            ":1:15: \"[nope]\" is not an IPv4 address, a [bracketed] IPv6 address or a host name",
        ),
        (
            "+a nobody unix:run/x\n",
            ":1:16: unix: takes an absolute path, such as unix:/run/x.sock",
        ),
        (
            "+a nobody tcp:[::1]:22 -x\n",
            ":1:24: tcp:[::1]:22 takes no arguments, and \"-x\" follows it",
        ),
        (
            "+a nobody proxy=v2 pass:/run/x.sock\n",
            ":1:20: proxy= goes with tcp: and unix:, where the connection is relayed; a passed connection is the client's own",
        ),
        (
            "+a nobody proxy=v2 /bin/cat\n",
            ":1:20: proxy= goes with tcp: and unix:, where the connection is relayed to a daemon",
        ),
        (
            "+a nobody proxy=v3 tcp:[::1]:22\n",
            ":1:17: proxy=\"v3\" is not v1 or v2",
        ),
        (
            "+a nobody maxconn=0 tcp:[::1]:22\n",
            ":1:19: maxconn=\"0\" is not 1 to 65536",
        ),
    ];
    for (text, message) in cases {
        let table = common::table(&dir, text);
        let (out, err, code) = common::run_piped(&["--check", "-c", &table], b"");
        assert_eq!(
            (
                String::from_utf8_lossy(&out).into_owned(),
                String::from_utf8_lossy(&err).into_owned(),
                code
            ),
            (String::new(), format!("in.tcpmuxd: {table}{message}\n"), 1),
            "{text:?}"
        );
    }
    let table = common::table(
        &dir,
        "+web nobody proxy=v2 maxconn=8 tcp:[::1]:8080\n+ssh nobody tcp:localhost:22\n",
    );
    let (out, _, code) = common::run_piped(&["--check", "--as", "root", "-c", &table], b"");
    assert_eq!(code, 0);
    let printed = String::from_utf8(out).unwrap();
    assert!(
        printed.contains("+web\tnobody\tmaxconn=8\tproxy=v2\ttcp:[::1]:8080\n"),
        "{printed}"
    );
    assert!(
        printed.contains("+ssh\tnobody\ttcp:localhost:22\n"),
        "{printed}"
    );
}

/// maxconn=: with --listen, at most N of a service at once, whatever kind,
/// the place given back when the connection ends.
#[test]
fn maxconn_holds_a_service_to_its_count() {
    let backend = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = backend.local_addr().unwrap().port();
    // Holds each connection until its client is done.
    thread::spawn(move || {
        for conn in backend.incoming() {
            let Ok(mut conn) = conn else { break };
            thread::spawn(move || {
                let mut sink = Vec::new();
                let _ = conn.read_to_end(&mut sink);
            });
        }
    });
    let server = Server::listen()
        .table(&format!(
            "+one nobody maxconn=1 tcp:127.0.0.1:{port}\n+cat nobody maxconn=1 /bin/cat\n"
        ))
        .start();
    for name in ["one", "cat"] {
        let mut first = common::connect(server.v4);
        first.write_all(format!("{name}\r\n").as_bytes()).unwrap();
        let mut go = [0u8; 5];
        first.read_exact(&mut go).unwrap();
        assert_eq!(&go, b"+Go\r\n", "{name}");
        assert_eq!(
            common::ask(server.v4, format!("{name}\r\n").as_bytes()),
            tcpmuxd::listener::BUSY,
            "{name}: a second at once"
        );
        drop(first);
        // The place comes back when the first connection's relay or
        // program ends.
        let start = std::time::Instant::now();
        loop {
            let reply = common::ask(server.v4, format!("{name}\r\n").as_bytes());
            if reply.starts_with(b"+Go\r\n") {
                break;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "{name}: the place never came back"
            );
            thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    let line = server.expect_log("maxconn=1 of one");
    assert!(
        line.contains("name=one outcome=busy (maxconn=1 of one)"),
        "{line}"
    );
}
