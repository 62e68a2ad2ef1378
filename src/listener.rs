//! Listen mode: in.tcpmuxd as its own super-server, for hosts with no inetd.
//!
//! One thread polls the listening sockets and a signalfd; each connection
//! gets a thread that runs the same session as inetd mode. HELP, `tcpmux`
//! and refusals start no process. To launch a service the connection's
//! thread does what may allocate or lock (lookups, the program's checks,
//! argv and environment; `launch::prepare`), then forks a child that makes
//! only async-signal-safe system calls before the exec (`sys::ExecPlan`),
//! the same steps inetd mode runs in place. The connection's thread waits
//! for that child, so none is left a zombie.
//!
//! After a `-` line the connection is half-closed and drained before it is
//! closed, so that the line is not lost to a reset (see `close`): by the
//! connection's thread, which keeps its place under the caps meanwhile and
//! stops at the conversation's deadline, or for a busy reply by the accept
//! loop itself, without waiting, [`close::MAX_DRAINING`] at a time.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, SockaddrIn, SockaddrIn6, bind, listen, setsockopt,
    socket, sockopt,
};

use crate::access::Cidr;
use crate::close::{self, Draining};
use crate::counters;
use crate::event::{self, Event};
use crate::exit::Exit;
use crate::forward;
use crate::inetd;
use crate::launch;
use crate::load;
use crate::peer::Peer;
use crate::rate::{self, Rates};
use crate::session::{self, Conversation, Outcome, Report};
use crate::source::{ByteSource, FdSink, FdSource, ReplySink};
use crate::sys;
use crate::table::{Kind, Service, Table};

/// The reply to a connection over a cap.
pub const BUSY: &[u8] = b"-Server busy; try again later\r\n";

/// The reply to a connection from a source over its rate, or backing off.
pub const RATE_LIMITED: &[u8] = b"-Too many new connections; try again later\r\n";

/// What listen mode needs from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// What inetd mode needs too: the table, the deadline, the log.
    pub common: inetd::Settings,
    pub addresses: Vec<SocketAddr>,
    /// Serve the listening sockets systemd passed (LISTEN_FDS) too.
    pub systemd: bool,
    pub max_connections: usize,
    pub max_per_source: usize,
    /// The prefix lengths that make one source for `max_per_source` and
    /// the rate limit.
    pub ipv4_source_prefix: u8,
    pub ipv6_source_prefix: u8,
    /// New connections a second from one source before it backs off.
    pub max_rate_per_source: u32,
    /// How long a source over the rate is refused.
    pub rate_backoff: Duration,
}

/// Parses a `--listen` address: `ADDR`, `ADDR:PORT`, `[V6]:PORT` or a bare
/// IPv6 address; the port defaults to 1, TCPMUX's.
pub fn parse_address(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let bare = text.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => Ok(SocketAddr::new(ip, 1)),
        Err(_) => Err(format!(
            "{text:?} is not an address: use 127.0.0.1, 127.0.0.1:1, ::1 or [::1]:1"
        )),
    }
}

/// Binds and listens on `addr`. An IPv6 socket is IPv6 only, so `0.0.0.0`
/// and `::` may both be given; address reuse lets a restart bind at once.
fn bind_listener(addr: SocketAddr) -> nix::Result<TcpListener> {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd: OwnedFd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    use std::os::fd::AsRawFd;
    match addr {
        SocketAddr::V4(v4) => bind(fd.as_raw_fd(), &SockaddrIn::from(v4))?,
        SocketAddr::V6(v6) => {
            setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
            bind(fd.as_raw_fd(), &SockaddrIn6::from(v6))?
        }
    }
    listen(&fd, Backlog::MAXCONN)?;
    Ok(TcpListener::from(fd))
}

/// Connections counted against the caps, in total and per source, and how
/// many of them are still in their handshake.
#[derive(Default)]
struct Counts {
    total: usize,
    per_source: HashMap<Cidr, usize>,
    handshakes: usize,
    /// A second SIGTERM or SIGINT while stopping: stop without waiting.
    stop_now: Option<Signal>,
    /// Connections of each service with a `maxconn=` at once, by its name
    /// in lower case; a service leaves when its count is back to zero.
    per_service: HashMap<String, u32>,
}

