//! The `tcpmux` command: a TCPMUX client. `tcpmux HOST SERVICE` connects
//! the service to standard input and output, so it can be ssh's
//! ProxyCommand or rsync's RSYNC_CONNECT_PROG; `tcpmux -s SERVICE HOST
//! PORT` is the same for a proxy command run as `COMMAND HOST PORT`, as
//! git runs GIT_PROXY_COMMAND; `tcpmux --list HOST` prints the services.

#![forbid(unsafe_code)]

use std::io::{BufWriter, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command};
use tcpmuxd::client;

/// The command line, parsed.
struct Cli {
    port: u16,
    timeout: u64,
    host: String,
    /// None with --list.
    service: Option<String>,
}

const LONG_ABOUT: &str = "\
Reach a service through a TCPMUX server (RFC 1078).

Connects to HOST, asks for SERVICE and, when the server accepts with a \"+\"
line, relays standard input to the service and the service to standard
output until the server closes. At the end of standard input the sending
side is shut, so the service still sees EOF and may answer. A \"-\" line is
printed on standard error.

With --service, the operands are HOST and a PORT that is ignored: the form
of a proxy command run as COMMAND HOST PORT, such as git's
GIT_PROXY_COMMAND, which takes no arguments of its own:

  GIT_PROXY_COMMAND=tcpmux TCPMUX_PROXY_SERVICE=git git clone git://HOST/REPO";

const USAGE: &str = "\
tcpmux [-p PORT] [-t SECONDS] HOST SERVICE
       tcpmux -s SERVICE [-p PORT] [-t SECONDS] HOST [PORT]
       tcpmux -l [-p PORT] [-t SECONDS] HOST";

/// The grammar, with clap's builder: the binary is linked statically, and a
/// derive macro cannot be built for a static target.
fn command() -> Command {
    Command::new("tcpmux")
        .version(env!("CARGO_PKG_VERSION"))
        .about("Reach a service through a TCPMUX server (RFC 1078)")
        .long_about(LONG_ABOUT)
        .override_usage(USAGE)
        .after_help(EXIT_STATUS)
        .arg(
            Arg::new("port")
                .short('p')
                .long("port")
                .value_name("PORT")
                .env("TCPMUX_PORT")
                .default_value("1")
                .value_parser(clap::value_parser!(u16).range(1..))
                .help("The server's port"),
        )
        .arg(
            Arg::new("timeout")
                .short('t')
                .long("timeout")
                .value_name("SECONDS")
                .default_value("10")
                .value_parser(clap::value_parser!(u64).range(1..=3600))
                .help("One deadline, in seconds, for the connection and the reply line, or the whole list"),
        )
        .arg(
            Arg::new("list")
                .short('l')
                .long("list")
                .action(ArgAction::SetTrue)
                .help("Print the services the server lists for HELP, one per line, as they arrive"),
        )
        .arg(
            Arg::new("proxy-service")
                .short('s')
                .long("service")
                .value_name("SERVICE")
                .env("TCPMUX_PROXY_SERVICE")
                .value_parser(service_name)
                .help("Ask for SERVICE; the operand after HOST is then a port, ignored"),
        )
        .arg(
            Arg::new("host")
                .value_name("HOST")
                .required(true)
                .help("The server: a name, an IPv4 or an IPv6 address"),
        )
        .arg(
            Arg::new("service")
                .value_name("SERVICE")
                .required_unless_present_any(["list", "proxy-service"])
                .help("The service to ask for (with --service, a port, ignored; not with --list)"),
        )
}

/// A name the server can accept: 1 to 256 printable ASCII bytes, no space.
fn service_name(name: &str) -> Result<String, String> {
    let printable = name.bytes().all(|b| b.is_ascii_graphic());
    if name.is_empty() || name.len() > 256 || !printable {
        return Err("a service name is 1 to 256 printable ASCII bytes with no space".to_owned());
    }
    Ok(name.to_owned())
}

impl Cli {
    fn parse() -> Cli {
        let mut m = command().get_matches();
        let from_command_line =
            |m: &ArgMatches, id: &str| m.value_source(id) == Some(ValueSource::CommandLine);
        let fail = |kind, message: String| -> ! { command().error(kind, message).exit() };
        let list = m.get_flag("list");
        // --list asks for HELP whatever TCPMUX_PROXY_SERVICE says; -s on
        // the command line with it is a mistake.
        if list && from_command_line(&m, "proxy-service") {
            fail(
                ErrorKind::ArgumentConflict,
                "--list and --service ask for different things".to_owned(),
            );
        }
        let operand: Option<String> = m.remove_one("service");
        let proxy: Option<String> = m.remove_one("proxy-service");
        let service = if list {
            if let Some(operand) = operand {
                fail(
                    ErrorKind::ArgumentConflict,
                    format!("--list takes no SERVICE, not {operand:?}"),
                );
            }
            None
        } else if let Some(proxy) = proxy {
            // The proxy caller's port: for the service's own port, not the
            // TCPMUX server's, so it is checked and dropped.
            if let Some(port) = operand
                && port.parse::<u16>().is_err()
            {
                fail(
                    ErrorKind::ValueValidation,
                    format!(
                        "with --service {proxy}, the operand after HOST is a port, ignored, not {port:?}"
                    ),
                );
            }
            Some(proxy)
        } else {
            let operand = operand.unwrap_or_default();
            match service_name(&operand) {
                Ok(name) => Some(name),
                Err(why) => fail(
                    ErrorKind::ValueValidation,
                    format!("invalid SERVICE {operand:?}: {why}"),
                ),
            }
        };
        Cli {
            // Each of these has a default or is required; the fallbacks
            // are never used.
            port: m.remove_one("port").unwrap_or(1),
            timeout: m.remove_one("timeout").unwrap_or(10),
            host: m.remove_one("host").unwrap_or_default(),
            service,
        }
    }
}

const EXIT_STATUS: &str = "\
Exit status:
  0  the service ran and the server closed, or the list was printed
  1  no connection to the server
  2  the command line is wrong
  3  the server refused (its explanation is on standard error)
  4  the server's reply was not a TCPMUX reply
  5  no reply, or not the whole list, before the deadline
  7  reading or writing failed while relaying, or in the middle of the list";

fn main() -> ExitCode {
    tcpmuxd::sys::plain_host_lookups();
    let cli = Cli::parse();
    let what = cli.service.as_deref().unwrap_or("HELP");
    let done = run(&cli).with_context(|| format!("{} {what}", cli.host));
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "tcpmux: {e:#}");
            // Every error of run() is the client's, which knows its status.
            let code = e
                .downcast_ref::<client::Error>()
                .map_or(1, client::Error::exit_code);
            ExitCode::from(code)
        }
    }
}

fn run(cli: &Cli) -> Result<(), client::Error> {
    // One deadline for the whole handshake: the connection, the request and
    // the reply line, or the whole list.
    let deadline = Instant::now() + Duration::from_secs(cli.timeout);
    let stream = client::connect(&cli.host, cli.port, deadline)?;
    let Some(service) = &cli.service else {
        let mut out = BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
        return client::list(&stream, deadline, &mut out);
    };
    client::request(&stream, service, deadline)?;
    client::relay(&stream, std::io::stdin(), &mut std::io::stdout().lock())
}
