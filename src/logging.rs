//! Where log lines go. Under a super-server, standard output and standard
//! error are the client's socket, so the default is syslog, and when syslog
//! cannot be reached the lines are dropped rather than sent to the client.

use std::io::Write;
use std::path::Path;

use log::LevelFilter;
use syslog::{BasicLogger, Facility, Formatter3164};

/// The name under which the server logs.
pub const IDENT: &str = "in.tcpmuxd";

/// The default syslog socket.
pub const DEV_LOG: &str = "/dev/log";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The local syslog daemon, facility daemon.
    Syslog,
    /// Standard error, for a foreground process; never under inetd.
    Stderr,
    /// Nowhere.
    None,
}

/// Sets up the global logger. Never fails: a syslog socket that is missing
/// or refuses us leaves the server running without logs.
pub fn init(target: Target, syslog_socket: &Path) {
    let logger: Box<dyn log::Log> = match target {
        Target::Syslog => match syslog_logger(syslog_socket) {
            Some(logger) => logger,
            None => return,
        },
        Target::Stderr => Box::new(StderrLogger),
        Target::None => return,
    };
    if log::set_boxed_logger(logger).is_ok() {
        log::set_max_level(LevelFilter::Info);
    }
}

fn syslog_logger(socket: &Path) -> Option<Box<dyn log::Log>> {
    let formatter = Formatter3164 {
        facility: Facility::LOG_DAEMON,
        hostname: None,
        process: IDENT.to_owned(),
        pid: std::process::id(),
    };
    let logger = syslog::unix_custom(formatter, socket).ok()?;
    Some(Box::new(BasicLogger::new(logger)))
}

/// One line per record on standard error, prefixed like syslog's.
struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }

    fn log(&self, record: &log::Record) {
        // A closed standard error loses the line; it must not panic.
        let line = format!("{IDENT}[{}]: {}\n", std::process::id(), record.args());
        let _ = std::io::stderr().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}
