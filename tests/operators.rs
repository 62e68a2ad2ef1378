//! No surprises for operators: what a person sees when the server is set up
//! or started the wrong way, and what never reaches a client.

mod common;

use common::{Server, Syslog, TempDir};

const FELL_BACK: &str =
    "--log stderr: standard error is the client's connection; logging to syslog instead";

/// `--log stderr` under inetd, where fd 2 is the connection: the client gets
/// the reply and nothing else, and the log lines go to syslog, the first
/// saying why.
#[test]
fn log_stderr_on_the_connection_goes_to_syslog_and_says_so_once() {
    let answer = Server::inetd()
        .syslog()
        .args(["--log", "stderr"])
        .ask(b"HELP\r\n");
    let (pid, client) = (answer.pid, answer.client);
    assert_eq!(answer, (b"tcpmux\r\n", 0));
    let [fell_back, line] = &answer.log[..] else {
        panic!("two log lines: {:?}", answer.log);
    };
    // Facility daemon (3): warning (4) is 28, info (6) is 30.
    assert_eq!(
        fell_back
            .split_once("in.tcpmuxd")
            .map(|(p, rest)| (&p[..4], rest.to_owned())),
        Some(("<28>", format!("[{pid}]: {FELL_BACK}")))
    );
    assert!(line.starts_with("<30>"), "{line}");
    assert!(
        line.ends_with(&format!(
            "in.tcpmuxd[{pid}]: peer={client} name=HELP outcome=help"
        )),
        "{line}"
    );
}

/// The same with a launched service, whose log line names its user and
/// program: the client sees the service's data and only that.
#[test]
fn a_launch_under_log_stderr_sends_the_client_only_the_service() {
    if !common::root() {
        return;
    }
    let answer = Server::inetd()
        .table("+echo nobody /bin/cat\n")
        .syslog()
        .args(["--log", "stderr"])
        .ask(b"echo\r\nping\r\n");
    assert_eq!(answer, (b"+Go\r\nping\r\n", 0));
    assert!(answer.log[0].ends_with(FELL_BACK));
    let line = &answer.log[1];
    assert!(
        line.contains("name=echo outcome=launch user=nobody uid=65534 gid=65534 program=/bin/cat"),
        "{line}"
    );
}

/// Where standard error is not the connection (a pipe here, the journal
/// under systemd), `--log stderr` is followed.
#[test]
fn log_stderr_elsewhere_is_followed() {
    let (out, err, code) = common::run_piped(&["--log", "stderr"], b"HELP\r\n");
    assert_eq!((out, code), (b"tcpmux\r\n".to_vec(), 0));
    let err = String::from_utf8(err).unwrap();
    assert!(err.ends_with(" name=HELP outcome=help\n"), "{err:?}");
    assert!(!err.contains(FELL_BACK), "{err:?}");
}

