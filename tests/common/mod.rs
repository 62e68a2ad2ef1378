//! What the integration tests share: the binary under its installed name,
//! scratch directories, a connection handed to the binary the way inetd
//! hands it over, and [`Server`], the builder that starts the server the
//! way a user would.
//!
//! Reply lines are the library's own constants (`tcpmuxd::protocol`,
//! `tcpmuxd::listener::BUSY`), so that the tests and the code cannot drift
//! apart. The bytes on the wire are pinned independently, as literals, where
//! a test is the specification: `tests/inetd.rs`'s table of inputs and
//! replies, which the README quotes, and the tests beside it.
//!
//! Readiness is probed, never slept for: a log line, an answered `tcpmux`,
//! /proc, or [`wait_until`] with a deadline.

#![allow(dead_code)] // each test crate uses its own part of this

mod server;

#[allow(unused_imports)] // not every test crate names an Answer
pub use server::{Answer, Server};

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{OnceLock, mpsc};
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
    // Copied by another process: a copy written here would be open for
    // writing while other test threads fork, and a child forked then holds
    // it until its exec, so running the copy could fail with ETXTBSY.
    let copied = Command::new("install")
        .args(["-m", "755", built])
        .arg(&path)
        .status()
        .expect("run install");
    assert!(copied.success(), "install {built} {}", path.display());
    // The directory outlives every test of this process.
    let kept = dir.path().to_owned();
    std::mem::forget(dir);
    kept.join(name)
}

/// Where scratch directories go. As root, in.tcpmuxd refuses tables and
/// programs under a directory others may write to, /tmp included, so the
/// tests that run as root keep theirs under /run, which is root's.
pub fn scratch_root() -> PathBuf {
    if !nix::unistd::geteuid().is_root() {
        return std::env::temp_dir();
    }
    let root = PathBuf::from("/run/in.tcpmuxd-test");
    let _ = fs::create_dir(&root);
    let _ = fs::set_permissions(&root, fs::Permissions::from_mode(0o755));
    root
}

/// A scratch directory, removed when dropped; mode 0755 so that services
/// run as other users can reach what the test puts there.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNT: AtomicU32 = AtomicU32::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let path = scratch_root().join(format!("in.tcpmuxd-test-{tag}-{}-{n}", std::process::id()));
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
        let mut command = Command::new(binary());
        command.args(args);
        Inetd::spawn_command(command, client, server)
    }

    /// Runs `command` with `server` on its fds 0 to 2.
    pub fn spawn_command(mut command: Command, client: TcpStream, server: TcpStream) -> Inetd {
        let fd = |s: &TcpStream| Stdio::from(std::os::fd::OwnedFd::from(s.try_clone().unwrap()));
        let child = command
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
        // now that the binary's copies are closed. After a refusal the
        // binary has half-closed the socket already, and when the client
        // had closed too the socket is fully closed: nothing to do then.
        let _ = self.server.shutdown(std::net::Shutdown::Write);
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

/// Polls `done` until it holds, failing the test with `what` past
/// [`PATIENCE`]: the probe for a state the server reaches in its own time.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// `in.tcpmuxd --check -c TABLE` with `args`: standard output, standard
/// error (each must be UTF-8) and the exit status.
pub fn check(table: impl AsRef<Path>, args: &[&str]) -> (String, String, i32) {
    let out = Command::new(binary())
        .args(["--check", "-c"])
        .arg(table.as_ref())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
        out.status.code().unwrap(),
    )
}

/// Runs the binary with `input` on a pipe; returns stdout, stderr, code.
pub fn run_piped(args: &[&str], input: &[u8]) -> (Vec<u8>, Vec<u8>, i32) {
    run_program(binary(), args, input.to_vec())
}

