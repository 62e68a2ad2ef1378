//! What a connection's log line says, as a value: an [`Event`] holds the
//! peer, the name asked for, the [`Outcome`] and its details, and is
//! rendered in one place, its `Display`, to the line every target writes:
//!
//! ```text
//! peer=192.0.2.7:51234 name=HELP outcome=help tcpmux=1
//! ```
//!
//! [`Event::log`] hands the line to the logger together with the event's
//! fields (`peer`, `service`, `outcome`), for a target that keeps fields
//! apart, as the journal does; the others write the line alone. Which
//! target, and how it is reached, is `logging`'s business, not this one's.
//!
//! Every name in an event went through the line parser, which keeps only
//! printable ASCII, so a client cannot forge log lines or fields.

use std::fmt;

use log::Level;
use log::kv::{self, Key, Value, VisitSource};

use crate::peer::Peer;

/// How a connection ended, as its log line names it (`outcome=...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// HELP was answered.
    Help,
    /// A name not in the table.
    Unknown,
    /// A name in the table that this peer may not use.
    Denied,
    /// A service was started.
    Launch,
    /// A service could not be started, or its daemon reached.
    LaunchFailed,
    /// The connection was relayed to a running daemon (`tcp:`, `unix:`).
    Forward,
    /// The connection was handed to a running daemon (`pass:`).
    Pass,
    /// The request line broke a rule, or asked for `tcpmux` too often.
    BadLine,
    /// The deadline passed, before a whole line or while its reply was
    /// being written.
    Timeout,
    /// The client closed before a whole line.
    Eof,
    /// The connection failed, or was gone before it was served.
    IoError,
    /// The table could not be read; nothing was served.
    ConfigError,
    /// A connection over a cap of listen mode, refused before its request.
    Busy,
    /// A connection from a source over `--max-rate-per-source`, or backing
    /// off after it, refused before its request.
    RateLimited,
}

impl Outcome {
    /// Every outcome, in the order the README lists them.
    pub const ALL: [Outcome; 14] = [
        Outcome::Help,
        Outcome::Unknown,
        Outcome::Denied,
        Outcome::Launch,
        Outcome::LaunchFailed,
        Outcome::Forward,
        Outcome::Pass,
        Outcome::BadLine,
        Outcome::Timeout,
        Outcome::Eof,
        Outcome::IoError,
        Outcome::ConfigError,
        Outcome::Busy,
        Outcome::RateLimited,
    ];

    /// The word the log line gives it.
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Help => "help",
            Outcome::Unknown => "unknown",
            Outcome::Denied => "denied",
            Outcome::Launch => "launch",
            Outcome::LaunchFailed => "launch-failed",
            Outcome::Forward => "forward",
            Outcome::Pass => "pass",
            Outcome::BadLine => "bad-line",
            Outcome::Timeout => "timeout",
            Outcome::Eof => "eof",
            Outcome::IoError => "io-error",
            Outcome::ConfigError => "config-error",
            Outcome::Busy => "busy",
            Outcome::RateLimited => "rate-limited",
        }
    }

    /// How much the operator should care: what the server could not do is
    /// an error, a client turned away for want of room a warning, and the
    /// rest, whatever the client did, information.
    pub fn level(self) -> Level {
        match self {
            Outcome::LaunchFailed | Outcome::ConfigError => Level::Error,
            Outcome::Busy | Outcome::RateLimited => Level::Warn,
            _ => Level::Info,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// What a line says after its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detail {
    None,
    /// Why, in parentheses: `outcome=bad-line (control byte)`.
    Reason(String),
    /// Whom and what a launch runs: `user=nobody uid=65534 gid=65534
    /// program=/bin/cat`.
    Launched {
        user: String,
        uid: u32,
        gid: u32,
        program: String,
    },
    /// Where a forward or a pass went: `to=tcp:127.0.0.1:8080`.
    Reached {
        to: String,
    },
}

/// One connection's log line, as a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub peer: Peer,
    /// The name asked for, or what had arrived of it (shown as `-` when
    /// nothing had); `None` for an outcome that came before any request
    /// (`busy`, `config-error`, an `io-error`), whose line has no `name=`.
    pub name: Option<String>,
    pub outcome: Outcome,
    pub detail: Detail,
    /// How many times the client had been accepted `tcpmux` before.
    pub mux_accepts: u32,
    /// The outcome's level, unless the event says otherwise.
    pub level: Level,
}

impl Event {
    /// An event with no name and no details, at its outcome's level.
    pub fn new(peer: Peer, outcome: Outcome) -> Event {
        Event {
            peer,
            name: None,
            outcome,
            detail: Detail::None,
            mux_accepts: 0,
            level: outcome.level(),
        }
    }

    pub fn name(mut self, name: &str) -> Event {
        self.name = Some(name.to_owned());
        self
    }

    pub fn because(mut self, reason: impl fmt::Display) -> Event {
        self.detail = Detail::Reason(reason.to_string());
        self
    }

    pub fn detail(mut self, detail: Detail) -> Event {
        self.detail = detail;
        self
    }

    pub fn mux_accepts(mut self, accepts: u32) -> Event {
        self.mux_accepts = accepts;
        self
    }

    /// Logs it at another level than its outcome's.
    pub fn at(mut self, level: Level) -> Event {
        self.level = level;
        self
    }

