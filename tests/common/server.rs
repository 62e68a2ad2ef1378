//! The server started the way a user starts it, in one builder:
//!
//! ```ignore
//! let server = Server::inetd().table("+echo nobody /bin/cat\n").syslog();
//! let answer = server.ask(b"echo\r\nhello\r\n");
//! assert_eq!(answer, (b"hello\r\n", 0));
//! ```
//!
//! `Server::inetd()` runs the binary once per connection as inetd does, the
//! accepted socket on fds 0 to 2; `Server::listen()` starts it with
//! `--listen` on loopback. The table is written in a scratch directory of
//! the server's own, owned by the test's user and mode 0644, as root's
//! StrictModes want it; the log goes nowhere unless a syslog catcher is
//! asked for.

use std::fmt;
use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use super::{Inetd, Listener, Syslog, TempDir, binary, tcp_pair_at, unlimited_rate};

/// How a [`Server`] is run: a process per connection, or one listener.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Inetd,
    Listen,
}

/// What the binary is started with. Built by value, then asked (inetd
/// mode, as often as a test likes) or started (`--listen`).
pub struct Server {
    mode: Mode,
    dir: TempDir,
    table: Option<String>,
    syslog: Option<Syslog>,
    as_nobody: bool,
    args: Vec<String>,
}

impl Server {
    /// The binary as inetd runs it, for one connection at a time.
    pub fn inetd() -> Server {
        Server::new(Mode::Inetd)
    }

    /// The binary as its own super-server on 127.0.0.1 and ::1, ports
    /// chosen by the system; see [`Server::start`].
    pub fn listen() -> Server {
        Server::new(Mode::Listen)
    }

    fn new(mode: Mode) -> Server {
        Server {
            mode,
            dir: TempDir::new("server"),
            table: None,
            syslog: None,
            as_nobody: false,
            args: Vec::new(),
        }
    }

    /// A table of `text`, given with `-c`. `{dir}` in the text stands for
    /// the server's scratch directory, where [`Server::probe`] puts the
    /// probe service.
    pub fn table(mut self, text: &str) -> Server {
        self.write_table(text);
        self.table = Some(
            self.dir
                .path()
                .join("tcpmux.conf")
                .to_str()
                .unwrap()
                .to_owned(),
        );
        self
    }

    /// `-c path`: a table the test made itself (a FIFO, a link, a table
    /// under a directory it owns).
    pub fn table_at(mut self, path: &str) -> Server {
        self.table = Some(path.to_owned());
        self
    }

    /// The probe service (tests/data/probe.pl) at `{dir}/probe`, mode 0755:
    /// it reports what it was started with, then echoes one line.
    pub fn probe(self) -> Server {
        let probe = self.dir.path().join("probe");
        fs::copy(
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/probe.pl"),
            &probe,
        )
        .unwrap();
        fs::set_permissions(&probe, fs::Permissions::from_mode(0o755)).unwrap();
        self
    }

    /// The log to a syslog socket of the test's own (`--syslog-socket`);
    /// without it the server runs with `--log none`.
    pub fn syslog(mut self) -> Server {
        self.syslog = Some(Syslog::new());
        self
    }

    /// The server run as nobody and nogroup, as the shipped inetd line and
    /// units run it. Named as a person says it, not a conversion.
    #[allow(clippy::wrong_self_convention)]
    pub fn as_nobody(mut self) -> Server {
        self.as_nobody = true;
        self
    }

