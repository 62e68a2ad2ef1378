//! The command line of `in.tcpmuxd`: its grammar, and the one [`Mode`] a
//! command line asks for, with every setting that mode needs. Kept apart
//! from `main` so that what each command line means is unit-tested.
//!
//! In inetd mode standard output and error are the client's connection, so
//! a refused command line is logged, and printed only where standard error
//! is something else ([`from_command_line`]).

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{Arg, ArgAction, ArgMatches, Command};

use crate::accept_proxy::Trusted;
use crate::access::Cidr;
use crate::exit::Exit;
use crate::load::TableFile;
use crate::logging::{self, Log, Target};
use crate::{check, inetd, listener};

/// What a command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// `--check`: check the table and print it, as if run as `server_as`.
    Check { table: TableFile, server_as: String },
    /// Serve the one connection on standard input and output.
    Inetd(inetd::Settings),
    /// `--listen` or `--systemd`: accept connections ourselves.
    Listen(listener::Settings),
}

// The defaults, in the grammar's own form; clap parses and range-checks
// them as it does what a user types.
pub const TIMEOUT: &str = "10";
pub const MAX_CONNECTIONS: &str = "256";
pub const MAX_PER_SOURCE: &str = "32";
pub const IPV4_SOURCE_PREFIX: &str = "32";
pub const IPV6_SOURCE_PREFIX: &str = "64";
pub const MAX_RATE_PER_SOURCE: &str = "50";
pub const RATE_BACKOFF: &str = "10";

const ABOUT: &str = "A TCPMUX (RFC 1078) server, run by inetd, xinetd or systemd";

const LONG_ABOUT: &str = "\
A TCPMUX (RFC 1078) server, run by inetd, xinetd or systemd with the client's
connection on standard input and output.

It reads one service name ended by CR LF and answers one line: HELP lists the
services, \"tcpmux\" is accepted with \"+OK\" and the protocol begins again, a
service of the table (see tcpmux.conf(5)) gets the connection, any other name
is refused with a \"-\" line. Only CR LF ends a line; names are at most 256
printable ASCII bytes with no space, and are matched without regard to case.

Standard output and error belong to the client: logs go to syslog (facility
daemon) unless --log says otherwise.

With --listen it is its own super-server: it accepts connections itself,
answers HELP, tcpmux and refusals without starting a process, and logs to
standard error. SIGHUP re-reads the table; SIGUSR1 logs its connections since
start by service and outcome, which it logs again at exit; SIGTERM and SIGINT
stop it: no new connections, the handshakes under way finish (exit 0), and a
second SIGTERM or SIGINT stops it at once (exit 10).";

