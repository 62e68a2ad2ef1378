//! One TCPMUX conversation: read request lines, consult the service table,
//! write the replies, and say how the conversation ended, all within one
//! deadline.
//!
//! The deadline (`--timeout`) is set when the conversation starts and covers
//! all of it: every request line and every byte of every reply, the `+`
//! line for a service included when the caller sends it through
//! [`Conversation::reply`]. A client that dribbles its bytes, sends `tcpmux`
//! again and again, or never reads its replies holds its process or its
//! listener slot no longer than that. `tcpmux` is accepted at most
//! [`protocol::MAX_MUX_ACCEPTS`] times, and HELP is streamed through a
//! buffer of [`HELP_CHUNK`] bytes, so a conversation's memory does not grow
//! with the table either.
//!
//! Reading never takes a byte past the CR LF it answers, and writing never
//! blocks past the deadline: the bytes come and go through `source`, which
//! says how.
//!
//! It does no launching itself: when a service is chosen it returns, and the
//! caller (inetd mode or the listener) hands the connection over.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use crate::accept_proxy::{self, Trusted};
use crate::event::{self, Event};
use crate::peer::Peer;
use crate::protocol::{self, HelpReply, LineError, LineParser, Request, Step};
use crate::proxy::Invalid;
use crate::source::{ByteSource, ReplySink};
use crate::table::{Lookup, Service, Table};

/// The buffer HELP's reply goes through, whatever the table's size.
pub const HELP_CHUNK: usize = 4096;

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
    /// sends `+` if the table says so, through [`Conversation::reply`], and
    /// hands over the connection.
    Launch { service: Service },
    /// The line broke a rule; its refusal was sent.
    BadLine { error: LineError, received: String },
    /// `tcpmux` once more than [`protocol::MAX_MUX_ACCEPTS`]; its refusal
    /// was sent.
    TooManyMux { name: String },
    /// The deadline passed before a whole line; the timeout line was sent
    /// if it could go without waiting.
    TimedOut { received: String },
    /// The deadline passed while the reply to `name` was being written: the
    /// client did not read it. Nothing more was sent.
    ReplyTimedOut { name: String },
    /// The client closed before a whole line; nothing was sent.
    Eof { received: String },
    /// From a source of `--accept-proxy`, the connection did not begin
    /// with a valid PROXY protocol header; [`NO_PROXY_HEADER`] was sent.
    NoProxyHeader { why: Invalid },
}

/// The refusal of a connection from a front end that did not begin with a
/// valid PROXY protocol header.
pub const NO_PROXY_HEADER: &[u8] = b"-Bad request: a PROXY protocol header was expected\r\n";

/// An outcome and how many times the client asked for `tcpmux` before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub outcome: Outcome,
    pub mux_accepts: u32,
}

/// One connection's conversation: where its requests come from, where its
/// replies go, and the one deadline for all of it, set by
/// [`Conversation::new`]. [`serve`] runs it; after a [`Outcome::Launch`]
/// the caller sends the service's `+Go` with [`Conversation::reply`] (or
/// through `io::Write`) under the same deadline.
pub struct Conversation<S, W> {
    source: S,
    sink: W,
    deadline: Instant,
}

impl<S: ByteSource, W: ReplySink> Conversation<S, W> {
    /// Starts the clock: the whole conversation, replies included, must be
    /// over `timeout` from now.
    pub fn new(source: S, sink: W, timeout: Duration) -> Self {
        Conversation {
            source,
            sink,
            deadline: Instant::now() + timeout,
        }
    }

    /// When the conversation must be over.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Writes `bytes` to the client before the deadline: all of them, or an
    /// error, of kind `TimedOut` when the client did not take them in time
    /// (some may have been sent), or the connection's own error.
    pub fn reply(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.sink.send(bytes, self.deadline)
    }

    /// The source and the sink, for a caller that goes on without the
    /// deadline.
    pub fn into_parts(self) -> (S, W) {
        (self.source, self.sink)
    }

