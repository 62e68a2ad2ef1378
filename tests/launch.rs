//! What a launched service finds at exec, one contract in both modes: its
//! own session and no controlling terminal, the connection on fds 0 to 2
//! (in --listen mode; in inetd mode as the super-server gave them), every
//! signal at its default and none blocked, `/` and umask 022. Each test
//! plays the attack the review found: a service typing into the terminal
//! of the root shell that started the listener, a service writing to the
//! listener's log on fd 2, signals left ignored.

mod common;

use common::probe_report as report;

use std::fs;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::thread;
use std::time::Instant;

use common::{
    PATIENCE, Running, Server, TempDir, ask, binary, free_port, loopback, root, tcp_pair, wait_for,
};

/// The probe service and a root-owned table naming it, for a server the
/// test starts its own way: the builder holds them, `table_path()` names
/// the table.
fn probe_table() -> Server {
    Server::inetd().probe().table("+probe nobody {dir}/probe\n")
}

/// What every launch must find, whatever the mode.
fn assert_contract(reply: &[u8]) {
    assert!(
        reply.starts_with(b"+Go\r\n"),
        "{:?}",
        String::from_utf8_lossy(reply)
    );
    assert_eq!(report(reply, "session="), "session=own");
    assert_eq!(report(reply, "tty="), "tty=No such device or address");
    assert_eq!(
        report(reply, "signals "),
        "signals ignored=0000000000000000 blocked=0000000000000000"
    );
    assert_eq!(report(reply, "umask="), "umask=0022 cwd=/");
    assert_eq!(report(reply, "fds="), "fds=0 1 2");
}

/// `env` from coreutils starts the server with signals ignored and blocked,
/// as a careless parent might: SIGUSR1, SIGPIPE and the first real-time
/// signal ignored, SIGUSR2 blocked.
const CARELESS_PARENT: [&str; 5] = [
    "env",
    "--ignore-signal=USR1",
    "--ignore-signal=PIPE",
    "--ignore-signal=RTMIN",
    "--block-signal=USR2",
];

#[test]
fn inetd_mode_gives_the_program_a_clean_start() {
    if !root() {
        return;
    }
    let server = probe_table();
    let table = server.table_path();
    for group_leader in [false, true] {
        let (mut client, server) = tcp_pair();
        let fd = |s: &std::net::TcpStream| {
            Stdio::from(std::os::fd::OwnedFd::from(s.try_clone().unwrap()))
        };
        let mut command = Command::new(CARELESS_PARENT[0]);
        command
            .args(&CARELESS_PARENT[1..])
            .arg(binary())
            .args(["-c", table, "--log", "none"])
            .stdin(fd(&server))
            .stdout(fd(&server))
            .stderr(fd(&server));
        if group_leader {
            // As a shell starts a command: it leads its process group, so
            // setsid would fail and the launch forks to get a session.
            use std::os::unix::process::CommandExt;
            command.process_group(0);
        }
        let mut child = command.spawn().unwrap();
        // The command holds copies of the socket for the child's stdio.
        drop(command);
        drop(server);
        client.set_read_timeout(Some(PATIENCE)).unwrap();
        client.write_all(b"probe\r\nbye\r\n").unwrap();
        let mut reply = Vec::new();
        client.read_to_end(&mut reply).unwrap();
        assert_eq!(
            wait_for(&mut child).code(),
            Some(0),
            "group leader: {group_leader}"
        );
        assert_contract(&reply);
        assert_eq!(report(&reply, "fd2="), "fd2=socket");
        assert_eq!(report(&reply, "read="), "read=bye");
    }
}