/// The command line's grammar. Built with clap's builder rather than its
/// derive macro: a proc-macro cannot be built for a static target, and the
/// binary is linked statically to start fast (see the README).
pub fn command() -> Command {
    let number = |max: i64| clap::value_parser!(u32).range(1..=max);
    Command::new("in.tcpmuxd")
        .version(env!("CARGO_PKG_VERSION"))
        .about(ABOUT)
        .long_about(LONG_ABOUT)
        .arg(
            Arg::new("timeout")
                .short('t')
                .long("timeout")
                .value_name("SECONDS")
                .default_value(TIMEOUT)
                .value_parser(clap::value_parser!(u64).range(1..=3600))
                .help(
                    "Seconds the whole conversation may take, from the connection to the \
                     last byte of the reply, the client's reading included",
                ),
        )
        .arg(
            Arg::new("log")
                .long("log")
                .value_name("TARGET")
                .value_parser(Target::ALL.map(|(name, _)| name))
                .help(
                    "Where log lines go: syslog, stderr, journal (systemd's, its fields \
                     apart) or none. The default is syslog, or stderr with --listen. Where \
                     stderr is the client's connection (under inetd or xinetd) stderr means \
                     syslog, and the first line says so",
                ),
        )
        .arg(
            // No -l: it would mean --log here and --list in tcpmux, and a
            // sysadmin who types -l ADDR means --listen. Refused by name.
            Arg::new("no-short-l")
                .short('l')
                .hide(true)
                .value_name("ADDR|TARGET")
                .num_args(0..=1)
                .default_missing_value("")
                .value_parser(no_short_l),
        )
        .arg(
            Arg::new("accept-proxy")
                .long("accept-proxy")
                .value_name("CIDR")
                .action(ArgAction::Append)
                .value_parser(clap::value_parser!(Cidr))
                .help(
                    "Connections from these front ends (an address or a block, repeatable) \
                     must begin with a PROXY protocol v1 or v2 header, whose client then \
                     stands for the peer everywhere; without a valid one they are refused. \
                     From other sources nothing is taken for a header",
                ),
        )
        .arg(syslog_socket())
        .arg(
            Arg::new("journal-socket")
                .long("journal-socket")
                .value_name("PATH")
                .default_value(logging::JOURNAL_SOCKET)
                .value_parser(clap::value_parser!(PathBuf))
                .help("The journal's socket for --log journal, for chroots and tests"),
        )
        .arg(
            Arg::new("config")
                .short('c')
                .long("config")
                .value_name("FILE")
                .value_parser(clap::value_parser!(PathBuf))
                .help(
                    "The service table; when the default is missing only tcpmux is served, \
                     when a named file is missing that is an error",
                ),
        )
        .arg(
            Arg::new("check")
                .long("check")
                .action(ArgAction::SetTrue)
                .help("Check the service table and print it, then exit: 0 if it is good, 1 if not"),
        )
        .arg(
            Arg::new("as")
                .long("as")
                .value_name("USER[:GROUP]")
                .default_value(check::SHIPPED_USER)
                .requires("check")
                .help(
                    "With --check: the user (and group) in.tcpmuxd runs as, to warn of \
                     services it could not start; nobody, as the shipped inetd, xinetd \
                     and systemd files run it, unless given",
                ),
        )
        .arg(
            Arg::new("listen")
                .long("listen")
                .value_name("ADDR")
                .action(ArgAction::Append)
                .value_parser(listener::parse_address)
                .help(
                    "Serve connections on ADDR without a super-server (repeatable): an IPv4 \
                     or IPv6 address with an optional port, which defaults to 1, such as \
                     0.0.0.0, [::]:1 or 127.0.0.1:10001",
                ),
        )
        .arg(
            Arg::new("systemd")
                .long("systemd")
                .action(ArgAction::SetTrue)
                .help(
                    "Listen mode on the sockets systemd passes (socket activation without \
                     Accept=, LISTEN_FDS), besides any --listen",
                ),
        )
        .arg(
            Arg::new("max-connections")
                .long("max-connections")
                .value_name("N")
                .default_value(MAX_CONNECTIONS)
                .value_parser(number(65536))
                .help(
                    "With --listen: connections served at once, handshakes and running \
                     services together; more get a \"-\" busy line",
                ),
        )
        .arg(
            Arg::new("max-per-source")
                .long("max-per-source")
                .value_name("N")
                .default_value(MAX_PER_SOURCE)
                .value_parser(number(65536))
                .help(
                    "With --listen: connections at once from one source, an address or \
                     a block of addresses (see the two options below)",
                ),
        )
        .arg(
            Arg::new("ipv4-source-prefix")
                .long("ipv4-source-prefix")
                .value_name("LEN")
                .default_value(IPV4_SOURCE_PREFIX)
                .value_parser(clap::value_parser!(u8).range(1..=32))
                .help(
                    "With --listen: IPv4 clients in one block of this prefix length, 1 to 32, \
                     are one source for --max-per-source; 32 counts each address",
                ),
        )
        .arg(
            Arg::new("ipv6-source-prefix")
                .long("ipv6-source-prefix")
                .value_name("LEN")
                .default_value(IPV6_SOURCE_PREFIX)
                .value_parser(clap::value_parser!(u8).range(1..=128))
                .help(
                    "With --listen: IPv6 clients in one block of this prefix length, 1 to \
                     128, are one source for --max-per-source; 64 is what one host usually has",
                ),
        )
        .arg(
            Arg::new("max-rate-per-source")
                .long("max-rate-per-source")
                .value_name("N")
                .default_value(MAX_RATE_PER_SOURCE)
                .value_parser(number(1_000_000))
                .help(
                    "With --listen: new connections a second one source may open (a burst \
                     of N, then N a second); one more and the source is refused for \
                     --rate-backoff seconds, other sources not",
                ),
        )
        .arg(
            Arg::new("rate-backoff")
                .long("rate-backoff")
                .value_name("SECONDS")
                .default_value(RATE_BACKOFF)
                .value_parser(clap::value_parser!(u64).range(1..=3600))
                .help(
                    "With --listen: how long a source over --max-rate-per-source is refused, \
                     1 to 3600",
                ),
        )
}

