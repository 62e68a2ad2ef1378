//! Closing a connection after a `-` line so that the line reaches the
//! client.
//!
//! A socket closed with input still unread makes the kernel send a reset
//! instead of a normal end of stream, and a client that gets the reset may
//! lose the line that came before it (`Connection reset by peer`, or
//! nothing at all). A refused client has usually sent more than the line
//! the server read: the rest of a pipelined request, the data it meant for
//! the service, or the whole request when the server refused it unread
//! (busy, or a broken table). So after a refusal the server shuts down its
//! sending side, which sends the line and then the end of stream, and then
//! reads and discards what the client sends until the client closes, for at
//! most [`DRAIN_BYTES`] bytes and [`DRAIN_TIME`], and never past the
//! conversation's deadline; what arrived by then is always taken, without
//! waiting. Only then is the socket closed. No service gets these bytes, so
//! reading them loses nothing.
//!
//! Nothing here makes a descriptor non-blocking: reads use `MSG_DONTWAIT`
//! and waits use `poll`, as in `source`. A pipe or a terminal has no
//! reset and nothing to drain; it is left alone.

use std::net::TcpStream;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{MsgFlags, Shutdown, recv, shutdown};

/// The longest a refused connection is drained.
pub const DRAIN_TIME: Duration = Duration::from_secs(1);

/// The most bytes taken from a refused connection.
pub const DRAIN_BYTES: usize = 64 * 1024;

/// How many busy connections the listener drains at once; more are closed
/// at once, reset or not, so that a flood costs bounded descriptors.
pub const MAX_DRAINING: usize = 64;

/// Half-closes `fd` after a refusal: the line already written is followed by
/// the end of stream. False when there is nothing to drain: not a socket,
/// or the client is gone.
fn half_close(fd: BorrowedFd<'_>) -> bool {
    shutdown(fd.as_raw_fd(), Shutdown::Write).is_ok()
}

/// What one pass over a draining socket found.
#[derive(Debug, PartialEq, Eq)]
enum Progress {
    /// The client closed, reset, or sent all it may: close now.
    Done,
    /// Nothing more has arrived yet.
    Waiting,
}

/// Reads and discards what has arrived, without waiting, counting it in
/// `taken`.
fn discard(fd: BorrowedFd<'_>, taken: &mut usize) -> Progress {
    let mut buf = [0u8; 4096];
    loop {
        let room = (DRAIN_BYTES - *taken).min(buf.len());
        if room == 0 {
            return Progress::Done;
        }
        match recv(fd.as_raw_fd(), &mut buf[..room], MsgFlags::MSG_DONTWAIT) {
            Ok(0) => return Progress::Done,
            Ok(n) => *taken += n,
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => return Progress::Waiting,
            Err(_) => return Progress::Done,
        }
    }
}

/// After a `-` line that ends the connection, in the connection's own
/// thread or process: half-closes the socket, then drains it until the
/// client closes, [`DRAIN_BYTES`] have been read, or [`DRAIN_TIME`] has
/// passed, and never past `deadline` (what has arrived is still taken).
/// The caller then closes it.
pub fn after_refusal(fd: BorrowedFd<'_>, deadline: Instant) {
    if !half_close(fd) {
        return;
    }
    let until = deadline.min(Instant::now() + DRAIN_TIME);
    let mut taken = 0;
    while discard(fd, &mut taken) == Progress::Waiting {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        let millis = left.as_millis().saturating_add(1);
        let timeout = PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX);
        match poll(&mut [PollFd::new(fd, PollFlags::POLLIN)], timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => return,
        }
    }
}

/// One connection being drained by [`Draining`].
struct Drain {
    stream: TcpStream,
    until: Instant,
    taken: usize,
}

/// Refused connections drained together without blocking, by a thread that
/// has other work: the listener's accept loop, for its busy replies. It
/// polls [`fds`](Self::fds) with the rest of its descriptors and
/// [`timeout`](Self::timeout), then calls [`sweep`](Self::sweep). At most
/// [`MAX_DRAINING`] at once, each for at most [`DRAIN_TIME`] and
/// [`DRAIN_BYTES`].
#[derive(Default)]
pub struct Draining {
    drains: Vec<Drain>,
}

