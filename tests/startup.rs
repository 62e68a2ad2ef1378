//! What the listener checks as it starts: the sockets systemd passes, and
//! the limit on open files that `--max-connections` needs.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use common::{PATIENCE, TempDir, binary, no_services, present};

/// A UNIX socket passed by systemd is refused, by name, with exit 9,
/// rather than served as if it were TCP.
#[test]
fn a_unix_socket_from_systemd_is_refused() {
    let activate = "/usr/bin/systemd-socket-activate";
    if !present(activate) {
        return;
    }
    let (_dir, table) = no_services();
    let dir = TempDir::new("unix");
    let path = dir.path().join("tcpmux.sock");
    let mut server = Command::new(activate)
        .arg("-l")
        .arg(&path)
        .arg(binary())
        .args(["--systemd", "-c", &table])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // systemd-socket-activate starts the program on the first connection.
    let deadline = Instant::now() + PATIENCE;
    let _client = loop {
        match UnixStream::connect(&path) {
            Ok(client) => break client,
            Err(_) if Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            Err(e) => panic!("connecting to {}: {e}", path.display()),
        }
    };
    let status = common::wait_for(&mut server);
    let mut err = String::new();
    std::io::Read::read_to_string(&mut server.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(9), "{err}");
    assert!(
        err.contains(
            "--systemd: descriptor 3 from systemd is a UNIX socket, not a TCP socket: \
             list only ListenStream= of an IP address and port in the .socket unit\n"
        ),
        "{err}"
    );
}

/// The listener under `prlimit --nofile=LIMITS`, with `args`; its standard
/// error, and the address it listens on once it says so.
fn listen_limited(limits: &str, args: &[&str]) -> (Child, Vec<String>, SocketAddr) {
    let mut child = Command::new("prlimit")
        .arg(format!("--nofile={limits}"))
        .arg(binary())
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    loop {
        let Some(Ok(line)) = stderr.next() else {
            let status = child.wait();
            panic!("the listener ended ({status:?}) after {lines:?}");
        };
        if let Some((_, addr)) = line.split_once("listening on ") {
            let addr = addr.parse().unwrap();
            return (child, lines, addr);
        }
        lines.push(line);
    }
}

fn stop(mut child: Child) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    common::wait_for(&mut child);
}

#[test]
fn too_few_open_files_for_max_connections_is_said_at_start() {
    if !present("/usr/bin/prlimit") {
        return;
    }
    let (_dir, table) = no_services();
    let (child, before, _) = listen_limited("64:64", &["--max-connections", "1000", "-c", &table]);
    stop(child);
    assert_eq!(before.len(), 1, "{before:?}");
    assert!(
        before[0].contains(
            "--max-connections 1000 needs about 6086 open files (6 a connection, and 86 \
             besides), but the limit (RLIMIT_NOFILE) is 64 and the hard limit 64"
        ),
        "{before:?}"
    );
}

/// The soft limit is raised to the hard one for the listener, so a cap
/// that fits under the hard limit starts without a word; a launched
/// program still gets the limit in.tcpmuxd was started with.
#[test]
fn the_soft_limit_is_raised_for_the_listener_alone() {
    if !common::root() || !present("/usr/bin/prlimit") {
        return;
    }
    let dir = TempDir::new("nofile");
    let table = common::table(
        &dir,
        "+limit nobody /usr/bin/prlimit --nofile --output=SOFT --noheadings\n",
    );
    let (child, before, addr) =
        listen_limited("64:8192", &["--max-connections", "1000", "-c", &table]);
    let reply = common::ask(addr, b"limit\r\n");
    stop(child);
    assert_eq!(before, Vec::<String>::new());
    let reply = String::from_utf8_lossy(&reply);
    assert_eq!(reply.split_whitespace().collect::<Vec<_>>(), ["+Go", "64"]);
}
