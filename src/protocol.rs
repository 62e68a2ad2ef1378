//! The TCPMUX line protocol of RFC 1078, with no I/O: bytes of one request
//! line in, a request or a precise error out, and the reply lines out.
//!
//! The parser says how many bytes of what it is fed it consumed, stopping at
//! the CR LF that ends the line, so that the caller never takes a byte past
//! it: whatever follows belongs to the service that gets the connection.

use std::fmt;

/// Longest service name accepted, CR LF not counted. The BSD inetds allow the
/// same; RFC 1078 sets no limit, and no real name comes near it.
pub const MAX_NAME_LEN: usize = 256;

/// The reserved name that asks for the list of services.
pub const HELP: &str = "HELP";

/// The name of the multiplexer itself.
pub const TCPMUX: &str = "tcpmux";

/// The positive reply to `tcpmux`: the multiplexer is its own service, so the
/// protocol begins again on the same connection.
pub const MUX_ACCEPT: &[u8] = b"+OK\r\n";

/// How many times one connection may ask for `tcpmux`. Each `+OK` starts
/// the protocol again but not the clock (the deadline covers the whole
/// conversation); the bound keeps a conversation short in lines as well,
/// and no real client asks for the multiplexer twice, let alone eight times.
pub const MAX_MUX_ACCEPTS: u32 = 8;

/// The reply to one `tcpmux` more than [`MAX_MUX_ACCEPTS`].
pub const TOO_MANY_MUX: &[u8] = b"-Bad request: at most 8 tcpmux requests per connection\r\n";

/// The positive reply the multiplexer sends for a service whose table entry
/// says so, the same words as the BSD inetds so old clients see what they know.
pub const SERVICE_ACCEPT: &[u8] = b"+Go\r\n";

/// What a well-formed request line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `HELP` in any case.
    Help,
    /// Any other name, as the client spelt it (printable ASCII, no space).
    Service(String),
}

/// Why a request line was refused. Each has its own reply line, so a client
/// that got something wrong learns which rule it broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineError {
    /// A LF not preceded by CR.
    BareLf,
    /// A CR not followed by LF.
    BareCr,
    /// NUL, DEL or another control byte.
    ControlByte,
    /// A byte of 0x80 or above.
    NonAscii,
    /// A space inside the name.
    Space,
    /// CR LF with no name before it.
    Empty,
    /// More than [`MAX_NAME_LEN`] bytes before CR LF.
    TooLong,
}

impl LineError {
    /// The reply line sent to the client, CR LF included.
    pub fn reply(self) -> &'static [u8] {
        match self {
            LineError::BareLf => b"-Bad request: lines must end with CR LF, not a bare LF\r\n",
            LineError::BareCr => b"-Bad request: a CR must be followed by LF\r\n",
            LineError::ControlByte => b"-Bad request: control characters are not allowed\r\n",
            LineError::NonAscii => b"-Bad request: service names are ASCII\r\n",
            LineError::Space => b"-Bad request: service names contain no spaces\r\n",
            LineError::Empty => b"-Bad request: empty service name; send HELP for a list\r\n",
            LineError::TooLong => b"-Bad request: service names are at most 256 bytes\r\n",
        }
    }
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LineError::BareLf => "bare LF",
            LineError::BareCr => "bare CR",
            LineError::ControlByte => "control byte",
            LineError::NonAscii => "non-ASCII byte",
            LineError::Space => "space in name",
            LineError::Empty => "empty name",
            LineError::TooLong => "line too long",
        })
    }
}

/// The reply to an unknown name, and to a known name this peer may not use:
/// the two must look alike so that a refusal reveals nothing of the table.
pub const UNKNOWN_SERVICE: &[u8] = b"-Service not available; send HELP for a list\r\n";

/// The reply when the whole line did not arrive within the deadline.
pub const TIMED_OUT: &[u8] = b"-Timed out waiting for a service name\r\n";

