//! Address rules: which clients may use a service. Pure; the peer's address
//! comes from `peer`.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An address block, `192.0.2.0/24` or `2001:db8::/32`; a bare address is a
/// block of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    len: u8,
}

impl Cidr {
    /// The block of `len` bits that holds `ip`, an IPv4-mapped address
    /// taken as the IPv4 address it is; `len` is capped at the family's
    /// width.
    pub fn around(ip: IpAddr, len: u8) -> Cidr {
        let addr = ip.to_canonical();
        let width = if addr.is_ipv4() { 32 } else { 128 };
        let block = Cidr {
            addr,
            len: len.min(width),
        };
        Cidr {
            addr: block.network(),
            ..block
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(net.to_bits().into(), ip.to_bits().into(), self.len, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(net.to_bits(), ip.to_bits(), self.len, 128)
            }
            _ => false,
        }
    }
}

/// Whether the top `len` of `width` bits of `a` and `b` agree.
fn prefix_eq(a: u128, b: u128, len: u8, width: u32) -> bool {
    let shift = width - u32::from(len);
    shift >= width || (a >> shift) == (b >> shift)
}

/// Why a block does not parse. Each variant keeps the text at fault, so
/// that the message names it as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CidrError {
    /// The part before any `/` is neither an IPv4 nor an IPv6 address.
    NotAnAddress { text: String },
    /// The part after `/` is not a number from 0 to the family's width.
    PrefixLength { text: String, width: u8 },
    /// The address has bits set past the prefix; `block` is the block it
    /// lies in, most likely the one meant.
    HostBits { text: String, block: Cidr },
    /// An IPv6 block that holds the IPv4-mapped range, whose clients it
    /// would look as if it covered.
    HoldsMapped { text: String },
}

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CidrError::NotAnAddress { text } => {
                write!(f, "{text:?} is not an IPv4 or IPv6 address")
            }
            CidrError::PrefixLength { text, width } => {
                write!(f, "prefix length {text:?} is not 0 to {width}")
            }
            // A block with host bits set is never a single address, so it
            // prints with its prefix length.
            CidrError::HostBits { text, block } => {
                write!(f, "{text} has host bits set; the block is {block}")
            }
            CidrError::HoldsMapped { text } => write!(
                f,
                "{text} holds the IPv4-mapped addresses ::ffff:0:0/96, but IPv4 clients are \
                 matched as IPv4 only: write their IPv4 block as well (0.0.0.0/0 for all), \
                 and a narrower IPv6 block, or ::/0 for every IPv6 client"
            ),
        }
    }
}

impl std::error::Error for CidrError {}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Cidr, CidrError> {
        let (addr, len) = match text.split_once('/') {
            Some((addr, len)) => (addr, Some(len)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| CidrError::NotAnAddress {
            text: addr.to_owned(),
        })?;
        let width: u8 = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len {
            None => width,
            Some(len) => match len.parse::<u8>() {
                Ok(n) if n <= width => n,
                _ => {
                    return Err(CidrError::PrefixLength {
                        text: len.to_owned(),
                        width,
                    });
                }
            },
        };
        // An IPv4-mapped block matches IPv4 peers, so it is kept as IPv4.
        let (addr, len) = match addr {
            IpAddr::V6(v6) if len >= 96 && v6.to_ipv4_mapped().is_some() => {
                (addr.to_canonical(), len - 96)
            }
            _ => (addr, len),
        };
        let cidr = Cidr { addr, len };
        let network = cidr.network();
        if network != addr {
            return Err(CidrError::HostBits {
                text: text.to_owned(),
                block: Cidr { addr: network, len },
            });
        }
        // IPv4 clients, mapped or not, are matched as IPv4 and never by an
        // IPv6 block. A block between ::/1 and ::/95 that holds the mapped
        // range would look as if it covered them: such a rule would
        // silently not apply to them, so it is refused.
        let mapped = Cidr {
            addr: IpAddr::V6(std::net::Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0)),
            len: 96,
        };
        if addr.is_ipv6() && (1..96).contains(&len) && cidr.contains_block(&mapped) {
            return Err(CidrError::HoldsMapped {
                text: text.to_owned(),
            });
        }
        Ok(cidr)
    }
}

impl Cidr {
    /// Whether the whole of `other`, of the same family, lies in this block.
    fn contains_block(&self, other: &Cidr) -> bool {
        match (self.addr, other.addr) {
            (IpAddr::V6(net), IpAddr::V6(inner)) => {
                other.len >= self.len && prefix_eq(net.to_bits(), inner.to_bits(), self.len, 128)
            }
            (IpAddr::V4(net), IpAddr::V4(inner)) => {
                other.len >= self.len
                    && prefix_eq(net.to_bits().into(), inner.to_bits().into(), self.len, 32)
            }
            _ => false,
        }
    }

    fn network(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                IpAddr::V4((a.to_bits() & mask).into())
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.len))
                    .unwrap_or(0);
                IpAddr::V6((a.to_bits() & mask).into())
            }
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = if self.addr.is_ipv4() { 32 } else { 128 };
        if self.len == width {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.len)
        }
    }
}

/// A service's allow and deny lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    pub allow: Vec<Cidr>,
    pub deny: Vec<Cidr>,
}

