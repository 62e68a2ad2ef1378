//! Inetd mode: the super-server has accepted the connection and put it on
//! file descriptors 0, 1 and 2. One conversation, one log line, then exit or
//! hand the connection to the chosen service. After a `-` line the
//! connection is half-closed and drained (see `close`) before the exit, so
//! that the line is not lost to a reset; this process is the last user of
//! the connection, whose bytes no service will read.

use std::io::{self, IsTerminal, Write};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::sys::socket::{getsockopt, sockopt};

use crate::accept_proxy::Trusted;
use crate::close;
use crate::event::{self, Detail, Event};
use crate::exit::Exit;
use crate::forward;
use crate::launch;
use crate::load::{self, TableFile};
use crate::logging::{self, Log};
use crate::peer::Peer;
use crate::protocol;
use crate::session::{self, Conversation, Outcome, Report};
use crate::source::{FdSink, FdSource, ReplySink};
use crate::sys;
use crate::table::{Kind, Service};

/// What inetd mode needs from the command line; listen mode needs the
/// same and more (see `listener::Settings`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub table: TableFile,
    /// The deadline of a whole conversation.
    pub timeout: Duration,
    /// Where the log goes, so that a start-up error also reaches a person.
    pub log: Log,
    /// The front ends whose connections begin with a PROXY protocol header
    /// (`--accept-proxy`).
    pub accept_proxy: Trusted,
}

/// What is logged when standard input is a listening socket.
pub const LISTENING_SOCKET: &str = "standard input is a listening socket, not a connection: \
     for a process per connection set Accept=yes in the .socket unit \
     (systemd-socket-activate: -a); for one listener on systemd's sockets \
     run in.tcpmuxd --systemd";

/// What a person who runs in.tcpmuxd on a terminal is told first.
pub const TERMINAL_HINT: &str = "in.tcpmuxd: reading a TCPMUX request from the terminal; \
     end it with CR LF: type the name, Ctrl-V Ctrl-M, then Enter \
     (or run: printf 'HELP\\r\\n' | in.tcpmuxd)";

/// Serves the connection on standard input and output.
pub fn run(settings: &Settings) -> Exit {
    // A service that runs as this process's user (nobody, as the shipped
    // files run it) must not take a handshake under way out of it.
    let _ = sys::undumpable();
    let stdin = io::stdin();
    let stdout = io::stdout();
    // systemd without Accept=yes, or systemd-socket-activate without -a,
    // hands over the listening socket itself; reading it would only fail
    // with "not connected".
    let listening = getsockopt(&stdin.as_fd(), sockopt::AcceptConn);
    if listening == Ok(true) {
        logging::startup_error(settings.log.target, LISTENING_SOCKET);
        return Exit::Usage;
    }
    let hop = Peer::of(stdin.as_fd());
    let mut sink = FdSink::new(stdout.as_fd());
    let table = match load::load_for_this_process(&settings.table) {
        Ok(table) => table,
        Err(e) => {
            // A fresh connection takes a line at once; if not, no waiting.
            let _ = sink.send_now(protocol::UNAVAILABLE);
            Event::new(hop, event::Outcome::ConfigError)
                .because(&e)
                .log();
            close::after_refusal(stdin.as_fd(), Instant::now() + settings.timeout);
            return Exit::Config;
        }
    };
    if stdin.is_terminal() && io::stderr().is_terminal() {
        // A person typing: Enter ends a line with LF alone, which the
        // protocol refuses. Say how to send CR LF; the rule stays.
        let _ = writeln!(io::stderr(), "{TERMINAL_HINT}");
    }
    let source = FdSource::new(stdin.as_fd());
    let mut conversation = Conversation::new(source, sink, settings.timeout);
    // Behind a front end the client its header names is the peer from here
    // on; the header's read is under the conversation's deadline.
    let (peer, result) = match conversation.peer(&settings.accept_proxy, hop) {
        Ok(Ok(peer)) => (peer, session::serve(&mut conversation, &table, &peer)),
        Ok(Err(report)) => (hop, Ok(report)),
        Err(e) => (hop, Err(e)),
    };
    match result {
        // The launch writes its +Go through the conversation, under its
        // deadline.
        Ok(Report {
            outcome: Outcome::Launch { service },
            ..
        }) => {
            // Back here when a launch failed, or when a forward or a pass
            // is over; only a failure was a refusal.
            let exit = hand_over(&service, &peer, &mut conversation);
            if exit == Exit::Launch {
                close::after_refusal(stdin.as_fd(), conversation.deadline());
            }
            exit
        }
        result => {
            session::event(&peer, &result).log();
            if matches!(&result, Ok(report) if report.outcome.refused()) {
                close::after_refusal(stdin.as_fd(), conversation.deadline());
            }
            exit_status(&result)
        }
    }
}

