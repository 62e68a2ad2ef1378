//! Inetd mode: the super-server has accepted the connection and put it on
//! file descriptors 0, 1 and 2. One conversation, one log line, then exit or
//! hand the connection to the chosen service.

use std::io::{self, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::Duration;

use crate::exit::Exit;
use crate::launch;
use crate::load;
use crate::peer::Peer;
use crate::protocol;
use crate::session::{self, FdSource, Outcome, Report};
use crate::table::Service;

/// What inetd mode needs from the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The table file, and whether it must exist (named with `-c`).
    pub config: PathBuf,
    pub config_required: bool,
    pub timeout: Duration,
}

/// Serves the connection on standard input and output.
pub fn run(settings: &Settings) -> Exit {
    let stdin = io::stdin();
    let peer = Peer::of(stdin.as_fd());
    let mut stdout = io::stdout().lock();
    let table = match load::load_for_this_process(&settings.config, settings.config_required) {
        Ok(table) => table,
        Err(e) => {
            let _ = stdout.write_all(protocol::UNAVAILABLE);
            log::error!("peer={peer} outcome=config-error ({e})");
            return Exit::Config;
        }
    };
    let mut source = FdSource::new(stdin.as_fd());
    let result = session::serve(&mut source, &mut stdout, &table, &peer, settings.timeout);
    match result {
        Ok(Report {
            outcome: Outcome::Launch { service },
            ..
        }) => hand_over(&service, &peer, &mut stdout),
        result => {
            log::info!("{}", session::log_line(&peer, &result));
            match &result {
                Ok(report) => report.outcome.exit(),
                Err(_) => Exit::Io,
            }
        }
    }
}

/// Launches the service on the connection at fds 0 to 2, this process
/// becoming its program; returns only when that failed, after telling the
/// client and the log.
pub fn hand_over(service: &Service, peer: &Peer, out: &mut impl Write) -> Exit {
    let failed = |error: &dyn std::fmt::Display, accepted: bool, out: &mut dyn Write| {
        if !accepted {
            let _ = out
                .write_all(protocol::UNAVAILABLE)
                .and_then(|()| out.flush());
        }
        log::error!(
            "peer={peer} name={} outcome=launch-failed ({error})",
            service.name
        );
        Exit::Launch
    };
    let launch = match launch::prepare(service, peer) {
        Ok(launch) => launch,
        Err(e) => return failed(&e, false, out),
    };
    if service.mux_replies
        && out
            .write_all(protocol::SERVICE_ACCEPT)
            .and_then(|()| out.flush())
            .is_err()
    {
        return failed(&"the client went away before the + line", true, out);
    }
    log::info!("{}", launch_line(peer, service, &launch));
    let error = launch::exec_here(&launch);
    failed(&error, service.mux_replies, out)
}

/// The log line of a launch, in both modes.
pub fn launch_line(peer: &Peer, service: &Service, launch: &launch::Launch) -> String {
    let creds = &launch.creds;
    format!(
        "peer={peer} name={} outcome=launch user={} uid={} gid={} program={}",
        service.name, creds.user, creds.uid, creds.gid, service.program
    )
}
