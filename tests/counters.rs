//! The listener's counters: SIGUSR1 logs its connections since start, one
//! line per service and one for those that reached none, by outcome; the
//! same lines are logged at exit.

mod common;

use common::{Server, ask, connect, in_handshake, read_reply, root, wait_for};
use nix::sys::signal::Signal;
use tcpmuxd::listener::BUSY;

/// A listener's log line without its `in.tcpmuxd[pid]: `.
fn event(line: &str) -> String {
    line.split_once("]: ")
        .map_or(line, |(_, event)| event)
        .to_owned()
}

/// The line of `label` with `counts` and every other column 0.
fn line(prefix: &str, label: &str, counts: &[(&str, u64)]) -> String {
    let mut line = format!("{prefix}: {label}");
    for column in tcpmuxd::counters::COLUMNS {
        let n = counts
            .iter()
            .find(|(c, _)| *c == column)
            .map_or(0, |(_, n)| *n);
        line.push_str(&format!(" {column}={n}"));
    }
    line
}

#[test]
fn sigusr1_and_the_exit_log_the_connections_by_service_and_outcome() {
    let mut server = Server::listen()
        .table("+echo nobody deny=::1 /bin/cat\n+date nobody /bin/date\n")
        .args(["-t", "2", "--max-per-source", "2"])
        .start();
    server.signal(Signal::SIGUSR1);
    assert_eq!(
        event(&server.expect_log("SIGUSR1: ")),
        "SIGUSR1: no connections since start"
    );

    assert_eq!(ask(server.v4, b"HELP\r\n"), b"tcpmux\r\necho\r\ndate\r\n");
    ask(server.v4, b"nosuch\r\n");
    ask(server.v4, b"bad\n");
    ask(server.v4, b"tcp");
    // Denied to ::1, as if unknown, but counted under its service, in the
    // table's case whatever the client's.
    ask(server.v6, b"ECHO\r\n");
    let launched = ask(server.v4, b"echo\r\nhi\r\n");
    let echo_ok = root();
    if echo_ok {
        assert_eq!(launched, b"+Go\r\nhi\r\n");
    }
    // Two connections held from ::1, a third refused as busy; the two
    // then time out.
    let held = [in_handshake(server.v6), in_handshake(server.v6)];
    assert_eq!(ask(server.v6, b"HELP\r\n"), BUSY);
    for mut stream in held {
        assert_eq!(
            read_reply(&mut stream),
            b"-Timed out waiting for a service name\r\n"
        );
    }
    let echo: &[(&str, u64)] = if echo_ok {
        &[("denied", 1), ("launch", 1)]
    } else {
        &[("denied", 1), ("launch-failed", 1)]
    };
    let no_service = [
        ("help", 1),
        ("unknown", 1),
        ("bad-line", 1),
        ("eof", 1),
        ("timeout", 2),
        ("busy", 1),
    ];

    server.signal(Signal::SIGUSR1);
    assert_eq!(
        event(&server.expect_log("SIGUSR1: ")),
        line("SIGUSR1", "service=echo", echo)
    );
    assert_eq!(
        event(&server.expect_log("SIGUSR1: ")),
        line("SIGUSR1", "no service", &no_service)
    );

    // One more, then the totals at exit.
    drop(connect(server.v4));
    server.signal(Signal::SIGTERM);
    let at_exit: Vec<String> = server
        .rest_of_log()
        .iter()
        .filter(|l| l.contains("]: at exit: "))
        .map(|l| event(l))
        .collect();
    let mut no_service = no_service.to_vec();
    no_service[3] = ("eof", 2);
    assert_eq!(
        at_exit,
        [
            line("at exit", "service=echo", echo),
            line("at exit", "no service", &no_service),
        ]
    );
    assert_eq!(wait_for(&mut server.child).code(), Some(0));
}
