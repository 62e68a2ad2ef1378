//! The binary under the real super-servers from Debian's packages, each set
//! up from the file this project ships for it, on a loopback test port.
//!
//! `.ci/run` installs them and sets `TCPMUXD_REQUIRE_SUPERSERVERS=1`, so in
//! CI a missing one fails the run; elsewhere its test says so and passes.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{
    PATIENCE, Running, Server, TempDir, binary, free_port, present, socket_activated, start,
};

/// The test inetd: Debian's openbsd-inetd, unpacked by `.ci/run` so that it
/// need not conflict with xinetd.
fn openbsd_inetd() -> String {
    std::env::var("TCPMUXD_TEST_INETD")
        .unwrap_or_else(|_| "/opt/tcpmuxd-ci/openbsd-inetd/usr/sbin/inetd".to_owned())
}

/// Sends `request` in one write without closing the sending side, as nc
/// does, and reads the reply to the end; unlike `common::ask`, a reset
/// fails the test.
fn write_and_read(port: u16, request: &[u8]) -> Vec<u8> {
    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    client.set_read_timeout(Some(PATIENCE)).unwrap();
    client.write_all(request).unwrap();
    let mut reply = Vec::new();
    client.read_to_end(&mut reply).unwrap();
    reply
}

/// What every super-server must pass on: the list, pipelined requests with
/// no byte lost between them, and a refusal.
fn check_the_protocol(port: u16) {
    // The probe connection of `start` may still be in the accept queue.
    assert_eq!(write_and_read(port, b"HELP\r\n"), b"tcpmux\r\n");
    assert_eq!(
        write_and_read(port, b"tcpmux\r\nHELP\r\n"),
        b"+OK\r\ntcpmux\r\n"
    );
    assert_eq!(
        write_and_read(port, b"nosuch\r\n"),
        b"-Service not available; send HELP for a list\r\n"
    );
}

/// Replaces `from` in `text`, failing if it is not there, so the test never
/// quietly runs a file other than the one shipped.
fn replace(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} not in the shipped file");
    text.replace(from, to)
}

fn shipped(path: &str) -> String {
    fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

#[test]
fn under_systemd_socket_activate() {
    if let Some((_server, port)) = socket_activated(&[]) {
        check_the_protocol(port);
    }
}

/// xinetd with the shipped service file on `port`, and `server_args` when
/// given; `dir` holds the files.
fn xinetd(dir: &TempDir, port: u16, server_args: Option<&str>) -> Running {
    let service = shipped("etc/xinetd.d/tcpmux");
    let service = replace(&service, "disable\t\t= yes", "disable\t\t= no");
    let service = replace(&service, "port\t\t= 1\n", &format!("port\t\t= {port}\n"));
    let mut service = replace(&service, "/usr/sbin/in.tcpmuxd", binary().to_str().unwrap());
    if let Some(args) = server_args {
        service = replace(&service, "\n}", &format!("\n\tserver_args\t= {args}\n}}"));
    }
    fs::write(dir.path().join("tcpmux"), service).unwrap();
    let conf = format!(
        "defaults\n{{\n}}\ninclude {}/tcpmux\n",
        dir.path().display()
    );
    fs::write(dir.path().join("xinetd.conf"), conf).unwrap();
    start(
        Command::new("/usr/sbin/xinetd")
            .arg("-dontfork")
            .arg("-f")
            .arg(dir.path().join("xinetd.conf"))
            .arg("-pidfile")
            .arg(dir.path().join("pid"))
            .stderr(Stdio::null()),
        port,
    )
}

#[test]
fn under_xinetd_with_the_shipped_service_file() {
    if !present("/usr/sbin/xinetd") {
        return;
    }
    let dir = TempDir::new("xinetd");
    let port = free_port();
    let _server = xinetd(&dir, port, None);
    check_the_protocol(port);
}

#[test]
fn under_openbsd_inetd_with_the_shipped_line() {
    let inetd = openbsd_inetd();
    if !present(&inetd) {
        return;
    }
    let dir = TempDir::new("inetd");
    let port = free_port();
    let line = shipped("etc/inetd.conf")
        .lines()
        .find(|l| !l.starts_with('#'))
        .expect("the inetd.conf line")
        .to_owned();
    // The shipped line listens on port 1 everywhere; the test on its own port.
    let line = replace(&line, "tcpmux\t", &format!("127.0.0.1:{port}\t"));
    let line = replace(&line, "/usr/sbin/in.tcpmuxd", binary().to_str().unwrap());
    fs::write(dir.path().join("inetd.conf"), line + "\n").unwrap();
    let _server = start(
        Command::new(&inetd)
            .arg("-i")
            .arg(dir.path().join("inetd.conf"))
            .stderr(Stdio::null()),
        port,
    );
    check_the_protocol(port);
}

/// The value of `key=` in a unit file, failing if it is not set.
fn unit_value(unit: &str, key: &str) -> String {
    let prefix = format!("{key}=");
    unit.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("{key}= not in the unit"))
        .to_owned()
}

