//! Reaching a running daemon: connecting to it within a deadline, by TCP or
//! by a Unix socket, and sending the PROXY protocol header at once, before
//! any byte of the client's, so that server-speaks-first protocols (ssh,
//! SMTP) work behind a forward; then relaying the connection to it, or
//! passing the connection itself. The same steps in both modes: inetd mode
//! runs them in its own process (as the service's user), the listener in
//! the connection's thread.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{
    AddressFamily, SockFlag, SockType, SockaddrIn, SockaddrIn6, UnixAddr, connect, getsockopt,
    socket, sockopt,
};

use crate::launch::{Failure, LaunchError};
use crate::pass;
use crate::peer::Peer;
use crate::proxy;
use crate::relay;
use crate::strict::{self, Refusal, Use};
use crate::table::{Kind, Service};

/// How long a backend has to accept the connection: a daemon on the same
/// host answers at once, and a client waits for its `+` meanwhile.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The PROXY protocol header of `version` for a connection of `peer` to
/// the service `service`.
pub fn header(version: proxy::Version, peer: &Peer, service: &str) -> Vec<u8> {
    match version {
        proxy::Version::V1 => proxy::v1(peer.remote, peer.local),
        proxy::Version::V2 => proxy::v2(peer.remote, peer.local, service),
    }
}

/// A connected backend.
pub enum Backend {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl AsFd for Backend {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match self {
            Backend::Tcp(s) => s.as_fd(),
            Backend::Unix(s) => s.as_fd(),
        }
    }
}

impl Backend {
    /// Writes the whole header; the backend's socket buffer is empty, so a
    /// header of at most a few hundred bytes goes at once.
    pub fn send_header(&self, header: &[u8]) -> io::Result<()> {
        match self {
            Backend::Tcp(s) => (&*s).write_all(header),
            Backend::Unix(s) => (&*s).write_all(header),
        }
    }
}

/// Connects to the first of `addresses` that accepts before `deadline`.
pub fn connect_tcp(addresses: &[SocketAddr], deadline: Instant) -> io::Result<Backend> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address to connect to");
    for addr in addresses {
        match connect_one(Target::Tcp(*addr), deadline) {
            Ok(fd) => return Ok(Backend::Tcp(TcpStream::from(fd))),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Connects to the Unix socket at `path` before `deadline`.
pub fn connect_unix(path: &Path, deadline: Instant) -> io::Result<Backend> {
    connect_one(Target::Unix(path), deadline).map(|fd| Backend::Unix(UnixStream::from(fd)))
}

enum Target<'a> {
    Tcp(SocketAddr),
    Unix(&'a Path),
}

/// A non-blocking connect, waited for until `deadline`, then made blocking.
fn connect_one(target: Target, deadline: Instant) -> io::Result<OwnedFd> {
    let family = match target {
        Target::Tcp(SocketAddr::V4(_)) => AddressFamily::Inet,
        Target::Tcp(SocketAddr::V6(_)) => AddressFamily::Inet6,
        Target::Unix(_) => AddressFamily::Unix,
    };
    let flags = SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK;
    let fd = socket(family, SockType::Stream, flags, None)?;
    use std::os::fd::AsRawFd;
    let started = match target {
        Target::Tcp(SocketAddr::V4(v4)) => connect(fd.as_raw_fd(), &SockaddrIn::from(v4)),
        Target::Tcp(SocketAddr::V6(v6)) => connect(fd.as_raw_fd(), &SockaddrIn6::from(v6)),
        Target::Unix(path) => connect(fd.as_raw_fd(), &UnixAddr::new(path)?),
    };
    match started {
        Ok(()) => {}
        Err(Errno::EINPROGRESS | Errno::EAGAIN) => wait_connected(&fd, deadline)?,
        Err(e) => return Err(e.into()),
    }
    let flags = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETFL)?;
    let flags = nix::fcntl::OFlag::from_bits_truncate(flags) - nix::fcntl::OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETFL(flags))?;
    Ok(fd)
}