/// A wrong command line with standard error in a file, as in a container
/// with no terminal and no /dev/log: the error is in the file.
#[test]
fn an_argument_error_goes_to_a_stderr_that_is_not_the_connection() {
    let dir = TempDir::new("usage");
    let err_path = dir.path().join("err");
    let status = std::process::Command::new(common::binary())
        .args(["--syslog-socket", "/nonexistent/log"])
        .args(["--listen", "localhost:23133"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(2));
    let expected = "error: invalid value 'localhost:23133' for '--listen <ADDR>': \
                    \"localhost:23133\" is not an address: use 127.0.0.1, 127.0.0.1:1, \
                    ::1 or [::1]:1\n\nFor more information, try '--help'.\n";
    assert_eq!(std::fs::read_to_string(&err_path).unwrap(), expected);
    // A pipe, the journal's way, gets it too.
    let (out, err, code) = common::run_piped(&["--timeout", "0"], b"");
    assert_eq!((out, code), (Vec::new(), 2));
    let err = String::from_utf8(err).unwrap();
    assert!(
        err.starts_with("error: invalid value '0' for '--timeout <SECONDS>'"),
        "{err:?}"
    );
}

/// `-l` means `--list` to the client; the server has no `-l`, and says what
/// a person who typed it may have meant.
#[test]
fn the_server_has_no_short_l_and_names_the_long_flags() {
    let refusal = |value: &str| {
        format!(
            "error: invalid value '{value}' for '-l [<ADDR|TARGET>]': in.tcpmuxd has no -l; \
             use --listen ADDR to listen, or --log TARGET for the log\n\n\
             For more information, try '--help'.\n"
        )
    };
    for (args, value) in [
        (&["-l", "127.0.0.1:23133"][..], "127.0.0.1:23133"),
        (&["-l", "stderr"][..], "stderr"),
        (&["-l"][..], ""),
    ] {
        let (out, err, code) = common::run_piped(args, b"HELP\r\n");
        assert_eq!(
            (
                String::from_utf8(out).unwrap(),
                String::from_utf8(err).unwrap(),
                code
            ),
            (String::new(), refusal(value), 2),
            "{args:?}"
        );
    }
    let (help, _, _) = common::run_piped(&["--help"], b"");
    let help = String::from_utf8(help).unwrap();
    assert!(!help.contains("-l,") && !help.contains("-l "), "{help}");
}

const LISTENING: &str = "standard input is a listening socket, not a connection: \
     for a process per connection set Accept=yes in the .socket unit \
     (systemd-socket-activate: -a); for one listener on systemd's sockets \
     run in.tcpmuxd --systemd";

/// A listening socket on standard input and output, as systemd passes it
/// without `Accept=yes`: the log and standard error say what is wrong and
/// name the two ways out; exit 2.
#[test]
fn a_listening_socket_on_stdin_names_systemd_and_accept_yes() {
    use std::process::{Command, Stdio};
    let syslog = Syslog::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let fd = || Stdio::from(std::os::fd::OwnedFd::from(listener.try_clone().unwrap()));
    let child = Command::new(common::binary())
        .args(["--syslog-socket", &syslog.path()])
        .stdin(fd())
        .stdout(fd())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        (String::from_utf8(out.stderr).unwrap(), out.status.code()),
        (format!("in.tcpmuxd: {LISTENING}\n"), Some(2))
    );
    // Facility daemon (3), severity err (3): 27.
    let line = syslog.line();
    assert!(line.starts_with("<27>"), "{line}");
    assert!(
        line.ends_with(&format!("in.tcpmuxd[{pid}]: {LISTENING}")),
        "{line}"
    );
    assert_eq!(syslog.rest(), Vec::<String>::new());
}

/// The report of the issue: `systemd-socket-activate --inetd` without `-a`
/// runs the server on the listening socket at the first connection.
#[test]
fn socket_activation_without_accept_says_so_and_exits_2() {
    use std::process::{Command, Stdio};
    let activate = "/usr/bin/systemd-socket-activate";
    if !common::present(activate) {
        return;
    }
    let port = common::free_port();
    let child = Command::new(activate)
        .args(["--inetd", "-l", &format!("127.0.0.1:{port}")])
        .arg(common::binary())
        .args(["--syslog-socket", "/nonexistent/log"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The first connection starts the server; it stays in the queue.
    let mut first = None;
    common::wait_until(&format!("nothing listens on {port}"), || {
        first = std::net::TcpStream::connect(("127.0.0.1", port)).ok();
        first.is_some()
    });
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.ends_with(&format!("in.tcpmuxd: {LISTENING}\n")),
        "{err:?}"
    );
    assert_eq!(out.status.code(), Some(2));
}

const TERMINAL_HINT: &str = "in.tcpmuxd: reading a TCPMUX request from the terminal; \
     end it with CR LF: type the name, Ctrl-V Ctrl-M, then Enter \
     (or run: printf 'HELP\\r\\n' | in.tcpmuxd)";

/// A pseudo-terminal without echo, so that what the master reads is what
/// the program wrote: (master, the terminal's file).
fn terminal() -> (nix::pty::PtyMaster, std::fs::File) {
    use nix::fcntl::OFlag;
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    use std::os::unix::fs::OpenOptionsExt;
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY).unwrap();
    nix::pty::grantpt(&master).unwrap();
    nix::pty::unlockpt(&master).unwrap();
    let name = nix::pty::ptsname_r(&master).unwrap();
    let tty = std::fs::File::options()
        .read(true)
        .write(true)
        .custom_flags(OFlag::O_NOCTTY.bits())
        .open(name)
        .unwrap();
    let mut modes = tcgetattr(&tty).unwrap();
    modes.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(&tty, SetArg::TCSANOW, &modes).unwrap();
    (master, tty)
}