/// `--syslog-socket`, which the command line of a refusal is read for too.
fn syslog_socket() -> Arg {
    Arg::new("syslog-socket")
        .long("syslog-socket")
        .value_name("PATH")
        .default_value(logging::DEV_LOG)
        .value_parser(clap::value_parser!(PathBuf))
        .help("The syslog socket, for chroots and tests")
}

/// The refusal of `-l`, which says what to type instead.
fn no_short_l(_: &str) -> Result<String, String> {
    Err("in.tcpmuxd has no -l; use --listen ADDR to listen, or --log TARGET for the log".to_owned())
}

/// The mode `args` (the program's name first) asks for.
pub fn parse<I, T>(args: I) -> Result<Mode, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<T> = args.into_iter().collect();
    // The exit statuses close --help; the text is made only when asked
    // for, since every inetd-mode connection parses a command line.
    let asks_help = args.iter().any(|a| {
        let a: OsString = a.clone().into();
        a == "--help" || a == "-h"
    });
    let grammar = if asks_help {
        command().after_help(Exit::help())
    } else {
        command()
    };
    let mut m = grammar.try_get_matches_from(args)?;
    let table = TableFile::new(m.remove_one("config"));
    if m.get_flag("check") {
        return Ok(Mode::Check {
            table,
            server_as: value(&mut m, "as")?,
        });
    }
    let addresses: Vec<SocketAddr> = m
        .remove_many("listen")
        .map(Iterator::collect)
        .unwrap_or_default();
    let systemd = m.get_flag("systemd");
    let listening = systemd || !addresses.is_empty();
    // Under a super-server standard error is the client; a listener's is
    // the operator's terminal or journal.
    let target = m
        .remove_one::<String>("log")
        .and_then(|name| Target::from_name(&name))
        .unwrap_or(if listening {
            Target::Stderr
        } else {
            Target::Syslog
        });
    let common = inetd::Settings {
        table,
        timeout: Duration::from_secs(value(&mut m, "timeout")?),
        log: Log {
            target,
            syslog_socket: value(&mut m, "syslog-socket")?,
            journal_socket: value(&mut m, "journal-socket")?,
        },
        accept_proxy: Trusted {
            blocks: m
                .remove_many("accept-proxy")
                .map(Iterator::collect)
                .unwrap_or_default(),
        },
    };
    if !listening {
        return Ok(Mode::Inetd(common));
    }
    Ok(Mode::Listen(listener::Settings {
        common,
        addresses,
        systemd,
        max_connections: value::<u32>(&mut m, "max-connections")? as usize,
        max_per_source: value::<u32>(&mut m, "max-per-source")? as usize,
        ipv4_source_prefix: value(&mut m, "ipv4-source-prefix")?,
        ipv6_source_prefix: value(&mut m, "ipv6-source-prefix")?,
        max_rate_per_source: value(&mut m, "max-rate-per-source")?,
        rate_backoff: Duration::from_secs(value(&mut m, "rate-backoff")?),
    }))
}

/// The value of an argument that has a default, which clap always gives.
fn value<T: Clone + Send + Sync + 'static>(m: &mut ArgMatches, id: &str) -> Result<T, clap::Error> {
    match m.try_remove_one::<T>(id) {
        Ok(Some(value)) => Ok(value),
        _ => Err(command().error(
            ErrorKind::MissingRequiredArgument,
            format!("--{id} has no value"),
        )),
    }
}

/// The mode of this process's command line. A command line refused, or
/// `--help` and `--version`, are answered here and give the exit status.
pub fn from_command_line() -> Result<Mode, Exit> {
    let args: Vec<OsString> = std::env::args_os().collect();
    parse(&args).map_err(|e| refused(&e, &args))
}

