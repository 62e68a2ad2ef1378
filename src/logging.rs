//! Where log lines go. Under a super-server, standard output and standard
//! error are the client's socket, so the default is syslog, and when syslog
//! cannot be reached the lines are dropped rather than sent to the client.
//! The journal (`--log journal`) gets each line with the fields of its
//! event (see `event`) apart, in its native protocol.
//!
//! A log line never waits. A syslog daemon that stopped reading, or a
//! standard error pipe nobody drains, would otherwise hold every connection
//! and launch in a blocked send. Each line is sent without blocking; one
//! that cannot go out is dropped and counted, and the next line that does go
//! out says how many were lost before it.

use std::fmt::Display;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use log::kv::{self, Key, Value, VisitSource};
use log::{Level, LevelFilter};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType, UnixAddr};
use nix::sys::stat::{SFlag, fstat};
use syslog::{Facility, Formatter3164, LogFormat, Severity};
/// The name under which the server logs.
pub const IDENT: &str = "in.tcpmuxd";

/// The default syslog socket.
pub const DEV_LOG: &str = "/dev/log";

/// The default socket of the journal's native protocol.
pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The local syslog daemon, facility daemon.
    Syslog,
    /// Standard error, for a foreground process; never under inetd.
    Stderr,
    /// systemd's journal, each event's fields apart.
    Journal,
    /// Nowhere.
    None,
}

impl Target {
    /// Every target, as `--log` names it.
    pub const ALL: [(&'static str, Target); 4] = [
        ("syslog", Target::Syslog),
        ("stderr", Target::Stderr),
        ("journal", Target::Journal),
        ("none", Target::None),
    ];

    /// The target `--log` calls `name`.
    pub fn from_name(name: &str) -> Option<Target> {
        Target::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| *t)
    }

    /// The name `--log` takes for this target.
    pub fn name(self) -> &'static str {
        Target::ALL
            .iter()
            .find(|(_, t)| *t == self)
            .map_or("none", |(n, _)| n)
    }
}

/// Where the log goes, as the command line says: `--log`,
/// `--syslog-socket` and `--journal-socket`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Log {
    pub target: Target,
    pub syslog_socket: PathBuf,
    pub journal_socket: PathBuf,
}

impl Log {
    /// Syslog at `syslog_socket`, as a command line that was refused logs.
    pub fn syslog(syslog_socket: PathBuf) -> Log {
        Log {
            target: Target::Syslog,
            syslog_socket,
            journal_socket: JOURNAL_SOCKET.into(),
        }
    }

    /// Sets up the global logger and returns the target in use. Never
    /// fails: a log socket that is missing or refuses us loses the lines,
    /// which are counted, and the server runs on.
    ///
    /// Standard error asked for where it is the client's connection
    /// (`--log stderr` under inetd or xinetd, which hand the socket over
    /// on fds 0 to 2) is not used: log text would reach the client in the
    /// middle of the service's data. The lines go to syslog instead, the
    /// first of them saying why.
    pub fn init(&self) -> Target {
        let target = match self.target {
            Target::Stderr if stderr_is_the_connection() => Target::Syslog,
            target => target,
        };
        let logger: Box<dyn log::Log> = match target {
            Target::Syslog => Box::new(SyslogLogger::new(&self.syslog_socket)),
            Target::Stderr => Box::new(StderrLogger::new()),
            Target::Journal => Box::new(JournalLogger::new(&self.journal_socket)),
            Target::None => return target,
        };
        if log::set_boxed_logger(logger).is_ok() {
            log::set_max_level(LevelFilter::Info);
        }
        if target != self.target {
            log::warn!("{FELL_BACK}");
        }
        target
    }
}

/// The most a write to a pipe carries in one piece (POSIX's `PIPE_BUF`):
/// a line of standard error no longer than this is never interleaved with
/// another thread's or process's.
pub const PIPE_BUF: usize = 4096;