/// Runs the binary in inetd mode with a terminal on standard input, and on
/// standard error too when `stderr_too`; returns the master, the child.
fn on_terminal(stderr_too: bool) -> (nix::pty::PtyMaster, std::process::Child) {
    use std::process::{Command, Stdio};
    let (master, tty) = terminal();
    let stderr = if stderr_too {
        Stdio::from(tty.try_clone().unwrap())
    } else {
        Stdio::piped()
    };
    let child = Command::new(common::binary())
        .args(["--log", "none", "-t", "5"])
        .stdin(Stdio::from(tty))
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    (master, child)
}

/// What `master` reads up to and with the first line end, or to the end.
fn first_line(master: &mut nix::pty::PtyMaster) -> String {
    use std::io::Read;
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while !got.ends_with(b"\n") {
        match master.read(&mut buf) {
            Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
            // EIO once the program closed the terminal.
            _ => break,
        }
    }
    String::from_utf8(got).unwrap()
}

/// Run by hand on a terminal, the server says first how to end a line with
/// CR LF; typed that way, HELP is answered.
#[test]
fn on_a_terminal_it_says_how_to_type_cr_lf_and_that_works() {
    use std::io::Write;
    let (mut master, child) = on_terminal(true);
    // The terminal turns the program's LF into CR LF (onlcr).
    assert_eq!(first_line(&mut master), format!("{TERMINAL_HINT}\r\n"));
    // As the hint says: the name, Ctrl-V Ctrl-M (a CR as typed), Enter.
    master.write_all(b"HELP\x16\r\r").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        (out.stdout, out.status.code()),
        (b"tcpmux\r\n".to_vec(), Some(0))
    );
}

/// The protocol is not relaxed for a person: Enter alone is a bare LF. And
/// with standard error elsewhere (a log file), there is no hint.
#[test]
fn on_a_terminal_enter_alone_is_still_a_bare_lf() {
    use std::io::Write;
    let (mut master, child) = on_terminal(false);
    master.write_all(b"HELP\r").unwrap();
    let out = child.wait_with_output().unwrap();
    let bare_lf = b"-Bad request: lines must end with CR LF, not a bare LF\r\n";
    assert_eq!(
        (out.stdout, out.stderr, out.status.code()),
        (bare_lf.to_vec(), Vec::new(), Some(4))
    );
}

/// Ctrl-C on a listener with a client in its handshake says what it waits
/// for; a second signal stops it at once, with exit 10, and the client's
/// connection closes without a reply.
#[test]
fn a_second_signal_stops_the_listener_at_once() {
    use nix::sys::signal::Signal;
    let mut server = Server::listen().table("").args(["-t", "3600"]).start();
    let pid = server.child.id();
    let mut silent = common::in_handshake(server.v4);
    server.signal(Signal::SIGINT);
    assert_eq!(
        server.expect_log("SIGINT"),
        format!(
            "in.tcpmuxd[{pid}]: SIGINT: no new connections; waiting up to 3601 s for \
             1 handshake under way; send SIGINT or SIGTERM again to stop now"
        )
    );
    server.signal(Signal::SIGTERM);
    assert_eq!(
        server.expect_log("SIGTERM"),
        format!("in.tcpmuxd[{pid}]: SIGTERM again: stopping now; 1 handshake cut off")
    );
    assert_eq!(common::wait_for(&mut server.child).code(), Some(10));
    assert_eq!(common::read_reply(&mut silent), b"");
}

/// With no handshake under way, one signal stops the listener at once.
#[test]
fn a_signal_with_no_handshake_under_way_says_so_and_exits_0() {
    let mut server = Server::listen().table("").start();
    let pid = server.child.id();
    server.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(
        server.expect_log("SIGTERM"),
        format!("in.tcpmuxd[{pid}]: SIGTERM: no new connections; no handshake under way")
    );
    assert_eq!(common::wait_for(&mut server.child).code(), Some(0));
}
