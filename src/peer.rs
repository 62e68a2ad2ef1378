//! The two ends of the connection on standard input, when it is a socket.

use std::fmt;
use std::net::SocketAddr;
use std::os::fd::AsFd;

/// The addresses of a connection. Both are `None` when the input is not a
/// socket: a pipe in a test, a terminal.
///
/// Behind a trusted front end (`--accept-proxy`) `remote` and `local` are
/// what its PROXY header says, the client and the address it reached, and
/// `via` is the front end the connection really came from: the client is
/// the peer everywhere (address rules, caps, the environment, the log), and
/// the log names the hop too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Peer {
    pub local: Option<SocketAddr>,
    pub remote: Option<SocketAddr>,
    /// The front end whose PROXY header named `remote`; `None` for a
    /// connection that came straight from its client.
    pub via: Option<SocketAddr>,
}

impl Peer {
    pub fn unknown() -> Self {
        Peer::default()
    }

    /// The addresses of the socket `fd`, asked of it directly: no duplicate,
    /// which could fail at the descriptor limit and make a live connection
    /// look gone.
    pub fn of(fd: impl AsFd) -> Self {
        use nix::sys::socket::{SockaddrStorage, getpeername, getsockname};
        let fd = fd.as_fd();
        let address = |addr: nix::Result<SockaddrStorage>| -> Option<SocketAddr> {
            let addr = addr.ok()?;
            if let Some(v4) = addr.as_sockaddr_in() {
                return Some(SocketAddr::V4((*v4).into()));
            }
            addr.as_sockaddr_in6()
                .map(|v6| SocketAddr::V6((*v6).into()))
        };
        use std::os::fd::AsRawFd;
        Peer {
            local: address(getsockname(fd.as_raw_fd())).map(canonical),
            remote: address(getpeername(fd.as_raw_fd())).map(canonical),
            via: None,
        }
    }
}

/// An IPv4 client of an IPv6 socket appears as `::ffff:a.b.c.d`; it is shown,
/// matched and handed on as the IPv4 address it is.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.remote {
            Some(addr) => write!(f, "{addr}"),
            None => f.write_str("unknown"),
        }
    }
}
