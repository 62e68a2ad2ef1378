//! The PROXY protocol of HAProxy (doc/proxy-protocol.txt), versions 1 and
//! 2, with no I/O: a header out for a daemon behind a forward, and a header
//! in from a trusted front end, parsed from bytes with how many it took, so
//! the caller reads nothing past it.
//!
//! Version 2 carries the TCPMUX service name in a TLV of the range kept for
//! applications: type [`TLV_SERVICE`] (0xE0), its value the name as the
//! client sent it, in ASCII.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The 12 bytes every version 2 header begins with.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The TLV type that carries the TCPMUX service name (application range).
pub const TLV_SERVICE: u8 = 0xE0;

/// A version 1 line is at most 107 bytes, CR LF included.
pub const V1_MAX: usize = 107;

/// A version 2 header this server reads is at most this long: the fixed
/// 16 bytes, IPv6 addresses and some TLVs. Longer ones are refused.
pub const V2_MAX: usize = 16 + 36 + 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// What a header says about the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The real client and the address it reached; `None` for a header
    /// that gives none (v1 `UNKNOWN`, v2 `LOCAL` or an unspecified family),
    /// where the connection's own addresses stand.
    pub addresses: Option<(SocketAddr, SocketAddr)>,
    pub version: Version,
}

/// What the bytes so far make of a header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parse {
    /// A whole header, and how many bytes it took.
    Done(Header, usize),
    /// Not enough bytes yet: at least this many in all are needed.
    More(usize),
    /// Not a valid header; no more bytes will make it one.
    Invalid(Invalid),
}

/// Why bytes are not a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// Neither `PROXY ` nor the version 2 signature.
    NoHeader,
    /// A version 1 line longer than 107 bytes, or without CR LF.
    V1Line,
    /// A version 1 line whose fields are not a protocol and two addresses.
    V1Fields,
    /// A version 2 header of another version or command.
    V2Version,
    /// A version 2 header longer than this server reads.
    V2Length,
    /// A version 2 address block shorter than its family needs.
    V2Addresses,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Invalid::NoHeader => "no PROXY protocol header",
            Invalid::V1Line => "a PROXY v1 line longer than 107 bytes or not ended by CR LF",
            Invalid::V1Fields => {
                "a PROXY v1 line whose fields are not a protocol and two addresses"
            }
            Invalid::V2Version => "a PROXY v2 header of another version or command",
            Invalid::V2Length => "a PROXY v2 header longer than this server reads",
            Invalid::V2Addresses => "a PROXY v2 address block too short for its family",
        })
    }
}

/// Parses a header at the start of `bytes`.
pub fn parse(bytes: &[u8]) -> Parse {
    if bytes.first() == Some(&b'P') || bytes.is_empty() {
        let prefix = b"PROXY ";
        let n = bytes.len().min(prefix.len());
        if bytes[..n] == prefix[..n] {
            return parse_v1(bytes);
        }
    }
    let n = bytes.len().min(V2_SIGNATURE.len());
    if bytes[..n] != V2_SIGNATURE[..n] {
        return Parse::Invalid(Invalid::NoHeader);
    }
    parse_v2(bytes)
}

fn parse_v1(bytes: &[u8]) -> Parse {
    let Some(lf) = bytes.iter().position(|b| *b == b'\n') else {
        return if bytes.len() >= V1_MAX {
            Parse::Invalid(Invalid::V1Line)
        } else {
            Parse::More(bytes.len() + 1)
        };
    };
    let len = lf + 1;
    if len > V1_MAX || lf == 0 || bytes[lf - 1] != b'\r' {
        return Parse::Invalid(Invalid::V1Line);
    }
    let Ok(line) = std::str::from_utf8(&bytes[..lf - 1]) else {
        return Parse::Invalid(Invalid::V1Fields);
    };
    let fields: Vec<&str> = line.split(' ').collect();
    let header = |addresses| {
        Parse::Done(
            Header {
                addresses,
                version: Version::V1,
            },
            len,
        )
    };
    match fields.as_slice() {
        ["PROXY", "UNKNOWN", ..] => header(None),
        ["PROXY", family @ ("TCP4" | "TCP6"), src, dst, sport, dport] => {
            let v4 = *family == "TCP4";
            let ip = |text: &str| -> Option<IpAddr> {
                match text.parse::<IpAddr>().ok()? {
                    ip @ IpAddr::V4(_) if v4 => Some(ip),
                    ip @ IpAddr::V6(_) if !v4 => Some(ip),
                    _ => None,
                }
            };
            // Ports are decimal without a sign or leading zeros.
            let port = |text: &str| -> Option<u16> {
                let canonical = !text.is_empty()
                    && text.bytes().all(|b| b.is_ascii_digit())
                    && (text == "0" || !text.starts_with('0'));
                if canonical { text.parse().ok() } else { None }
            };
            match (ip(src), ip(dst), port(sport), port(dport)) {
                (Some(src), Some(dst), Some(sport), Some(dport)) => header(Some((
                    SocketAddr::new(src, sport),
                    SocketAddr::new(dst, dport),
                ))),
                _ => Parse::Invalid(Invalid::V1Fields),
            }
        }
        _ => Parse::Invalid(Invalid::V1Fields),
    }
}