/// Runs `program` with `input` on a pipe, written while the output is read,
/// so that megabytes cannot fill both pipes; returns stdout, stderr, code.
pub fn run_program(program: &Path, args: &[&str], input: Vec<u8>) -> (Vec<u8>, Vec<u8>, i32) {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // A program that exits without reading all of it closes the pipe.
    let writer = thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
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

    /// The next line logged, waiting for it; a wait cut short by a signal
    /// (a test with many children gets one now and then) is taken up again.
    pub fn line(&self) -> String {
        let mut buf = vec![0u8; 4096];
        loop {
            match self.socket.recv(&mut buf) {
                Ok(n) => return String::from_utf8_lossy(&buf[..n]).into_owned(),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => panic!("no log line: {e}"),
            }
        }
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

// Super-servers and listeners, for the tests that run them.

/// Whether `program` can be run; missing is a failure only in CI.
pub fn present(program: &str) -> bool {
    if Path::new(program).exists() {
        return true;
    }
    if std::env::var_os("TCPMUXD_REQUIRE_SUPERSERVERS").is_some() {
        panic!("{program} is missing; .ci/run installs it");
    }
    eprintln!("skipped: {program} is not installed (.ci/run installs it)");
    false
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A super-server, killed when the test ends however it ends.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        // A wrapper (script, unshare --fork) may have the server as its
        // child, which would outlive it: a listener takes the hang-up of
        // its terminal for a SIGHUP and re-reads its table.
        kill_children(self.0.id());
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Kills the processes whose parent is `pid`, found in /proc.
pub fn kill_children(pid: u32) {
    let Ok(entries) = fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

pub fn start(command: &mut Command, port: u16) -> Running {
    let running = Running(
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start the super-server"),
    );
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < PATIENCE, "nothing listens on {port}");
        thread::sleep(Duration::from_millis(20));
    }
    running
}

/// A running listener on 127.0.0.1 and ::1, ports chosen by the system,
/// with its standard error read line by line.
pub struct Listener {
    pub child: Child,
    log: mpsc::Receiver<String>,
    pub v4: SocketAddr,
    pub v6: SocketAddr,
    /// The builder it was started from, which holds its table.
    pub server: Option<Server>,
    /// Its sockets once listening: a connection it accepts adds one.
    sockets_at_start: usize,
}

/// The tests connect from loopback far faster than any client host does,
/// hundreds of connections a second: their listeners lift
/// `--max-rate-per-source` out of the way, as the benchmarks do, unless a
/// test gives its own (`tests/rates.rs`).
pub fn unlimited_rate(args: &[String]) -> Vec<String> {
    if args.iter().any(|a| a.starts_with("--max-rate-per-source")) {
        return Vec::new();
    }
    vec!["--max-rate-per-source".to_owned(), "1000000".to_owned()]
}

impl Listener {
    pub fn start(args: &[&str]) -> Listener {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let mut command = Command::new(binary());
        command
            .args(["--listen", "127.0.0.1:0", "--listen", "[::1]:0"])
            .args(unlimited_rate(&args))
            .args(args);
        Listener::spawn(command, None)
    }

    /// Runs `command`, a listener on 127.0.0.1:0 and [::1]:0 that logs to
    /// standard error, and waits until it says where it listens.
    pub fn spawn(mut command: Command, server: impl Into<Option<Server>>) -> Listener {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (send, log) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let mut listener = Listener {
            child,
            log,
            v4: "0.0.0.0:0".parse().unwrap(),
            v6: "[::]:0".parse().unwrap(),
            server: server.into(),
            sockets_at_start: 0,
        };
        listener.v4 = listener.listening_address();
        listener.v6 = listener.listening_address();
        listener.sockets_at_start = sockets_of(listener.child.id());
        listener
    }

    /// Waits until the listener holds `count` accepted connections: the
    /// probe for a test whose next client must find them counted.
    pub fn wait_for_connections(&self, count: usize) {
        let pid = self.child.id();
        wait_until(
            &format!("the listener never held {count} connections"),
            || sockets_of(pid) == self.sockets_at_start + count,
        );
    }

    /// The builder's table, written again, for a test that changes it.
    pub fn write_table(&self, text: &str) {
        self.server
            .as_ref()
            .expect("started by Server")
            .write_table(text);
    }

    fn listening_address(&self) -> SocketAddr {
        let line = self.expect_log("listening on ");
        line.rsplit(' ').next().unwrap().parse().unwrap()
    }

    /// The next log line that contains `text`, waiting for it.
    pub fn expect_log(&self, text: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) if line.contains(text) => return line,
                Ok(_) => {}
                Err(_) => panic!("no log line with {text:?}"),
            }
        }
    }

    /// Every log line not read yet, up to the listener's exit.
    pub fn rest_of_log(&self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Ok(line) = self.log.recv_timeout(PATIENCE) {
            lines.push(line);
        }
        lines
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, signal).unwrap();
    }

    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The sockets process `pid` has open, from /proc.
pub fn sockets_of(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter(|fd| {
            fs::read_link(fd.path()).is_ok_and(|to| to.to_string_lossy().starts_with("socket:"))
        })
        .count()
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream
}

/// A connection to `addr` from the local address `source`, such as
/// 127.0.0.2: another client host, as the server sees it, on loopback.
pub fn connect_from(source: &str, addr: SocketAddr) -> TcpStream {
    use nix::sys::socket::{
        AddressFamily, SockFlag, SockType, SockaddrStorage, bind, connect, socket,
    };
    use std::os::fd::AsRawFd;
    let source: std::net::IpAddr = source.parse().unwrap();
    let family = if source.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).unwrap();
    bind(
        fd.as_raw_fd(),
        &SockaddrStorage::from(SocketAddr::new(source, 0)),
    )
    .unwrap();
    connect(fd.as_raw_fd(), &SockaddrStorage::from(addr)).unwrap();
    let stream = TcpStream::from(fd);
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream
}

