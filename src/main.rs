//! The `in.tcpmuxd` command: parse arguments, set up logging, serve, and
//! turn what happened into the exit status. The grammar is in `cli`.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use tcpmuxd::cli::{self, Mode};
use tcpmuxd::config::ConfigError;
use tcpmuxd::exit::Exit;
use tcpmuxd::{check, inetd, listener, logging, sys};

fn main() -> ExitCode {
    sys::local_accounts_only();
    let exit = match cli::from_command_line() {
        Err(exit) => exit,
        Ok(Mode::Check { table, server_as }) => check::run(&table, &server_as),
        Ok(Mode::Inetd(settings)) => {
            settings.log.init();
            inetd::run(&settings)
        }
        Ok(Mode::Listen(settings)) => {
            let log = settings.common.log.init();
            listener::run(settings).unwrap_or_else(|e| {
                logging::startup_error(log, &format!("{e:#}"));
                start_failure(&e)
            })
        }
    };
    exit.into()
}

/// Why the listener did not start, as an exit status: its table, or else
/// the sockets and system calls of listening.
fn start_failure(e: &anyhow::Error) -> Exit {
    if e.downcast_ref::<ConfigError>().is_some() {
        Exit::Config
    } else {
        Exit::Listen
    }
}
