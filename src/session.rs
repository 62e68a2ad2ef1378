//! One TCPMUX conversation: read request lines within their deadline, consult
//! the service table, write the replies, and say how the conversation ended.
//!
//! The session reads one byte at a time, so it never takes a byte past the
//! CR LF it answers; what the client sends after that stays unread for the
//! service that gets the connection. A name is at most 258 reads, and a
//! process is about to be started or the connection closed anyway, so the
//! extra system calls cost nothing that shows.
//!
//! It does no launching itself: when a service is chosen it returns, and the
//! caller (inetd mode or the listener) hands the connection over.

use std::io::{self, Write};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::exit::Exit;
use crate::peer::Peer;
use crate::protocol::{self, LineError, LineParser, Request, Step};
use crate::table::{Lookup, Service, Table};

/// Where the request bytes come from, one at a time, with a deadline.
pub trait ByteSource {
    /// The next byte; `Ok(None)` at end of input; an error of kind
    /// `TimedOut` when `deadline` passes first.
    fn next_byte(&mut self, deadline: Instant) -> io::Result<Option<u8>>;
}

/// A [`ByteSource`] over a file descriptor: a socket, a pipe or a terminal.
/// `poll` waits for the remaining time, so the deadline holds for the whole
/// line however the client spreads its bytes.
pub struct FdSource<F: AsFd> {
    fd: F,
}

impl<F: AsFd> FdSource<F> {
    pub fn new(fd: F) -> Self {
        FdSource { fd }
    }
}

impl<F: AsFd> ByteSource for FdSource<F> {
    fn next_byte(&mut self, deadline: Instant) -> io::Result<Option<u8>> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            // Round up, so a few microseconds left is a wait, not a busy loop.
            let millis = left.as_millis().saturating_add(1);
            let timeout = PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX);
            let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, timeout) {
                Ok(0) | Err(Errno::EINTR) => continue,
                Ok(_) => {}
                Err(e) => return Err(e.into()),
            }
            let mut byte = [0u8];
            match nix::unistd::read(self.fd.as_fd(), &mut byte) {
                Ok(0) => return Ok(None),
                Ok(_) => return Ok(Some(byte[0])),
                Err(Errno::EINTR | Errno::EAGAIN) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// How a conversation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The list was sent; the connection is to be closed.
    Help,
    /// A name not in the table; a refusal was sent.
    Unknown { name: String },
    /// A name in the table that this peer may not use; the same refusal as
    /// for an unknown name was sent.
    Denied { name: String },
    /// A service was chosen and nothing has been sent for it yet: the caller
    /// sends `+` if the table says so, and hands over the connection.
    Launch { service: Service },
    /// The line broke a rule; its refusal was sent.
    BadLine { error: LineError, received: String },
    /// The deadline passed before a whole line; the timeout line was sent.
    TimedOut { received: String },
    /// The client closed before a whole line; nothing was sent.
    Eof { received: String },
}

/// An outcome and how many times the client asked for `tcpmux` before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub outcome: Outcome,
    pub mux_accepts: u32,
}

/// Runs one conversation. `Err` means the connection itself failed (a read
/// error or a reply that could not be written); the client is gone.
pub fn serve(
    source: &mut impl ByteSource,
    out: &mut impl Write,
    table: &Table,
    peer: &Peer,
    timeout: Duration,
) -> io::Result<Report> {
    let mut mux_accepts = 0;
    loop {
        let outcome = match read_request(source, timeout)? {
            Ok(Request::Help) => {
                let names = table.visible_names(peer);
                reply(out, &protocol::help_reply(names))?;
                Outcome::Help
            }
            Ok(Request::Service(name)) => match table.lookup(&name, peer) {
                Lookup::Mux => {
                    reply(out, protocol::MUX_ACCEPT)?;
                    mux_accepts += 1;
                    continue;
                }
                Lookup::Service(service) => Outcome::Launch {
                    service: service.clone(),
                },
                Lookup::Denied => {
                    reply(out, protocol::UNKNOWN_SERVICE)?;
                    Outcome::Denied { name }
                }
                Lookup::Unknown => {
                    reply(out, protocol::UNKNOWN_SERVICE)?;
                    Outcome::Unknown { name }
                }
            },
            Err(ended) => {
                match &ended {
                    Outcome::BadLine { error, .. } => reply(out, error.reply())?,
                    Outcome::TimedOut { .. } => reply(out, protocol::TIMED_OUT)?,
                    _ => {}
                }
                ended
            }
        };
        return Ok(Report {
            outcome,
            mux_accepts,
        });
    }
}