/// The source a connection counts against for `--max-per-source`: the block
/// of its address of the configured prefix length, so that a host with many
/// addresses counts once (an IPv6 host usually owns a whole /64). An IPv4
/// client of an IPv6 socket counts as IPv4.
pub fn source_of(ip: IpAddr, ipv4_prefix: u8, ipv6_prefix: u8) -> Cidr {
    let ip = ip.to_canonical();
    let len = if ip.is_ipv4() {
        ipv4_prefix
    } else {
        ipv6_prefix
    };
    Cidr::around(ip, len)
}

/// What the listener's threads share.
struct Shared {
    settings: Settings,
    table: RwLock<Arc<Table>>,
    counts: Mutex<Counts>,
    /// Signalled whenever a connection ends, for the shutdown wait.
    ended: Condvar,
    rates: Mutex<Rates>,
}

impl Shared {
    /// The source of `ip` under the configured prefixes.
    fn source_of(&self, ip: IpAddr) -> Cidr {
        let settings = &self.settings;
        source_of(ip, settings.ipv4_source_prefix, settings.ipv6_source_prefix)
    }

    /// Counts a new connection from `source` against the rate limit: `None`
    /// when it may go on, or the event of its refusal, which names the
    /// limit for the connection that starts a back-off.
    fn over_rate(&self, source: Cidr, peer: Peer) -> Option<Event> {
        let verdict = self
            .rates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .arrive(source, Instant::now());
        let event = Event::new(peer, event::Outcome::RateLimited);
        match verdict {
            rate::Verdict::Allowed => None,
            rate::Verdict::Limited { starts: false } => Some(event),
            rate::Verdict::Limited { starts: true } => Some(event.because(format_args!(
                "more than {} new connections a second from {source}; refused for {} s",
                self.settings.max_rate_per_source,
                self.settings.rate_backoff.as_secs()
            ))),
        }
    }
}

/// A connection's place under the caps, given back when dropped: when the
/// handshake ends, or when the launched service exits.
struct Slot {
    shared: Arc<Shared>,
    /// The source it counts against; `None` until a trusted front end's
    /// header has named the client.
    source: Option<Cidr>,
    /// Counted against the caps.
    capped: bool,
    /// Counted among the handshakes a stop waits for.
    in_handshake: bool,
}

impl Slot {
    /// A place under `--max-connections` and, for `Some` source, under
    /// `--max-per-source`.
    fn take(shared: &Arc<Shared>, source: Option<Cidr>) -> Option<Slot> {
        let mut counts = shared.counts.lock().unwrap_or_else(|e| e.into_inner());
        if counts.total >= shared.settings.max_connections {
            return None;
        }
        if let Some(source) = source
            && !counts.add_source(source, shared.settings.max_per_source)
        {
            return None;
        }
        counts.total += 1;
        counts.handshakes += 1;
        Some(Slot {
            shared: Arc::clone(shared),
            source,
            capped: true,
            in_handshake: true,
        })
    }

    /// Counts the connection against `source`, the client a front end's
    /// header named, once that is known: false when that source is at
    /// `--max-per-source`.
    fn count_against(&mut self, source: Cidr) -> bool {
        let mut counts = self.shared.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = self.source.take() {
            counts.remove_source(old);
        }
        let added = counts.add_source(source, self.shared.settings.max_per_source);
        if added {
            self.source = Some(source);
        }
        added
    }

    /// The handshake is over and logged; a stop need not wait for it.
    fn handshake_done(&mut self) {
        if std::mem::take(&mut self.in_handshake) {
            let mut counts = self.shared.counts.lock().unwrap_or_else(|e| e.into_inner());
            counts.handshakes -= 1;
            self.shared.ended.notify_all();
        }
    }

    /// The connection no longer counts against the caps.
    fn free_cap(&mut self) {
        if std::mem::take(&mut self.capped) {
            let mut counts = self.shared.counts.lock().unwrap_or_else(|e| e.into_inner());
            counts.total -= 1;
            if let Some(source) = self.source.take() {
                counts.remove_source(source);
            }
        }
    }
}