/// [`ask`] from the local address `source` (see [`connect_from`]).
pub fn ask_from(source: &str, addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = connect_from(source, addr);
    let _ = stream.write_all(request);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    read_reply(&mut stream)
}

/// 127.0.0.1 at `port`.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A client that sent `tcpmux` and got its `+OK`: an answered `tcpmux`
/// shows the server is serving the connection, in its handshake, holding
/// its place under the caps.
pub fn in_handshake(addr: SocketAddr) -> TcpStream {
    let mut stream = connect(addr);
    stream.write_all(b"tcpmux\r\n").unwrap();
    let mut ok = [0u8; 5];
    stream.read_exact(&mut ok).unwrap();
    assert_eq!(&ok, tcpmuxd::protocol::MUX_ACCEPT);
    stream
}

/// The binary under `systemd-socket-activate --inetd -a` on a loopback
/// port, with `args`: the super-server and its port, or `None` where it is
/// not installed (a failure in CI).
pub fn socket_activated(args: &[&str]) -> Option<(Running, u16)> {
    let activate = "/usr/bin/systemd-socket-activate";
    if !present(activate) {
        return None;
    }
    let port = free_port();
    let running = start(
        Command::new(activate)
            .args(["--inetd", "-a", "-l", &format!("127.0.0.1:{port}")])
            .arg(binary())
            .args(args)
            .stderr(Stdio::null()),
        port,
    );
    Some((running, port))
}

/// Asking, everywhere in these tests: sends `request` from a new client,
/// closes the sending side, reads the reply to the end.
pub fn ask(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    ask_with_port(addr, request).1
}

/// [`ask`], with the client's port, for finding its log line.
pub fn ask_with_port(addr: SocketAddr, request: &[u8]) -> (u16, Vec<u8>) {
    let mut stream = connect(addr);
    let port = stream.local_addr().unwrap().port();
    let _ = stream.write_all(request);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    (port, read_reply(&mut stream))
}

/// Reads to the end; a reset after the reply counts as the end, and a
/// read cut short by a signal is taken up again.
pub fn read_reply(stream: &mut TcpStream) -> Vec<u8> {
    let mut reply = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return reply,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return reply,
            Err(e) => panic!("reading the reply: {e}"),
        }
    }
}

/// A table with no services: `/dev/null` would not do, as root refuses a
/// table others can write.
pub fn no_services() -> (TempDir, String) {
    let dir = TempDir::new("empty");
    let path = table(&dir, "");
    (dir, path)
}

pub fn table(dir: &TempDir, text: &str) -> String {
    let path = dir.path().join("tcpmux.conf");
    fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// The children of `pid` that are zombies, from /proc.
pub fn zombie_children(pid: u32) -> usize {
    let mut zombies = 0;
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r.to_owned()) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(1) == Some(&pid.to_string().as_str()) && fields[0] == "Z" {
            zombies += 1;
        }
    }
    zombies
}
/// Megabytes that are not text, the same on every run.
pub fn binary_data(len: usize) -> Vec<u8> {
    let mut x: u32 = 2463534242;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// The line of the probe service's report (tests/data/probe.pl) that
/// begins with `key`, failing when there is none.
pub fn probe_report(reply: &[u8], key: &str) -> String {
    let text = String::from_utf8_lossy(reply);
    text.lines()
        .find(|l| l.starts_with(key))
        .unwrap_or_else(|| panic!("no {key} in {text:?}"))
        .trim_end()
        .to_owned()
}

/// A throwaway sshd set-up in `dir`: a host key, a user key allowed to log
/// in as root, and a configuration that names them, `extra` lines first;
/// the machine's sshd, its keys and its configuration are left alone.
/// Returns the configuration's path; the user key is `dir/user_key`.
pub fn throwaway_sshd(dir: &Path, extra: &str) -> PathBuf {
    let d = dir.to_str().unwrap();
    for key in ["host_key", "user_key"] {
        let made = Command::new("/usr/bin/ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(dir.join(key))
            .stdin(Stdio::null())
            .status()
            .unwrap();
        assert!(made.success(), "ssh-keygen {key}");
    }
    fs::copy(dir.join("user_key.pub"), dir.join("authorized_keys")).unwrap();
    // StrictModes no: the keys are the test's, in its scratch directory.
    let config = dir.join("sshd_config");
    fs::write(
        &config,
        format!(
            "{extra}HostKey {d}/host_key\n\
             AuthorizedKeysFile {d}/authorized_keys\n\
             PermitRootLogin prohibit-password\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             StrictModes no\n\
             UsePAM no\n"
        ),
    )
    .unwrap();
    // What ssh.service would create; sshd refuses to run without it.
    fs::create_dir_all("/run/sshd").unwrap();
    config
}