/// Reads one request line within `timeout`. The inner `Err` is the outcome
/// of a line that did not make a request.
fn read_request(
    source: &mut impl ByteSource,
    timeout: Duration,
) -> io::Result<Result<Request, Outcome>> {
    let deadline = Instant::now() + timeout;
    let mut parser = LineParser::new();
    loop {
        let byte = match source.next_byte(deadline) {
            Ok(Some(byte)) => byte,
            Ok(None) => {
                let received = parser.received().to_owned();
                return Ok(Err(Outcome::Eof { received }));
            }
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                let received = parser.received().to_owned();
                return Ok(Err(Outcome::TimedOut { received }));
            }
            Err(e) => return Err(e),
        };
        match parser.push(byte) {
            Step::More => {}
            Step::Done(request) => return Ok(Ok(request)),
            Step::Failed(error) => {
                let received = parser.received().to_owned();
                return Ok(Err(Outcome::BadLine { error, received }));
            }
        }
    }
}

fn reply(out: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    out.write_all(bytes)?;
    out.flush()
}

impl Outcome {
    /// The exit status that tells how a conversation ended.
    pub fn exit(&self) -> Exit {
        match self {
            Outcome::Help | Outcome::Launch { .. } => Exit::Ok,
            Outcome::Unknown { .. } | Outcome::Denied { .. } => Exit::Refused,
            Outcome::BadLine { .. } => Exit::BadLine,
            Outcome::TimedOut { .. } => Exit::TimedOut,
            Outcome::Eof { .. } => Exit::Eof,
        }
    }
}

/// The one log line of a connection: peer, name, outcome. Every name in it
/// went through the line parser, which keeps only printable ASCII, so a
/// client cannot forge log lines.
pub fn log_line(peer: &Peer, result: &io::Result<Report>) -> String {
    let report = match result {
        Ok(report) => report,
        Err(e) => return format!("peer={peer} outcome=io-error ({e})"),
    };
    let mux = match report.mux_accepts {
        0 => String::new(),
        n => format!(" tcpmux={n}"),
    };
    let body = match &report.outcome {
        Outcome::Help => "name=HELP outcome=help".to_owned(),
        Outcome::Unknown { name } => format!("name={name} outcome=unknown"),
        Outcome::Denied { name } => format!("name={name} outcome=denied"),
        Outcome::Launch { service } => format!("name={} outcome=launch", service.name),
        Outcome::BadLine { error, received } => {
            format!("name={} outcome=bad-line ({error})", shown(received))
        }
        Outcome::TimedOut { received } => format!("name={} outcome=timeout", shown(received)),
        Outcome::Eof { received } => format!("name={} outcome=eof", shown(received)),
    };
    format!("peer={peer} {body}{mux}")
}

