//! The `in.tcpmuxd` command: parse arguments, set up logging, serve.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tcpmuxd::exit::Exit;
use tcpmuxd::logging::{self, Target};
use tcpmuxd::{check, inetd, listener, load};

/// A TCPMUX (RFC 1078) server, run by inetd, xinetd or systemd with the
/// client's connection on standard input and output.
///
/// It reads one service name ended by CR LF and answers one line: HELP lists
/// the services, "tcpmux" is accepted with "+OK" and the protocol begins
/// again, a service of the table (see tcpmux.conf(5)) gets the connection,
/// any other name is refused with a "-" line. Only CR LF ends a line; names
/// are at most 256 printable ASCII bytes with no space, and are matched
/// without regard to case.
///
/// Standard output and error belong to the client: logs go to syslog
/// (facility daemon) unless --log says otherwise.
///
/// With --listen it is its own super-server: it accepts connections itself,
/// answers HELP, tcpmux and refusals without starting a process, and logs to
/// standard error. SIGHUP re-reads the table; SIGTERM and SIGINT stop it.
#[derive(Debug, Parser)]
#[command(name = "in.tcpmuxd", version, after_help = EXIT_STATUS)]
struct Cli {
    /// Seconds a client has to send its whole request line.
    #[arg(
        short,
        long,
        value_name = "SECONDS",
        default_value_t = 10,
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    timeout: u64,

    /// Where log lines go: syslog, stderr (never under inetd: stderr is the
    /// client) or none. The default is syslog, or stderr with --listen.
    #[arg(short, long, value_name = "TARGET", value_enum)]
    log: Option<Target>,

    /// The syslog socket, for chroots and tests.
    #[arg(long, value_name = "PATH", default_value = logging::DEV_LOG)]
    syslog_socket: PathBuf,

    /// The service table; when the default is missing only tcpmux is served,
    /// when a named file is missing that is an error.
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Check the service table and print it, then exit: 0 if it is good,
    /// 1 if not.
    #[arg(long)]
    check: bool,

    /// Serve connections on ADDR without a super-server (repeatable): an
    /// IPv4 or IPv6 address with an optional port, which defaults to 1,
    /// such as 0.0.0.0, [::]:1 or 127.0.0.1:10001.
    #[arg(long, value_name = "ADDR", value_parser = listener::parse_address)]
    listen: Vec<SocketAddr>,

    /// With --listen: connections served at once, handshakes and running
    /// services together; more get a "-" busy line.
    #[arg(long, value_name = "N", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..=65536))]
    max_connections: u32,

    /// With --listen: connections from one client address at once.
    #[arg(long, value_name = "N", default_value_t = 32,
          value_parser = clap::value_parser!(u32).range(1..=65536))]
    max_per_source: u32,

    /// Internal, for --listen: hand the connection on fds 0 and 1 to the
    /// service given as a table line, as inetd mode would.
    #[arg(long, value_name = "LINE", hide = true)]
    hand_over: Option<String>,
}

const EXIT_STATUS: &str = "\
Exit status:
  0  HELP answered, or the connection handed to a service
  1  the service table is unreadable or invalid
  2  the command line is wrong
  3  the name is unknown, or not for this client
  4  the request line broke a rule (bare CR or LF, control byte, ...)
  5  no whole line before the deadline
  6  the client closed before a whole line
  7  reading from or writing to the client failed
  8  the service could not be started
  9  the listener could not listen on an address";

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e).into(),
    };
    let settings = inetd::Settings {
        config_required: cli.config.is_some(),
        config: cli.config.unwrap_or_else(|| load::DEFAULT_PATH.into()),
        timeout: Duration::from_secs(cli.timeout),
    };
    if cli.check {
        return check::run(&settings.config, settings.config_required).into();
    }
    let default_log = if cli.listen.is_empty() {
        Target::Syslog
    } else {
        Target::Stderr
    };
    let log = cli.log.unwrap_or(default_log);
    logging::init(log, &cli.syslog_socket);
    if let Some(line) = cli.hand_over {
        return inetd::hand_over_line(&line).into();
    }
    if cli.listen.is_empty() {
        return inetd::run(&settings).into();
    }
    listener::run(listener::Settings {
        addresses: cli.listen,
        max_connections: cli.max_connections as usize,
        max_per_source: cli.max_per_source as usize,
        timeout: settings.timeout,
        config: settings.config,
        config_required: settings.config_required,
        log,
        syslog_socket: cli.syslog_socket,
    })
    .into()
}

/// Reports a bad command line. Under a super-server standard error is the
/// client's socket, so the message goes to syslog, and to the terminal only
/// when there is one. `--help` and `--version` are asked for by a person and
/// print as usual.
fn usage_error(e: clap::Error) -> Exit {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return Exit::Ok;
    }
    if std::io::stderr().is_terminal() {
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