/// Runs systemd's own checker on a socket unit and its service unit, with
/// the binary where the service expects it; returns the service so changed.
fn verify_units(socket: (&str, &str), service: (&str, &str)) -> String {
    let dir = TempDir::new("systemd");
    let changed = replace(
        service.1,
        "/usr/sbin/in.tcpmuxd",
        binary().to_str().unwrap(),
    );
    fs::write(dir.path().join(socket.0), socket.1).unwrap();
    fs::write(dir.path().join(service.0), &changed).unwrap();
    let verify = Command::new("/usr/bin/systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(dir.path().join(socket.0))
        .arg(dir.path().join(service.0))
        .output()
        .unwrap();
    let complaints = String::from_utf8_lossy(&verify.stderr);
    assert!(verify.status.success(), "{complaints}");
    for complaint in complaints.lines() {
        // systemd would rather have DynamicUser=, but a dynamic user could
        // not run the services of a table that name `nobody`.
        assert!(
            complaint.ends_with("Special user nobody configured, this is not safe!"),
            "{complaint}"
        );
    }
    changed
}

#[test]
fn the_shipped_systemd_units_verify_and_serve() {
    let activate = "/usr/bin/systemd-socket-activate";
    if !present(activate) || !present("/usr/bin/systemd-analyze") {
        return;
    }
    let socket = shipped("etc/systemd/tcpmux.socket");
    let service = shipped("etc/systemd/tcpmux@.service");
    assert_eq!(unit_value(&socket, "ListenStream"), "1");
    assert_eq!(unit_value(&socket, "Accept"), "yes");
    assert_eq!(unit_value(&service, "StandardInput"), "socket");
    assert_eq!(unit_value(&service, "StandardOutput"), "socket");
    assert_eq!(unit_value(&service, "StandardError"), "journal");

    let service = verify_units(("tcpmux.socket", &socket), ("tcpmux@.service", &service));

    // The same connection handling, as the units describe it: accepted
    // sockets on stdin and stdout, run as the unit's user.
    let port = free_port();
    let user = unit_value(&service, "User");
    let exec = unit_value(&service, "ExecStart");
    let _server = start(
        Command::new(activate)
            .args(["--inetd", "-a", "-l", &format!("127.0.0.1:{port}")])
            .args(["/usr/bin/setpriv", "--reuid", &user, "--regid", "nogroup"])
            .args(["--clear-groups", &exec])
            .stderr(Stdio::null()),
        port,
    );
    check_the_protocol(port);
}

/// A table with one service, `+echo` running `/bin/cat` as nobody, which a
/// server run as nobody may start; `table_path()` names it.
fn echo_table() -> Server {
    Server::inetd().table("+echo nobody /bin/cat\n")
}

/// A launched service gets the connection and every byte after the name.
fn check_a_service(port: u16) {
    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    client.set_read_timeout(Some(PATIENCE)).unwrap();
    client.write_all(b"ECHO\r\nhello\r\n").unwrap();
    client.shutdown(std::net::Shutdown::Write).unwrap();
    let mut reply = Vec::new();
    client.read_to_end(&mut reply).unwrap();
    assert_eq!(reply, b"+Go\r\nhello\r\n");
    assert_eq!(write_and_read(port, b"HELP\r\n"), b"tcpmux\r\necho\r\n");
}

#[test]
fn a_service_under_systemd_socket_activate() {
    let table = echo_table();
    if let Some((_server, port)) = socket_activated(&["-c", table.table_path()]) {
        check_a_service(port);
    }
}

#[test]
fn a_service_under_xinetd() {
    if !present("/usr/sbin/xinetd") {
        return;
    }
    let table = echo_table();
    let dir = TempDir::new("xinetd");
    let port = free_port();
    let _server = xinetd(&dir, port, Some(&format!("-c {}", table.table_path())));
    check_a_service(port);
}

#[test]
fn the_shipped_listener_units_verify_and_serve() {
    let activate = "/usr/bin/systemd-socket-activate";
    if !present(activate) || !present("/usr/bin/systemd-analyze") {
        return;
    }
    let socket = shipped("etc/systemd/tcpmuxd.socket");
    let service = shipped("etc/systemd/tcpmuxd.service");
    assert_eq!(unit_value(&socket, "ListenStream"), "1");
    assert!(
        !socket.contains("Accept="),
        "one process for all connections"
    );
    assert_eq!(
        unit_value(&service, "ExecStart"),
        "/usr/sbin/in.tcpmuxd --systemd"
    );

    let service = verify_units(("tcpmuxd.socket", &socket), ("tcpmuxd.service", &service));

    // The listening socket passed as systemd passes it, to the unit's
    // command run as the unit's user.
    let port = free_port();
    let user = unit_value(&service, "User");
    let exec = unit_value(&service, "ExecStart");
    let mut command = Command::new(activate);
    command
        .args(["-l", &format!("127.0.0.1:{port}")])
        .args([
            "/usr/bin/setpriv",
            "--reuid",
            &user,
            "--regid",
            "nogroup",
            "--clear-groups",
        ])
        .args(exec.split(' '))
        .stderr(Stdio::null());
    let _server = start(&mut command, port);
    check_the_protocol(port);
}