impl Counts {
    /// One more connection from `source`, unless it has `max` already.
    fn add_source(&mut self, source: Cidr, max: usize) -> bool {
        let here = self.per_source.get(&source).copied().unwrap_or(0);
        if here >= max {
            return false;
        }
        self.per_source.insert(source, here + 1);
        true
    }

    fn remove_source(&mut self, source: Cidr) {
        if let Some(n) = self.per_source.get_mut(&source) {
            *n -= 1;
            if *n == 0 {
                self.per_source.remove(&source);
            }
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.free_cap();
        self.handshake_done();
    }
}

/// Serves until SIGTERM or SIGINT; SIGHUP re-reads the table; SIGUSR1 logs
/// the counters, which are logged again at exit. What stops it from
/// starting is an error, for the caller to report: a
/// [`ConfigError`](crate::config::ConfigError) when the table is bad, else
/// a socket it could not listen on or a system call that failed.
pub fn run(settings: Settings) -> anyhow::Result<Exit> {
    let exit = serve_until_stopped(settings)?;
    counters::log(AT_EXIT);
    Ok(exit)
}

/// What the counters' lines begin with at exit.
pub const AT_EXIT: &str = "at exit";

fn serve_until_stopped(settings: Settings) -> anyhow::Result<Exit> {
    // Descriptors inherited from whoever started us must not reach services.
    let _ = sys::cloexec_above_stderr();
    // The listener holds every client's connection; a service that runs as
    // the listener's own user must not be able to take them.
    sys::undumpable()
        .map_err(os)
        .context("cannot make the listener undumpable")?;
    // The table's errors name the file, line and column already.
    let table = load::load_for_this_process(&settings.common.table)?;
    let mut listeners = Vec::new();
    if settings.systemd {
        listeners = sys::systemd_listeners().context("--systemd")?;
    }
    for &addr in &settings.addresses {
        let listener = bind_listener(addr)
            .map_err(os)
            .with_context(|| format!("cannot listen on {addr}"))?;
        listeners.push(listener);
    }
    // Block the signals in every thread; the poll loop reads them.
    let mut signals = SigSet::empty();
    for signal in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGUSR1,
    ] {
        signals.add(signal);
    }
    let signal_fd = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&signals), None)
        .and_then(|()| {
            SignalFd::with_flags(&signals, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        })
        .map_err(os)
        .context("cannot set up signals")?;
    enough_open_files(&settings, listeners.len());
    counters::start();
    for listener in &listeners {
        if let Ok(addr) = listener.local_addr() {
            log::info!("listening on {addr}");
        }
    }
    let shared = Arc::new(Shared {
        table: RwLock::new(Arc::new(table)),
        counts: Mutex::new(Counts::default()),
        ended: Condvar::new(),
        rates: Mutex::new(Rates::new(
            settings.max_rate_per_source,
            settings.rate_backoff,
            rate::MAX_SOURCES,
        )),
        settings,
    });
    let mut draining = Draining::default();
    let signal = accept_until_stopped(&shared, &listeners, &signal_fd, &mut draining);
    // Connections already queued were accepted by the kernel for us: serve
    // them too rather than let the close reset them.
    for listener in &listeners {
        accept_waiting(&shared, listener, &mut draining);
    }
    drop(listeners);
    // Busy connections still being drained get their bounded end.
    draining.finish();
    let under_way = shared
        .counts
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .handshakes;
    let wait = shared.settings.common.timeout + Duration::from_secs(1);
    if under_way == 0 {
        log::info!("{signal}: no new connections; no handshake under way");
        return Ok(Exit::Ok);
    }
    log::info!(
        "{signal}: no new connections; waiting up to {} s for {} under way; \
         send SIGINT or SIGTERM again to stop now",
        wait.as_secs(),
        handshakes(under_way)
    );
    let watched = Arc::clone(&shared);
    let watcher = thread::Builder::new()
        .name("signals".to_owned())
        .spawn(move || watch_for_a_second_signal(&watched, &signal_fd));
    if let Err(e) = watcher {
        log::error!("no thread to watch for a second signal: {e}");
    }
    Ok(finish_handshakes(&shared, wait))
}

/// A failed system call as an operator reads it: "Address already in use",
/// without the errno's name.
fn os(e: nix::Error) -> anyhow::Error {
    anyhow::Error::msg(e.desc())
}

