//! Inetd mode: the super-server has accepted the connection and put it on
//! file descriptors 0, 1 and 2. One conversation, one log line, then exit or
//! hand the connection to the chosen service.

use std::io;
use std::os::fd::AsFd;
use std::time::Duration;

use crate::exit::Exit;
use crate::peer::Peer;
use crate::session::{self, FdSource, Outcome, Report};
use crate::table::Table;

/// Serves the connection on standard input and output.
pub fn run(table: &Table, timeout: Duration) -> Exit {
    let stdin = io::stdin();
    let peer = Peer::of(stdin.as_fd());
    let mut source = FdSource::new(stdin.as_fd());
    let mut stdout = io::stdout().lock();
    let result = session::serve(&mut source, &mut stdout, table, &peer, timeout);
    let exit = match &result {
        Ok(report) => exit_for(&report.outcome),
        Err(_) => Exit::Io,
    };
    log::info!("{}", log_line(&peer, &result));
    exit
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