impl Draining {
    /// Half-closes `stream`, whose refusal was written, and takes what has
    /// arrived; keeps it to drain when more may come and there is room,
    /// closes it otherwise.
    pub fn add(&mut self, stream: TcpStream) {
        if !half_close(stream.as_fd()) {
            return;
        }
        let mut drain = Drain {
            stream,
            until: Instant::now() + DRAIN_TIME,
            taken: 0,
        };
        let waiting = discard(drain.stream.as_fd(), &mut drain.taken) == Progress::Waiting;
        if waiting && self.drains.len() < MAX_DRAINING {
            self.drains.push(drain);
        }
    }

    /// Takes what has arrived on each connection, and closes those done or
    /// out of time.
    pub fn sweep(&mut self) {
        let now = Instant::now();
        self.drains.retain_mut(|drain| {
            discard(drain.stream.as_fd(), &mut drain.taken) == Progress::Waiting
                && drain.until > now
        });
    }

    /// The connections to poll for input.
    pub fn fds(&self) -> impl Iterator<Item = PollFd<'_>> {
        self.drains
            .iter()
            .map(|d| PollFd::new(d.stream.as_fd(), PollFlags::POLLIN))
    }

    /// How long a poll may wait before the next drain runs out of time.
    pub fn timeout(&self) -> PollTimeout {
        let Some(until) = self.drains.iter().map(|d| d.until).min() else {
            return PollTimeout::NONE;
        };
        let left = until.saturating_duration_since(Instant::now());
        PollTimeout::try_from(left.as_millis().saturating_add(1)).unwrap_or(PollTimeout::MAX)
    }

    pub fn is_empty(&self) -> bool {
        self.drains.is_empty()
    }

    /// Drains what is left to the end, for a listener that stops: at most
    /// [`DRAIN_TIME`].
    pub fn finish(&mut self) {
        while !self.is_empty() {
            let timeout = self.timeout();
            let mut fds: Vec<PollFd> = self.fds().collect();
            let _ = poll(&mut fds, timeout);
            drop(fds);
            self.sweep();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (client, server)
    }

    #[test]
    fn the_client_sees_the_line_then_the_end_and_its_input_is_taken() {
        let (mut client, mut server) = pair();
        client.write_all(&[b'x'; 10_000]).unwrap();
        server.write_all(b"-No\r\n").unwrap();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        after_refusal(server.as_fd(), Instant::now() + Duration::from_secs(60));
        let mut got = Vec::new();
        client.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"-No\r\n");
        // Everything the client sent was read: nothing is left to reset.
        server.set_nonblocking(true).unwrap();
        assert_eq!(server.read(&mut [0u8; 16]).unwrap(), 0);
    }

    #[test]
    fn a_client_that_sends_without_end_is_drained_only_so_far() {
        let (client, server) = pair();
        let writer = std::thread::spawn(move || {
            let mut client = client;
            let block = [b'x'; 65536];
            // Until the server closes; then the write fails.
            while client.write_all(&block).is_ok() {}
        });
        after_refusal(server.as_fd(), Instant::now() + Duration::from_secs(60));
        drop(server);
        writer.join().unwrap();
    }

    #[test]
    fn a_pipe_is_left_alone() {
        let (r, _w) = nix::unistd::pipe().unwrap();
        // Returns at once: no shutdown, nothing read, whatever the deadline.
        after_refusal(r.as_fd(), Instant::now() + Duration::from_secs(3600));
    }

    #[test]
    fn the_set_drains_each_until_its_client_closes() {
        let mut draining = Draining::default();
        let mut clients = Vec::new();
        for _ in 0..3 {
            let (mut client, mut server) = pair();
            client.write_all(b"HELP\r\nmore").unwrap();
            server.write_all(b"-Busy\r\n").unwrap();
            draining.add(server);
            clients.push(client);
        }
        for mut client in clients {
            let mut got = Vec::new();
            client.read_to_end(&mut got).unwrap();
            assert_eq!(got, b"-Busy\r\n");
        }
        draining.finish();
        assert!(draining.is_empty());
    }
}