/// A failure before any connection is served goes to the log and, when the
/// log is elsewhere, to standard error for the person who started the
/// server, unless standard error is a client's connection.
pub fn startup_error(target: Target, message: &str) {
    log::error!("{message}");
    if target != Target::Stderr && !stderr_is_the_connection() {
        let _ = writeln!(std::io::stderr(), "{IDENT}: {message}");
    }
}

/// The line that says `--log stderr` was not followed.
pub const FELL_BACK: &str =
    "--log stderr: standard error is the client's connection; logging to syslog instead";

/// Whether standard error is the client's connection: a socket, and the
/// very socket on standard input (the same inode of the socket file
/// system; two descriptors of one TCP connection are always one socket).
/// That is how inetd and xinetd start a server, the accepted socket on fds
/// 0, 1 and 2. A terminal, a pipe, a file, or the journal's socket under
/// systemd is not the connection, and neither is a socket on standard
/// error when standard input is something else (tcpserver keeps fd 2 as its
/// log).
pub fn stderr_is_the_connection() -> bool {
    let (Ok(input), Ok(error)) = (fstat(std::io::stdin()), fstat(std::io::stderr())) else {
        return false;
    };
    let socket = SFlag::from_bits_truncate(error.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFSOCK;
    socket && (input.st_dev, input.st_ino) == (error.st_dev, error.st_ino)
}

/// What a line carries at its end when `lost` lines before it were dropped.
pub fn lost_note(lost: u64) -> String {
    match lost {
        0 => String::new(),
        1 => " (1 earlier log line lost)".to_owned(),
        n => format!(" ({n} earlier log lines lost)"),
    }
}

/// How many lines could not be written since the last one that was. An
/// atomic, as listen mode logs from a thread per connection.
#[derive(Default)]
struct Lost(AtomicU64);

impl Lost {
    /// Writes `message`, at most `cap` bytes of it with the note of lost
    /// lines, through `write`, which says whether the line went out. The
    /// count is taken before the write and given back, one more, if the
    /// line is lost too, so no loss goes unreported whatever the threads do.
    fn deliver(&self, message: impl Display, cap: usize, write: impl FnOnce(&str) -> bool) {
        let lost = self.0.swap(0, Ordering::Relaxed);
        let note = lost_note(lost);
        let mut line = message.to_string();
        truncate(&mut line, cap.saturating_sub(note.len()));
        line.push_str(&note);
        if !write(&line) {
            self.0.fetch_add(lost.saturating_add(1), Ordering::Relaxed);
        }
    }
}

/// Shortens `text` to at most `max` bytes, at a character's boundary.
fn truncate(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

/// The local syslog daemon, facility daemon, RFC 3164 lines.
///
/// The syslog crate formats the line, but it does not send it: its senders
/// block on a full socket (and its `BasicLogger` panics on a poisoned lock),
/// so the few lines that connect and send without blocking are here.
struct SyslogLogger {
    formatter: Formatter3164,
    socket: LogSocket,
    lost: Lost,
}

impl SyslogLogger {
    fn new(path: &Path) -> SyslogLogger {
        SyslogLogger {
            formatter: Formatter3164 {
                facility: Facility::LOG_DAEMON,
                hostname: None,
                process: IDENT.to_owned(),
                pid: std::process::id(),
            },
            socket: LogSocket::new(path, Streams::Too),
            lost: Lost::default(),
        }
    }
}

impl log::Log for SyslogLogger {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }

    fn log(&self, record: &log::Record) {
        let severity = match record.level() {
            Level::Error => Severity::LOG_ERR,
            Level::Warn => Severity::LOG_WARNING,
            Level::Info => Severity::LOG_INFO,
            Level::Debug | Level::Trace => Severity::LOG_DEBUG,
        };
        self.lost.deliver(record.args(), usize::MAX, |line| {
            // The formatter's own unwraps are on a constant time format and
            // on formatting into a String, neither of which can fail.
            let mut datagram = Vec::with_capacity(line.len() + 64);
            self.formatter.format(&mut datagram, severity, line).is_ok()
                && self.socket.send(&datagram)
        });
    }

    fn flush(&self) {}
}

/// The socket of a log daemon (syslog's, the journal's) at a path, connected
/// at start and again after it broke.
struct LogSocket {
    path: PathBuf,
    streams: Streams,
    /// None until the socket can be reached, and again once it broke.
    connection: Mutex<Option<Connection>>,
}

/// Whether a stream socket at the path will do when it is not a datagram
/// socket: some syslog daemons make one; the journal's is a datagram socket.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Streams {
    Too,
    No,
}