/// The exit status that tells how a conversation ended; only inetd mode,
/// a process per connection, has one to tell.
pub fn exit_status(result: &io::Result<Report>) -> Exit {
    let Ok(report) = result else {
        return Exit::Io;
    };
    match report.outcome {
        Outcome::Help | Outcome::Launch { .. } => Exit::Ok,
        Outcome::Unknown { .. } | Outcome::Denied { .. } => Exit::Refused,
        Outcome::BadLine { .. } | Outcome::TooManyMux { .. } | Outcome::NoProxyHeader { .. } => {
            Exit::BadLine
        }
        Outcome::TimedOut { .. } | Outcome::ReplyTimedOut { .. } => Exit::TimedOut,
        Outcome::Eof { .. } => Exit::Eof,
    }
}

/// Launches the service on the connection at fds 0 to 2, this process
/// becoming its program; returns only when that failed, after telling the
/// client and the log.
pub fn hand_over(service: &Service, peer: &Peer, out: &mut impl Write) -> Exit {
    if !matches!(service.kind, Kind::Exec { .. }) {
        return forward_here(service, peer, out);
    }
    let launch = match launch::ready(service, peer, out) {
        Ok(launch) => launch,
        Err(failure) => {
            launch_failed(service, peer, &failure, out);
            return Exit::Launch;
        }
    };
    launched(peer, service, &launch).log();
    let failure = launch::Failure {
        error: launch::exec_here(&launch),
        accepted: service.mux_replies,
    };
    launch_failed(service, peer, &failure, out);
    Exit::Launch
}

/// Tells the client (unless it was told `+` already) and the log that a
/// launch failed, in both modes.
pub fn launch_failed(
    service: &Service,
    peer: &Peer,
    failure: &launch::Failure,
    out: &mut impl Write,
) {
    if !failure.accepted {
        let _ = out
            .write_all(protocol::UNAVAILABLE)
            .and_then(|()| out.flush());
    }
    Event::new(*peer, event::Outcome::LaunchFailed)
        .name(&service.name)
        .because(&failure.error)
        .log();
}

/// The event of a launch, in both modes.
pub fn launched(peer: &Peer, service: &Service, launch: &launch::Launch) -> Event {
    let creds = &launch.creds;
    Event::new(*peer, event::Outcome::Launch)
        .name(&service.name)
        .detail(Detail::Launched {
            user: creds.user.clone(),
            uid: creds.uid.as_raw(),
            gid: creds.gid.as_raw(),
            program: match &service.kind {
                Kind::Exec { program, .. } => program.clone(),
                other => other.target().unwrap_or_default(),
            },
        })
}

/// The event of a forward or a pass, in both modes.
pub fn reached_event(peer: &Peer, service: &Service, reached: &forward::Reached) -> Event {
    let outcome = match reached {
        forward::Reached::Relay { .. } => event::Outcome::Forward,
        forward::Reached::Pass { .. } => event::Outcome::Pass,
    };
    Event::new(*peer, outcome)
        .name(&service.name)
        .detail(Detail::Reached {
            to: reached.to().to_owned(),
        })
}

/// A forward or a pass from this process: it becomes the service's user
/// first, reaches the daemon, then relays until both sides are done, or
/// hands the connection over.
fn forward_here(service: &Service, peer: &Peer, out: &mut impl Write) -> Exit {
    let reached = launch::become_service_user(service)
        .map_err(|error| launch::Failure {
            error,
            accepted: false,
        })
        .and_then(|_| forward::reach(service, peer, out));
    let reached = match reached {
        Ok(reached) => reached,
        Err(failure) => {
            launch_failed(service, peer, &failure, out);
            return Exit::Launch;
        }
    };
    reached_event(peer, service, &reached).log();
    match forward::finish(reached, io::stdin().as_fd(), &service.name, peer) {
        Ok(()) => Exit::Ok,
        Err(_) => Exit::Io,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_outcome_has_its_exit_status() {
        let exit = |outcome| {
            exit_status(&Ok(Report {
                outcome,
                mux_accepts: 0,
            }))
        };
        let name = || "echo".to_owned();
        let received = || "ech".to_owned();
        assert_eq!(exit(Outcome::Help), Exit::Ok);
        assert_eq!(exit(Outcome::Unknown { name: name() }), Exit::Refused);
        assert_eq!(exit(Outcome::Denied { name: name() }), Exit::Refused);
        assert_eq!(exit(Outcome::TooManyMux { name: name() }), Exit::BadLine);
        assert_eq!(
            exit(Outcome::ReplyTimedOut { name: name() }),
            Exit::TimedOut
        );
        assert_eq!(
            exit(Outcome::TimedOut {
                received: received()
            }),
            Exit::TimedOut
        );
        assert_eq!(
            exit(Outcome::Eof {
                received: received()
            }),
            Exit::Eof
        );
        let broken = io::Error::from(io::ErrorKind::BrokenPipe);
        assert_eq!(exit_status(&Err(broken)), Exit::Io);
    }
}