fn parse_v2(bytes: &[u8]) -> Parse {
    if bytes.len() < 16 {
        return Parse::More(16);
    }
    let version_command = bytes[12];
    if version_command >> 4 != 2 || version_command & 0x0f > 1 {
        return Parse::Invalid(Invalid::V2Version);
    }
    let local = version_command & 0x0f == 0;
    let family = bytes[13];
    let length = usize::from(u16::from_be_bytes([bytes[14], bytes[15]]));
    let total = 16 + length;
    if total > V2_MAX {
        return Parse::Invalid(Invalid::V2Length);
    }
    if bytes.len() < total {
        return Parse::More(total);
    }
    let block = &bytes[16..total];
    let done = |addresses| {
        Parse::Done(
            Header {
                addresses,
                version: Version::V2,
            },
            total,
        )
    };
    if local {
        return done(None);
    }
    let port = |at: usize| u16::from_be_bytes([block[at], block[at + 1]]);
    match family {
        // TCP over IPv4.
        0x11 => {
            if block.len() < 12 {
                return Parse::Invalid(Invalid::V2Addresses);
            }
            let ip =
                |at: usize| Ipv4Addr::new(block[at], block[at + 1], block[at + 2], block[at + 3]);
            done(Some((
                SocketAddr::new(IpAddr::V4(ip(0)), port(8)),
                SocketAddr::new(IpAddr::V4(ip(4)), port(10)),
            )))
        }
        // TCP over IPv6.
        0x21 => {
            if block.len() < 36 {
                return Parse::Invalid(Invalid::V2Addresses);
            }
            let ip = |at: usize| {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&block[at..at + 16]);
                Ipv6Addr::from(octets)
            };
            done(Some((
                SocketAddr::new(IpAddr::V6(ip(0)), port(32)),
                SocketAddr::new(IpAddr::V6(ip(16)), port(34)),
            )))
        }
        // Unspecified, UDP, or Unix: no TCP addresses to stand for the peer.
        _ => done(None),
    }
}

/// A version 1 header for a connection from `client` to `local`; `UNKNOWN`
/// when either is missing or their families differ.
pub fn v1(client: Option<SocketAddr>, local: Option<SocketAddr>) -> Vec<u8> {
    let line = match (client, local) {
        (Some(SocketAddr::V4(c)), Some(SocketAddr::V4(l))) => format!(
            "PROXY TCP4 {} {} {} {}\r\n",
            c.ip(),
            l.ip(),
            c.port(),
            l.port()
        ),
        (Some(SocketAddr::V6(c)), Some(SocketAddr::V6(l))) => format!(
            "PROXY TCP6 {} {} {} {}\r\n",
            c.ip(),
            l.ip(),
            c.port(),
            l.port()
        ),
        _ => "PROXY UNKNOWN\r\n".to_owned(),
    };
    line.into_bytes()
}

/// A version 2 header (command PROXY) for a connection from `client` to
/// `local`, with the service name in a [`TLV_SERVICE`] TLV. Addresses of
/// different families, or missing ones, give the unspecified family.
pub fn v2(client: Option<SocketAddr>, local: Option<SocketAddr>, service: &str) -> Vec<u8> {
    let mut body = Vec::with_capacity(36 + 3 + service.len());
    let family = match (client, local) {
        (Some(SocketAddr::V4(c)), Some(SocketAddr::V4(l))) => {
            body.extend_from_slice(&c.ip().octets());
            body.extend_from_slice(&l.ip().octets());
            body.extend_from_slice(&c.port().to_be_bytes());
            body.extend_from_slice(&l.port().to_be_bytes());
            0x11
        }
        (Some(SocketAddr::V6(c)), Some(SocketAddr::V6(l))) => {
            body.extend_from_slice(&c.ip().octets());
            body.extend_from_slice(&l.ip().octets());
            body.extend_from_slice(&c.port().to_be_bytes());
            body.extend_from_slice(&l.port().to_be_bytes());
            0x21
        }
        _ => 0x00,
    };
    // A service name is at most 256 bytes (protocol::MAX_NAME_LEN).
    let name = &service.as_bytes()[..service.len().min(256)];
    body.push(TLV_SERVICE);
    body.extend_from_slice(&(name.len() as u16).to_be_bytes());
    body.extend_from_slice(name);
    let mut header = Vec::with_capacity(16 + body.len());
    header.extend_from_slice(&V2_SIGNATURE);
    header.push(0x21);
    header.push(family);
    header.extend_from_slice(&(body.len() as u16).to_be_bytes());
    header.extend_from_slice(&body);
    header
}