#[test]
fn listen_mode_gives_the_program_the_same_start_and_the_connection_on_fd_2() {
    if !root() {
        return;
    }
    let server = probe_table();
    let table = server.table_path();
    let port = free_port();
    let mut command = Command::new(CARELESS_PARENT[0]);
    command
        .args(&CARELESS_PARENT[1..])
        .arg(binary())
        .args(["--listen", &format!("127.0.0.1:{port}"), "-c", table])
        .stderr(Stdio::null());
    let _server = common::start(&mut command, port);
    let reply = ask(loopback(port), b"probe\r\nbye\r\n");
    assert_contract(&reply);
    // The listener's standard error was /dev/null; the program's is the client.
    assert_eq!(report(&reply, "fd2="), "fd2=socket");
}

/// The attack: a root shell on a terminal starts the listener; a service
/// running as nobody opens /dev/tty, which was the listener's, and could
/// push commands into the shell's input with TIOCSTI. `script` gives the
/// listener a terminal of its own to try it on.
#[test]
fn a_service_cannot_reach_the_terminal_the_listener_was_started_from() {
    if !root() {
        return;
    }
    if !common::present("/usr/bin/script") {
        return;
    }
    let server = probe_table();
    let table = server.table_path();
    let port = free_port();
    let listener = format!(
        "{} --listen 127.0.0.1:{port} -c {table} --log none",
        binary().display()
    );
    let mut command = Command::new("/usr/bin/script");
    command
        .args(["-q", "-e", "-c", &listener, "/dev/null"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _server: Running = common::start(&mut command, port);
    let reply = ask(loopback(port), b"probe\r\n");
    assert_eq!(report(&reply, "tty="), "tty=No such device or address");
    assert_eq!(report(&reply, "session="), "session=own");
}

/// A table name that begins with `-` is launched in --listen mode as in
/// inetd mode: nothing passes it through a command line any more.
#[test]
fn a_service_named_like_an_option_is_launched_in_listen_mode() {
    // Without `+` the line begins with the name itself.
    let server = Server::listen()
        .table("-dash nobody /bin/cat\n--help nobody /bin/cat\n")
        .start();
    assert_eq!(ask(server.v4, b"-dash\r\nhi\r\n"), b"hi\r\n");
    assert_eq!(ask(server.v4, b"--HELP\r\nho\r\n"), b"ho\r\n");
}

/// The listener launches services without running itself again: it works
/// with no /proc mounted, and after its own file is removed (as a package
/// upgrade replaces it).
#[test]
fn listen_mode_launches_without_proc_and_after_its_binary_is_gone() {
    if !root() || !common::present("/usr/bin/unshare") {
        return;
    }
    let dir = TempDir::new("noproc");
    let table = common::table(&dir, "+echo nobody /bin/cat\n");
    let copy = common::install_copy(env!("CARGO_BIN_EXE_in-tcpmuxd"), "in.tcpmuxd");
    let port = free_port();
    let script = format!(
        "umount -l /proc && exec {} --listen 127.0.0.1:{port} -c {table} --log none",
        copy.display()
    );
    let mut command = Command::new("/usr/bin/unshare");
    command
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .stderr(Stdio::null());
    let _server = common::start(&mut command, port);
    let addr = loopback(port);
    assert_eq!(ask(addr, b"echo\r\none\r\n"), b"+Go\r\none\r\n");
    fs::remove_file(&copy).unwrap();
    assert_eq!(ask(addr, b"echo\r\ntwo\r\n"), b"+Go\r\ntwo\r\n");
}

/// SIGTERM in the middle of a stream of clients: every client whose
/// connection was made before the signal gets its whole reply, and every
/// reply has its log line.
#[test]
fn sigterm_leaves_no_accepted_client_without_its_reply_and_log_line() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let mut server = Server::listen()
        .table("")
        .args(["--max-connections", "4096", "--max-per-source", "4096"])
        .start();
    let addr = server.v4;
    let signalled = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..32)
        .map(|_| {
            let signalled = Arc::clone(&signalled);
            thread::spawn(move || {
                let mut results = Vec::new();
                let start = Instant::now();
                while start.elapsed() < PATIENCE {
                    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
                        break;
                    };
                    let before = !signalled.load(Ordering::SeqCst);
                    stream.set_read_timeout(Some(PATIENCE)).unwrap();
                    let _ = stream.write_all(b"HELP\r\n");
                    let mut reply = Vec::new();
                    let _ = stream.read_to_end(&mut reply);
                    results.push((before, reply));
                }
                results
            })
        })
        .collect();
    for _ in 0..200 {
        server.expect_log("outcome=help");
    }
    signalled.store(true, Ordering::SeqCst);
    server.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(wait_for(&mut server.child).code(), Some(0));
    let logged = 200
        + server
            .rest_of_log()
            .iter()
            .filter(|l| l.contains("outcome=help"))
            .count();
    let mut replies = 0;
    for client in clients {
        for (before, reply) in client.join().unwrap() {
            if before {
                assert_eq!(reply, b"tcpmux\r\n", "a client connected before SIGTERM");
            }
            if !reply.is_empty() {
                assert_eq!(reply, b"tcpmux\r\n");
                replies += 1;
            }
        }
    }
    assert_eq!(replies, logged, "replies and their log lines");
}

