//! Where a conversation's bytes come from and where its replies go, each
//! under a deadline: [`ByteSource`] and [`ReplySink`], and their forms over
//! a file descriptor, [`FdSource`] and [`FdSink`]. The server's session
//! reads requests and writes replies through them, and the `tcpmux` client
//! reads its reply line through [`FdSource`], so both stand on this module
//! and neither on the other.
//!
//! Reading never takes a byte past what the reader consumes: what the
//! client sends after its request line stays unread for the service that
//! gets the connection. On a socket [`FdSource`] peeks a block, lets the
//! caller (the line parser) say how much of it is used, and reads exactly
//! that much; on a pipe or a terminal, which cannot be peeked, it reads one
//! byte at a time.
//!
//! Writing never blocks past the deadline, and never by making the
//! descriptor non-blocking: in inetd mode fds 0 to 2 share their file
//! description with the super-server and the service that inherits them.
//! [`FdSink`] waits with `poll` for the time left, then sends with
//! `MSG_DONTWAIT` on a socket, or writes at most `PIPE_BUF` bytes to a pipe
//! or a terminal, which after `POLLOUT` the kernel takes without waiting.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::Instant;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{MsgFlags, recv, send};

/// How much of a socket is peeked at once: a whole request line of the
/// longest name and its CR LF fits.
pub const PEEK_BLOCK: usize = 512;

/// Where the request bytes come from.
pub trait ByteSource {
    /// The bytes not yet consumed, waiting for at least one until
    /// `deadline`; empty only at the end of input. An error of kind
    /// `TimedOut` when the deadline passes first.
    fn peek(&mut self, deadline: Instant) -> io::Result<&[u8]>;

    /// Consumes the first `n` bytes of what [`peek`](Self::peek) returned.
    fn consume(&mut self, n: usize) -> io::Result<()>;
}

/// Where the replies go.
pub trait ReplySink {
    /// Writes all of `bytes`, waiting for the client no later than
    /// `deadline`. An error of kind `TimedOut` when the deadline passes
    /// with bytes left to write; some may have been written.
    fn send(&mut self, bytes: &[u8], deadline: Instant) -> io::Result<()>;

    /// Writes `bytes` if that needs no waiting at all, or fails with
    /// `TimedOut`: for the timeout line, sent when the deadline has passed.
    fn send_now(&mut self, bytes: &[u8]) -> io::Result<()>;
}

/// Replies collected in memory, for tests.
impl ReplySink for Vec<u8> {
    fn send(&mut self, bytes: &[u8], _deadline: Instant) -> io::Result<()> {
        self.extend_from_slice(bytes);
        Ok(())
    }

    fn send_now(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.extend_from_slice(bytes);
        Ok(())
    }
}

/// Waits until `fd` is ready for `events`, or fails with `TimedOut` once
/// `deadline` has passed.
fn wait(fd: BorrowedFd<'_>, events: PollFlags, deadline: Instant) -> io::Result<()> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        // Round up, so a few microseconds left is a wait, not a busy loop.
        let millis = left.as_millis().saturating_add(1);
        let timeout = PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(fd, events)];
        match poll(&mut fds, timeout) {
            Ok(0) | Err(Errno::EINTR) => continue,
            // Ready, or an error or hang-up the next call will report.
            Ok(_) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}

/// A [`ByteSource`] over a file descriptor: a socket, a pipe or a terminal.
/// Every wait is for the time left before the deadline, so the deadline
/// holds however the client spreads its bytes.
pub struct FdSource<F: AsFd> {
    fd: F,
    /// `block[..len]` is what the last peek returned and was not consumed:
    /// still in the socket, or already read from a pipe.
    block: [u8; PEEK_BLOCK],
    len: usize,
    /// Set when `recv` says the descriptor is not a socket.
    bytewise: bool,
}