/// The reply when the server cannot serve at all, whatever the name: a broken
/// table, a failed launch. The log says why; the client need not know.
pub const UNAVAILABLE: &[u8] = b"-Service temporarily unavailable\r\n";

/// The result of feeding one byte to a [`LineParser`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The line is not finished; feed the next byte.
    More,
    /// The byte just fed was the LF of CR LF, and this is the request.
    Done(Request),
    /// The byte just fed broke a rule; the line is refused.
    Failed(LineError),
}

/// A parser for one request line, fed a byte or a block at a time. Its
/// memory is bounded by [`MAX_NAME_LEN`] whatever it is fed.
#[derive(Debug, Default)]
pub struct LineParser {
    name: Vec<u8>,
    saw_cr: bool,
}

impl LineParser {
    pub fn new() -> Self {
        LineParser {
            name: Vec::with_capacity(MAX_NAME_LEN),
            saw_cr: false,
        }
    }

    /// Feeds one byte. After `Done` or `Failed` the parser must not be fed
    /// again; make a new one for the next line.
    pub fn push(&mut self, byte: u8) -> Step {
        if self.saw_cr {
            return if byte == b'\n' {
                self.finish()
            } else {
                Step::Failed(LineError::BareCr)
            };
        }
        match byte {
            b'\r' => {
                self.saw_cr = true;
                Step::More
            }
            b'\n' => Step::Failed(LineError::BareLf),
            b' ' => Step::Failed(LineError::Space),
            0..=0x1f | 0x7f => Step::Failed(LineError::ControlByte),
            0x80..=0xff => Step::Failed(LineError::NonAscii),
            _ if self.name.len() == MAX_NAME_LEN => Step::Failed(LineError::TooLong),
            _ => {
                self.name.push(byte);
                Step::More
            }
        }
    }

    /// Feeds `bytes` until the line is done or refused, and says where it
    /// stopped: the step it ended on and how many bytes it consumed, through
    /// the LF of CR LF or the byte that broke a rule. `More` means every
    /// byte was consumed and the line goes on. The same rule as for
    /// [`push`](Self::push): not to be fed after `Done` or `Failed`.
    pub fn feed(&mut self, bytes: &[u8]) -> (Step, usize) {
        for (i, &byte) in bytes.iter().enumerate() {
            match self.push(byte) {
                Step::More => continue,
                step => return (step, i + 1),
            }
        }
        (Step::More, bytes.len())
    }

    /// The name bytes received so far: printable ASCII only, so safe to log.
    pub fn received(&self) -> &str {
        // Only bytes 0x21..=0x7e are ever pushed, so this cannot fail.
        std::str::from_utf8(&self.name).unwrap_or("")
    }

    fn finish(&mut self) -> Step {
        if self.name.is_empty() {
            return Step::Failed(LineError::Empty);
        }
        let name = self.received().to_owned();
        if name.eq_ignore_ascii_case(HELP) {
            Step::Done(Request::Help)
        } else {
            Step::Done(Request::Service(name))
        }
    }
}

/// Runs a parser over `bytes` and says where it stopped: the step it ended on
/// and how many bytes it consumed. `More` means the bytes ran out first.
pub fn parse(bytes: &[u8]) -> (Step, usize) {
    LineParser::new().feed(bytes)
}

/// The reply to `HELP`, each name on its own line as RFC 1078 asks, rendered
/// piece by piece into the caller's buffer: its memory is the caller's
/// buffer, whatever the number of names, so a table of a hundred thousand
/// services costs a connection no more than one of ten.
pub struct HelpReply<'a, I> {
    names: I,
    /// What is left of the line being rendered, name and CR LF.
    name: &'a [u8],
    crlf: &'a [u8],
}