    /// Reads one request line. The inner `Err` is the outcome of a line
    /// that did not make a request.
    fn read_request(&mut self) -> io::Result<Result<Request, Outcome>> {
        let mut parser = LineParser::new();
        loop {
            let bytes = match self.source.peek(self.deadline) {
                Ok([]) => {
                    let received = parser.received().to_owned();
                    return Ok(Err(Outcome::Eof { received }));
                }
                Ok(bytes) => bytes,
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    let received = parser.received().to_owned();
                    return Ok(Err(Outcome::TimedOut { received }));
                }
                Err(e) => return Err(e),
            };
            let (step, used) = parser.feed(bytes);
            self.source.consume(used)?;
            match step {
                Step::More => {}
                Step::Done(request) => return Ok(Ok(request)),
                Step::Failed(error) => {
                    let received = parser.received().to_owned();
                    return Ok(Err(Outcome::BadLine { error, received }));
                }
            }
        }
    }

    /// Whom the conversation is with: `hop`, the connection's own peer, or,
    /// when `trusted` lists `hop`'s address, the client its front end names
    /// in the PROXY protocol header it must send first, read under the
    /// conversation's deadline, exactly. From any other source nothing is
    /// taken for a header. The inner `Err` is the report of a connection
    /// that did not begin with a valid header, its refusal sent.
    pub fn peer(&mut self, trusted: &Trusted, hop: Peer) -> io::Result<Result<Peer, Report>> {
        if !trusted.covers(hop.remote.map(|addr| addr.ip())) {
            return Ok(Ok(hop));
        }
        let ended = |outcome| {
            Ok(Err(Report {
                outcome,
                mux_accepts: 0,
            }))
        };
        match accept_proxy::read(&mut self.source, hop, self.deadline) {
            Ok(Ok(proxied)) => Ok(Ok(proxied.peer)),
            Ok(Err(why)) => match self.reply(NO_PROXY_HEADER) {
                Ok(()) => ended(Outcome::NoProxyHeader { why }),
                Err(e) if e.kind() == io::ErrorKind::TimedOut => ended(Outcome::ReplyTimedOut {
                    name: String::new(),
                }),
                Err(e) => Err(e),
            },
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                // As for a silent client: the line only if it goes at once.
                match self.sink.send_now(protocol::TIMED_OUT) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
                    Err(e) => return Err(e),
                }
                ended(Outcome::TimedOut {
                    received: String::new(),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => ended(Outcome::Eof {
                received: String::new(),
            }),
            Err(e) => Err(e),
        }
    }

    /// Streams the HELP list through a fixed buffer.
    fn send_help(&mut self, table: &Table, peer: &Peer) -> io::Result<()> {
        let mut reply = HelpReply::new(table.visible_names(peer));
        let mut chunk = [0u8; HELP_CHUNK];
        loop {
            match reply.fill(&mut chunk) {
                0 => return Ok(()),
                n => self.reply(&chunk[..n])?,
            }
        }
    }
}

