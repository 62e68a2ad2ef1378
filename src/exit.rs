//! Exit statuses, defined in one place. A super-server ignores them, but an
//! operator reading `systemd`'s journal or a test reading `$?` should learn
//! how a connection ended. `--help` prints this table and the manual page
//! lists the same (tests/docs.rs compares them).

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
    /// Every status, in order.
    pub const ALL: [Exit; 11] = [
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

    pub fn code(self) -> u8 {
        self as u8
    }

    /// What the status means, as `--help` says it.
    pub fn describe(self) -> &'static str {
        match self {
            Exit::Ok => "HELP answered, or the connection handed to a service",
            Exit::Config => "the service table is unreadable or invalid",
            Exit::Usage => "the command line is wrong, or standard input is a listening socket",
            Exit::Refused => "the name is unknown, or not for this client",
            Exit::BadLine => "the request line broke a rule (bare CR or LF, control byte, ...)",
            Exit::TimedOut => "no whole line before the deadline",
            Exit::Eof => "the client closed before a whole line",
            Exit::Io => "reading from or writing to the client failed",
            Exit::Launch => "the service could not be started",
            Exit::Listen => "the listener could not listen on an address",
            Exit::Stopped => {
                "a second SIGTERM or SIGINT stopped the listener before the handshakes \
                 under way had ended"
            }
        }
    }

    /// The "Exit status:" section of `--help`: one status a line, long
    /// ones wrapped under their text.
    pub fn help() -> String {
        const WIDTH: usize = 78;
        let mut text = "Exit status:".to_owned();
        for exit in Exit::ALL {
            let code = format!("  {}  ", exit.code());
            let indent = " ".repeat(code.len());
            let mut line = code;
            let mut empty = true;
            for word in exit.describe().split(' ') {
                if !empty && line.len() + 1 + word.len() > WIDTH {
                    text.push('\n');
                    text.push_str(&line);
                    line.clone_from(&indent);
                    empty = true;
                }
                if !empty {
                    line.push(' ');
                }
                line.push_str(word);
                empty = false;
            }
            text.push('\n');
            text.push_str(&line);
        }
        text
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
        let codes: Vec<u8> = Exit::ALL.iter().map(|e| e.code()).collect();
        assert_eq!(codes, (0..=10).collect::<Vec<u8>>());
    }

    #[test]
    fn help_lists_every_status_one_a_line() {
        let help = Exit::help();
        assert_eq!(
            help,
            "\
Exit status:
  0  HELP answered, or the connection handed to a service
  1  the service table is unreadable or invalid
  2  the command line is wrong, or standard input is a listening socket
  3  the name is unknown, or not for this client
  4  the request line broke a rule (bare CR or LF, control byte, ...)
  5  no whole line before the deadline
  6  the client closed before a whole line
  7  reading from or writing to the client failed
  8  the service could not be started
  9  the listener could not listen on an address
  10  a second SIGTERM or SIGINT stopped the listener before the handshakes
      under way had ended"
        );
        assert!(help.lines().all(|l| l.len() <= 78), "{help}");
    }
}
