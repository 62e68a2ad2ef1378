//! The two ends of the connection on standard input, when it is a socket.

use std::fmt;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;

/// The addresses of a connection. Both are `None` when the input is not a
/// socket: a pipe in a test, a terminal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Peer {
    pub local: Option<SocketAddr>,
    pub remote: Option<SocketAddr>,
}

impl Peer {
    pub fn unknown() -> Self {
        Peer::default()
    }

    /// The addresses of the socket `fd`, found through a duplicate of it so
    /// the caller keeps its own descriptor.
    pub fn of(fd: impl AsFd) -> Self {
        let Ok(dup) = fd.as_fd().try_clone_to_owned() else {
            return Peer::unknown();
        };
        let socket = TcpStream::from(dup);
        Peer {
            local: socket.local_addr().ok().map(canonical),
            remote: socket.peer_addr().ok().map(canonical),
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
