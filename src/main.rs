//! The `in.tcpmuxd` command: parse arguments, set up logging, serve, and
//! turn what happened into the exit status. The grammar is in `cli`.
//!
//! `no_main`: under inetd the process lives for one connection, and Rust's
//! runtime start-up (it reads /proc/self/maps to find the main thread's
//! stack, and sets up a signal stack) was a fifth of the instructions of
//! answering HELP. C's `main` is the entry instead; std's arguments still
//! work (glibc hands them over before `main`), and SIGPIPE is ignored here
//! as the runtime would have.

#![no_main]
#![deny(unsafe_code)]

use std::ffi::{c_char, c_int};

use tcpmuxd::cli::{self, Mode};
use tcpmuxd::config::ConfigError;
use tcpmuxd::exit::Exit;
use tcpmuxd::{check, inetd, listener, logging, sys};

/// The C entry point.
// SAFETY: `main` is the one symbol of that name in this binary (`no_main`
// leaves it to us), with C's signature; it calls only safe Rust.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
    c_int::from(run().code())
}

fn run() -> Exit {
    sys::ignore_sigpipe();
    match cli::from_command_line() {
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
    }
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
