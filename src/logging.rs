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

impl Target {
    /// Every target, as `--log` names it.
    pub const ALL: [(&'static str, Target); 3] = [
        ("syslog", Target::Syslog),
        ("stderr", Target::Stderr),
        ("none", Target::None),
    ];

    /// The target `--log` calls `name`.
    pub fn from_name(name: &str) -> Option<Target> {
        Target::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| *t)
    }

    /// The name `--log` takes for this target.
    pub fn name(self) -> &'static str {
        Target::ALL
            .iter()
            .find(|(_, t)| *t == self)
            .map_or("none", |(n, _)| n)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_is_found_by_its_name() {
        for (name, target) in Target::ALL {
            assert_eq!(Target::from_name(name), Some(target));
            assert_eq!(target.name(), name);
        }
        assert_eq!(Target::from_name("journal"), None);
    }
}