impl Rules {
    /// Whether a client at `ip` may use the service: it must be on the allow
    /// list, when there is one, and not on the deny list. A client whose
    /// address is unknown passes only where there is no allow list.
    pub fn admit(&self, ip: Option<IpAddr>) -> bool {
        let Some(ip) = ip else {
            return self.allow.is_empty();
        };
        let allowed = self.allow.is_empty() || self.allow.iter().any(|c| c.contains(ip));
        allowed && !self.deny.iter().any(|c| c.contains(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(text: &str) -> Cidr {
        text.parse().unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn blocks_contain_their_addresses_only() {
        assert!(cidr("10.0.0.0/8").contains(ip("10.255.1.2")));
        assert!(!cidr("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(cidr("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(cidr("192.0.2.7").contains(ip("192.0.2.7")));
        assert!(!cidr("192.0.2.7").contains(ip("192.0.2.8")));
        assert!(cidr("2001:db8::/32").contains(ip("2001:db8:1::5")));
        assert!(!cidr("2001:db8::/32").contains(ip("2001:db9::5")));
        assert!(cidr("::/0").contains(ip("::1")));
        assert!(
            !cidr("::/0").contains(ip("127.0.0.1")),
            "families never mix"
        );
    }

    #[test]
    fn mapped_addresses_match_as_ipv4() {
        assert!(cidr("127.0.0.0/8").contains(ip("::ffff:127.0.0.1")));
        assert_eq!(cidr("::ffff:10.0.0.0/104"), cidr("10.0.0.0/8"));
        assert_eq!(cidr("::ffff:10.1.2.3").to_string(), "10.1.2.3");
    }

    #[test]
    fn the_block_around_an_address_has_its_host_bits_cleared() {
        assert_eq!(Cidr::around(ip("192.0.2.77"), 24), cidr("192.0.2.0/24"));
        assert_eq!(Cidr::around(ip("192.0.2.77"), 32), cidr("192.0.2.77"));
        assert_eq!(Cidr::around(ip("192.0.2.77"), 40), cidr("192.0.2.77"));
        assert_eq!(
            Cidr::around(ip("::ffff:192.0.2.77"), 8),
            cidr("192.0.0.0/8")
        );
        assert_eq!(
            Cidr::around(ip("2001:db8:1:2:aaaa::1"), 64),
            cidr("2001:db8:1:2::/64")
        );
        assert_eq!(Cidr::around(ip("::1"), 128), cidr("::1"));
        assert_eq!(Cidr::around(ip("8000::1"), 1), cidr("8000::/1"));
    }

    #[test]
    fn bad_blocks_say_what_is_wrong() {
        let err = |t: &str| t.parse::<Cidr>().unwrap_err().to_string();
        assert_eq!(
            err("10.0.0.1/8"),
            "10.0.0.1/8 has host bits set; the block is 10.0.0.0/8"
        );
        assert_eq!(err("10.0.0.0/33"), "prefix length \"33\" is not 0 to 32");
        assert_eq!(err("::/129"), "prefix length \"129\" is not 0 to 128");
        assert_eq!(
            err("host.example"),
            "\"host.example\" is not an IPv4 or IPv6 address"
        );
        assert_eq!(err("10.0.0.0/"), "prefix length \"\" is not 0 to 32");
        // Rules that would look as if they covered IPv4 clients.
        for block in ["::/80", "::/1", "::/64"] {
            assert!(
                err(block).starts_with(&format!("{block} holds the IPv4-mapped")),
                "{block}"
            );
        }
        assert_eq!(cidr("::/0").to_string(), "::/0");
        assert_eq!(cidr("2001:db8::/32").to_string(), "2001:db8::/32");
    }

    #[test]
    fn each_cidr_error_says_what_is_wrong() {
        let cases = [
            (
                CidrError::NotAnAddress {
                    text: "host.example".to_owned(),
                },
                "\"host.example\" is not an IPv4 or IPv6 address",
            ),
            (
                CidrError::PrefixLength {
                    text: "33".to_owned(),
                    width: 32,
                },
                "prefix length \"33\" is not 0 to 32",
            ),
            (
                CidrError::HostBits {
                    text: "::ffff:10.0.0.1/104".to_owned(),
                    block: cidr("10.0.0.0/8"),
                },
                "::ffff:10.0.0.1/104 has host bits set; the block is 10.0.0.0/8",
            ),
            (
                CidrError::HoldsMapped {
                    text: "::/64".to_owned(),
                },
                "::/64 holds the IPv4-mapped addresses ::ffff:0:0/96, but IPv4 clients are \
                 matched as IPv4 only: write their IPv4 block as well (0.0.0.0/0 for all), \
                 and a narrower IPv6 block, or ::/0 for every IPv6 client",
            ),
        ];
        for (error, message) in cases {
            assert_eq!(error.to_string(), message);
        }
        assert_eq!(
            "::ffff:10.0.0.1/104".parse::<Cidr>(),
            Err(CidrError::HostBits {
                text: "::ffff:10.0.0.1/104".to_owned(),
                block: cidr("10.0.0.0/8"),
            })
        );
    }

    #[test]
    fn blocks_print_as_they_parse() {
        for text in [
            "10.0.0.0/8",
            "192.0.2.7",
            "::1",
            "2001:db8::/32",
            "0.0.0.0/0",
        ] {
            assert_eq!(cidr(text).to_string(), text);
        }
    }

    #[test]
    fn deny_wins_and_an_allow_list_needs_a_known_address() {
        let rules = Rules {
            allow: vec![cidr("10.0.0.0/8")],
            deny: vec![cidr("10.0.0.5")],
        };
        assert!(rules.admit(Some(ip("10.0.0.4"))));
        assert!(!rules.admit(Some(ip("10.0.0.5"))));
        assert!(!rules.admit(Some(ip("192.0.2.1"))));
        assert!(!rules.admit(None));

        let deny_only = Rules {
            allow: vec![],
            deny: vec![cidr("192.0.2.0/24")],
        };
        assert!(deny_only.admit(Some(ip("198.51.100.1"))));
        assert!(!deny_only.admit(Some(ip("192.0.2.1"))));
        assert!(deny_only.admit(None));
        assert!(Rules::default().admit(None));
    }
}
