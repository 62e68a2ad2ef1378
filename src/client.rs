//! The client side of TCPMUX, for the `tcpmux` command: connect, ask for a
//! service, read the one reply line, then relay bytes or list services.
//!
//! It accepts the replies of the servers in the wild: `+`, `+Go`, `+OK`, and
//! NetBSD's HELP list that starts with a `+Available services:` line.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::os::fd::AsFd;
use std::thread;
use std::time::Instant;

use crate::source::{ByteSource, FdSink, FdSource, ReplySink};

/// The longest reply line read, and the longest line of a HELP list; a
/// server that sends more is not TCPMUX.
pub const MAX_REPLY: usize = 1024;

/// What went wrong, each with its own exit status (see `tcpmux(1)`).
#[derive(Debug)]
pub enum Error {
    /// No address of the host would take a connection.
    Connect(String),
    /// The server said `-`, with this explanation.
    Refused(String),
    /// The reply was not a TCPMUX reply line.
    BadReply(String),
    /// No reply line before the deadline.
    TimedOut,
    Io(io::Error),
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Connect(_) => 1,
            Error::Refused(_) => 3,
            Error::BadReply(_) => 4,
            Error::TimedOut => 5,
            Error::Io(_) => 7,
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Connect(why) => write!(f, "cannot connect: {why}"),
            Error::Refused(why) if why.is_empty() => f.write_str("refused"),
            Error::Refused(why) => write!(f, "refused: {why}"),
            Error::BadReply(why) => write!(f, "not a TCPMUX reply: {why}"),
            Error::TimedOut => f.write_str("timed out waiting for the reply"),
            Error::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::Io(e)
    }
}

/// Connects to `host` on `port`, trying each of its addresses in turn with
/// the time left before `deadline`.
pub fn connect(host: &str, port: u16, deadline: Instant) -> Result<TcpStream, Error> {
    let addrs = (host, port)
        .to_socket_addrs()
        .map_err(|e| Error::Connect(format!("{host}: {e}")))?;
    let mut last = format!("{host}: no address");
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            last = format!("{addr}: timed out");
            break;
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = format!("{addr}: {e}"),
        }
    }
    Err(Error::Connect(last))
}

/// Sends `name` and reads the reply line, and not a byte past it, so that
/// what the service sends after it stays on the connection, all before
/// `deadline`. Returns the message after `+`.
pub fn request(stream: &TcpStream, name: &str, deadline: Instant) -> Result<String, Error> {
    send_request(stream, name, deadline, |stream| {
        let line = read_line(stream, deadline)?;
        match line.as_bytes().first() {
            Some(b'+') => Ok(line[1..].to_owned()),
            Some(b'-') => Err(Error::Refused(line[1..].to_owned())),
            _ if line.is_empty() => Err(Error::BadReply(
                "the server closed without a reply".to_owned(),
            )),
            _ => Err(Error::BadReply(format!("{line:?}"))),
        }
    })
}

/// Whether `e` says the server reset the connection, or closed it before
/// our bytes arrived: its reply may have arrived all the same.
fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
    )
}

/// Sends `name` and CR LF before `deadline`, then reads the reply with
/// `read`. A server that refuses without reading, as a busy one does, may
/// have reset the connection before the name went out: its reply line is
/// still in the socket, so it is read and reported, and the failed send
/// only when no reply came.
fn send_request<T>(
    stream: &TcpStream,
    name: &str,
    deadline: Instant,
    read: impl FnOnce(&TcpStream) -> Result<T, Error>,
) -> Result<T, Error> {
    let line = format!("{name}\r\n");
    match FdSink::new(stream.as_fd()).send(line.as_bytes(), deadline) {
        Ok(()) => read(stream),
        Err(e) if e.kind() == io::ErrorKind::TimedOut => Err(Error::TimedOut),
        Err(e) if is_reset(&e) => match read(stream) {
            Err(Error::Io(_) | Error::BadReply(_)) => Err(e.into()),
            replied => replied,
        },
        Err(e) => Err(e.into()),
    }
}