/// The TLVs after the addresses of a version 2 header, as (type, value).
pub fn v2_tlvs(header: &[u8]) -> Vec<(u8, &[u8])> {
    if header.len() < 16 {
        return Vec::new();
    }
    let skip = match header[13] {
        0x11 => 12,
        0x21 => 36,
        0x31 => 216,
        _ => 0,
    };
    let mut rest = header.get(16 + skip..).unwrap_or(&[]);
    let mut tlvs = Vec::new();
    while rest.len() >= 3 {
        let len = usize::from(u16::from_be_bytes([rest[1], rest[2]]));
        let Some(value) = rest.get(3..3 + len) else {
            break;
        };
        tlvs.push((rest[0], value));
        rest = &rest[3 + len..];
    }
    tlvs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn v1_lines_as_the_specification_shows_them() {
        let line = v1(
            Some(addr("192.168.0.1:56324")),
            Some(addr("192.168.0.11:443")),
        );
        assert_eq!(line, b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n");
        let line = v1(Some(addr("[2001:db8::1]:5")), Some(addr("[::1]:1")));
        assert_eq!(line, b"PROXY TCP6 2001:db8::1 ::1 5 1\r\n");
        assert_eq!(v1(None, Some(addr("[::1]:1"))), b"PROXY UNKNOWN\r\n");
        let mixed = v1(Some(addr("192.0.2.1:5")), Some(addr("[::1]:1")));
        assert_eq!(mixed, b"PROXY UNKNOWN\r\n");
    }

    #[test]
    fn a_v1_line_parses_back_and_takes_only_its_bytes() {
        let mut bytes = v1(Some(addr("192.0.2.7:40000")), Some(addr("127.0.0.1:1")));
        let len = bytes.len();
        bytes.extend_from_slice(b"echo\r\n");
        let header = Header {
            addresses: Some((addr("192.0.2.7:40000"), addr("127.0.0.1:1"))),
            version: Version::V1,
        };
        assert_eq!(parse(&bytes), Parse::Done(header, len));
        assert_eq!(parse(&bytes[..10]), Parse::More(11));
        assert_eq!(parse(b""), Parse::More(1));
        assert_eq!(parse(b"PROX"), Parse::More(5));
    }

    #[test]
    fn bad_v1_lines_are_invalid_at_once() {
        let cases: [(&[u8], Invalid); 7] = [
            (b"HELP\r\n", Invalid::NoHeader),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", Invalid::V1Line),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", Invalid::V1Fields),
            (b"PROXY TCP4 ::1 ::1 1 2\r\n", Invalid::V1Fields),
            (b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", Invalid::V1Fields),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n", Invalid::V1Fields),
            (b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", Invalid::V1Fields),
        ];
        for (bytes, why) in cases {
            assert_eq!(
                parse(bytes),
                Parse::Invalid(why),
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
        let long = [b"PROXY ".as_slice(), &[b'x'; 120]].concat();
        assert_eq!(parse(&long), Parse::Invalid(Invalid::V1Line));
    }

    #[test]
    fn a_v2_header_carries_the_addresses_and_the_service() {
        let header = v2(
            Some(addr("192.0.2.7:40000")),
            Some(addr("127.0.0.1:1")),
            "web",
        );
        assert_eq!(&header[..12], &V2_SIGNATURE);
        assert_eq!(&header[12..16], &[0x21, 0x11, 0, 12 + 3 + 3]);
        assert_eq!(
            &header[16..28],
            &[192, 0, 2, 7, 127, 0, 0, 1, 0x9c, 0x40, 0, 1]
        );
        assert_eq!(v2_tlvs(&header), vec![(TLV_SERVICE, b"web".as_slice())]);
        let mut bytes = header.clone();
        bytes.extend_from_slice(b"GET / HTTP/1.0\r\n");
        let parsed = Header {
            addresses: Some((addr("192.0.2.7:40000"), addr("127.0.0.1:1"))),
            version: Version::V2,
        };
        assert_eq!(parse(&bytes), Parse::Done(parsed, header.len()));
        for cut in 0..header.len() {
            assert!(matches!(parse(&header[..cut]), Parse::More(_)), "{cut}");
        }
        let six = v2(Some(addr("[2001:db8::7]:1")), Some(addr("[::1]:2")), "db");
        let Parse::Done(h, n) = parse(&six) else {
            panic!("v6 header");
        };
        assert_eq!(n, six.len());
        assert_eq!(
            h.addresses,
            Some((addr("[2001:db8::7]:1"), addr("[::1]:2")))
        );
    }

    #[test]
    fn v2_local_and_bad_headers() {
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        let header = Header {
            addresses: None,
            version: Version::V2,
        };
        assert_eq!(parse(&local), Parse::Done(header, 16));
        let mut other = V2_SIGNATURE.to_vec();
        other.extend_from_slice(&[0x31, 0x11, 0, 12]);
        assert_eq!(parse(&other), Parse::Invalid(Invalid::V2Version));
        let mut long = V2_SIGNATURE.to_vec();
        long.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert_eq!(parse(&long), Parse::Invalid(Invalid::V2Length));
        let mut short = V2_SIGNATURE.to_vec();
        short.extend_from_slice(&[0x21, 0x11, 0, 4, 1, 2, 3, 4]);
        assert_eq!(parse(&short), Parse::Invalid(Invalid::V2Addresses));
    }
}