/// The attack: inetd mode started as a session leader that has a terminal
/// (`script -c 'exec in.tcpmuxd ...'`, `setsid -c`), the connection on fds 0
/// and 1 and the terminal left on fd 2. A service running as nobody opened
/// /dev/tty and pushed keys into it with TIOCSTI, and read the operator's
/// keys from fd 2. It must find neither terminal.
#[test]
fn a_session_leader_with_a_terminal_hands_the_program_none() {
    if !root() || !common::present("/usr/bin/script") {
        return;
    }
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let probe = probe_table();
    let table = probe.table_path();
    let (mut client, server) = tcp_pair();
    let inner = format!("exec {} -c {table} --log none <&3 >&3", binary().display());
    let socket = server.as_raw_fd();
    let mut command = Command::new("/usr/bin/script");
    command
        .args(["-q", "-e", "-c", &inner, "/dev/null"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: dup2 is async-signal-safe, on a descriptor this process
    // keeps open until the spawn returns.
    unsafe {
        command.pre_exec(move || {
            // dup2 onto itself would leave close-on-exec set.
            let moved = if socket == 3 {
                nix::libc::fcntl(3, nix::libc::F_SETFD, 0)
            } else {
                nix::libc::dup2(socket, 3)
            };
            if moved < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().unwrap();
    drop(command);
    drop(server);
    client.set_read_timeout(Some(PATIENCE)).unwrap();
    client.write_all(b"probe\r\nbye\r\n").unwrap();
    let mut reply = Vec::new();
    client.read_to_end(&mut reply).unwrap();
    wait_for(&mut child);
    assert_eq!(report(&reply, "tty="), "tty=No such device or address");
    assert_eq!(report(&reply, "session="), "session=own");
    assert_eq!(
        report(&reply, "fd2="),
        "fd2=other",
        "the terminal is not on fd 2"
    );
    assert_eq!(report(&reply, "read="), "read=bye");
}

/// The attack: the listener runs as nobody (the shipped tcpmuxd.service),
/// and so does a service it launched, which took every other client's
/// connection out of the listener with pidfd_getfd. The listener is
/// undumpable: the service cannot even list its descriptors.
#[test]
fn a_service_cannot_reach_into_a_listener_of_its_own_user() {
    if !root() || !common::present("/usr/bin/setpriv") {
        return;
    }
    let server = probe_table();
    let table = server.table_path();
    let port = free_port();
    let mut command = Command::new("/usr/bin/setpriv");
    command
        .args(["--reuid=nobody", "--regid=nogroup", "--init-groups"])
        .arg(binary())
        .args(["--listen", &format!("127.0.0.1:{port}"), "-c", table])
        .stderr(Stdio::null());
    let _server = common::start(&mut command, port);
    let reply = ask(loopback(port), b"probe\r\n");
    assert_eq!(report(&reply, "uid="), "uid=65534 euid=65534");
    assert_eq!(
        report(&reply, "parent fds="),
        "parent fds=Permission denied"
    );
}