/// Descriptors a connection may hold in the listener, at most: a forward's
/// socket, its backend's and the two pipes of its relay (a launch holds
/// its socket and the program opened for it; a launched service's own
/// descriptors are in its process, not here).
const OPEN_FILES_PER_CONNECTION: u64 = 6;

/// Descriptors the listener holds besides its connections': standard
/// input, output and error, the log's socket, the signalfd, the busy
/// connections being drained, and room for the table and the directories
/// walked to check a program.
const OPEN_FILES_BESIDES: u64 = 3 + 1 + 1 + close::MAX_DRAINING as u64 + 16;

/// How many descriptors `--max-connections` needs on `listeners` sockets.
pub fn open_files_needed(max_connections: usize, listeners: usize) -> u64 {
    max_connections as u64 * OPEN_FILES_PER_CONNECTION + OPEN_FILES_BESIDES + listeners as u64
}

/// Raises the limit on open files as far as it goes, and warns when even
/// that is too few for `--max-connections`: past it, connections would
/// wait unaccepted rather than get the busy line.
fn enough_open_files(settings: &Settings, listeners: usize) {
    let needed = open_files_needed(settings.max_connections, listeners);
    match sys::raise_open_files_limit() {
        Ok((soft, hard)) if soft < needed => log::warn!(
            "--max-connections {} needs about {needed} open files ({OPEN_FILES_PER_CONNECTION} \
             a connection, and {} besides), but the limit (RLIMIT_NOFILE) is {soft} and \
             the hard limit {hard}: raise it (LimitNOFILE= in the unit, ulimit -n) or \
             lower --max-connections",
            settings.max_connections,
            needed - settings.max_connections as u64 * OPEN_FILES_PER_CONNECTION
        ),
        Ok(_) => {}
        Err(e) => log::warn!(
            "cannot raise the limit on open files (RLIMIT_NOFILE): {}",
            e.desc()
        ),
    }
}

/// "1 handshake", "2 handshakes".
fn handshakes(n: usize) -> String {
    match n {
        1 => "1 handshake".to_owned(),
        n => format!("{n} handshakes"),
    }
}

/// While the handshakes finish: a second SIGTERM or SIGINT tells the wait
/// to stop now. SIGHUP re-reads nothing any more; SIGUSR1 still logs the
/// counters.
fn watch_for_a_second_signal(shared: &Shared, signal_fd: &SignalFd) {
    loop {
        let mut fds = [PollFd::new(signal_fd.as_fd(), PollFlags::POLLIN)];
        if poll(&mut fds, PollTimeout::NONE).is_err() {
            continue;
        }
        while let Ok(Some(info)) = signal_fd.read_signal() {
            match Signal::try_from(info.ssi_signo as i32) {
                Ok(signal @ (Signal::SIGTERM | Signal::SIGINT)) => {
                    let mut counts = shared.counts.lock().unwrap_or_else(|e| e.into_inner());
                    counts.stop_now = Some(signal);
                    shared.ended.notify_all();
                    return;
                }
                Ok(Signal::SIGUSR1) => counters::log("SIGUSR1"),
                _ => {}
            }
        }
    }
}

/// Serves until a signal to stop, which it returns. Busy connections are
/// drained in the same loop, without waiting.
fn accept_until_stopped(
    shared: &Arc<Shared>,
    listeners: &[TcpListener],
    signal_fd: &SignalFd,
    draining: &mut Draining,
) -> Signal {
    loop {
        let mut fds: Vec<PollFd> = listeners
            .iter()
            .map(|l| PollFd::new(l.as_fd(), PollFlags::POLLIN))
            .collect();
        fds.push(PollFd::new(signal_fd.as_fd(), PollFlags::POLLIN));
        fds.extend(draining.fds());
        let polled = poll(&mut fds, draining.timeout());
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        draining.sweep();
        if polled.is_err() {
            continue;
        }
        if ready[listeners.len()] {
            while let Ok(Some(info)) = signal_fd.read_signal() {
                match Signal::try_from(info.ssi_signo as i32) {
                    Ok(Signal::SIGHUP) => reload(shared),
                    Ok(Signal::SIGUSR1) => counters::log("SIGUSR1"),
                    Ok(signal) => return signal,
                    Err(_) => {}
                }
            }
        }
        for (listener, _) in listeners.iter().zip(&ready).filter(|(_, r)| **r) {
            accept_waiting(shared, listener, draining);
        }
    }
}

