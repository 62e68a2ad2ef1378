//! The `tcpmux` command: a TCPMUX client. `tcpmux HOST SERVICE` connects
//! the service to standard input and output, so it can be ssh's
//! ProxyCommand; `tcpmux --list HOST` prints the services.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tcpmuxd::client;

/// Reach a service through a TCPMUX server (RFC 1078).
///
/// Connects to HOST, asks for SERVICE and, when the server accepts with a
/// "+" line, relays standard input to the service and the service to
/// standard output until the server closes. At the end of standard input
/// the sending side is shut, so the service still sees EOF and may answer.
/// A "-" line is printed on standard error.
#[derive(Debug, Parser)]
#[command(name = "tcpmux", version, after_help = EXIT_STATUS)]
struct Cli {
    /// The server's port.
    #[arg(short, long, value_name = "PORT", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..))]
    port: u16,

    /// Seconds to wait for the connection, and again for the reply.
    #[arg(short, long, value_name = "SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout: u64,

    /// Print the services the server lists for HELP, one per line.
    #[arg(short, long)]
    list: bool,

    /// The server: a name, an IPv4 or an IPv6 address.
    host: String,

    /// The service to ask for (not with --list).
    #[arg(required_unless_present = "list", conflicts_with = "list", value_parser = service_name)]
    service: Option<String>,
}

/// A name the server can accept: 1 to 256 printable ASCII bytes, no space.
fn service_name(name: &str) -> Result<String, String> {
    let printable = name.bytes().all(|b| b.is_ascii_graphic());
    if name.is_empty() || name.len() > 256 || !printable {
        return Err("a service name is 1 to 256 printable ASCII bytes with no space".to_owned());
    }
    Ok(name.to_owned())
}

const EXIT_STATUS: &str = "\
Exit status:
  0  the service ran and the server closed, or the list was printed
  1  no connection to the server
  2  the command line is wrong
  3  the server refused (its explanation is on standard error)
  4  the server's reply was not a TCPMUX reply
  5  no reply before the timeout
  7  reading or writing failed while relaying";

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let what = cli.service.as_deref().unwrap_or("HELP");
            let _ = writeln!(std::io::stderr(), "tcpmux: {} {what}: {e}", cli.host);
            ExitCode::from(e.exit_code())
        }
    }
}

fn run(cli: &Cli) -> Result<(), client::Error> {
    let timeout = Duration::from_secs(cli.timeout);
    let stream = client::connect(&cli.host, cli.port, timeout)?;
    let Some(service) = &cli.service else {
        let mut out = std::io::stdout().lock();
        for name in client::list(&stream, timeout)? {
            writeln!(out, "{name}")?;
        }
        return Ok(());
    };
    client::request(&stream, service, timeout)?;
    client::relay(&stream, std::io::stdin(), &mut std::io::stdout().lock())
}
