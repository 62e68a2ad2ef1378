//! What the listener checks as it starts: the sockets systemd passes.

mod common;

use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
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
