//! No surprises for operators: what a person sees when the server is set up
//! or started the wrong way, and what never reaches a client.

mod common;

use common::{Inetd, Syslog, TempDir};

const FELL_BACK: &str =
    "--log stderr: standard error is the client's connection; logging to syslog instead";

/// `--log stderr` under inetd, where fd 2 is the connection: the client gets
/// the reply and nothing else, and the log lines go to syslog, the first
/// saying why.
#[test]
fn log_stderr_on_the_connection_goes_to_syslog_and_says_so_once() {
    let syslog = Syslog::new();
    let mut inetd = Inetd::spawn(&["--log", "stderr", "--syslog-socket", &syslog.path()]);
    let pid = inetd.child.id();
    let port = inetd.client.local_addr().unwrap().port();
    inetd.send(b"HELP\r\n");
    assert_eq!(inetd.finish(), (b"tcpmux\r\n".to_vec(), 0));
    // Facility daemon (3): warning (4) is 28, info (6) is 30.
    assert_eq!(
        syslog
            .line()
            .split_once("in.tcpmuxd")
            .map(|(p, rest)| (&p[..4], rest.to_owned())),
        Some(("<28>", format!("[{pid}]: {FELL_BACK}")))
    );
    let line = syslog.line();
    assert!(line.starts_with("<30>"), "{line}");
    assert!(
        line.ends_with(&format!(
            "in.tcpmuxd[{pid}]: peer=127.0.0.1:{port} name=HELP outcome=help"
        )),
        "{line}"
    );
    assert_eq!(syslog.rest(), Vec::<String>::new());
}

/// The same with a launched service, whose log line names its user and
/// program: the client sees the service's data and only that.
#[test]
fn a_launch_under_log_stderr_sends_the_client_only_the_service() {
    if !common::root() {
        return;
    }
    let dir = TempDir::new("fallback");
    let table = common::table(&dir, "+echo nobody /bin/cat\n");
    let syslog = Syslog::new();
    let mut inetd = Inetd::spawn(&[
        "--log",
        "stderr",
        "--syslog-socket",
        &syslog.path(),
        "-c",
        &table,
    ]);
    inetd.send(b"echo\r\nping\r\n");
    inetd.client.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(inetd.finish(), (b"+Go\r\nping\r\n".to_vec(), 0));
    assert!(syslog.line().ends_with(FELL_BACK));
    let line = syslog.line();
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
    let start = std::time::Instant::now();
    let _first = loop {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(stream) => break stream,
            Err(_) if start.elapsed() < common::PATIENCE => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            Err(e) => panic!("nothing listens on {port}: {e}"),
        }
    };
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.ends_with(&format!("in.tcpmuxd: {LISTENING}\n")),
        "{err:?}"
    );
    assert_eq!(out.status.code(), Some(2));
}
