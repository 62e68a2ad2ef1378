//! The listener's counters: its connections since start, by service and
//! by outcome, logged one line per service on SIGUSR1 and again at exit:
//!
//! ```text
//! SIGUSR1: service=echo help=0 unknown=0 denied=1 launch=2 forward=0 pass=0 launch-failed=0 bad-line=0 timeout=0 eof=0 io-error=0 busy=0 rate-limited=0
//! SIGUSR1: no service help=5 unknown=3 denied=0 launch=0 forward=0 pass=0 launch-failed=0 bad-line=1 timeout=1 eof=0 io-error=0 busy=2 rate-limited=0
//! ```
//!
//! What is counted is what is logged: [`Event::log`] counts each
//! connection's event here, so the counters and the log lines cannot
//! disagree. A row is a service of the table, by its name in lower case
//! (names are matched without regard to case), for the outcomes that
//! name one: `denied`, `launch`, `forward`, `pass`, `launch-failed`.
//! Everything else, HELP, unknown names and what was refused before a
//! name, is counted under `no service`, never by the name a client sent,
//! so clients cannot grow the table: its rows are the names of the
//! tables served since start.
//!
//! Nothing is counted until [`start`]: inetd mode, a process per
//! connection, has nothing to add up.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use crate::event::{Event, Outcome};

/// The columns of a line, in order.
pub const COLUMNS: [&str; 13] = [
    "help",
    "unknown",
    "denied",
    "launch",
    "forward",
    "pass",
    "launch-failed",
    "bad-line",
    "timeout",
    "eof",
    "io-error",
    "busy",
    "rate-limited",
];

type Row = [u64; COLUMNS.len()];

#[derive(Default)]
struct Counts {
    services: BTreeMap<String, Row>,
    no_service: Row,
}

static COUNTS: Mutex<Option<Counts>> = Mutex::new(None);

fn counts() -> MutexGuard<'static, Option<Counts>> {
    COUNTS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Counts from now on, from zero.
pub fn start() {
    *counts() = Some(Counts::default());
}

/// The column of an outcome, and whether its event names a service of
/// the table. `None` for what is not a connection's end in listen mode.
fn column(outcome: Outcome) -> Option<(usize, bool)> {
    Some(match outcome {
        Outcome::Help => (0, false),
        Outcome::Unknown => (1, false),
        Outcome::Denied => (2, true),
        Outcome::Launch => (3, true),
        Outcome::Forward => (4, true),
        Outcome::Pass => (5, true),
        Outcome::LaunchFailed => (6, true),
        Outcome::BadLine => (7, false),
        Outcome::Timeout => (8, false),
        Outcome::Eof => (9, false),
        Outcome::IoError => (10, false),
        Outcome::Busy => (11, false),
        Outcome::RateLimited => (12, false),
        Outcome::ConfigError => return None,
    })
}

/// Counts a connection's event, once [`start`] was called.
pub fn count(event: &Event) {
    if let Some(counts) = counts().as_mut() {
        counts.count(event);
    }
}

/// The lines, each after `prefix` (`SIGUSR1`, `at exit`): the services
/// in the order of their names, then `no service`; or one line that says
/// there was no connection. None before [`start`].
pub fn lines(prefix: &str) -> Vec<String> {
    counts()
        .as_ref()
        .map(|counts| counts.lines(prefix))
        .unwrap_or_default()
}

impl Counts {
    fn count(&mut self, event: &Event) {
        let Some((column, names_a_service)) = column(event.outcome) else {
            return;
        };
        let row = match event.name.as_deref() {
            Some(name) if names_a_service && !name.is_empty() => {
                let name = name.to_ascii_lowercase();
                self.services.entry(name).or_insert([0; COLUMNS.len()])
            }
            _ => &mut self.no_service,
        };
        row[column] += 1;
    }

    fn lines(&self, prefix: &str) -> Vec<String> {
        if self.services.is_empty() && self.no_service.iter().all(|n| *n == 0) {
            return vec![format!("{prefix}: no connections since start")];
        }
        let line = |label: &str, row: &Row| {
            let mut line = format!("{prefix}: {label}");
            for (column, n) in COLUMNS.iter().zip(row) {
                line.push_str(&format!(" {column}={n}"));
            }
            line
        };
        self.services
            .iter()
            .map(|(name, row)| line(&format!("service={name}"), row))
            .chain(std::iter::once(line("no service", &self.no_service)))
            .collect()
    }
}

/// Logs [`lines`].
pub fn log(prefix: &str) {
    for line in lines(prefix) {
        log::info!("{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::Peer;

    #[test]
    fn events_are_counted_by_service_and_outcome() {
        let mut counts = Counts::default();
        assert_eq!(
            counts.lines("SIGUSR1"),
            ["SIGUSR1: no connections since start"]
        );
        let peer = Peer::unknown();
        counts.count(&Event::new(peer, Outcome::Launch).name("Echo"));
        counts.count(&Event::new(peer, Outcome::Denied).name("ECHO"));
        counts.count(&Event::new(peer, Outcome::Launch).name("date"));
        counts.count(&Event::new(peer, Outcome::Unknown).name("nosuch"));
        counts.count(&Event::new(peer, Outcome::Unknown).name("other"));
        counts.count(&Event::new(peer, Outcome::Help).name("HELP"));
        counts.count(&Event::new(peer, Outcome::Busy));
        counts.count(&Event::new(peer, Outcome::ConfigError));
        let zeros = |from: usize, to: usize| -> String {
            COLUMNS[from..to]
                .iter()
                .map(|c| format!(" {c}=0"))
                .collect()
        };
        assert_eq!(
            counts.lines("at exit"),
            [
                format!(
                    "at exit: service=date help=0 unknown=0 denied=0 launch=1{}",
                    zeros(4, 13)
                ),
                format!(
                    "at exit: service=echo help=0 unknown=0 denied=1 launch=1{}",
                    zeros(4, 13)
                ),
                format!(
                    "at exit: no service help=1 unknown=2{} busy=1 rate-limited=0",
                    zeros(2, 11)
                ),
            ]
        );
    }

    #[test]
    fn every_outcome_but_config_error_has_a_column() {
        for outcome in Outcome::ALL {
            match column(outcome) {
                Some((i, _)) => assert_eq!(COLUMNS[i], outcome.word()),
                None => assert_eq!(outcome, Outcome::ConfigError),
            }
        }
    }
}