    /// More arguments, after the ones the builder gives.
    pub fn args<const N: usize>(mut self, args: [&str; N]) -> Server {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Writes the table again, for a test that changes it between asks.
    pub fn write_table(&self, text: &str) {
        let path = self.dir.path().join("tcpmux.conf");
        let text = text.replace("{dir}", self.dir.path().to_str().unwrap());
        fs::write(&path, text).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    }

    /// The path given with `-c`.
    pub fn table_path(&self) -> &str {
        self.table.as_deref().expect("a server with a table")
    }

    /// The scratch directory `{dir}`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The syslog catcher of [`Server::syslog`].
    pub fn log(&self) -> &Syslog {
        self.syslog.as_ref().expect("a server with .syslog()")
    }

    /// The command line after the program's name. In inetd mode the log
    /// goes to the catcher, or with `--log none` nowhere unless the test's
    /// own arguments say where (`--log`, `--syslog-socket`); a listener
    /// logs to its standard error, which [`Listener`] reads.
    pub fn argv(&self) -> Vec<String> {
        let mut argv = Vec::new();
        if let Some(table) = &self.table {
            argv.extend(["-c".to_owned(), table.clone()]);
        }
        let quiet = self.mode == Mode::Inetd
            && !self
                .args
                .iter()
                .any(|a| a == "--log" || a == "--syslog-socket");
        match &self.syslog {
            Some(syslog) => argv.extend(["--syslog-socket".to_owned(), syslog.path()]),
            None if quiet => argv.extend(["--log".to_owned(), "none".to_owned()]),
            None => {}
        }
        argv.extend(self.args.iter().cloned());
        argv
    }

    fn command(&self) -> Command {
        let mut command = Command::new(binary());
        if self.mode == Mode::Listen {
            command.args(["--listen", "127.0.0.1:0", "--listen", "[::1]:0"]);
            command.args(unlimited_rate(&self.args));
        }
        command.args(self.argv());
        if self.as_nobody {
            command.uid(65534).gid(65534);
        }
        command
    }

    /// One connection from 127.0.0.1: sends `input`, closes the sending
    /// side, waits for the binary to exit; the reply, the exit code and
    /// what was logged.
    pub fn ask(&self, input: &[u8]) -> Answer {
        self.ask_at("127.0.0.1", "127.0.0.1", input)
    }

    /// [`Server::ask`] over a connection whose server end listens on
    /// `listen` and whose client connects to `connect` (see
    /// [`tcp_pair_at`]): `("::", "127.0.0.1")` is an IPv4-mapped peer.
    pub fn ask_at(&self, listen: &str, connect: &str, input: &[u8]) -> Answer {
        let (client, server) = tcp_pair_at(listen, connect);
        let mut inetd = self.start_on(client, server);
        inetd.send(input);
        inetd.client.shutdown(std::net::Shutdown::Write).unwrap();
        let client = inetd.client.local_addr().unwrap();
        let pid = inetd.child.id();
        let (reply, code) = inetd.finish();
        // A datagram is in the catcher's queue once sent, and the binary
        // has exited: every line it logged is there.
        let log = self.syslog.as_ref().map(Syslog::rest).unwrap_or_default();
        Answer {
            reply,
            code,
            log,
            pid,
            client,
        }
    }

    /// The binary on a new loopback connection, left to the test to drive.
    pub fn connect(&self) -> Inetd {
        let (client, server) = tcp_pair_at("127.0.0.1", "127.0.0.1");
        self.start_on(client, server)
    }

    /// The binary on a connection the test made, such as one with small
    /// buffers: `server` goes on fds 0 to 2.
    pub fn start_on(&self, client: TcpStream, server: TcpStream) -> Inetd {
        assert_eq!(self.mode, Mode::Inetd, "Server::listen() is started");
        Inetd::spawn_command(self.command(), client, server)
    }

    /// The listener, once it has said where it listens. It keeps this
    /// builder, and with it the table and the syslog catcher.
    pub fn start(self) -> Listener {
        assert_eq!(self.mode, Mode::Listen, "Server::inetd() is asked");
        Listener::spawn(self.command(), self)
    }
}

/// What a client of [`Server::ask`] got, and what the server logged.
pub struct Answer {
    pub reply: Vec<u8>,
    pub code: i32,
    /// The syslog lines of the connection, in order; none without a catcher.
    pub log: Vec<String>,
    /// The binary's process id, as its log lines give it.
    pub pid: u32,
    /// The client's address, as the log gives the peer.
    pub client: SocketAddr,
}

impl Answer {
    /// The reply as text, invalid UTF-8 replaced.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.reply).into_owned()
    }

    /// The first line logged, failing if there is none.
    pub fn log_line(&self) -> &str {
        self.log.first().expect("a log line")
    }
}

/// An answer is equal to `(reply, exit code)`.
impl<R: AsRef<[u8]>> PartialEq<(R, i32)> for Answer {
    fn eq(&self, (reply, code): &(R, i32)) -> bool {
        self.reply == reply.as_ref() && self.code == *code
    }
}

impl fmt::Debug for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Answer")
            .field("reply", &self.text())
            .field("code", &self.code)
            .field("log", &self.log)
            .finish()
    }
}
