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
    let strict = nix::unistd::geteuid().is_root();
    let table = match load::load(&settings.config, settings.config_required, strict) {
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
            log::info!("{}", log_line(&peer, &result));
            match &result {
                Ok(report) => exit_for(&report.outcome),
                Err(_) => Exit::Io,
            }
        }
    }
}

/// Execs the service's program; returns only when that failed.
fn hand_over(service: &Service, peer: &Peer, out: &mut impl Write) -> Exit {
    let failure = launch::exec(service, peer, out, |creds| {
        log::info!(
            "peer={peer} name={} outcome=launch user={} uid={} gid={} program={}",
            service.name,
            creds.user,
            creds.uid,
            creds.gid,
            service.program
        );
    });
    if !failure.accepted {
        let _ = out
            .write_all(protocol::UNAVAILABLE)
            .and_then(|()| out.flush());
    }
    log::error!(
        "peer={peer} name={} outcome=launch-failed ({})",
        service.name,
        failure.reason
    );
    Exit::Launch
}

/// The exit status that tells how a conversation ended.
pub fn exit_for(outcome: &Outcome) -> Exit {
    match outcome {
        Outcome::Help | Outcome::Launch { .. } => Exit::Ok,
        Outcome::Unknown { .. } | Outcome::Denied { .. } => Exit::Refused,
        Outcome::BadLine { .. } => Exit::BadLine,
        Outcome::TimedOut { .. } => Exit::TimedOut,
        Outcome::Eof { .. } => Exit::Eof,
    }
}

/// The one log line of a connection: peer, name, outcome. Every name in it
/// went through the line parser, which keeps only printable ASCII, so a
/// client cannot forge log lines.
pub fn log_line(peer: &Peer, result: &io::Result<Report>) -> String {
    let report = match result {
        Ok(report) => report,
        Err(e) => return format!("peer={peer} outcome=io-error ({e})"),
    };
    let mux = match report.mux_accepts {
        0 => String::new(),
        n => format!(" tcpmux={n}"),
    };
    let body = match &report.outcome {
        Outcome::Help => "name=HELP outcome=help".to_owned(),
        Outcome::Unknown { name } => format!("name={name} outcome=unknown"),
        Outcome::Denied { name } => format!("name={name} outcome=denied"),
        Outcome::Launch { service } => format!("name={} outcome=launch", service.name),
        Outcome::BadLine { error, received } => {
            format!("name={} outcome=bad-line ({error})", shown(received))
        }
        Outcome::TimedOut { received } => format!("name={} outcome=timeout", shown(received)),
        Outcome::Eof { received } => format!("name={} outcome=eof", shown(received)),
    };
    format!("peer={peer} {body}{mux}")
}

/// A partial name, or `-` when nothing was received.
fn shown(received: &str) -> &str {
    if received.is_empty() { "-" } else { received }
}