/// A partial name, or `-` when nothing was received.
fn shown(received: &str) -> &str {
    if received.is_empty() { "-" } else { received }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes as the client sent them; when they run out, either the client
    /// closed or it went silent until the deadline.
    struct Script {
        bytes: Vec<u8>,
        at: usize,
        then_silence: bool,
    }

    impl ByteSource for Script {
        fn next_byte(&mut self, _deadline: Instant) -> io::Result<Option<u8>> {
            let byte = self.bytes.get(self.at).copied();
            self.at += 1;
            match byte {
                Some(b) => Ok(Some(b)),
                None if self.then_silence => Err(io::ErrorKind::TimedOut.into()),
                None => Ok(None),
            }
        }
    }

    fn run(input: &[u8], then_silence: bool) -> (Report, Vec<u8>, usize) {
        run_with(&Table::builtin(), &Peer::unknown(), input, then_silence)
    }

    fn run_with(
        table: &Table,
        peer: &Peer,
        input: &[u8],
        then_silence: bool,
    ) -> (Report, Vec<u8>, usize) {
        let mut script = Script {
            bytes: input.to_vec(),
            at: 0,
            then_silence,
        };
        let mut out = Vec::new();
        let timeout = Duration::from_secs(10);
        let report = serve(&mut script, &mut out, table, peer, timeout).unwrap();
        (report, out, script.at)
    }

    #[test]
    fn help_lists_tcpmux_and_ends() {
        let (report, out, _) = run(b"HELP\r\n", false);
        assert_eq!(out, b"tcpmux\r\n");
        assert_eq!(report.outcome, Outcome::Help);
    }

    #[test]
    fn tcpmux_is_accepted_and_the_protocol_begins_again() {
        let (report, out, _) = run(b"tcpmux\r\nTCPMUX\r\nhelp\r\n", false);
        assert_eq!(out, b"+OK\r\n+OK\r\ntcpmux\r\n");
        assert_eq!(report.outcome, Outcome::Help);
        assert_eq!(report.mux_accepts, 2);
    }

    #[test]
    fn an_unknown_name_is_refused() {
        let (report, out, _) = run(b"Echo\r\n", false);
        assert_eq!(out, protocol::UNKNOWN_SERVICE);
        let name = "Echo".to_owned();
        assert_eq!(report.outcome, Outcome::Unknown { name });
    }

    #[test]
    fn nothing_past_the_answered_line_is_read() {
        let (_, _, consumed) = run(b"nosuch\r\nhello\r\n", false);
        assert_eq!(consumed, 8);
        let (_, _, consumed) = run(b"HELP\r\nmore", false);
        assert_eq!(consumed, 6);
    }

    #[test]
    fn a_bad_line_gets_its_own_refusal() {
        let (report, out, _) = run(b"tcp\nmux\r\n", false);
        assert_eq!(out, LineError::BareLf.reply());
        let received = "tcp".to_owned();
        let error = LineError::BareLf;
        assert_eq!(report.outcome, Outcome::BadLine { error, received });
    }

    #[test]
    fn silence_gets_the_timeout_line() {
        let (report, out, _) = run(b"tcpmux\r\ntc", true);
        assert_eq!(out, b"+OK\r\n-Timed out waiting for a service name\r\n");
        let received = "tc".to_owned();
        assert_eq!(report.outcome, Outcome::TimedOut { received });
    }

    #[test]
    fn eof_mid_line_sends_nothing() {
        let (report, out, _) = run(b"tcp", false);
        assert_eq!(out, b"");
        let received = "tcp".to_owned();
        assert_eq!(report.outcome, Outcome::Eof { received });
    }

    #[test]
    fn a_service_is_returned_for_launch_with_nothing_sent_and_nothing_more_read() {
        let table = crate::config::parse("t", "+echo nobody /bin/cat\n").unwrap();
        let (report, out, consumed) = run_with(&table, &Peer::unknown(), b"ECHO\r\nhi\r\n", false);
        assert_eq!(out, b"");
        assert_eq!(consumed, 6);
        let service = table.services()[0].clone();
        assert_eq!(report.outcome, Outcome::Launch { service });
    }

    #[test]
    fn a_denied_service_gets_the_unknown_line_and_is_not_listed() {
        let table = crate::config::parse("t", "+echo nobody allow=10.0.0.0/8 /bin/cat\n").unwrap();
        let outside = Peer {
            local: None,
            remote: Some("192.0.2.1:4000".parse().unwrap()),
        };
        let (report, out, _) = run_with(&table, &outside, b"echo\r\n", false);
        assert_eq!(out, protocol::UNKNOWN_SERVICE);
        let name = "echo".to_owned();
        assert_eq!(report.outcome, Outcome::Denied { name });
        let (_, out, _) = run_with(&table, &outside, b"HELP\r\n", false);
        assert_eq!(out, b"tcpmux\r\n");
    }
}
