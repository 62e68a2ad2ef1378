//! Where log lines go. Under a super-server, standard output and standard
//! error are the client's socket, so the default is syslog, and when syslog
//! cannot be reached the lines are dropped rather than sent to the client.
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The local syslog daemon, facility daemon.
    Syslog,
    /// Standard error, for a foreground process; never under inetd.
    Stderr,
    /// Nowhere.
    None,
}

impl Target {
    /// Every target, as `--log` names it.
    pub const ALL: [(&'static str, Target); 3] = [
        ("syslog", Target::Syslog),
        ("stderr", Target::Stderr),
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

/// Where the log goes, as the command line says: `--log` and
/// `--syslog-socket`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Log {
    pub target: Target,
    pub syslog_socket: PathBuf,
}

impl Log {
    /// Sets up the global logger; see [`init`].
    pub fn init(&self) -> Target {
        init(self.target, &self.syslog_socket)
    }
}

/// The most a write to a pipe carries in one piece (POSIX's `PIPE_BUF`):
/// a line of standard error no longer than this is never interleaved with
/// another thread's or process's.
pub const PIPE_BUF: usize = 4096;

/// Sets up the global logger and returns the target in use. Never fails: a
/// syslog socket that is missing or refuses us loses the lines, which are
/// counted, and the server runs on.
///
/// Standard error asked for where it is the client's connection (`--log
/// stderr` under inetd or xinetd, which hand the socket over on fds 0 to 2)
/// is not used: log text would reach the client in the middle of the
/// service's data. The lines go to syslog instead, the first of them saying
/// why.
pub fn init(asked: Target, syslog_socket: &Path) -> Target {
    let target = match asked {
        Target::Stderr if stderr_is_the_connection() => Target::Syslog,
        target => target,
    };
    let logger: Box<dyn log::Log> = match target {
        Target::Syslog => Box::new(SyslogLogger::new(syslog_socket)),
        Target::Stderr => Box::new(StderrLogger::new()),
        Target::None => return target,
    };
    if log::set_boxed_logger(logger).is_ok() {
        log::set_max_level(LevelFilter::Info);
    }
    if target != asked {
        log::warn!("{FELL_BACK}");
    }
    target
}

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
    path: PathBuf,
    /// None until the socket can be reached, and again once it broke.
    connection: Mutex<Option<Connection>>,
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
            path: path.to_owned(),
            // Connect now, while the process still has the rights it started
            // with; a service's launch drops them before its log line.
            connection: Mutex::new(Connection::open(path)),
            lost: Lost::default(),
        }
    }

    /// Sends one formatted line, connecting first when there is no
    /// connection, and once more when the connection broke: a restarted
    /// daemon makes a new socket at the same path.
    fn send(&self, line: &[u8]) -> bool {
        let mut connection = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        for _ in 0..2 {
            if connection.is_none() {
                *connection = Connection::open(&self.path);
            }
            let Some(open) = connection.as_ref() else {
                return false;
            };
            match open.send(line) {
                Sent::Yes => return true,
                Sent::Full => return false,
                Sent::Broken => *connection = None,
            }
        }
        false
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
            self.formatter.format(&mut datagram, severity, line).is_ok() && self.send(&datagram)
        });
    }

    fn flush(&self) {}
}

/// A socket to the syslog daemon, non-blocking from its creation: even the
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
    fn open(path: &Path) -> Option<Connection> {
        let address = UnixAddr::new(path).ok()?;
        let flags = SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK;
        let datagram = socket::socket(AddressFamily::Unix, SockType::Datagram, flags, None).ok()?;
        match socket::connect(datagram.as_raw_fd(), &address) {
            Ok(()) => return Some(Connection::Datagram(datagram)),
            Err(Errno::EPROTOTYPE) => {}
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
        assert_eq!(Target::from_name("journal"), None);
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