/// Reports a bad command line: to syslog, and to standard error unless that
/// is the client's connection (under inetd or xinetd). A terminal, a file,
/// a pipe or the journal gets it, so that a container with no syslog still
/// shows what was wrong. `--help` and `--version` are asked for by a person
/// and print as usual.
fn refused(e: &clap::Error, args: &[OsString]) -> Exit {
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return Exit::Ok;
    }
    if !logging::stderr_is_the_connection() {
        let _ = e.print();
    }
    Log::syslog(syslog_socket_of(args)).init();
    let message = e.render().to_string();
    let first = message.lines().next().unwrap_or("bad arguments");
    log::error!("{first}");
    Exit::Usage
}

/// The `--syslog-socket` of a command line clap refused, so that even that
/// refusal is logged where the operator asked.
///
/// Read by hand, on purpose: clap cannot read it. It stops at the first
/// error, so `--timeout 0 --syslog-socket PATH` never reaches PATH, even
/// with `ignore_errors`; and a second grammar of `--syslog-socket` plus an
/// operand that takes every other word takes the rest of the line from the
/// first unknown word on, `--syslog-socket` included. The words are split
/// as clap splits them: `--syslog-socket PATH`, `--syslog-socket=PATH`,
/// the last one wins, and `--` ends the options.
fn syslog_socket_of(args: &[OsString]) -> PathBuf {
    let mut words = args.iter().skip(1);
    let mut socket = PathBuf::from(logging::DEV_LOG);
    while let Some(word) = words.next() {
        if word == "--" {
            break;
        } else if word == "--syslog-socket" {
            if let Some(path) = words.next() {
                socket = path.into();
            }
        } else if let Some(path) = word
            .to_str()
            .and_then(|w| w.strip_prefix("--syslog-socket="))
        {
            socket = path.into();
        }
    }
    socket
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(args: &[&str]) -> Mode {
        parse(std::iter::once("in.tcpmuxd").chain(args.iter().copied())).unwrap()
    }

    fn defaults() -> inetd::Settings {
        inetd::Settings {
            table: TableFile::new(None),
            timeout: Duration::from_secs(10),
            log: Log::syslog(logging::DEV_LOG.into()),
            accept_proxy: Trusted::default(),
        }
    }

    #[test]
    fn no_arguments_is_inetd_mode_with_the_defaults() {
        assert_eq!(mode(&[]), Mode::Inetd(defaults()));
    }

    #[test]
    fn inetd_mode_takes_its_settings() {
        let expected = inetd::Settings {
            table: TableFile {
                path: "/srv/t.conf".into(),
                required: true,
            },
            timeout: Duration::from_secs(3),
            log: Log {
                target: Target::Journal,
                syslog_socket: "/chroot/dev/log".into(),
                journal_socket: "/chroot/run/systemd/journal/socket".into(),
            },
            accept_proxy: Trusted {
                blocks: vec!["10.0.0.0/8".parse().unwrap(), "::1".parse().unwrap()],
            },
        };
        let args = [
            "-c",
            "/srv/t.conf",
            "-t",
            "3",
            "--log",
            "journal",
            "--syslog-socket=/chroot/dev/log",
            "--journal-socket",
            "/chroot/run/systemd/journal/socket",
            "--accept-proxy",
            "10.0.0.0/8",
            "--accept-proxy=::1",
        ];
        assert_eq!(mode(&args), Mode::Inetd(expected));
    }

    #[test]
    fn check_mode_assumes_the_shipped_user() {
        assert_eq!(
            mode(&["--check"]),
            Mode::Check {
                table: TableFile::new(None),
                server_as: check::SHIPPED_USER.to_owned(),
            }
        );
        assert_eq!(
            mode(&["--check", "-c", "t.conf", "--as", "root:adm"]),
            Mode::Check {
                table: TableFile::new(Some("t.conf".into())),
                server_as: "root:adm".to_owned(),
            }
        );
    }

    #[test]
    fn listen_mode_takes_every_address_and_logs_to_stderr() {
        let Mode::Listen(settings) = mode(&["--listen", "127.0.0.1", "--listen", "[::1]:1001"])
        else {
            panic!("not listen mode");
        };
        let mut common = defaults();
        common.log.target = Target::Stderr;
        assert_eq!(
            settings,
            listener::Settings {
                common,
                addresses: vec![
                    "127.0.0.1:1".parse().unwrap(),
                    "[::1]:1001".parse().unwrap()
                ],
                systemd: false,
                max_connections: 256,
                max_per_source: 32,
                ipv4_source_prefix: 32,
                ipv6_source_prefix: 64,
                max_rate_per_source: 50,
                rate_backoff: Duration::from_secs(10),
            }
        );
    }

    #[test]
    fn systemd_alone_is_listen_mode() {
        let args = [
            "--systemd",
            "--log",
            "syslog",
            "--max-connections",
            "1000",
            "--max-per-source",
            "4",
            "--ipv4-source-prefix",
            "24",
            "--ipv6-source-prefix",
            "48",
            "--max-rate-per-source",
            "1000",
            "--rate-backoff",
            "60",
        ];
        let Mode::Listen(settings) = mode(&args) else {
            panic!("not listen mode");
        };
        assert!(settings.systemd && settings.addresses.is_empty());
        assert_eq!(settings.common.log.target, Target::Syslog);
        assert_eq!(
            (
                settings.max_connections,
                settings.max_per_source,
                settings.ipv4_source_prefix,
                settings.ipv6_source_prefix
            ),
            (1000, 4, 24, 48)
        );
        assert_eq!(
            (settings.max_rate_per_source, settings.rate_backoff),
            (1000, Duration::from_secs(60))
        );
    }

    #[test]
    fn wrong_command_lines_are_refused() {
        let refused = |args: &[&str]| {
            parse(std::iter::once("in.tcpmuxd").chain(args.iter().copied()))
                .unwrap_err()
                .kind()
        };
        assert_eq!(refused(&["--timeout", "0"]), ErrorKind::ValueValidation);
        assert_eq!(
            refused(&["--max-connections", "65537"]),
            ErrorKind::ValueValidation
        );
        assert_eq!(refused(&["-l", "127.0.0.1"]), ErrorKind::ValueValidation);
        assert_eq!(
            refused(&["--as", "root"]),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(refused(&["--bogus"]), ErrorKind::UnknownArgument);
        assert_eq!(
            refused(&["--max-rate-per-source", "0"]),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            refused(&["--rate-backoff", "3601"]),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            refused(&["--accept-proxy", "10.0.0.1/8"]),
            ErrorKind::ValueValidation
        );
        assert_eq!(refused(&["--help"]), ErrorKind::DisplayHelp);
    }

    #[test]
    fn a_refused_command_line_still_names_its_syslog_socket() {
        let socket = |args: &[&str]| {
            let args: Vec<OsString> = std::iter::once("in.tcpmuxd")
                .chain(args.iter().copied())
                .map(OsString::from)
                .collect();
            syslog_socket_of(&args)
        };
        let chroot = PathBuf::from("/chroot/dev/log");
        assert_eq!(
            socket(&["--timeout", "0", "--syslog-socket", "/chroot/dev/log"]),
            chroot
        );
        assert_eq!(
            socket(&["--syslog-socket=/chroot/dev/log", "-l", "x"]),
            chroot
        );
        assert_eq!(
            socket(&["--bogus", "--syslog-socket", "/chroot/dev/log"]),
            chroot
        );
        assert_eq!(
            socket(&[
                "--listen",
                "localhost",
                "--syslog-socket",
                "/chroot/dev/log"
            ]),
            chroot
        );
        assert_eq!(socket(&["--timeout", "0"]), PathBuf::from(logging::DEV_LOG));
        assert_eq!(
            socket(&["--syslog-socket"]),
            PathBuf::from(logging::DEV_LOG)
        );
        let after_the_options = ["--", "--syslog-socket", "/chroot/dev/log"];
        assert_eq!(socket(&after_the_options), PathBuf::from(logging::DEV_LOG));
    }

    #[test]
    fn the_grammar_is_consistent() {
        command().debug_assert();
    }
}