impl LogSocket {
    fn new(path: &Path, streams: Streams) -> LogSocket {
        LogSocket {
            path: path.to_owned(),
            streams,
            // Connect now, while the process still has the rights it started
            // with; a service's launch drops them before its log line.
            connection: Mutex::new(Connection::open(path, streams)),
        }
    }

    /// Sends one datagram, connecting first when there is no connection,
    /// and once more when the connection broke: a restarted daemon makes a
    /// new socket at the same path.
    fn send(&self, datagram: &[u8]) -> bool {
        let mut connection = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        for _ in 0..2 {
            if connection.is_none() {
                *connection = Connection::open(&self.path, self.streams);
            }
            let Some(open) = connection.as_ref() else {
                return false;
            };
            match open.send(datagram) {
                Sent::Yes => return true,
                Sent::Full => return false,
                Sent::Broken => *connection = None,
            }
        }
        false
    }
}

/// A socket to a log daemon, non-blocking from its creation: even the
/// connect of a stream socket returns at once when the daemon's queue of
/// connections is full.
enum Connection {
    /// The usual /dev/log: one datagram per line.
    Datagram(OwnedFd),
    /// A stream socket, as some daemons make: lines end with a NUL.
    Stream(OwnedFd),
}

/// What became of a send.
enum Sent {
    Yes,
    /// No room now; the connection is still good.
    Full,
    /// The connection is of no more use: the daemon went away, or a stream
    /// was cut inside a line.
    Broken,
}

impl Connection {
    fn open(path: &Path, streams: Streams) -> Option<Connection> {
        let address = UnixAddr::new(path).ok()?;
        let flags = SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK;
        let datagram = socket::socket(AddressFamily::Unix, SockType::Datagram, flags, None).ok()?;
        match socket::connect(datagram.as_raw_fd(), &address) {
            Ok(()) => return Some(Connection::Datagram(datagram)),
            Err(Errno::EPROTOTYPE) if streams == Streams::Too => {}
            Err(_) => return None,
        }
        let stream = socket::socket(AddressFamily::Unix, SockType::Stream, flags, None).ok()?;
        socket::connect(stream.as_raw_fd(), &address).ok()?;
        Some(Connection::Stream(stream))
    }

    fn send(&self, line: &[u8]) -> Sent {
        let framed;
        let (fd, bytes) = match self {
            Connection::Datagram(fd) => (fd, line),
            Connection::Stream(fd) => {
                framed = [line, b"\0"].concat();
                (fd, &framed[..])
            }
        };
        let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
        match socket::send(fd.as_raw_fd(), bytes, flags) {
            Ok(n) if n == bytes.len() => Sent::Yes,
            Err(Errno::EAGAIN | Errno::ENOBUFS) => Sent::Full,
            Ok(_) | Err(_) => Sent::Broken,
        }
    }
}

/// systemd's journal, through its native protocol: one datagram per
/// record, of `KEY=value` fields each ended by a newline (see
/// [`journal_datagram`]). Sent without blocking, as to syslog.
struct JournalLogger {
    socket: LogSocket,
    lost: Lost,
}

impl JournalLogger {
    fn new(path: &Path) -> JournalLogger {
        JournalLogger {
            socket: LogSocket::new(path, Streams::No),
            lost: Lost::default(),
        }
    }
}

impl log::Log for JournalLogger {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }

    fn log(&self, record: &log::Record) {
        let mut fields = Fields::default();
        // Visiting our own fields does not fail; a field that could not be
        // read would be left out, the line kept.
        let _ = record.key_values().visit(&mut fields);
        self.lost.deliver(record.args(), usize::MAX, |line| {
            self.socket
                .send(&journal_datagram(record.level(), line, &fields.0))
        });
    }

    fn flush(&self) {}
}