impl<F: AsFd> FdSource<F> {
    pub fn new(fd: F) -> Self {
        FdSource {
            fd,
            block: [0; PEEK_BLOCK],
            len: 0,
            bytewise: false,
        }
    }
}

impl<F: AsFd> ByteSource for FdSource<F> {
    fn peek(&mut self, deadline: Instant) -> io::Result<&[u8]> {
        if self.len > 0 {
            return Ok(&self.block[..self.len]);
        }
        loop {
            wait(self.fd.as_fd(), PollFlags::POLLIN, deadline)?;
            let got = if self.bytewise {
                // A pipe cannot be peeked: the byte read is the one the
                // parser is fed next, and it consumes every byte it is fed.
                nix::unistd::read(self.fd.as_fd(), &mut self.block[..1])
            } else {
                let flags = MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT;
                match recv(self.fd.as_fd().as_raw_fd(), &mut self.block, flags) {
                    Err(Errno::ENOTSOCK) => {
                        self.bytewise = true;
                        continue;
                    }
                    got => got,
                }
            };
            match got {
                Ok(n) => {
                    self.len = n;
                    return Ok(&self.block[..n]);
                }
                Err(Errno::EINTR | Errno::EAGAIN) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn consume(&mut self, n: usize) -> io::Result<()> {
        let n = n.min(self.len);
        if !self.bytewise {
            // The peeked bytes are at the head of the socket's queue, so a
            // read of exactly `n` takes them and nothing after them.
            let mut taken = [0u8; PEEK_BLOCK];
            let mut left = n;
            while left > 0 {
                match recv(
                    self.fd.as_fd().as_raw_fd(),
                    &mut taken[..left],
                    MsgFlags::MSG_DONTWAIT,
                ) {
                    Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                    Ok(k) => left -= k,
                    Err(Errno::EINTR) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        self.block.copy_within(n..self.len, 0);
        self.len -= n;
        Ok(())
    }
}

/// A [`ReplySink`] over a file descriptor: a socket, a pipe or a terminal.
/// It never makes the descriptor non-blocking (see the module's comment).
pub struct FdSink<F: AsFd> {
    fd: F,
    /// Cleared when `send` says the descriptor is not a socket.
    socket: bool,
}

impl<F: AsFd> FdSink<F> {
    pub fn new(fd: F) -> Self {
        FdSink { fd, socket: true }
    }

    /// Writes what goes without waiting, once the descriptor was found
    /// writable: how many bytes, 0 when none went.
    fn write_some(&mut self, bytes: &[u8]) -> io::Result<usize> {
        loop {
            let written = if self.socket {
                let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
                match send(self.fd.as_fd().as_raw_fd(), bytes, flags) {
                    Err(Errno::ENOTSOCK) => {
                        self.socket = false;
                        continue;
                    }
                    written => written,
                }
            } else {
                // After POLLOUT a pipe has room for PIPE_BUF bytes, which it
                // takes whole, so this write does not block.
                let chunk = &bytes[..bytes.len().min(nix::libc::PIPE_BUF)];
                nix::unistd::write(self.fd.as_fd(), chunk)
            };
            return match written {
                Ok(n) => Ok(n),
                Err(Errno::EINTR | Errno::EAGAIN) => Ok(0),
                Err(e) => Err(e.into()),
            };
        }
    }
}

impl<F: AsFd> ReplySink for FdSink<F> {
    fn send(&mut self, mut bytes: &[u8], deadline: Instant) -> io::Result<()> {
        while !bytes.is_empty() {
            wait(self.fd.as_fd(), PollFlags::POLLOUT, deadline)?;
            let n = self.write_some(bytes)?;
            bytes = &bytes[n..];
        }
        Ok(())
    }

    fn send_now(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLOUT)];
        let ready = matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0);
        if ready && self.write_some(bytes)? == bytes.len() {
            Ok(())
        } else {
            Err(io::ErrorKind::TimedOut.into())
        }
    }
}