/// Writing to a conversation is replying under its deadline, so code that
/// takes an `io::Write` (the launch's `+Go`) keeps to it.
impl<S: ByteSource, W: ReplySink> Write for Conversation<S, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.reply(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Runs one conversation, the same for inetd mode and the listener. `Err`
/// means the connection itself failed (a read error, or a reply that could
/// not be written for another reason than the deadline); the client is gone.
pub fn serve<S: ByteSource, W: ReplySink>(
    conversation: &mut Conversation<S, W>,
    table: &Table,
    peer: &Peer,
) -> io::Result<Report> {
    let mut mux_accepts = 0;
    let outcome = loop {
        let (sent, outcome) = match conversation.read_request()? {
            Ok(Request::Help) => (conversation.send_help(table, peer), Outcome::Help),
            Ok(Request::Service(name)) => match table.lookup(&name, peer) {
                Lookup::Mux if mux_accepts < protocol::MAX_MUX_ACCEPTS => {
                    match conversation.reply(protocol::MUX_ACCEPT) {
                        Ok(()) => {
                            mux_accepts += 1;
                            continue;
                        }
                        sent => (sent, Outcome::ReplyTimedOut { name }),
                    }
                }
                Lookup::Mux => (
                    conversation.reply(protocol::TOO_MANY_MUX),
                    Outcome::TooManyMux { name },
                ),
                Lookup::Service(service) => (Ok(()), Outcome::Launch { service }),
                Lookup::Denied => (
                    conversation.reply(protocol::UNKNOWN_SERVICE),
                    Outcome::Denied { name },
                ),
                Lookup::Unknown => (
                    conversation.reply(protocol::UNKNOWN_SERVICE),
                    Outcome::Unknown { name },
                ),
            },
            Err(Outcome::TimedOut { received }) => {
                // The deadline has passed: the line goes only if it can
                // without waiting; a client that reads nothing gets nothing.
                let sent = match conversation.sink.send_now(protocol::TIMED_OUT) {
                    Err(e) if e.kind() == io::ErrorKind::TimedOut => Ok(()),
                    sent => sent,
                };
                (sent, Outcome::TimedOut { received })
            }
            Err(ended) => {
                let sent = match &ended {
                    Outcome::BadLine { error, .. } => conversation.reply(error.reply()),
                    _ => Ok(()),
                };
                (sent, ended)
            }
        };
        break match sent {
            Ok(()) => outcome,
            Err(e) if e.kind() == io::ErrorKind::TimedOut => Outcome::ReplyTimedOut {
                name: outcome.name().to_owned(),
            },
            Err(e) => return Err(e),
        };
    };
    Ok(Report {
        outcome,
        mux_accepts,
    })
}

impl Outcome {
    /// Whether the conversation ended with a `-` line (for a timeout, with
    /// the attempt at one): the connection is then closed by
    /// [`close::after_refusal`](crate::close::after_refusal), so that no
    /// reset overtakes the line.
    pub fn refused(&self) -> bool {
        matches!(
            self,
            Outcome::Unknown { .. }
                | Outcome::Denied { .. }
                | Outcome::BadLine { .. }
                | Outcome::TooManyMux { .. }
                | Outcome::TimedOut { .. }
                | Outcome::NoProxyHeader { .. }
        )
    }

    /// The name the conversation ended on: as the client sent it, or what
    /// had arrived of it.
    fn name(&self) -> &str {
        match self {
            Outcome::Help => protocol::HELP,
            Outcome::Launch { service } => &service.name,
            Outcome::Unknown { name }
            | Outcome::Denied { name }
            | Outcome::TooManyMux { name }
            | Outcome::ReplyTimedOut { name } => name,
            Outcome::BadLine { received, .. }
            | Outcome::TimedOut { received }
            | Outcome::Eof { received } => received,
            Outcome::NoProxyHeader { .. } => "",
        }
    }
}

/// The event of a conversation that ended here, without a launch: its one
/// log line.
pub fn event(peer: &Peer, result: &io::Result<Report>) -> Event {
    let report = match result {
        Ok(report) => report,
        Err(e) => return Event::new(*peer, event::Outcome::IoError).because(e),
    };
    let line = |outcome| {
        Event::new(*peer, outcome)
            .name(report.outcome.name())
            .mux_accepts(report.mux_accepts)
    };
    match &report.outcome {
        Outcome::Help => line(event::Outcome::Help),
        Outcome::Unknown { .. } => line(event::Outcome::Unknown),
        Outcome::Denied { .. } => line(event::Outcome::Denied),
        Outcome::Launch { .. } => line(event::Outcome::Launch),
        Outcome::BadLine { error, .. } => line(event::Outcome::BadLine).because(error),
        Outcome::TooManyMux { .. } => line(event::Outcome::BadLine).because(format_args!(
            "tcpmux more than {} times",
            protocol::MAX_MUX_ACCEPTS
        )),
        Outcome::TimedOut { .. } => line(event::Outcome::Timeout),
        Outcome::ReplyTimedOut { .. } => {
            line(event::Outcome::Timeout).because("the client did not read the reply")
        }
        Outcome::Eof { .. } => line(event::Outcome::Eof),
        // Before any request: no name.
        Outcome::NoProxyHeader { why } => Event::new(*peer, event::Outcome::BadLine).because(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::PEEK_BLOCK;

    /// Bytes as the client sent them, offered `block` at a time; when they
    /// run out, either the client closed or it went silent until the
    /// deadline.
    struct Script {
        bytes: Vec<u8>,
        at: usize,
        block: usize,
        then_silence: bool,
    }

    impl ByteSource for Script {
        fn peek(&mut self, _deadline: Instant) -> io::Result<&[u8]> {
            if self.at == self.bytes.len() && self.then_silence {
                return Err(io::ErrorKind::TimedOut.into());
            }
            let end = self.bytes.len().min(self.at + self.block);
            Ok(&self.bytes[self.at..end])
        }

        fn consume(&mut self, n: usize) -> io::Result<()> {
            self.at += n;
            Ok(())
        }
    }

    /// A client that reads `room` bytes of replies and then nothing.
    struct Stalled {
        taken: Vec<u8>,
        room: usize,
    }

    impl ReplySink for Stalled {
        fn send(&mut self, bytes: &[u8], _deadline: Instant) -> io::Result<()> {
            let n = bytes.len().min(self.room - self.taken.len());
            self.taken.extend_from_slice(&bytes[..n]);
            if n < bytes.len() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            Ok(())
        }

        fn send_now(&mut self, bytes: &[u8]) -> io::Result<()> {
            self.send(bytes, Instant::now())
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
        let mut result = None;
        // Whatever the block the bytes come in, the same conversation.
        for block in [1, 2, 5, PEEK_BLOCK] {
            let script = Script {
                bytes: input.to_vec(),
                at: 0,
                block,
                then_silence,
            };
            let timeout = Duration::from_secs(10);
            let mut conversation = Conversation::new(script, Vec::new(), timeout);
            let report = serve(&mut conversation, table, peer).unwrap();
            let (script, out) = conversation.into_parts();
            let this = (report, out, script.at);
            if let Some(first) = &result {
                assert_eq!(&this, first, "blocks of {block}");
            }
            result = Some(this);
        }
        result.unwrap()
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
            via: None,
        };
        let (report, out, _) = run_with(&table, &outside, b"echo\r\n", false);
        assert_eq!(out, protocol::UNKNOWN_SERVICE);
        let name = "echo".to_owned();
        assert_eq!(report.outcome, Outcome::Denied { name });
        let (_, out, _) = run_with(&table, &outside, b"HELP\r\n", false);
        assert_eq!(out, b"tcpmux\r\n");
    }

    #[test]
    fn tcpmux_is_accepted_eight_times_and_refused_the_ninth() {
        let (report, out, consumed) = run(&b"tcpmux\r\n".repeat(10), false);
        let expected = [b"+OK\r\n".repeat(8), protocol::TOO_MANY_MUX.to_vec()].concat();
        assert_eq!(out, expected);
        assert_eq!(consumed, 9 * 8);
        let name = "tcpmux".to_owned();
        assert_eq!(report.outcome, Outcome::TooManyMux { name });
        assert_eq!(report.mux_accepts, 8);
    }

    #[test]
    fn help_is_streamed_whatever_the_size_of_the_table() {
        let text: String = (0..2000)
            .map(|i| format!("+service-{i:04} nobody /bin/cat\n"))
            .collect();
        let table = crate::config::parse("t", &text).unwrap();
        let (_, out, _) = run_with(&table, &Peer::unknown(), b"HELP\r\n", false);
        let expected: String = std::iter::once("tcpmux".to_owned())
            .chain((0..2000).map(|i| format!("service-{i:04}")))
            .map(|name| format!("{name}\r\n"))
            .collect();
        assert!(out.len() > HELP_CHUNK);
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    #[test]
    fn a_reply_the_client_does_not_read_ends_the_conversation() {
        let table = crate::config::parse("t", "+echo nobody /bin/cat\n").unwrap();
        let sink = Stalled {
            taken: Vec::new(),
            room: 10,
        };
        let script = Script {
            bytes: b"tcpmux\r\nHELP\r\n".to_vec(),
            at: 0,
            block: PEEK_BLOCK,
            then_silence: false,
        };
        let mut conversation = Conversation::new(script, sink, Duration::from_secs(10));
        let report = serve(&mut conversation, &table, &Peer::unknown()).unwrap();
        let name = "HELP".to_owned();
        assert_eq!(report.outcome, Outcome::ReplyTimedOut { name });
        assert_eq!(
            event(&Peer::unknown(), &Ok(report)).to_string(),
            "peer=unknown name=HELP outcome=timeout (the client did not read the reply) tcpmux=1"
        );
        let (_, sink) = conversation.into_parts();
        assert_eq!(sink.taken, b"+OK\r\ntcpmu");
    }

    #[test]
    fn the_timeout_line_is_dropped_when_it_cannot_go_at_once() {
        let sink = Stalled {
            taken: Vec::new(),
            room: 0,
        };
        let script = Script {
            bytes: b"tc".to_vec(),
            at: 0,
            block: PEEK_BLOCK,
            then_silence: true,
        };
        let mut conversation = Conversation::new(script, sink, Duration::from_secs(10));
        let report = serve(&mut conversation, &Table::builtin(), &Peer::unknown()).unwrap();
        let received = "tc".to_owned();
        assert_eq!(report.outcome, Outcome::TimedOut { received });
    }
}