/// A record's key-values as journal fields: the key in capitals (`peer`
/// is `PEER=`), left out when it cannot be a field's name.
#[derive(Default)]
struct Fields(Vec<(String, String)>);

impl<'kvs> VisitSource<'kvs> for Fields {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), kv::Error> {
        let name = key.as_str().to_ascii_uppercase();
        // The journal's rule for the names a client may set.
        let valid = name.len() <= 64
            && name.starts_with(|c: char| c.is_ascii_uppercase())
            && name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        if valid {
            self.0.push((name, value.to_string()));
        }
        Ok(())
    }
}

/// The journal's syslog facility for daemons (`LOG_DAEMON >> 3`).
const JOURNAL_FACILITY: u8 = 3;

/// One datagram of the journal's native protocol: `MESSAGE=` the line,
/// `PRIORITY=` its syslog severity, `SYSLOG_IDENTIFIER=` and
/// `SYSLOG_FACILITY=`, then the record's own fields. A value with a
/// newline in it, which would end the field early, is given in the
/// protocol's binary form: the name, a newline, the value's length as 64
/// bits little-endian, the value.
pub fn journal_datagram(level: Level, message: &str, fields: &[(String, String)]) -> Vec<u8> {
    let priority = match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    };
    let fixed = [
        ("MESSAGE", message.to_owned()),
        ("PRIORITY", priority.to_string()),
        ("SYSLOG_IDENTIFIER", IDENT.to_owned()),
        ("SYSLOG_FACILITY", JOURNAL_FACILITY.to_string()),
    ];
    let own = fields.iter().map(|(k, v)| (k.as_str(), v.clone()));
    let mut datagram = Vec::with_capacity(message.len() + 256);
    for (name, value) in fixed.into_iter().chain(own) {
        datagram.extend_from_slice(name.as_bytes());
        if value.contains('\n') {
            datagram.push(b'\n');
            datagram.extend_from_slice(&(value.len() as u64).to_le_bytes());
        } else {
            datagram.push(b'=');
        }
        datagram.extend_from_slice(value.as_bytes());
        datagram.push(b'\n');
    }
    datagram
}

/// One line per record on standard error, prefixed like syslog's, each in
/// one write of at most [`PIPE_BUF`] bytes so that lines of different
/// threads and processes never mix.
struct StderrLogger {
    /// Held while writing, so that no two threads race for the last room.
    writer: Mutex<StderrWriter>,
    lost: Lost,
}

/// How a line reaches standard error without waiting, and without setting
/// `O_NONBLOCK` on its file description, which is shared with whoever
/// started us.
enum StderrWriter {
    /// A pipe or a terminal, opened again through /proc for a description
    /// of our own that does not block. A terminal must be: poll says it
    /// has room as soon as it has any, and a longer line would block there,
    /// holding every thread that logs (a stalled ssh session once froze a
    /// listener that way).
    Reopened(File),
    /// A socket (the journal's, under systemd): sent with `MSG_DONTWAIT`.
    Socket,
    /// Anything else (a file, /dev/null), or a pipe or terminal where /proc
    /// is missing: written when poll says there is room.
    Polled,
}

impl StderrLogger {
    fn new() -> StderrLogger {
        let stderr = std::io::stderr();
        let kind = stderr
            .as_fd()
            .try_clone_to_owned()
            .and_then(|fd| File::from(fd).metadata())
            .map(|m| m.file_type());
        let terminal = nix::unistd::isatty(stderr.as_fd()).unwrap_or(false);
        let writer = match kind {
            Ok(kind) if kind.is_socket() => StderrWriter::Socket,
            Ok(kind) if kind.is_fifo() || terminal => OpenOptions::new()
                .write(true)
                // O_NOCTTY: opening a terminal must not make it ours.
                .custom_flags((OFlag::O_NONBLOCK | OFlag::O_NOCTTY).bits())
                .open("/proc/self/fd/2")
                .map_or(StderrWriter::Polled, StderrWriter::Reopened),
            _ => StderrWriter::Polled,
        };
        StderrLogger {
            writer: Mutex::new(writer),
            lost: Lost::default(),
        }
    }