fn wait_connected(fd: &OwnedFd, deadline: Instant) -> io::Result<()> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the backend did not accept in time",
            ));
        }
        let millis = left.as_millis().saturating_add(1);
        let timeout = PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLOUT)];
        match poll(&mut fds, timeout) {
            Ok(0) | Err(Errno::EINTR) => continue,
            Ok(_) => break,
            Err(e) => return Err(e.into()),
        }
    }
    match getsockopt(fd, sockopt::SocketError)? {
        0 => Ok(()),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

/// A daemon reached for a service: the header and the `+` line sent.
pub enum Reached {
    /// A forward: the connection is to be relayed to the backend.
    Relay { backend: Backend, to: String },
    /// A pass: the connection is to be handed to the daemon.
    Pass { daemon: UnixStream, to: String },
}

impl Reached {
    /// Where it went, as the table writes it.
    pub fn to(&self) -> &str {
        match self {
            Reached::Relay { to, .. } | Reached::Pass { to, .. } => to,
        }
    }
}

/// Reaches the daemon of a `tcp:`, `unix:` or `pass:` service within
/// [`CONNECT_TIMEOUT`], sends the PROXY header its `proxy=` asks for, then,
/// where the table says the multiplexer replies, `+Go` to the client on
/// `out`: only once the daemon is there.
pub fn reach(service: &Service, peer: &Peer, out: &mut impl Write) -> Result<Reached, Failure> {
    let to = service.kind.target().unwrap_or_default();
    let refused = |error: LaunchError| Failure {
        error,
        accepted: false,
    };
    let unreachable = |error: io::Error| {
        refused(LaunchError::Unreachable {
            to: to.clone(),
            error,
        })
    };
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    let reached = match &service.kind {
        Kind::Tcp { host, port } => {
            let addresses = addresses(host, *port).map_err(unreachable)?;
            let backend = connect_tcp(&addresses, deadline).map_err(unreachable)?;
            Reached::Relay {
                backend,
                to: to.clone(),
            }
        }
        Kind::Unix { path } => {
            let path = socket_path(path).map_err(|r| refused(LaunchError::Program(r)))?;
            let backend = connect_unix(&path, deadline).map_err(unreachable)?;
            Reached::Relay {
                backend,
                to: to.clone(),
            }
        }
        Kind::Pass { path } => {
            let path = socket_path(path).map_err(|r| refused(LaunchError::Program(r)))?;
            let Backend::Unix(daemon) = connect_unix(&path, deadline).map_err(unreachable)? else {
                return Err(refused(LaunchError::NotAProgram));
            };
            Reached::Pass {
                daemon,
                to: to.clone(),
            }
        }
        Kind::Exec { .. } => return Err(refused(LaunchError::NotAProgram)),
    };
    if let (Some(version), Reached::Relay { backend, .. }) = (service.options.proxy, &reached) {
        backend
            .send_header(&header(version, peer, &service.name))
            .map_err(unreachable)?;
    }
    crate::launch::accept(service, out)?;
    Ok(reached)
}

/// Relays the connection until both sides are done, or hands it to the
/// daemon (and this process's copy is closed by the caller).
pub fn finish(reached: Reached, client: BorrowedFd, service: &str, peer: &Peer) -> io::Result<()> {
    match reached {
        Reached::Relay { backend, .. } => relay::relay(client, &backend).map(|_| ()),
        Reached::Pass { daemon, .. } => pass::send(
            &daemon,
            client,
            &pass::message(service, peer.remote, peer.local),
        ),
    }
}

/// The addresses of `tcp:HOST:PORT`: the address itself, or those the host
/// name has (looked up in /etc/hosts and DNS, when the connection is
/// forwarded).
fn addresses(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    crate::sys::plain_host_lookups();
    use std::net::ToSocketAddrs;
    Ok((host, port).to_socket_addrs()?.collect())
}

/// A daemon's socket, reached as StrictModes allow when root: every
/// directory on the way root's and writable by nobody else. Connected to by
/// the path the walk resolved.
fn socket_path(path: &str) -> Result<std::path::PathBuf, Refusal> {
    let strict = nix::unistd::geteuid().is_root();
    let what = format!("socket {path}");
    strict::open(Path::new(path), Use::Socket, strict, &what).map(|opened| opened.resolved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;

    #[test]
    fn a_backend_gets_the_header_before_anything_else() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        let backend = connect_tcp(&[addr], deadline).unwrap();
        let peer = Peer {
            local: Some("127.0.0.1:1".parse().unwrap()),
            remote: Some("192.0.2.7:40000".parse().unwrap()),
            via: None,
        };
        backend
            .send_header(&header(proxy::Version::V1, &peer, "web"))
            .unwrap();
        drop(backend);
        let (mut accepted, _) = listener.accept().unwrap();
        let mut got = Vec::new();
        accepted.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"PROXY TCP4 192.0.2.7 127.0.0.1 40000 1\r\n");
    }

    #[test]
    fn a_refused_or_missing_backend_is_an_error_not_a_wait() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        let refused = connect_tcp(&[port], deadline).err().unwrap();
        assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
        let missing = connect_unix(Path::new("/nonexistent/socket"), deadline)
            .err()
            .unwrap();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
    }
}
