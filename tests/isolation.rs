//! What one client's service, or a local user, can reach of another
//! client's connection or of the server: each test an attack a review made.

mod common;

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use common::{TempDir, root, run_piped};

/// A handshake under way in inetd mode, the server running as nobody as
/// the shipped files run it: a process of the same user (any service run
/// as nobody) could take the connection out of it with pidfd_getfd, or
/// read its descriptors in /proc. The server is undumpable: it cannot.
#[test]
fn a_handshake_under_way_cannot_be_reached_by_its_own_user() {
    if !root() || !common::present("/usr/bin/setpriv") {
        return;
    }
    let (client, server) = common::tcp_pair();
    let fd =
        |s: &std::net::TcpStream| Stdio::from(std::os::fd::OwnedFd::from(s.try_clone().unwrap()));
    let mut child = Command::new("/usr/bin/setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--init-groups"])
        .arg(common::binary())
        .args(["--log", "none"])
        .stdin(fd(&server))
        .stdout(fd(&server))
        .stderr(fd(&server))
        .spawn()
        .unwrap();
    drop(server);
    let mut client = client;
    client.set_read_timeout(Some(common::PATIENCE)).unwrap();
    std::io::Write::write_all(&mut client, b"tcpmux\r\n").unwrap();
    let mut ok = [0u8; 5];
    client.read_exact(&mut ok).unwrap();
    assert_eq!(&ok, b"+OK\r\n", "the handshake is under way");
    let look = Command::new("/usr/bin/setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--init-groups"])
        .args(["ls", &format!("/proc/{}/fd", child.id())])
        .output()
        .unwrap();
    assert!(
        !look.status.success(),
        "nobody listed the server's descriptors"
    );
    assert!(
        String::from_utf8_lossy(&look.stderr).contains("Permission denied"),
        "{}",
        String::from_utf8_lossy(&look.stderr)
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// A server that is not root cannot set groups: a service it starts would
/// keep the server's supplementary groups (here `disk`, raw disk access)
/// instead of its user's. It refuses the launch instead.
#[test]
fn a_server_that_is_not_root_hands_on_no_groups_of_its_own() {
    if !root() || !common::present("/usr/bin/setpriv") {
        return;
    }
    let dir = TempDir::new("groups");
    let table = common::table(&dir, "+idsvc nobody /usr/bin/id\n");
    let (client, server) = common::tcp_pair();
    let fd =
        |s: &std::net::TcpStream| Stdio::from(std::os::fd::OwnedFd::from(s.try_clone().unwrap()));
    let mut child = Command::new("/usr/bin/setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--groups=disk"])
        .arg(common::binary())
        .args(["-c", &table, "--log", "none"])
        .stdin(fd(&server))
        .stdout(fd(&server))
        .stderr(fd(&server))
        .spawn()
        .unwrap();
    drop(server);
    let mut client = client;
    std::io::Write::write_all(&mut client, b"idsvc\r\n").unwrap();
    client.set_read_timeout(Some(common::PATIENCE)).unwrap();
    let mut reply = Vec::new();
    let _ = client.read_to_end(&mut reply);
    assert_eq!(reply, b"-Service temporarily unavailable\r\n");
    assert_eq!(common::wait_for(&mut child).code(), Some(8));
}

/// `--check` passed a program the service's user may not run, which then
/// failed at every launch.
#[test]
fn check_refuses_a_program_its_user_may_not_run() {
    if !root() {
        return;
    }
    let dir = TempDir::new("rootonly");
    let program = dir.path().join("rootonly");
    fs::copy("/bin/true", &program).unwrap();
    fs::set_permissions(&program, fs::Permissions::from_mode(0o700)).unwrap();
    let table = common::table(&dir, &format!("ro nobody {}\n", program.display()));
    let (out, err, code) = run_piped(&["--check", "--as", "root", "-c", &table], b"");
    assert_eq!(
        (
            String::from_utf8_lossy(&out).into_owned(),
            String::from_utf8_lossy(&err).into_owned(),
            code
        ),
        (
            String::new(),
            format!(
                "in.tcpmuxd: {table}:1: nobody cannot run {}: EACCES: Permission denied\n",
                program.display()
            ),
            1
        )
    );
}

/// A table line with terminal escapes printed by `--check` as something it
/// is not (`/bin/sh -c ...` shown as `/bin/cat`): control characters are
/// refused, and nothing is printed but the refusal.
#[test]
fn a_line_with_terminal_escapes_is_refused_not_printed() {
    let dir = TempDir::new("escapes");
    let table = common::table(
        &dir,
        "+echo\tnobody\t/bin/sh -c id>/tmp/x;exec${IFS}cat;#\x1b[2K\x1b[1G+echo\x1b[4Cnobody\x1b[3C/bin/cat\n",
    );
    let (out, err, code) = run_piped(&["--check", "-c", &table], b"");
    assert_eq!(out, b"");
    assert_eq!(
        String::from_utf8_lossy(&err),
        format!(
            "in.tcpmuxd: {table}:1:50: control characters are not allowed, and '\\u{{1b}}' is one\n"
        )
    );
    assert_eq!(code, 1);
}
