//! Inetd mode: the super-server has accepted the connection and put it on
//! file descriptors 0, 1 and 2. One conversation, one log line, then exit or
//! hand the connection to the chosen service. After a `-` line the
//! connection is half-closed and drained (see `close`) before the exit, so
//! that the line is not lost to a reset; this process is the last user of
//! the connection, whose bytes no service will read.

use std::io::{self, IsTerminal, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::socket::{getsockopt, sockopt};

use crate::close;
use crate::exit::Exit;
use crate::launch;
use crate::load;
use crate::logging::{self, Target};
use crate::peer::Peer;
use crate::protocol;
use crate::session::{self, Conversation, FdSink, FdSource, Outcome, ReplySink, Report};
use crate::table::{Kind, Service};

/// What inetd mode needs from the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The table file, and whether it must exist (named with `-c`).
    pub config: PathBuf,
    pub config_required: bool,
    pub timeout: Duration,
    /// Where the log goes, so that a start-up error also reaches a person.
    pub log: Target,
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
    let stdin = io::stdin();
    let stdout = io::stdout();
    // systemd without Accept=yes, or systemd-socket-activate without -a,
    // hands over the listening socket itself; reading it would only fail
    // with "not connected".
    let listening = getsockopt(&stdin.as_fd(), sockopt::AcceptConn);
    if listening == Ok(true) {
        logging::startup_error(settings.log, LISTENING_SOCKET);
        return Exit::Usage;
    }
    let peer = Peer::of(stdin.as_fd());
    let mut sink = FdSink::new(stdout.as_fd());
    let table = match load::load_for_this_process(&settings.config, settings.config_required) {
        Ok(table) => table,
        Err(e) => {
            // A fresh connection takes a line at once; if not, no waiting.
            let _ = sink.send_now(protocol::UNAVAILABLE);
            log::error!("peer={peer} outcome=config-error ({e})");
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
    let result = session::serve(&mut conversation, &table, &peer);
    match result {
        // The launch writes its +Go through the conversation, under its
        // deadline.
        Ok(Report {
            outcome: Outcome::Launch { service },
            ..
        }) => {
            // Back here only when the launch failed.
            let exit = hand_over(&service, &peer, &mut conversation);
            close::after_refusal(stdin.as_fd(), conversation.deadline());
            exit
        }
        result => {
            log::info!("{}", session::log_line(&peer, &result));
            match &result {
                Ok(report) => {
                    if report.outcome.refused() {
                        close::after_refusal(stdin.as_fd(), conversation.deadline());
                    }
                    report.outcome.exit()
                }
                Err(_) => Exit::Io,
            }
        }
    }
}

/// Launches the service on the connection at fds 0 to 2, this process
/// becoming its program; returns only when that failed, after telling the
/// client and the log.
pub fn hand_over(service: &Service, peer: &Peer, out: &mut impl Write) -> Exit {
    let launch = match launch::ready(service, peer, out) {
        Ok(launch) => launch,
        Err(failure) => {
            launch_failed(service, peer, &failure, out);
            return Exit::Launch;
        }
    };
    log::info!("{}", launch_line(peer, service, &launch));
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
    log::error!(
        "peer={peer} name={} outcome=launch-failed ({})",
        service.name,
        failure.error
    );
}

/// The log line of a launch, in both modes.
pub fn launch_line(peer: &Peer, service: &Service, launch: &launch::Launch) -> String {
    let creds = &launch.creds;
    let runs = match &service.kind {
        Kind::Exec { program, .. } => format!("program={program}"),
    };
    format!(
        "peer={peer} name={} outcome=launch user={} uid={} gid={} {runs}",
        service.name, creds.user, creds.uid, creds.gid
    )
}
