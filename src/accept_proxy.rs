//! `--accept-proxy`: reading the PROXY protocol header a trusted front end
//! (HAProxy, nginx, xinetd behind one) sends first, within the
//! connection's deadline, taking exactly the header's bytes and not one
//! more, so the request line and what follows it stay where they were.
//!
//! Only sources the operator listed send a header, and from them one is
//! required; from any other source nothing is taken for a header.

use std::io;
use std::net::IpAddr;
use std::time::Instant;

use crate::access::Cidr;
use crate::peer::Peer;
use crate::proxy::{self, Header, Invalid, Parse};
use crate::source::ByteSource;

/// The sources whose connections begin with a header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trusted {
    pub blocks: Vec<Cidr>,
}

impl Trusted {
    /// Whether a connection from `source` must begin with a header.
    pub fn covers(&self, source: Option<IpAddr>) -> bool {
        source.is_some_and(|ip| self.blocks.iter().any(|b| b.contains(ip)))
    }
}

/// The peer a header says, and the hop it came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proxied {
    /// The peer that stands for the connection from now on: the header's
    /// addresses, with `via` the hop's, or the connection's own for a
    /// header that gives none.
    pub peer: Peer,
    /// The front end the connection really came from.
    pub hop: Peer,
}

/// Reads the header at the start of `source` before `deadline`. The inner
/// `Err` is a connection that did not begin with a valid header.
pub fn read(
    source: &mut impl ByteSource,
    hop: Peer,
    deadline: Instant,
) -> io::Result<Result<Proxied, Invalid>> {
    let mut header: Vec<u8> = Vec::with_capacity(proxy::V1_MAX);
    loop {
        // How many more bytes can belong to the header, as far as is known.
        let wanted = match proxy::parse(&header) {
            Parse::Done(parsed, _) => return Ok(Ok(proxied(parsed, hop))),
            Parse::Invalid(why) => return Ok(Err(why)),
            Parse::More(total) => total - header.len(),
        };
        let available = source.peek(deadline)?;
        if available.is_empty() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let take = if header.first() == Some(&b'P') {
            // A version 1 line: up to its LF, whatever More asked for.
            match available.iter().position(|b| *b == b'\n') {
                Some(lf) => lf + 1,
                None => available.len(),
            }
            .min(proxy::V1_MAX.saturating_sub(header.len()).max(1))
        } else {
            wanted.min(available.len())
        };
        header.extend_from_slice(&available[..take]);
        source.consume(take)?;
    }
}

fn proxied(header: Header, hop: Peer) -> Proxied {
    let peer = match header.addresses {
        Some((client, local)) => Peer {
            remote: Some(canonical(client)),
            local: Some(canonical(local)),
            via: hop.remote,
        },
        None => hop,
    };
    Proxied { peer, hop }
}

fn canonical(addr: std::net::SocketAddr) -> std::net::SocketAddr {
    std::net::SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Bytes that arrive in the pieces given, a peek at a time.
    struct Pieces {
        pieces: Vec<Vec<u8>>,
        consumed: usize,
    }

    impl ByteSource for Pieces {
        fn peek(&mut self, _deadline: Instant) -> io::Result<&[u8]> {
            while self.pieces.first().is_some_and(Vec::is_empty) {
                self.pieces.remove(0);
            }
            Ok(self.pieces.first().map_or(&[][..], Vec::as_slice))
        }

        fn consume(&mut self, n: usize) -> io::Result<()> {
            self.consumed += n;
            self.pieces[0].drain(..n);
            Ok(())
        }
    }

    fn hop() -> Peer {
        Peer {
            local: Some("127.0.0.1:1".parse().unwrap()),
            remote: Some("127.0.0.1:5000".parse().unwrap()),
            via: None,
        }
    }

    fn run(pieces: &[&[u8]]) -> (io::Result<Result<Proxied, Invalid>>, usize, Vec<u8>) {
        let mut source = Pieces {
            pieces: pieces.iter().map(|p| p.to_vec()).collect(),
            consumed: 0,
        };
        let deadline = Instant::now() + Duration::from_secs(1);
        let result = read(&mut source, hop(), deadline);
        let rest = source.pieces.concat();
        (result, source.consumed, rest)
    }

    #[test]
    fn a_v1_header_in_pieces_is_taken_to_its_lf_and_no_further() {
        let (result, consumed, rest) = run(&[
            b"PROXY TCP4 192.0.2.7 ",
            b"127.0.0.1 40000 1\r\nHE",
            b"LP\r\n",
        ]);
        let proxied = result.unwrap().unwrap();
        assert_eq!(
            proxied.peer.remote,
            Some("192.0.2.7:40000".parse().unwrap())
        );
        assert_eq!(proxied.peer.via, hop().remote);
        assert_eq!(proxied.hop, hop());
        assert_eq!(consumed, 40);
        assert_eq!(rest, b"HELP\r\n");
    }

    #[test]
    fn a_v2_header_is_taken_whole_and_no_further() {
        let header = proxy::v2(
            Some("[2001:db8::7]:1234".parse().unwrap()),
            Some("[::1]:1".parse().unwrap()),
            "x",
        );
        let mut bytes = header.clone();
        bytes.extend_from_slice(b"echo\r\n");
        let (first, second) = bytes.split_at(10);
        let (result, consumed, rest) = run(&[first, second]);
        let proxied = result.unwrap().unwrap();
        assert_eq!(
            proxied.peer.remote,
            Some("[2001:db8::7]:1234".parse().unwrap())
        );
        assert_eq!(consumed, header.len());
        assert_eq!(rest, b"echo\r\n");
    }

    #[test]
    fn a_request_without_a_header_is_refused_having_taken_one_byte() {
        let (result, consumed, _) = run(&[b"HELP\r\n"]);
        assert_eq!(result.unwrap(), Err(Invalid::NoHeader));
        assert_eq!(consumed, 1);
        let (result, _, _) = run(&[b"PROXY UNKNOWN\r\nHELP\r\n"]);
        assert_eq!(result.unwrap().unwrap().peer, hop());
    }
}
