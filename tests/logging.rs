//! A log that has stopped moving must not stop the server: a syslog daemon
//! that no longer reads, or a standard error pipe nobody drains, costs log
//! lines, never a connection or a launch, and the next line that gets
//! through says how many were lost.

mod common;

use std::io::{ErrorKind, Read};
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::Instant;

use common::{Inetd, PATIENCE, Running, Server, Syslog, ask_with_port as ask, root};
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use tcpmuxd::protocol::UNKNOWN_SERVICE as UNKNOWN;

const CONNECTIONS: usize = 30;

/// Fills the syslog socket's receive queue from a socket of the test's own,
/// so that the next blocking send to it would wait for a reader that never
/// comes. Returns how many datagrams it took.
fn fill(syslog: &Syslog) -> usize {
    let filler = UnixDatagram::unbound().unwrap();
    filler.connect(syslog.path()).unwrap();
    filler.set_nonblocking(true).unwrap();
    let mut sent = 0;
    loop {
        match filler.send(b"<30>filler") {
            Ok(_) => sent += 1,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return sent,
            Err(e) => panic!("filling the syslog socket: {e}"),
        }
    }
}

/// Waits for every child until PATIENCE has passed since `start`, kills
/// the ones still running, and returns each one's exit code (None: hung).
fn wait_all(mut children: Vec<&mut Child>, start: Instant) -> Vec<Option<i32>> {
    let mut codes = vec![None; children.len()];
    loop {
        for (child, code) in children.iter_mut().zip(codes.iter_mut()) {
            if code.is_none()
                && let Some(status) = child.try_wait().unwrap()
            {
                *code = Some(status.code().unwrap_or(-1));
            }
        }
        if codes.iter().all(Option::is_some) || start.elapsed() > PATIENCE {
            break;
        }
        thread::sleep(std::time::Duration::from_millis(5));
    }
    for (child, code) in children.into_iter().zip(&codes) {
        if code.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
    codes
}

#[test]
fn a_syslog_that_stopped_reading_blocks_no_refusal_in_inetd_mode() {
    let server = Server::inetd().table("").syslog();
    assert!(fill(server.log()) > 0);
    let start = Instant::now();
    let mut inetds: Vec<Inetd> = (0..CONNECTIONS)
        .map(|_| {
            let mut inetd = server.connect();
            inetd.send(b"nosuch\r\n");
            inetd.client.shutdown(std::net::Shutdown::Write).unwrap();
            inetd
        })
        .collect();
    let codes = wait_all(inetds.iter_mut().map(|i| &mut i.child).collect(), start);
    let hung = codes.iter().filter(|c| c.is_none()).count();
    assert_eq!(hung, 0, "{hung} of {CONNECTIONS} hung past {PATIENCE:?}");
    for (inetd, code) in inetds.iter_mut().zip(codes) {
        // Half-closed by the binary's refusal already, perhaps closed.
        let _ = inetd.server.shutdown(std::net::Shutdown::Write);
        let mut reply = Vec::new();
        inetd.client.read_to_end(&mut reply).unwrap();
        assert_eq!(
            (String::from_utf8_lossy(&reply).into_owned(), code),
            (String::from_utf8_lossy(UNKNOWN).into_owned(), Some(3))
        );
    }
}

/// The listener on 127.0.0.1, port chosen by the system, logging to
/// `syslog`; its address comes from its own "listening on" line there.
fn syslog_listener(syslog: &Syslog, table: &str) -> (Running, SocketAddr) {
    let child = Command::new(common::binary())
        .args(["--listen", "127.0.0.1:0", "-c", table, "--log", "syslog"])
        .args(["--syslog-socket", &syslog.path()])
        .args(common::unlimited_rate(&[]))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let running = Running(child);
    let line = syslog.line();
    let (_, addr) = line
        .rsplit_once(": listening on ")
        .unwrap_or_else(|| panic!("not a listening line: {line}"));
    (running, addr.parse().unwrap())
}

/// Asks `CONNECTIONS` clients at once for an unknown name; returns how many
/// did not get exactly the refusal and the end of the stream in PATIENCE.
fn refusals_missed(addr: SocketAddr) -> usize {
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|_| thread::spawn(move || ask(addr, b"nosuch\r\n").1))
        .collect();
    clients
        .into_iter()
        .map(|c| c.join())
        .filter(|reply| !matches!(reply, Ok(r) if r == UNKNOWN))
        .count()
}

/// `line` with its lost-lines note taken off, and the number in it.
fn lost_count(line: &str) -> (&str, u64) {
    let (head, note) = line
        .rsplit_once(" (")
        .unwrap_or_else(|| panic!("no note of lost lines: {line:?}"));
    let number = match note.strip_suffix(" earlier log lines lost)") {
        Some(number) => number.parse().unwrap(),
        None if note == "1 earlier log line lost)" => 1,
        None => panic!("not a note of lost lines: {line:?}"),
    };
    assert!(number > 0, "{line:?}");
    (head, number)
}