/// Admits every connection waiting on `listener`, without blocking.
fn accept_waiting(shared: &Arc<Shared>, listener: &TcpListener, draining: &mut Draining) {
    let _ = listener.set_nonblocking(true);
    while let Ok((stream, _)) = listener.accept() {
        admit(shared, stream, draining);
    }
}

/// Re-reads the table; a broken one leaves the old one in force.
fn reload(shared: &Shared) {
    let settings = &shared.settings;
    match load::load_for_this_process(&settings.common.table) {
        Ok(table) => {
            let services = table.count();
            *shared.table.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(table);
            log::info!(
                "SIGHUP: table {} re-read, {services}",
                settings.common.table.path.display()
            );
        }
        Err(e) => log::error!("SIGHUP: keeping the old table: {e}"),
    }
}

/// Applies the rate limit and the caps, then serves the connection on a
/// thread of its own. A connection over the rate or a cap gets its line
/// and joins `draining`. One from a trusted front end (`--accept-proxy`)
/// counts against no source until its header names the client (see
/// [`serve`]).
fn admit(shared: &Arc<Shared>, stream: TcpStream, draining: &mut Draining) {
    let _ = stream.set_nonblocking(false);
    let peer = Peer::of(stream.as_fd());
    let settings = &shared.settings;
    let Some(remote) = peer.remote else {
        // Reset while still in the accept queue: nothing to serve, but every
        // connection gets its log line.
        Event::new(peer, event::Outcome::IoError)
            .because("the connection was gone before it was served")
            .log();
        return;
    };
    let proxied = settings.common.accept_proxy.covers(Some(remote.ip()));
    let source = (!proxied).then(|| shared.source_of(remote.ip()));
    if let Some(refusal) = source.and_then(|source| shared.over_rate(source, peer)) {
        // Like busy: no place is taken, and no waiting.
        let _ = FdSink::new(stream.as_fd()).send_now(RATE_LIMITED);
        draining.add(stream);
        refusal.log();
        return;
    }
    let Some(slot) = Slot::take(shared, source) else {
        // A fresh connection takes a line at once; if not, no waiting.
        let _ = FdSink::new(stream.as_fd()).send_now(BUSY);
        draining.add(stream);
        Event::new(peer, event::Outcome::Busy).log();
        return;
    };
    let shared = Arc::clone(shared);
    let spawned = thread::Builder::new()
        .name("connection".to_owned())
        .stack_size(128 * 1024)
        .spawn(move || serve(&shared, stream, peer, slot));
    if let Err(e) = spawned {
        // The server's own failure, not the client's: an error.
        Event::new(peer, event::Outcome::IoError)
            .because(format_args!("no thread for the connection: {e}"))
            .at(log::Level::Error)
            .log();
    }
}

