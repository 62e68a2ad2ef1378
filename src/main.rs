//! The `in.tcpmuxd` command: parse arguments, set up logging, serve.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Arg, ArgAction, Command};
use tcpmuxd::exit::Exit;
use tcpmuxd::logging::{self, Target};
use tcpmuxd::{check, inetd, listener, load, sys};

/// The command line, parsed.
#[derive(Debug)]
struct Cli {
    timeout: u64,
    log: Option<Target>,
    syslog_socket: PathBuf,
    config: Option<PathBuf>,
    check: bool,
    check_as: String,
    listen: Vec<SocketAddr>,
    systemd: bool,
    max_connections: u32,
    max_per_source: u32,
    ipv4_source_prefix: u8,
    ipv6_source_prefix: u8,
}

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
standard error. SIGHUP re-reads the table; SIGTERM and SIGINT stop it: no new
connections, the handshakes under way finish (exit 0), and a second SIGTERM or
SIGINT stops it at once (exit 10).";

/// The command line's grammar. Built with clap's builder rather than its
/// derive macro: a proc-macro cannot be built for a static target, and the
/// binary is linked statically to start fast (see the README).
fn command() -> Command {
    let number = |max: i64| clap::value_parser!(u32).range(1..=max);
    Command::new("in.tcpmuxd")
        .version(env!("CARGO_PKG_VERSION"))
        .about(ABOUT)
        .long_about(LONG_ABOUT)
        .after_help(EXIT_STATUS)
        .arg(
            Arg::new("timeout")
                .short('t')
                .long("timeout")
                .value_name("SECONDS")
                .default_value("10")
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
                    "Where log lines go: syslog, stderr or none. The default is syslog, or \
                     stderr with --listen. Where stderr is the client's connection (under \
                     inetd or xinetd) stderr means syslog, and the first line says so",
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
            Arg::new("syslog-socket")
                .long("syslog-socket")
                .value_name("PATH")
                .default_value(logging::DEV_LOG)
                .value_parser(clap::value_parser!(PathBuf))
                .help("The syslog socket, for chroots and tests"),
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
                .default_value("256")
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
                .default_value("32")
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
                .default_value("32")
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
                .default_value("64")
                .value_parser(clap::value_parser!(u8).range(1..=128))
                .help(
                    "With --listen: IPv6 clients in one block of this prefix length, 1 to \
                     128, are one source for --max-per-source; 64 is what one host usually has",
                ),
        )
}

/// The refusal of `-l`, which says what to type instead.
fn no_short_l(_: &str) -> Result<String, String> {
    Err("in.tcpmuxd has no -l; use --listen ADDR to listen, or --log TARGET for the log".to_owned())
}

impl Cli {
    fn parse() -> Result<Cli, clap::Error> {
        let mut m = command().try_get_matches()?;
        let log = m
            .remove_one::<String>("log")
            .and_then(|name| Target::from_name(&name));
        Ok(Cli {
            // Each of these has a default in command(); the fallbacks repeat it.
            timeout: m.remove_one("timeout").unwrap_or(10),
            log,
            syslog_socket: m.remove_one("syslog-socket").unwrap_or_default(),
            config: m.remove_one("config"),
            check: m.get_flag("check"),
            check_as: m
                .remove_one("as")
                .unwrap_or_else(|| check::SHIPPED_USER.to_owned()),
            listen: m
                .remove_many("listen")
                .map(Iterator::collect)
                .unwrap_or_default(),
            systemd: m.get_flag("systemd"),
            max_connections: m.remove_one("max-connections").unwrap_or(256),
            max_per_source: m.remove_one("max-per-source").unwrap_or(32),
            ipv4_source_prefix: m.remove_one("ipv4-source-prefix").unwrap_or(32),
            ipv6_source_prefix: m.remove_one("ipv6-source-prefix").unwrap_or(64),
        })
    }
}

const EXIT_STATUS: &str = "\
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
      under way had ended";

fn main() -> ExitCode {
    sys::local_accounts_only();
    let cli = match Cli::parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e).into(),
    };
    let config_required = cli.config.is_some();
    let config = cli.config.unwrap_or_else(|| load::DEFAULT_PATH.into());
    if cli.check {
        return check::run(&config, config_required, &cli.check_as).into();
    }
    let listening = cli.systemd || !cli.listen.is_empty();
    let default_log = if !listening {
        Target::Syslog
    } else {
        Target::Stderr
    };
    let log = logging::init(cli.log.unwrap_or(default_log), &cli.syslog_socket);
    let settings = inetd::Settings {
        config,
        config_required,
        timeout: Duration::from_secs(cli.timeout),
        log,
    };
    if !listening {
        return inetd::run(&settings).into();
    }
    listener::run(listener::Settings {
        addresses: cli.listen,
        systemd: cli.systemd,
        max_connections: cli.max_connections as usize,
        max_per_source: cli.max_per_source as usize,
        ipv4_source_prefix: cli.ipv4_source_prefix,
        ipv6_source_prefix: cli.ipv6_source_prefix,
        timeout: settings.timeout,
        config: settings.config,
        config_required: settings.config_required,
        log,
    })
    .into()
}

/// Reports a bad command line: to syslog, and to standard error unless that
/// is the client's connection (under inetd or xinetd). A terminal, a file,
/// a pipe or the journal gets it, so that a container with no syslog still
/// shows what was wrong. `--help` and `--version` are asked for by a person
/// and print as usual.
fn usage_error(e: clap::Error) -> Exit {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return Exit::Ok;
    }
    if !logging::stderr_is_the_connection() {
        let _ = e.print();
    }
    logging::init(Target::Syslog, &syslog_socket_argument());
    let message = e.render().to_string();
    let first = message.lines().next().unwrap_or("bad arguments");
    log::error!("{first}");
    Exit::Usage
}

/// The `--syslog-socket` of a command line clap refused, so that even that
/// refusal is logged where the operator asked.
fn syslog_socket_argument() -> PathBuf {
    let mut args = std::env::args_os().skip(1);
    let mut socket = PathBuf::from(logging::DEV_LOG);
    while let Some(arg) = args.next() {
        if arg == "--" {
            break;
        } else if arg == "--syslog-socket" {
            if let Some(path) = args.next() {
                socket = path.into();
            }
        } else if let Some(path) = arg
            .to_str()
            .and_then(|a| a.strip_prefix("--syslog-socket="))
        {
            socket = path.into();
        }
    }
    socket
}
