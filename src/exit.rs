//! Exit statuses, defined in one place. A super-server ignores them, but an
//! operator reading `systemd`'s journal or a test reading `$?` should learn
//! how a connection ended. The manual page lists the same table.

use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// HELP was answered, a service was handed the connection, or `--check`
    /// found the table good.
    Ok = 0,
    /// The service table is unreadable or invalid.
    Config = 1,
    /// The command line is wrong, or standard input is a listening socket
    /// (socket activation without `Accept=yes`, and no `--systemd`).
    Usage = 2,
    /// The name is unknown, or not for this peer.
    Refused = 3,
    /// The request line broke a rule of the protocol.
    BadLine = 4,
    /// No whole request line arrived before the deadline.
    TimedOut = 5,
    /// The client closed the connection before a whole request line.
    Eof = 6,
    /// Reading from or writing to the client failed.
    Io = 7,
    /// The service could not be started (user, privileges, exec).
    Launch = 8,
    /// The listener could not bind or listen on an address.
    Listen = 9,
    /// A second SIGTERM or SIGINT stopped the listener before the
    /// handshakes under way had ended.
    Stopped = 10,
}

impl Exit {
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_stable() {
        let all = [
            Exit::Ok,
            Exit::Config,
            Exit::Usage,
            Exit::Refused,
            Exit::BadLine,
            Exit::TimedOut,
            Exit::Eof,
            Exit::Io,
            Exit::Launch,
            Exit::Listen,
            Exit::Stopped,
        ];
        let codes: Vec<u8> = all.iter().map(|e| e.code()).collect();
        assert_eq!(codes, (0..=10).collect::<Vec<u8>>());
    }
}