/// One connection: the PROXY header from a trusted front end, the session,
/// then its log line or the hand-over. Behind a front end the client the
/// header names is the peer, and is counted against the rate limit and
/// `--max-per-source` in place of the front end.
fn serve(shared: &Shared, stream: TcpStream, hop: Peer, mut slot: Slot) {
    let table = Arc::clone(&shared.table.read().unwrap_or_else(|e| e.into_inner()));
    let source = FdSource::new(stream.as_fd());
    let sink = FdSink::new(stream.as_fd());
    let mut conversation = Conversation::new(source, sink, shared.settings.common.timeout);
    let (peer, result) = match conversation.peer(&shared.settings.common.accept_proxy, hop) {
        Ok(Ok(peer)) if slot.source.is_none() => {
            let ip = peer.remote.map(|addr| addr.ip());
            let Some(source) = ip.map(|ip| shared.source_of(ip)) else {
                let refusal = Event::new(peer, event::Outcome::Busy);
                return refuse(&mut conversation, &stream, BUSY, &refusal, slot);
            };
            if let Some(refusal) = shared.over_rate(source, peer) {
                return refuse(&mut conversation, &stream, RATE_LIMITED, &refusal, slot);
            }
            if !slot.count_against(source) {
                let refusal = Event::new(peer, event::Outcome::Busy);
                return refuse(&mut conversation, &stream, BUSY, &refusal, slot);
            }
            (peer, session::serve(&mut conversation, &table, &peer))
        }
        Ok(Ok(peer)) => (peer, session::serve(&mut conversation, &table, &peer)),
        Ok(Err(report)) => (hop, Ok(report)),
        Err(e) => (hop, Err(e)),
    };
    match result {
        Ok(Report {
            outcome: Outcome::Launch { service },
            ..
        }) => {
            // maxconn=: a place of the service's own, held as long as the
            // connection's place under the caps.
            let Some(_place) = ServicePlace::take(shared, &service) else {
                let refusal = Event::new(peer, event::Outcome::Busy)
                    .name(&service.name)
                    .because(format_args!(
                        "maxconn={} of {}",
                        service.options.maxconn.unwrap_or(0),
                        service.name
                    ));
                return refuse(&mut conversation, &stream, BUSY, &refusal, slot);
            };
            hand_over(&mut conversation, &stream, &peer, &service, slot)
        }
        result => {
            // Logged first, so that a client that has read its reply to
            // the end finds the connection logged, as in inetd mode.
            session::event(&peer, &result).log();
            // A refused connection keeps its place while it is drained,
            // within its deadline; the slot is dropped after.
            if matches!(&result, Ok(report) if report.outcome.refused()) {
                close::after_refusal(stream.as_fd(), conversation.deadline());
            }
            drop(slot);
        }
    }
}

/// The busy or rate-limited line for a client a front end named, in the
/// connection's thread, under its deadline; then the log line and the
/// drain.
/// A connection's place among its service's `maxconn=`, given back when
/// dropped; every service without one takes none.
struct ServicePlace<'a> {
    shared: &'a Shared,
    name: Option<String>,
}

impl<'a> ServicePlace<'a> {
    fn take(shared: &'a Shared, service: &Service) -> Option<ServicePlace<'a>> {
        let Some(max) = service.options.maxconn else {
            return Some(ServicePlace { shared, name: None });
        };
        let name = service.name.to_ascii_lowercase();
        let mut counts = shared.counts.lock().unwrap_or_else(|e| e.into_inner());
        let here = counts.per_service.entry(name.clone()).or_insert(0);
        if *here >= max {
            if *here == 0 {
                counts.per_service.remove(&name);
            }
            return None;
        }
        *here += 1;
        Some(ServicePlace {
            shared,
            name: Some(name),
        })
    }
}

impl Drop for ServicePlace<'_> {
    fn drop(&mut self) {
        let Some(name) = self.name.take() else {
            return;
        };
        let mut counts = self.shared.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.per_service.get_mut(&name) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.per_service.remove(&name);
            }
        }
    }
}

fn refuse<S: ByteSource, W: ReplySink>(
    conversation: &mut Conversation<S, W>,
    stream: &TcpStream,
    line: &[u8],
    refusal: &Event,
    slot: Slot,
) {
    let _ = conversation.reply(line);
    refusal.log();
    close::after_refusal(stream.as_fd(), conversation.deadline());
    drop(slot);
}

/// Launches the service in a forked child with the connection on its fds
/// 0 to 2, and waits for it, so the slot is held while the service runs and
/// the child is reaped. The checks, the lookups and the opening of the
/// program happen here, in the listener, right before the fork.
fn hand_over<S: ByteSource, W: ReplySink>(
    out: &mut Conversation<S, W>,
    stream: &TcpStream,
    peer: &Peer,
    service: &Service,
    mut slot: Slot,
) {
    if !matches!(service.kind, Kind::Exec { .. }) {
        return forward(out, stream, peer, service, slot);
    }
    let launch = match launch::ready(service, peer, out) {
        Ok(launch) => launch,
        Err(failure) => return launch_failed(out, stream, peer, service, slot, &failure),
    };
    match launch.plan.spawn(Some(stream.as_fd())) {
        Ok(pid) => {
            inetd::launched(peer, service, &launch).log();
            drop(launch);
            slot.handshake_done();
            let _ = nix::sys::wait::waitpid(pid, None);
        }
        Err((step, e)) => {
            let failure = launch::Failure {
                error: launch::LaunchError::Step(step, e),
                accepted: service.mux_replies,
            };
            launch_failed(out, stream, peer, service, slot, &failure);
        }
    }
}