/// One line ended by LF (a CR before it is dropped), shown safely. A reset
/// that cuts a `-` line short ends it: the refusal is what the server said.
fn read_line(stream: &TcpStream, deadline: Instant) -> Result<String, Error> {
    let mut source = FdSource::new(stream.as_fd());
    let mut line = Vec::new();
    loop {
        let bytes = match source.peek(deadline) {
            Ok([]) => break,
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::TimedOut => return Err(Error::TimedOut),
            Err(e) if is_reset(&e) && line.first() == Some(&b'-') => break,
            Err(e) => return Err(e.into()),
        };
        // Up to the LF and no further: what follows is the service's.
        let (taken, text) = match bytes.iter().position(|&b| b == b'\n') {
            Some(lf) => (lf + 1, &bytes[..lf]),
            None => (bytes.len(), bytes),
        };
        if line.len() + text.len() > MAX_REPLY {
            return Err(Error::BadReply(format!("a line over {MAX_REPLY} bytes")));
        }
        line.extend_from_slice(text);
        let done = taken > text.len();
        source.consume(taken)?;
        if done {
            break;
        }
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(printable(&line))
}

/// A server's words, with anything that could upset a terminal made `?`.
pub fn printable(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if (0x20..0x7f).contains(&b) {
                b as char
            } else {
                '?'
            }
        })
        .collect()
}

/// Asks for HELP and writes the service names to `out`, one per line, as
/// they arrive: memory does not grow with the list, and every line is at
/// most [`MAX_REPLY`] bytes. The whole list must arrive before `deadline`.
/// `out` is flushed after each block read, so a reader sees the names
/// while the rest is on its way.
pub fn list(stream: &TcpStream, deadline: Instant, out: &mut impl Write) -> Result<(), Error> {
    send_request(stream, "HELP", deadline, |stream| {
        let mut source = FdSource::new(stream.as_fd());
        let mut help = HelpList::default();
        loop {
            let bytes = match source.peek(deadline) {
                Ok([]) => break,
                Ok(bytes) => bytes,
                Err(e) if e.kind() == io::ErrorKind::TimedOut => return Err(Error::TimedOut),
                Err(e) if is_reset(&e) => return Err(help.reset(e)),
                Err(e) => return Err(e.into()),
            };
            let n = bytes.len();
            help.feed(bytes, out)?;
            source.consume(n)?;
            out.flush()?;
        }
        help.finish(out)?;
        out.flush()?;
        Ok(())
    })
}

/// A HELP reply taken apart as it arrives: names one per line, CR LF or
/// LF. A first line that starts with `+` is NetBSD's header, not a name; a
/// first line that starts with `-` is a refusal. Blank lines are skipped.
#[derive(Default)]
pub struct HelpList {
    /// The line so far, without its LF but with any CR; never over
    /// [`MAX_REPLY`] bytes.
    line: Vec<u8>,
    /// Whether a line other than a blank one has ended.
    started: bool,
}

impl HelpList {
    /// Takes the next bytes of the reply, writing each name it completes.
    pub fn feed(&mut self, mut bytes: &[u8], out: &mut impl Write) -> Result<(), Error> {
        while let Some(lf) = bytes.iter().position(|&b| b == b'\n') {
            self.extend(&bytes[..lf])?;
            self.end_line(out)?;
            bytes = &bytes[lf + 1..];
        }
        self.extend(bytes)
    }

    /// The end of the reply: a last line without its LF is a line too.
    pub fn finish(&mut self, out: &mut impl Write) -> Result<(), Error> {
        self.end_line(out)
    }

    /// What a reset in the middle of the reply means: a refusal when the
    /// first line was a `-` line, else a failure; the names that arrived
    /// were written.
    pub fn reset(&mut self, e: io::Error) -> Error {
        if !self.started && self.line.first() == Some(&b'-') {
            let mut sink = io::sink();
            if let Err(refused) = self.end_line(&mut sink) {
                return refused;
            }
        }
        e.into()
    }