    /// Sends the event to the log: the line, and the fields for a target
    /// that keeps them. The listener's counters count it first, so that
    /// they add up what the log says (see `counters`).
    pub fn log(&self) {
        crate::counters::count(self);
        if self.level > log::max_level() {
            return;
        }
        log::logger().log(
            &log::Record::builder()
                .level(self.level)
                .target(module_path!())
                .args(format_args!("{self}"))
                .key_values(self)
                .build(),
        );
    }
}

/// The line: `peer=P [via=H] [name=N] outcome=O [(reason) | user=.. uid=..
/// gid=.. program=..] [tcpmux=N]`, `via` the front end whose PROXY header
/// named the peer.
impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "peer={}", self.peer)?;
        if let Some(via) = self.peer.via {
            write!(f, " via={via}")?;
        }
        if let Some(name) = &self.name {
            let shown = if name.is_empty() { "-" } else { name };
            write!(f, " name={shown}")?;
        }
        write!(f, " outcome={}", self.outcome)?;
        match &self.detail {
            Detail::None => {}
            Detail::Reason(reason) => write!(f, " ({reason})")?,
            Detail::Launched {
                user,
                uid,
                gid,
                program,
            } => write!(f, " user={user} uid={uid} gid={gid} program={program}")?,
            Detail::Reached { to } => write!(f, " to={to}")?,
        }
        if self.mux_accepts > 0 {
            write!(f, " tcpmux={}", self.mux_accepts)?;
        }
        Ok(())
    }
}

/// The fields a structured target keeps: `peer`, `via` (only behind a
/// front end), `service` (left out when no name had arrived) and
/// `outcome`.
impl kv::Source for Event {
    fn visit<'kvs>(&'kvs self, visitor: &mut dyn VisitSource<'kvs>) -> Result<(), kv::Error> {
        visitor.visit_pair(Key::from("peer"), Value::from_display(&self.peer))?;
        if let Some(via) = &self.peer.via {
            visitor.visit_pair(Key::from("via"), Value::from_display(via))?;
        }
        if let Some(name) = self.name.as_deref().filter(|n| !n.is_empty()) {
            visitor.visit_pair(Key::from("service"), Value::from(name))?;
        }
        visitor.visit_pair(Key::from("outcome"), Value::from(self.outcome.word()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> Peer {
        Peer {
            local: None,
            remote: Some("192.0.2.7:51234".parse().unwrap()),
            via: None,
        }
    }

    #[test]
    fn every_outcome_has_its_own_word() {
        let mut words: Vec<_> = Outcome::ALL.iter().map(|o| o.word()).collect();
        words.sort_unstable();
        words.dedup();
        assert_eq!(words.len(), Outcome::ALL.len());
    }

    #[test]
    fn events_render_to_the_lines_of_the_readme() {
        let cases = [
            (
                Event::new(peer(), Outcome::Help)
                    .name("HELP")
                    .mux_accepts(1),
                "peer=192.0.2.7:51234 name=HELP outcome=help tcpmux=1",
            ),
            (
                Event::new(peer(), Outcome::BadLine)
                    .name("ev")
                    .because("control byte"),
                "peer=192.0.2.7:51234 name=ev outcome=bad-line (control byte)",
            ),
            (
                Event::new(peer(), Outcome::Launch)
                    .name("echo")
                    .detail(Detail::Launched {
                        user: "nobody".to_owned(),
                        uid: 65534,
                        gid: 65534,
                        program: "/bin/cat".to_owned(),
                    }),
                "peer=192.0.2.7:51234 name=echo outcome=launch \
                 user=nobody uid=65534 gid=65534 program=/bin/cat",
            ),
            (
                Event::new(Peer::unknown(), Outcome::Eof).name(""),
                "peer=unknown name=- outcome=eof",
            ),
            (
                Event::new(peer(), Outcome::Busy),
                "peer=192.0.2.7:51234 outcome=busy",
            ),
            (
                Event::new(
                    Peer {
                        via: Some("127.0.0.1:5000".parse().unwrap()),
                        ..peer()
                    },
                    Outcome::Help,
                )
                .name("HELP"),
                "peer=192.0.2.7:51234 via=127.0.0.1:5000 name=HELP outcome=help",
            ),
        ];
        for (event, line) in cases {
            assert_eq!(event.to_string(), line);
        }
    }

    #[test]
    fn the_fields_are_the_peer_the_name_and_the_outcome() {
        struct Fields(Vec<(String, String)>);
        impl<'kvs> VisitSource<'kvs> for Fields {
            fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), kv::Error> {
                self.0.push((key.to_string(), value.to_string()));
                Ok(())
            }
        }
        let fields = |event: &Event| {
            let mut fields = Fields(Vec::new());
            kv::Source::visit(event, &mut fields).unwrap();
            fields.0
        };
        let pairs = |p: &[(&str, &str)]| -> Vec<(String, String)> {
            p.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let denied = Event::new(peer(), Outcome::Denied).name("echo");
        assert_eq!(
            fields(&denied),
            pairs(&[
                ("peer", "192.0.2.7:51234"),
                ("service", "echo"),
                ("outcome", "denied")
            ])
        );
        // No name arrived: no service field, rather than the line's `-`.
        let eof = Event::new(peer(), Outcome::Eof).name("");
        assert_eq!(
            fields(&eof),
            pairs(&[("peer", "192.0.2.7:51234"), ("outcome", "eof")])
        );
    }
}