#[test]
fn a_syslog_that_stopped_reading_blocks_no_listener_and_the_loss_is_counted() {
    let syslog = Syslog::new();
    let (_dir, table) = common::no_services();
    let (listener, addr) = syslog_listener(&syslog, &table);
    assert!(fill(&syslog) > 0);

    let missed = refusals_missed(addr);
    assert_eq!(
        missed, 0,
        "{missed} of {CONNECTIONS} clients got no refusal"
    );

    // The daemon reads again: the next line says what it missed, the one
    // line of each refused connection.
    assert!(syslog.rest().iter().all(|l| l == "<30>filler"));
    let (port, reply) = ask(addr, b"nosuch\r\n");
    assert_eq!(reply, UNKNOWN);
    let line = syslog.line();
    let (head, lost) = lost_count(&line);
    assert_eq!(lost, CONNECTIONS as u64, "{line}");
    let pid = listener.0.id();
    let expected = format!("in.tcpmuxd[{pid}]: peer=127.0.0.1:{port} name=nosuch outcome=unknown");
    assert!(line.starts_with("<30>"), "{line}");
    assert!(head.ends_with(&expected), "{line}");
    // The count went out with that line and starts again from nothing.
    let (port, reply) = ask(addr, b"HELP\r\n");
    assert_eq!(reply, b"tcpmux\r\n");
    let line = syslog.line();
    let expected = format!("in.tcpmuxd[{pid}]: peer=127.0.0.1:{port} name=HELP outcome=help");
    assert!(line.ends_with(&expected), "{line}");
}

#[test]
fn a_syslog_that_stopped_reading_blocks_no_launch() {
    if !root() {
        return;
    }
    let server = Server::inetd().table("+echo nobody /bin/cat\n").syslog();
    assert!(fill(server.log()) > 0);
    let answer = server.ask(b"echo\r\nhello\r\n");
    assert_eq!(answer.text(), "+Go\r\nhello\r\n");
    assert_eq!(answer.code, 0);
}

/// A pipe whose buffer is full, its write end blocking as a pipe given to
/// a daemon would be: (read end, write end).
fn full_pipe() -> (OwnedFd, OwnedFd) {
    let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
    fcntl(write.as_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).unwrap();
    let chunk = [b'x'; 4096];
    loop {
        match nix::unistd::write(&write, &chunk) {
            Ok(_) => {}
            Err(nix::errno::Errno::EAGAIN) => break,
            Err(e) => panic!("filling the pipe: {e}"),
        }
    }
    fcntl(write.as_fd(), FcntlArg::F_SETFL(OFlag::empty())).unwrap();
    (read, write)
}

/// Reads from `pipe` until it is empty, without waiting.
fn drain(pipe: &OwnedFd) {
    fcntl(pipe.as_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).unwrap();
    let mut buf = [0u8; 65536];
    while matches!(nix::unistd::read(pipe, &mut buf), Ok(n) if n > 0) {}
}

/// Reads from `pipe` until `done` holds for what was read, waiting at most
/// PATIENCE in all.
fn read_until(pipe: &OwnedFd, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + PATIENCE;
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    while !done(&String::from_utf8_lossy(&text)) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "read only {:?}",
            String::from_utf8_lossy(&text)
        );
        let millis = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(pipe.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(millis)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => panic!("polling the pipe: {e}"),
        }
        match nix::unistd::read(pipe, &mut buf) {
            Ok(n) => text.extend_from_slice(&buf[..n]),
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => {}
            Err(e) => panic!("reading the pipe: {e}"),
        }
    }
    String::from_utf8_lossy(&text).into_owned()
}

#[test]
fn a_standard_error_nobody_reads_blocks_no_listener() {
    let (_dir, table) = common::no_services();
    let (read, write) = full_pipe();
    let port = common::free_port();
    let listen = format!("127.0.0.1:{port}");
    let listener = common::start(
        Command::new(common::binary())
            .args(["--listen", &listen, "-c", &table])
            .args(common::unlimited_rate(&[]))
            .stderr(Stdio::from(write)),
        port,
    );
    let addr: SocketAddr = listen.parse().unwrap();
    let missed = refusals_missed(addr);
    assert_eq!(
        missed, 0,
        "{missed} of {CONNECTIONS} clients got no refusal"
    );

    // Someone reads again: the next lines through say what was lost, at
    // least the refused connections' lines (and the start-up's).
    drain(&read);
    let (client_port, reply) = ask(addr, b"nosuch\r\n");
    assert_eq!(reply, UNKNOWN);
    let pid = listener.0.id();
    let ours =
        format!("in.tcpmuxd[{pid}]: peer=127.0.0.1:{client_port} name=nosuch outcome=unknown");
    let text = read_until(&read, |text| text.contains(&ours));
    // Lines of the listener's readiness probe may come through first and
    // carry part of the count; every line is whole and counts add up.
    let mut lost = 0;
    for line in text.lines() {
        assert!(
            line.starts_with(&format!("in.tcpmuxd[{pid}]: ")),
            "{text:?}"
        );
        if line.ends_with(" lost)") {
            lost += lost_count(line).1;
        }
    }
    assert!(lost > CONNECTIONS as u64, "{lost} lost: {text:?}");
    assert!(text.ends_with('\n'), "{text:?}");
    let last = text.lines().find(|l| l.contains(&ours)).unwrap();
    assert!(last == ours || lost_count(last).0 == ours, "{last}");
}

/// The attack: the listener logs to the terminal it was started from, and
/// that terminal stops being read (a stalled ssh session). Poll said the
/// terminal had room as soon as it had any, and a longer line blocked
/// there, holding every thread that logged. Here the listener's standard
/// error is a terminal whose other side nobody reads.
#[test]
fn a_terminal_nobody_reads_holds_no_connection() {
    let pty = nix::pty::openpty(None, None).unwrap();
    let (_dir, table) = common::no_services();
    let port = common::free_port();
    let mut command = Command::new(common::binary());
    command
        .args(["--listen", &format!("127.0.0.1:{port}"), "-c", &table])
        .args(common::unlimited_rate(&[]))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(pty.slave));
    let _server = common::start(&mut command, port);
    drop(command);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // Some 3,000 log lines: far more than a terminal holds.
    for i in 0..3000 {
        assert_eq!(
            common::ask(addr, b"HELP\r\n"),
            b"tcpmux\r\n",
            "connection {i}"
        );
    }
    drop(pty.master);
}