    /// Writes `line` whole at once, or not at all.
    fn write(&self, line: &[u8]) -> bool {
        let writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let stderr = std::io::stderr();
        let written = match &*writer {
            StderrWriter::Reopened(file) => nix::unistd::write(file, line),
            StderrWriter::Socket => {
                let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
                socket::send(stderr.as_fd().as_raw_fd(), line, flags)
            }
            StderrWriter::Polled => {
                let mut fds = [PollFd::new(stderr.as_fd(), PollFlags::POLLOUT)];
                let ready = poll(&mut fds, PollTimeout::ZERO).is_ok_and(|n| n > 0)
                    && fds[0].revents() == Some(PollFlags::POLLOUT);
                if !ready {
                    return false;
                }
                nix::unistd::write(stderr.as_fd(), line)
            }
        };
        written == Ok(line.len())
    }
}

impl log::Log for StderrLogger {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }

    fn log(&self, record: &log::Record) {
        let prefix = format!("{IDENT}[{}]: ", std::process::id());
        let cap = PIPE_BUF.saturating_sub(prefix.len() + 1);
        self.lost.deliver(record.args(), cap, |text| {
            let line = format!("{prefix}{text}\n");
            self.write(line.as_bytes())
        });
    }

    fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_is_found_by_its_name() {
        for (name, target) in Target::ALL {
            assert_eq!(Target::from_name(name), Some(target));
            assert_eq!(target.name(), name);
        }
        assert_eq!(Target::from_name("journald"), None);
    }

    #[test]
    fn a_journal_datagram_is_fields_and_a_value_with_a_newline_is_counted() {
        let fields = [("PEER".to_owned(), "192.0.2.7:51234".to_owned())];
        let datagram = journal_datagram(Level::Error, "two\nlines", &fields);
        let expected = [
            &b"MESSAGE\n"[..],
            &9u64.to_le_bytes(),
            b"two\nlines\n",
            b"PRIORITY=3\n",
            b"SYSLOG_IDENTIFIER=in.tcpmuxd\n",
            b"SYSLOG_FACILITY=3\n",
            b"PEER=192.0.2.7:51234\n",
        ]
        .concat();
        assert_eq!(datagram, expected);
    }

    #[test]
    fn only_names_the_journal_takes_become_fields() {
        let mut fields = Fields::default();
        for key in ["peer", "service_2", "_pid", "2x", "a-b", ""] {
            fields.visit_pair(Key::from(key), Value::from("v")).unwrap();
        }
        let names: Vec<&str> = fields.0.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["PEER", "SERVICE_2"]);
    }

    #[test]
    fn the_note_of_lost_lines_says_how_many() {
        assert_eq!(lost_note(0), "");
        assert_eq!(lost_note(1), " (1 earlier log line lost)");
        assert_eq!(lost_note(3), " (3 earlier log lines lost)");
    }

    #[test]
    fn the_next_line_that_goes_out_carries_the_count_once() {
        let lost = Lost::default();
        let mut written = Vec::new();
        for (message, goes_out) in [("a", false), ("b", false), ("c", true), ("d", true)] {
            lost.deliver(message, usize::MAX, |line| {
                written.push((line.to_owned(), goes_out));
                goes_out
            });
        }
        let expected = [
            ("a", false),
            ("b (1 earlier log line lost)", false),
            ("c (2 earlier log lines lost)", true),
            ("d", true),
        ];
        assert_eq!(written, expected.map(|(l, w)| (l.to_owned(), w)));
    }

    #[test]
    fn a_capped_line_keeps_its_note_whole() {
        let lost = Lost::default();
        lost.deliver("x", 10, |_| false);
        let mut written = String::new();
        lost.deliver("\u{e9}".repeat(20), 29, |line| {
            written = line.to_owned();
            true
        });
        // The note takes 26 of the 29 bytes; the 3 left hold one two-byte
        // character, not one and a half.
        assert_eq!(written, "\u{e9} (1 earlier log line lost)");
        assert_eq!(written.len(), 28);
    }
}
