//! Torture: load, slow clients and faults, against `--listen` and against
//! inetd mode under `systemd-socket-activate`. Loopback only; every loop is
//! bounded in count, every wait in time.
//!
//! `cargo test --test torture` runs the short mode that CI runs;
//! `TCPMUXD_TORTURE=full cargo test --release --test torture` the full one
//! (10,000 connections at concurrency 200, 500 silent clients).

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    Listener, PATIENCE, Server, TempDir, read_reply, socket_activated, wait_until, zombie_children,
};
use tcpmuxd::protocol::{UNAVAILABLE, UNKNOWN_SERVICE as UNKNOWN};

fn full() -> bool {
    std::env::var("TCPMUXD_TORTURE").is_ok_and(|v| v == "full")
}

/// (connections, concurrency) for the load test.
fn load() -> (usize, usize) {
    if full() { (10_000, 200) } else { (1_000, 50) }
}

/// Open descriptors and resident KiB of a process.
fn footprint(pid: u32) -> (usize, u64) {
    let fds = fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count();
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap();
    (fds, rss)
}

/// `total` connections from `concurrency` threads, each a request with its
/// exact expected reply; returns how many replies were wrong.
fn hammer(addr: SocketAddr, total: usize, concurrency: usize) -> usize {
    let cases: [(&[u8], &[u8]); 4] = [
        (b"HELP\r\n", b"tcpmux\r\necho\r\n"),
        (b"tcpmux\r\nHELP\r\n", b"+OK\r\ntcpmux\r\necho\r\n"),
        (b"nosuch\r\n", UNKNOWN),
        (
            b"bad\n",
            b"-Bad request: lines must end with CR LF, not a bare LF\r\n",
        ),
    ];
    let threads: Vec<_> = (0..concurrency)
        .map(|t| {
            thread::spawn(move || {
                let mut wrong = 0;
                for i in (t..total).step_by(concurrency) {
                    let (request, expected) = cases[i % cases.len()];
                    let mut stream = TcpStream::connect(addr).unwrap();
                    stream.set_read_timeout(Some(PATIENCE)).unwrap();
                    stream.write_all(request).unwrap();
                    if read_reply(&mut stream) != expected {
                        wrong += 1;
                    }
                }
                wrong
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).sum()
}

fn echo_table(dir: &TempDir) -> String {
    common::table(dir, "+echo nobody /bin/cat\n")
}

#[test]
fn load_through_the_listener_leaves_no_trace() {
    let (total, concurrency) = load();
    let dir = TempDir::new("load");
    let table = echo_table(&dir);
    let cap = (concurrency * 2).to_string();
    let mut server = Listener::start(&[
        "-c",
        &table,
        "--max-connections",
        &cap,
        "--max-per-source",
        &cap,
    ]);
    // The descriptors of a listener with no connection. Not counted after
    // the warm-up: a refused connection is still drained, and open, for a
    // moment after its client has read the end of its reply.
    let pid = server.child.id();
    let (fds_before, _) = footprint(pid);
    // Warm up with a quarter of the load, so that the allocator's per-thread
    // arenas have their working size: what stays after that would be a leak.
    assert_eq!(hammer(server.v4, total / 4, concurrency), 0);
    let (_, rss_before) = footprint(pid);
    assert_eq!(hammer(server.v4, total, concurrency), 0, "wrong replies");
    // Services through the listener too: each is reaped.
    for _ in 0..20 {
        let mut stream = TcpStream::connect(server.v4).unwrap();
        stream.write_all(b"echo\r\nping\r\n").unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        assert_eq!(read_reply(&mut stream), b"+Go\r\nping\r\n");
    }
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (fds, rss) = footprint(pid);
        let settled = fds == fds_before && zombie_children(pid) == 0 && rss <= rss_before + 1024;
        if settled {
            eprintln!(
                "listener: {fds_before} fds and {rss_before} KiB before, {fds} and {rss} after"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "fds {fds_before} -> {fds}, rss {rss_before} -> {rss} KiB, zombies {}",
            zombie_children(pid)
        );
        thread::sleep(Duration::from_millis(50));
    }
    assert!(server.alive());
}

#[test]
fn load_through_systemd_socket_activate() {
    let (total, concurrency) = load();
    let dir = TempDir::new("load-ssa");
    let table = echo_table(&dir);
    let Some((activator, port)) = socket_activated(&["-c", &table, "--log", "none"]) else {
        return;
    };
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // Fewer at once than through the listener: each is a process here.
    let wrong = hammer(addr, total, concurrency.min(100));
    let pid = activator.0.id();
    wait_until("zombies of systemd-socket-activate", || {
        zombie_children(pid) == 0
    });
    assert_eq!(wrong, 0, "wrong replies");
}

#[test]
fn silent_clients_time_out_at_their_deadline_while_others_are_served() {
    let silent = if full() { 500 } else { 100 };
    let dir = TempDir::new("slow");
    let table = echo_table(&dir);
    let cap = (silent + 1).to_string();
    let server = Listener::start(&[
        "-c",
        &table,
        "-t",
        "3",
        "--max-connections",
        &cap,
        "--max-per-source",
        &cap,
    ]);
    let started = Instant::now();
    let mut quiet: Vec<TcpStream> = (0..silent)
        .map(|_| TcpStream::connect(server.v4).unwrap())
        .collect();
    // The one place left under the cap serves active clients, one at a time,
    // while every silent one is still waiting.
    for _ in 0..5 {
        let mut active = TcpStream::connect(server.v4).unwrap();
        active.set_read_timeout(Some(PATIENCE)).unwrap();
        active.write_all(b"HELP\r\n").unwrap();
        assert_eq!(read_reply(&mut active), b"tcpmux\r\necho\r\n");
    }
    // They were answered while every silent client still waits: none has
    // had its timeout line yet.
    for stream in &quiet {
        stream.set_nonblocking(true).unwrap();
        let mut byte = [0u8; 1];
        let waiting = matches!((&*stream).read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
        assert!(
            waiting,
            "a silent client was answered before the active ones"
        );
        stream.set_nonblocking(false).unwrap();
    }
    // Take the last place with one more silent client; the next is busy.
    let last = TcpStream::connect(server.v4).unwrap();
    let mut over = TcpStream::connect(server.v4).unwrap();
    over.set_read_timeout(Some(PATIENCE)).unwrap();
    let _ = over.write_all(b"HELP\r\n");
    assert_eq!(read_reply(&mut over), b"-Server busy; try again later\r\n");
    drop(last);
    for stream in &mut quiet {
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        assert_eq!(
            read_reply(stream),
            b"-Timed out waiting for a service name\r\n"
        );
    }
    assert!(started.elapsed() >= Duration::from_secs(3));
}

/// Closes with RST instead of FIN.
fn reset(stream: TcpStream) {
    let fd = std::os::fd::OwnedFd::from(stream);
    let linger = nix::sys::socket::sockopt::Linger;
    nix::sys::socket::setsockopt(
        &fd,
        linger,
        &nix::libc::linger {
            l_onoff: 1,
            l_linger: 0,
        },
    )
    .unwrap();
    drop(fd);
}

#[test]
fn resets_mid_line_and_mid_reply_harm_nothing() {
    let dir = TempDir::new("reset");
    let path = dir.path().join("tcpmux.conf");
    // A HELP list of about a megabyte, so the reply is still being written
    // when the client resets.
    let table: String = (0..40_000)
        .map(|i| format!("+service-with-a-long-name-{i:06} nobody /bin/cat\n"))
        .collect();
    fs::write(&path, table).unwrap();
    let mut server = Listener::start(&["-c", path.to_str().unwrap()]);
    for _ in 0..20 {
        // An answered tcpmux shows the listener is serving the connection,
        // so the reset lands in its session, not in the accept queue.
        let mut mid_line = TcpStream::connect(server.v4).unwrap();
        mid_line.write_all(b"tcpmux\r\n").unwrap();
        let mut ok = [0u8; 5];
        mid_line.read_exact(&mut ok).unwrap();
        assert_eq!(&ok, b"+OK\r\n");
        mid_line.write_all(b"tcp").unwrap();
        reset(mid_line);
        let mut mid_reply = TcpStream::connect(server.v4).unwrap();
        mid_reply.write_all(b"HELP\r\n").unwrap();
        let mut first = [0u8; 8];
        mid_reply.read_exact(&mut first).unwrap();
        reset(mid_reply);
    }
    server.expect_log("outcome=io-error");
    assert!(server.alive());
    let mut stream = TcpStream::connect(server.v4).unwrap();
    stream.write_all(b"nosuch\r\n").unwrap();
    assert_eq!(read_reply(&mut stream), UNKNOWN);
}

#[test]
fn services_that_exit_at_once_never_read_or_are_missing() {
    let dir = TempDir::new("faults");
    let sleeper = dir.path().join("sleeper");
    fs::write(&sleeper, "#!/bin/sh\nexec sleep 1\n").unwrap();
    fs::set_permissions(
        &sleeper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let doomed = dir.path().join("doomed");
    fs::copy(&sleeper, &doomed).unwrap();
    let path = dir.path().join("tcpmux.conf");
    let table = format!(
        "+quick nobody /bin/true\n+deaf nobody {}\n+doomed nobody {}\n",
        sleeper.display(),
        doomed.display()
    );
    fs::write(&path, table).unwrap();
    let mut server = Listener::start(&["-c", path.to_str().unwrap()]);
    // The client sends and reads without closing its sending side.
    let reply_to = |request: &[u8]| {
        let mut stream = TcpStream::connect(server.v4).unwrap();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        let _ = stream.write_all(request);
        read_reply(&mut stream)
    };
    assert_eq!(reply_to(b"quick\r\nignored by the service\r\n"), b"+Go\r\n");
    // A service that never reads: the client's data waits in the socket
    // and the connection ends when the service does.
    assert_eq!(
        reply_to(&[b"deaf\r\n".as_slice(), &[b'x'; 100_000]].concat()),
        b"+Go\r\n"
    );
    // The program vanishes after the table was read.
    fs::remove_file(&doomed).unwrap();
    assert_eq!(reply_to(b"doomed\r\n"), UNAVAILABLE);
    let line = server.expect_log("name=doomed outcome=launch-failed");
    assert!(line.contains("No such file or directory"), "{line}");
    assert!(server.alive());
}

#[test]
fn an_unreadable_or_replaced_table() {
    let dir = TempDir::new("tables");
    let path = dir.path().join("tcpmux.conf");
    fs::write(&path, "+one nobody /bin/true\n").unwrap();
    let table = path.to_str().unwrap();
    let mut server = Listener::start(&["-c", table]);
    let help = |server: &Listener| {
        let mut stream = TcpStream::connect(server.v4).unwrap();
        stream.write_all(b"HELP\r\n").unwrap();
        read_reply(&mut stream)
    };
    let hup = |server: &Listener| {
        let pid = nix::unistd::Pid::from_raw(server.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    };
    // Replaced by rename, as editors and package managers do.
    let next = dir.path().join("next.conf");
    fs::write(&next, "+two nobody /bin/true\n").unwrap();
    fs::rename(&next, &path).unwrap();
    assert_eq!(
        help(&server),
        b"tcpmux\r\none\r\n",
        "a listener keeps its table until SIGHUP"
    );
    hup(&server);
    server.expect_log("re-read");
    assert_eq!(help(&server), b"tcpmux\r\ntwo\r\n");
    // Unreadable: a directory where the file was.
    fs::remove_file(&path).unwrap();
    fs::create_dir(&path).unwrap();
    hup(&server);
    let line = server.expect_log("keeping the old table");
    assert!(line.ends_with("the table is not a regular file"), "{line}");
    assert_eq!(help(&server), b"tcpmux\r\ntwo\r\n");
    assert!(server.alive());

    // Inetd mode reads it at every connection and refuses while it is broken.
    let inetd = Server::inetd().table_at(table);
    assert_eq!(inetd.ask(b"HELP\r\n"), (UNAVAILABLE, 1));
}