    fn extend(&mut self, bytes: &[u8]) -> Result<(), Error> {
        if self.line.len() + bytes.len() > MAX_REPLY {
            return Err(Error::BadReply(format!("a line over {MAX_REPLY} bytes")));
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn end_line(&mut self, out: &mut impl Write) -> Result<(), Error> {
        let mut line = std::mem::take(&mut self.line);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if line.is_empty() {
            return Ok(());
        }
        let first = !std::mem::replace(&mut self.started, true);
        match line[0] {
            b'+' if first => Ok(()),
            b'-' if first => Err(Error::Refused(printable(&line[1..]))),
            _ => {
                writeln!(out, "{}", printable(&line))?;
                Ok(())
            }
        }
    }
}

/// Copies `input` to the connection and the connection to `output` until
/// the server closes. At the end of `input` the sending side is shut, so
/// the service sees EOF and may still answer.
pub fn relay(
    stream: &TcpStream,
    mut input: impl Read + Send + 'static,
    output: &mut impl Write,
) -> Result<(), Error> {
    let mut to_server = stream.try_clone()?;
    thread::spawn(move || {
        let _ = io::copy(&mut input, &mut to_server);
        let _ = to_server.shutdown(Shutdown::Write);
    });
    let mut from_server = stream;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from_server.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        output.write_all(&buf[..n])?;
        output.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names a whole HELP reply gives, fed in pieces of `step` bytes.
    fn names(reply: &[u8], step: usize) -> Result<String, Error> {
        let mut help = HelpList::default();
        let mut out = Vec::new();
        for piece in reply.chunks(step) {
            help.feed(piece, &mut out)?;
        }
        help.finish(&mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn help_lists_of_every_style_are_read_whatever_the_pieces() {
        for step in [1, 2, 3, 7, 4096] {
            let names = |reply: &[u8]| names(reply, step).unwrap();
            assert_eq!(names(b"tcpmux\r\necho\r\n"), "tcpmux\necho\n");
            assert_eq!(names(b"tcpmux\necho\n"), "tcpmux\necho\n");
            assert_eq!(names(b"tcpmux\r\necho"), "tcpmux\necho\n");
            assert_eq!(
                names(b"+Available services:\r\nhelp\r\necho\r\n"),
                "help\necho\n"
            );
            assert_eq!(names(b"\r\n+header\r\n\r\n+a\r\n-b\r\n"), "+a\n-b\n");
            assert_eq!(names(b""), "");
            assert_eq!(names(b"odd\x1b[2Jname\r\n"), "odd?[2Jname\n");
        }
    }

    #[test]
    fn a_refused_help_is_an_error() {
        for reply in [
            &b"-Service not available\r\n"[..],
            b"-Service not available",
        ] {
            let refused = names(reply, 5).unwrap_err();
            assert_eq!(refused.to_string(), "refused: Service not available");
            assert_eq!(refused.exit_code(), 3);
        }
    }

    #[test]
    fn a_line_is_bounded() {
        // 1024 bytes before the LF, a CR included, is the most.
        let long = [vec![b'a'; MAX_REPLY - 1], b"\r\nb\n".to_vec()].concat();
        assert_eq!(names(&long, 100).unwrap().len(), MAX_REPLY + 2);
        let longer = vec![b'a'; MAX_REPLY + 1];
        let err = names(&longer, 100).unwrap_err();
        assert_eq!(
            err.to_string(),
            "not a TCPMUX reply: a line over 1024 bytes"
        );
        assert_eq!(err.exit_code(), 4);
    }

    #[test]
    fn a_reset_after_a_refusal_is_the_refusal() {
        let reset = || io::Error::from(io::ErrorKind::ConnectionReset);
        let mut help = HelpList::default();
        help.feed(b"-Server bu", &mut io::sink()).unwrap();
        let err = help.reset(reset());
        assert_eq!(
            (err.to_string(), err.exit_code()),
            ("refused: Server bu".into(), 3)
        );
        let mut help = HelpList::default();
        help.feed(b"one\r\n-tw", &mut io::sink()).unwrap();
        assert_eq!(help.reset(reset()).exit_code(), 7);
    }

    /// A connection the server already closed, its reply unread, and reset
    /// by the time the client sends: the reply is reported, not the reset.
    fn reset_after(reply: &'static [u8]) -> TcpStream {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        server.write_all(reply).unwrap();
        drop(server);
        // Bytes to a closed socket draw a reset; wait until it has come.
        let mut probe = &client;
        probe.write_all(b"x").unwrap();
        while probe.write_all(b"x").is_ok() {
            thread::yield_now();
        }
        client
    }

    #[test]
    fn a_reset_before_the_name_went_out_reports_the_reply() {
        let deadline = Instant::now() + std::time::Duration::from_secs(20);
        let stream = reset_after(b"-Server busy\r\n");
        let err = request(&stream, "svc", deadline).unwrap_err();
        assert_eq!(
            (err.to_string(), err.exit_code()),
            ("refused: Server busy".into(), 3)
        );
        let stream = reset_after(b"-Server busy\r\n");
        let err = list(&stream, deadline, &mut Vec::new()).unwrap_err();
        assert_eq!(
            (err.to_string(), err.exit_code()),
            ("refused: Server busy".into(), 3)
        );
        let stream = reset_after(b"");
        let err = request(&stream, "svc", deadline).unwrap_err();
        assert_eq!(err.exit_code(), 7, "{err}");
    }
}