impl<'a, I: Iterator<Item = &'a str>> HelpReply<'a, I> {
    pub fn new(names: impl IntoIterator<IntoIter = I>) -> Self {
        HelpReply {
            names: names.into_iter(),
            name: b"",
            crlf: b"",
        }
    }

    /// Fills `buf` with the next bytes of the reply and says how many; 0
    /// only at the end (or for an empty `buf`). A line may be split across
    /// two calls.
    pub fn fill(&mut self, buf: &mut [u8]) -> usize {
        let mut at = 0;
        while at < buf.len() {
            let rest = if !self.name.is_empty() {
                &mut self.name
            } else if !self.crlf.is_empty() {
                &mut self.crlf
            } else {
                match self.names.next() {
                    Some(name) => {
                        self.name = name.as_bytes();
                        self.crlf = b"\r\n";
                        continue;
                    }
                    None => break,
                }
            };
            let bytes: &'a [u8] = rest;
            let n = bytes.len().min(buf.len() - at);
            buf[at..at + n].copy_from_slice(&bytes[..n]);
            *rest = &bytes[n..];
            at += n;
        }
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(name: &str) -> Step {
        Step::Done(Request::Service(name.to_owned()))
    }

    #[test]
    fn a_name_ended_by_crlf_is_a_request() {
        assert_eq!(parse(b"tcpmux\r\n"), (service("tcpmux"), 8));
        assert_eq!(parse(b"Echo\r\n"), (service("Echo"), 6));
    }

    #[test]
    fn help_is_recognised_in_any_case() {
        for line in [&b"HELP\r\n"[..], b"help\r\n", b"hElP\r\n"] {
            assert_eq!(parse(line), (Step::Done(Request::Help), 6));
        }
        assert_eq!(parse(b"HELPS\r\n"), (service("HELPS"), 7));
    }

    #[test]
    fn parsing_stops_at_the_lf_and_leaves_the_rest() {
        assert_eq!(parse(b"echo\r\nhello\r\n"), (service("echo"), 6));
        assert_eq!(parse(b"tcpmux\r\nHELP\r\n").1, 8);
    }

    #[test]
    fn an_unfinished_line_wants_more() {
        assert_eq!(parse(b""), (Step::More, 0));
        assert_eq!(parse(b"tcpm"), (Step::More, 4));
        assert_eq!(parse(b"tcpmux\r"), (Step::More, 7));
    }

    #[test]
    fn a_bare_lf_is_refused_at_once() {
        assert_eq!(parse(b"tcpmux\nmore"), (Step::Failed(LineError::BareLf), 7));
        assert_eq!(parse(b"\n"), (Step::Failed(LineError::BareLf), 1));
    }

    #[test]
    fn a_bare_cr_is_refused_at_the_byte_after_it() {
        assert_eq!(parse(b"tcp\rmux"), (Step::Failed(LineError::BareCr), 5));
        assert_eq!(parse(b"tcp\r\r\n"), (Step::Failed(LineError::BareCr), 5));
    }

    #[test]
    fn control_bytes_are_refused() {
        for byte in (0u8..0x20)
            .filter(|b| *b != b'\r' && *b != b'\n')
            .chain([0x7f])
        {
            let line = [b't', byte, b'\r', b'\n'];
            assert_eq!(
                parse(&line),
                (Step::Failed(LineError::ControlByte), 2),
                "{byte:#x}"
            );
        }
    }

    #[test]
    fn non_ascii_bytes_are_refused() {
        for byte in 0x80u8..=0xff {
            let line = [byte, b'\r', b'\n'];
            assert_eq!(
                parse(&line),
                (Step::Failed(LineError::NonAscii), 1),
                "{byte:#x}"
            );
        }
        assert_eq!(
            parse("café\r\n".as_bytes()).0,
            Step::Failed(LineError::NonAscii)
        );
    }

    #[test]
    fn spaces_are_refused() {
        assert_eq!(parse(b"tcp mux\r\n"), (Step::Failed(LineError::Space), 4));
        assert_eq!(parse(b" tcpmux\r\n"), (Step::Failed(LineError::Space), 1));
        assert_eq!(parse(b"tcpmux \r\n"), (Step::Failed(LineError::Space), 7));
    }

    #[test]
    fn an_empty_line_is_refused() {
        assert_eq!(parse(b"\r\n"), (Step::Failed(LineError::Empty), 2));
    }

    #[test]
    fn names_up_to_the_cap_are_accepted_and_longer_ones_refused() {
        let mut line = vec![b'a'; MAX_NAME_LEN];
        line.extend_from_slice(b"\r\n");
        let name = "a".repeat(MAX_NAME_LEN);
        assert_eq!(parse(&line), (service(&name), MAX_NAME_LEN + 2));

        let long = vec![b'a'; 1 << 20];
        assert_eq!(
            parse(&long),
            (Step::Failed(LineError::TooLong), MAX_NAME_LEN + 1)
        );
    }

    #[test]
    fn every_printable_byte_but_space_may_be_in_a_name() {
        let printable: Vec<u8> = (0x21u8..=0x7e).collect();
        let mut line = printable.clone();
        line.extend_from_slice(b"\r\n");
        let name = String::from_utf8(printable).unwrap();
        assert_eq!(parse(&line).0, service(&name));
    }

    #[test]
    fn received_holds_only_what_was_accepted() {
        let mut parser = LineParser::new();
        for &b in b"ab\x01" {
            parser.push(b);
        }
        assert_eq!(parser.received(), "ab");
    }

    #[test]
    fn error_replies_are_single_refusal_lines() {
        let all = [
            LineError::BareLf,
            LineError::BareCr,
            LineError::ControlByte,
            LineError::NonAscii,
            LineError::Space,
            LineError::Empty,
            LineError::TooLong,
        ];
        for error in all {
            let reply = error.reply();
            assert!(reply.starts_with(b"-"), "{error}");
            assert!(reply.ends_with(b"\r\n"), "{error}");
            assert_eq!(reply.iter().filter(|&&b| b == b'\n').count(), 1, "{error}");
        }
    }

    /// The whole HELP reply, rendered through a buffer of `size` bytes.
    fn help_through(names: &[&str], size: usize) -> Vec<u8> {
        let mut reply = HelpReply::new(names.iter().copied());
        let mut buf = vec![0u8; size];
        let mut out = Vec::new();
        loop {
            match reply.fill(&mut buf) {
                0 => return out,
                n => out.extend_from_slice(&buf[..n]),
            }
        }
    }

    #[test]
    fn help_reply_is_one_name_per_crlf_line_whatever_the_buffer() {
        let long = "x".repeat(MAX_NAME_LEN);
        let names = ["tcpmux", "echo", long.as_str(), "a"];
        let whole = format!("tcpmux\r\necho\r\n{long}\r\na\r\n").into_bytes();
        for size in [1, 2, 3, 7, 258, 4096] {
            assert_eq!(help_through(&names, size), whole, "buffer of {size}");
        }
        assert_eq!(help_through(&["tcpmux"], 4096), b"tcpmux\r\n");
        assert_eq!(help_through(&[], 4096), b"");
    }

    #[test]
    fn feeding_a_block_stops_where_the_line_does() {
        let mut parser = LineParser::new();
        assert_eq!(parser.feed(b"tcp"), (Step::More, 3));
        assert_eq!(parser.feed(b"mux\r"), (Step::More, 4));
        assert_eq!(parser.feed(b"\nHELP\r\n"), (service("tcpmux"), 1));
    }

    #[test]
    fn the_tcpmux_bound_is_in_its_refusal() {
        let reply = std::str::from_utf8(TOO_MANY_MUX).unwrap();
        assert!(reply.contains(&format!(" {MAX_MUX_ACCEPTS} ")), "{reply}");
        assert!(reply.starts_with('-') && reply.ends_with("\r\n"));
    }
}