/// A forward or a pass, in the connection's thread: no process, no thread
/// more. The place under the caps is held until the relay ends.
fn forward<S: ByteSource, W: ReplySink>(
    out: &mut Conversation<S, W>,
    stream: &TcpStream,
    peer: &Peer,
    service: &Service,
    mut slot: Slot,
) {
    let reached = match forward::reach(service, peer, out) {
        Ok(reached) => reached,
        Err(failure) => return launch_failed(out, stream, peer, service, slot, &failure),
    };
    inetd::reached_event(peer, service, &reached).log();
    slot.handshake_done();
    let _ = forward::finish(reached, stream.as_fd(), &service.name, peer);
    drop(slot);
}

/// Tells the client and the log, then drains the connection holding its
/// place, as for other refusals; the place is freed after.
fn launch_failed<S: ByteSource, W: ReplySink>(
    out: &mut Conversation<S, W>,
    stream: &TcpStream,
    peer: &Peer,
    service: &Service,
    slot: Slot,
    failure: &launch::Failure,
) {
    inetd::launch_failed(service, peer, failure, out);
    close::after_refusal(stream.as_fd(), out.deadline());
    drop(slot);
}

/// After the listeners close: waits for the handshakes under way, each
/// within its deadline, and no longer than `wait`, or until a second
/// signal, which cuts them off. Running services are left to run.
fn finish_handshakes(shared: &Shared, wait: Duration) -> Exit {
    let limit = Instant::now() + wait;
    let mut counts = shared.counts.lock().unwrap_or_else(|e| e.into_inner());
    while counts.handshakes > 0 {
        if let Some(signal) = counts.stop_now {
            let cut = handshakes(counts.handshakes);
            drop(counts);
            log::warn!("{signal} again: stopping now; {cut} cut off");
            return Exit::Stopped;
        }
        let left = limit.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        counts = match shared.ended.wait_timeout(counts, left) {
            Ok((counts, _)) => counts,
            Err(e) => e.into_inner().0,
        };
    }
    Exit::Ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_default_to_port_1() {
        let cases = [
            ("127.0.0.1", "127.0.0.1:1"),
            ("127.0.0.1:1001", "127.0.0.1:1001"),
            ("::1", "[::1]:1"),
            ("[::1]", "[::1]:1"),
            ("[::]:0", "[::]:0"),
            ("0.0.0.0", "0.0.0.0:1"),
        ];
        for (text, addr) in cases {
            assert_eq!(parse_address(text).unwrap().to_string(), addr, "{text}");
        }
        assert!(parse_address("localhost").is_err());
        assert!(parse_address("127.0.0.1:99999").is_err());
    }

    #[test]
    fn sources_are_counted_by_prefix() {
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        let key = |text: &str, v4, v6| source_of(ip(text), v4, v6).to_string();
        // The defaults: an IPv4 address alone, an IPv6 host's /64.
        assert_eq!(key("192.0.2.7", 32, 64), "192.0.2.7");
        assert_eq!(key("2001:db8:0:1:a:b:c:d", 32, 64), "2001:db8:0:1::/64");
        assert_eq!(
            source_of(ip("2001:db8:0:1::1"), 32, 64),
            source_of(ip("2001:db8:0:1:ffff::2"), 32, 64)
        );
        assert_ne!(
            source_of(ip("2001:db8:0:1::1"), 32, 64),
            source_of(ip("2001:db8:0:2::1"), 32, 64)
        );
        // Settable, and each family by its own length.
        assert_eq!(key("192.0.2.7", 24, 128), "192.0.2.0/24");
        assert_eq!(key("2001:db8::7", 24, 128), "2001:db8::7");
        assert_eq!(key("203.0.113.200", 1, 1), "128.0.0.0/1");
        // An IPv4 client of an IPv6 socket counts as IPv4.
        assert_eq!(key("::ffff:192.0.2.7", 24, 64), "192.0.2.0/24");
        assert_eq!(
            source_of(ip("::ffff:192.0.2.7"), 32, 64),
            source_of(ip("192.0.2.7"), 32, 64)
        );
    }
}
