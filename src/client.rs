//! The client side of TCPMUX, for the `tcpmux` command: connect, ask for a
//! service, read the one reply line, then relay bytes or list services.
//!
//! It accepts the replies of the servers in the wild: `+`, `+Go`, `+OK`, and
//! NetBSD's HELP list that starts with a `+Available services:` line.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::os::fd::AsFd;
use std::thread;
use std::time::{Duration, Instant};

use crate::session::{ByteSource, FdSource};

/// The longest reply line read; a server that sends more is not TCPMUX.
pub const MAX_REPLY: usize = 1024;

/// The most of a HELP list kept.
pub const MAX_LIST: u64 = 16 << 20;

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

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::Io(e)
    }
}

/// Connects to `host` on `port`, trying each of its addresses in turn,
/// each within `timeout`.
pub fn connect(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, Error> {
    let addrs = (host, port)
        .to_socket_addrs()
        .map_err(|e| Error::Connect(format!("{host}: {e}")))?;
    let mut last = format!("{host}: no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = format!("{addr}: {e}"),
        }
    }
    Err(Error::Connect(last))
}

/// Sends `name` and reads the reply line, and not a byte past it, so that
/// what the service sends after it stays on the connection. Returns the message
/// after `+`.
pub fn request(stream: &TcpStream, name: &str, timeout: Duration) -> Result<String, Error> {
    let mut writer = stream;
    writer.write_all(format!("{name}\r\n").as_bytes())?;
    let line = read_line(stream, Instant::now() + timeout)?;
    match line.as_bytes().first() {
        Some(b'+') => Ok(line[1..].to_owned()),
        Some(b'-') => Err(Error::Refused(line[1..].to_owned())),
        _ if line.is_empty() => Err(Error::BadReply(
            "the server closed without a reply".to_owned(),
        )),
        _ => Err(Error::BadReply(format!("{line:?}"))),
    }
}

/// One line ended by LF (a CR before it is dropped), shown safely.
fn read_line(stream: &TcpStream, deadline: Instant) -> Result<String, Error> {
    let mut source = FdSource::new(stream.as_fd());
    let mut line = Vec::new();
    loop {
        let bytes = match source.peek(deadline) {
            Ok([]) => break,
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::TimedOut => return Err(Error::TimedOut),
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

/// Asks for HELP and returns the service names.
pub fn list(stream: &TcpStream, timeout: Duration) -> Result<Vec<String>, Error> {
    let mut writer = stream;
    writer.write_all(b"HELP\r\n")?;
    stream.set_read_timeout(Some(timeout))?;
    let mut reply = Vec::new();
    match stream.take(MAX_LIST).read_to_end(&mut reply) {
        Ok(_) => {}
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            return Err(Error::TimedOut);
        }
        Err(e) => return Err(e.into()),
    }
    parse_help(&reply)
}

/// The names in a HELP reply: one per line, CR LF or LF. A first line that
/// starts with `+` is NetBSD's header, not a name; a `-` line is a refusal.
pub fn parse_help(reply: &[u8]) -> Result<Vec<String>, Error> {
    let mut lines = reply
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.is_empty())
        .peekable();
    match lines.peek().and_then(|l| l.first()) {
        Some(b'+') => {
            lines.next();
        }
        Some(b'-') => {
            let line = lines.next().unwrap_or_default();
            return Err(Error::Refused(printable(&line[1..])));
        }
        _ => {}
    }
    Ok(lines.map(printable).collect())
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

    #[test]
    fn help_lists_of_every_style_are_read() {
        let names = |reply: &[u8]| parse_help(reply).unwrap();
        assert_eq!(names(b"tcpmux\r\necho\r\n"), ["tcpmux", "echo"]);
        assert_eq!(names(b"tcpmux\necho\n"), ["tcpmux", "echo"]);
        assert_eq!(
            names(b"+Available services:\r\nhelp\r\necho\r\n"),
            ["help", "echo"]
        );
        assert_eq!(names(b""), Vec::<String>::new());
        assert_eq!(names(b"odd\x1b[2Jname\r\n"), ["odd?[2Jname"]);
    }

    #[test]
    fn a_refused_help_is_an_error() {
        let refused = parse_help(b"-Service not available\r\n").unwrap_err();
        assert_eq!(refused.to_string(), "refused: Service not available");
        assert_eq!(refused.exit_code(), 3);
    }
}
