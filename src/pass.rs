//! Passing a client's connection to a running daemon over a Unix socket:
//! the descriptor itself (SCM_RIGHTS), with one message that says what it
//! is, so the daemon owns the connection with no relay and no copy.
//!
//! The message, version 1, is text: a first line naming the format and its
//! version, one line a field, and an empty line at the end, all in one
//! `sendmsg` that carries the descriptor:
//!
//! ```text
//! tcpmux-pass 1
//! service echo
//! client 192.0.2.7 40000
//! local 192.0.2.1 1
//!
//! ```
//!
//! `service` is the name as the client asked for it (printable ASCII, no
//! space); `client` and `local` are the connection's two ends, an address
//! and a port, left out when unknown. A receiver must ignore fields it does
//! not know, and refuse a version it does not. Every byte the client sent
//! after its request line is still unread on the connection.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};

/// The first line of every message.
pub const MAGIC: &str = "tcpmux-pass";

/// The version this server sends.
pub const VERSION: u32 = 1;

/// The message that describes a passed connection.
pub fn message(service: &str, client: Option<SocketAddr>, local: Option<SocketAddr>) -> String {
    let mut text = format!("{MAGIC} {VERSION}\nservice {service}\n");
    for (key, addr) in [("client", client), ("local", local)] {
        if let Some(addr) = addr {
            text.push_str(&format!("{key} {} {}\n", addr.ip(), addr.port()));
        }
    }
    text.push('\n');
    text
}

/// Sends `connection` and `message` to the daemon on `daemon`, in one
/// `sendmsg`. The caller closes its own copy afterwards.
pub fn send(daemon: &UnixStream, connection: BorrowedFd, message: &str) -> io::Result<()> {
    let fds = [connection.as_raw_fd()];
    let control = [ControlMessage::ScmRights(&fds)];
    let bytes = message.as_bytes();
    let iov = [IoSlice::new(bytes)];
    let sent = sendmsg::<()>(
        daemon.as_raw_fd(),
        &iov,
        &control,
        MsgFlags::MSG_NOSIGNAL,
        None,
    )?;
    if sent != bytes.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "the daemon's socket took only part of the message",
        ));
    }
    Ok(())
}

/// Receives one passed connection on `socket`, as a daemon does: the
/// message, parsed, and the connection. For daemons written in Rust
/// (`examples/pass_receiver.rs`) and for the tests.
pub fn receive(socket: &UnixStream) -> io::Result<(Received, OwnedFd)> {
    // A version 1 message is far shorter: a name of at most 256 bytes and
    // two addresses.
    let mut buf = [0u8; 1024];
    let (mut n, fd) = crate::sys::receive_with_fd(socket.as_fd(), &mut buf)?;
    let invalid = |why: String| io::Error::new(io::ErrorKind::InvalidData, why);
    let fd = fd.ok_or_else(|| invalid("no descriptor came with the message".to_owned()))?;
    // A stream socket may hand the message over in parts: read on to its
    // empty line.
    while !buf[..n].ends_with(b"\n\n") {
        if n == buf.len() {
            return Err(invalid("a message longer than 1024 bytes".to_owned()));
        }
        match io::Read::read(&mut &*socket, &mut buf[n..])? {
            0 => {
                return Err(invalid(
                    "the message ended before its empty line".to_owned(),
                ));
            }
            more => n += more,
        }
    }
    let text = std::str::from_utf8(&buf[..n]).map_err(|_| invalid("not text".to_owned()))?;
    Ok((parse(text).map_err(invalid)?, fd))
}

/// A message as a receiver reads it back: the fields of a version 1
/// message, or why it is not one. For receivers written in Rust, and for
/// the tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub service: String,
    pub client: Option<SocketAddr>,
    pub local: Option<SocketAddr>,
}

/// Parses a message, up to its empty line.
pub fn parse(text: &str) -> Result<Received, String> {
    let mut lines = text.lines();
    match lines.next().map(|l| l.split_once(' ')) {
        Some(Some((MAGIC, "1"))) => {}
        Some(Some((MAGIC, version))) => return Err(format!("version {version} is not known")),
        _ => return Err(format!("not a {MAGIC} message")),
    }
    let mut received = Received {
        service: String::new(),
        client: None,
        local: None,
    };
    for line in lines.take_while(|l| !l.is_empty()) {
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        let addr = || -> Result<SocketAddr, String> {
            let (ip, port) = value
                .split_once(' ')
                .ok_or_else(|| format!("{key}: not an address and a port"))?;
            let ip = ip
                .parse()
                .map_err(|_| format!("{key}: {ip:?} is not an address"))?;
            let port = port
                .parse()
                .map_err(|_| format!("{key}: {port:?} is not a port"))?;
            Ok(SocketAddr::new(ip, port))
        };
        match key {
            "service" => received.service = value.to_owned(),
            "client" => received.client = Some(addr()?),
            "local" => received.local = Some(addr()?),
            // Later versions may add fields; they are ignored.
            _ => {}
        }
    }
    if received.service.is_empty() {
        return Err("no service".to_owned());
    }
    Ok(received)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_says_what_it_is_and_parses_back() {
        let client: SocketAddr = "192.0.2.7:40000".parse().unwrap();
        let local: SocketAddr = "[2001:db8::1]:1".parse().unwrap();
        let text = message("echo", Some(client), Some(local));
        assert_eq!(
            text,
            "tcpmux-pass 1\nservice echo\nclient 192.0.2.7 40000\nlocal 2001:db8::1 1\n\n"
        );
        let back = parse(&text).unwrap();
        assert_eq!(
            back,
            Received {
                service: "echo".to_owned(),
                client: Some(client),
                local: Some(local)
            }
        );
        assert_eq!(message("x", None, None), "tcpmux-pass 1\nservice x\n\n");
        assert_eq!(
            parse("tcpmux-pass 2\n\n"),
            Err("version 2 is not known".to_owned())
        );
        assert!(parse("tcpmux-pass 1\nservice x\nlater field\n\n").is_ok());
    }

    #[test]
    fn the_descriptor_arrives_with_the_message() {
        use std::io::{Read, Write};
        use std::os::fd::AsFd;
        let (ours, theirs) = UnixStream::pair().unwrap();
        let (mut a, b) = UnixStream::pair().unwrap();
        send(&ours, b.as_fd(), &message("echo", None, None)).unwrap();
        drop(b);
        let (received, passed) = receive(&theirs).unwrap();
        assert_eq!(received.service, "echo");
        let mut passed = UnixStream::from(passed);
        passed.write_all(b"through the passed descriptor").unwrap();
        drop(passed);
        let mut got = Vec::new();
        a.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"through the passed descriptor");
    }
}
