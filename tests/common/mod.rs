//! What the integration tests share: the binary under its installed name,
//! scratch directories, and a connection handed to the binary the way inetd
//! hands it over.

#![allow(dead_code)] // each test crate uses its own part of this

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// How long any test waits for anything before it calls the run a failure.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The built binary, copied under its installed name `in.tcpmuxd` into a
/// directory anyone may read, so that super-servers running it as `nobody`
/// can, wherever the checkout lives.
pub fn binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| install_copy(env!("CARGO_BIN_EXE_in-tcpmuxd"), "in.tcpmuxd"))
}

/// Copies `built` to a fresh world-readable directory as `name`.
pub fn install_copy(built: &str, name: &str) -> PathBuf {
    let dir = TempDir::new("bin");
    let path = dir.path().join(name);
    fs::copy(built, &path).expect("copy the built binary");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    // The directory outlives every test of this process.
    let kept = dir.path().to_owned();
    std::mem::forget(dir);
    kept.join(name)
}

/// A scratch directory, removed when dropped; mode 0755 so that services
/// run as other users can reach what the test puts there.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNT: AtomicU32 = AtomicU32::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("in.tcpmuxd-test-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A connected pair of loopback TCP sockets: (client, server).
pub fn tcp_pair() -> (TcpStream, TcpStream) {
    tcp_pair_at("127.0.0.1", "127.0.0.1")
}

/// A connected pair whose server listens on `listen` and whose client
/// connects to `connect`: `("::", "127.0.0.1")` makes an IPv4 client of an
/// IPv6 socket, which the server sees as `::ffff:127.0.0.1`.
pub fn tcp_pair_at(listen: &str, connect: &str) -> (TcpStream, TcpStream) {
    let ip: std::net::IpAddr = listen.parse().unwrap();
    let listener = TcpListener::bind((ip, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let ip: std::net::IpAddr = connect.parse().unwrap();
    let client = TcpStream::connect((ip, port)).unwrap();
    let (server, _) = listener.accept().unwrap();
    (client, server)
}

/// Whether this process is root; the tests of privileges need it. Only in
/// CI (`TCPMUXD_REQUIRE_ROOT=1`) is its absence a failure.
pub fn root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var_os("TCPMUXD_REQUIRE_ROOT").is_none(),
        "this test needs root"
    );
    eprintln!("skipped: this test needs root");
    false
}

/// The binary serving one connection as inetd runs it: the accepted socket
/// on fds 0, 1 and 2. The test keeps its own copy of the server's end, so it
/// can see afterwards what the binary left unread.
pub struct Inetd {
    pub client: TcpStream,
    pub server: TcpStream,
    pub child: Child,
}

impl Inetd {
    pub fn spawn(args: &[&str]) -> Inetd {
        let (client, server) = tcp_pair();
        Inetd::spawn_on(client, server, args)
    }

    pub fn spawn_on(client: TcpStream, server: TcpStream, args: &[&str]) -> Inetd {
        let fd = |s: &TcpStream| Stdio::from(std::os::fd::OwnedFd::from(s.try_clone().unwrap()));
        let child = Command::new(binary())
            .args(args)
            .stdin(fd(&server))
            .stdout(fd(&server))
            .stderr(fd(&server))
            .spawn()
            .expect("start in.tcpmuxd");
        client.set_read_timeout(Some(PATIENCE)).unwrap();
        Inetd {
            client,
            server,
            child,
        }
    }

    pub fn send(&mut self, bytes: &[u8]) -> &mut Self {
        self.client.write_all(bytes).unwrap();
        self
    }

    /// Waits for the binary to exit and returns what the client received and
    /// the exit code. Bytes the binary left unread stay in `self.server`.
    pub fn finish(&mut self) -> (Vec<u8>, i32) {
        let status = wait_for(&mut self.child);
        // Close the write side of the test's copy, so the client sees EOF
        // now that the binary's copies are closed.
        self.server.shutdown(std::net::Shutdown::Write).unwrap();
        let mut reply = Vec::new();
        self.client.read_to_end(&mut reply).unwrap();
        (reply, status.code().expect("exited, not killed"))
    }

    /// What the client sent that the binary did not read, once the client
    /// has finished sending.
    pub fn unread(&mut self) -> Vec<u8> {
        self.client.shutdown(std::net::Shutdown::Write).unwrap();
        self.server.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut rest = Vec::new();
        self.server.read_to_end(&mut rest).unwrap();
        rest
    }
}

/// Waits for a child, killing it and failing the test past [`PATIENCE`].
pub fn wait_for(child: &mut Child) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > PATIENCE {
            let _ = child.kill();
            panic!("in.tcpmuxd still running after {PATIENCE:?}");
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Runs the binary with `input` on a pipe; returns stdout, stderr, code.
pub fn run_piped(args: &[&str], input: &[u8]) -> (Vec<u8>, Vec<u8>, i32) {
    let mut child = Command::new(binary())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.stdout, out.stderr, out.status.code().unwrap())
}

/// A syslog socket of the test's own: a datagram socket like /dev/log.
pub struct Syslog {
    pub dir: TempDir,
    pub socket: std::os::unix::net::UnixDatagram,
}

impl Syslog {
    pub fn new() -> Syslog {
        let dir = TempDir::new("log");
        let socket = std::os::unix::net::UnixDatagram::bind(dir.path().join("log")).unwrap();
        // Writable by all, like /dev/log, for servers run as nobody.
        fs::set_permissions(dir.path().join("log"), fs::Permissions::from_mode(0o666)).unwrap();
        socket.set_read_timeout(Some(PATIENCE)).unwrap();
        Syslog { dir, socket }
    }

    pub fn path(&self) -> String {
        self.dir.path().join("log").to_str().unwrap().to_owned()
    }

    /// The next line logged, waiting for it.
    pub fn line(&self) -> String {
        let mut buf = vec![0u8; 4096];
        let n = self.socket.recv(&mut buf).expect("a log line");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    /// Whatever was logged and not read yet, without waiting.
    pub fn rest(&self) -> Vec<String> {
        self.socket.set_nonblocking(true).unwrap();
        let mut lines = Vec::new();
        let mut buf = vec![0u8; 4096];
        while let Ok(n) = self.socket.recv(&mut buf) {
            lines.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        self.socket.set_nonblocking(false).unwrap();
        lines
    }
}
