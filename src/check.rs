//! `--check`: validate the table as a connection would load it, look up
//! every user and group it names, check every program as a launch would
//! (StrictModes on the open file, every directory on its way), and print
//! it, as `sshd -t` does.
//!
//! It also warns of services that in.tcpmuxd, run as the user it will run
//! as, could not start: a server that is not root can start only services
//! of its own user and group. `--check` cannot know how the super-server
//! runs in.tcpmuxd, so it is told with `--as`, and assumes `nobody`, as
//! the shipped inetd, xinetd and systemd files run it. A warning does not
//! make the table bad: the exit status stays 0.

use std::collections::HashMap;
use std::io::Write;

use nix::unistd::{Gid, Uid};

use crate::config::ConfigError;
use crate::exit::Exit;
use crate::launch::{self, LookupError};
use crate::load::{self, TableFile};
use crate::table::Kind;

/// The user the shipped super-server files run in.tcpmuxd as, which
/// `--as` assumes.
pub const SHIPPED_USER: &str = "nobody";

/// Who in.tcpmuxd runs as, as `--as` names it.
struct Server {
    name: String,
    uid: Uid,
    gid: Gid,
}

/// Looks up `USER[:GROUP]`; without a group, the user's own.
fn server(spec: &str) -> Result<Server, LookupError> {
    let (user, group) = match spec.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (spec, None),
    };
    let found = launch::look_up_user(user)?;
    let gid = match group {
        None => found.gid,
        Some(group) => launch::look_up_group(group)?,
    };
    Ok(Server {
        name: spec.to_owned(),
        uid: found.uid,
        gid,
    })
}

/// Prints the table on standard output, or the first error on standard
/// error; warnings go to standard error too. Good is 0; anything wrong is
/// 1; an `--as` that names no user is 2.
pub fn run(file: &TableFile, server_as: &str) -> Exit {
    let path = &file.path;
    let server = match server(server_as) {
        Ok(server) => server,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "in.tcpmuxd: --as: {e}");
            return Exit::Usage;
        }
    };
    let mut warnings = Vec::new();
    let checked = load::load_for_this_process(file).and_then(|table| {
        // Many services may share a program; each is checked once.
        let mut checked = HashMap::new();
        for service in table.services() {
            let at_line = |message: String| ConfigError {
                path: path.display().to_string(),
                line: service.line,
                column: 0,
                message,
            };
            let creds = launch::credentials(&service).map_err(|e| at_line(e.to_string()))?;
            if !launch::can_switch(server.uid, server.gid, &creds) {
                warnings.push(at_line(format!(
                    "in.tcpmuxd run as {} (uid {} gid {}) cannot start {:?}, which runs as {} (uid {} gid {}): run in.tcpmuxd as root, or give --as the user it runs as",
                    server.name, server.uid, server.gid, service.name, creds.user, creds.uid, creds.gid
                )));
            }
            match &service.kind {
                Kind::Exec { program, .. } => {
                    // Each program is opened once; whether the service's
                    // user may run it is asked for every service, as a
                    // launch would.
                    let stat = match checked.get(program) {
                        Some(stat) => *stat,
                        None => {
                            let opened = launch::open_program(program)
                                .map_err(|r| at_line(r.to_string()))?;
                            checked.insert(program.clone(), opened.stat);
                            opened.stat
                        }
                    };
                    if !launch::may_execute(&stat, &creds) {
                        let error = launch::LaunchError::MayNotRun {
                            user: creds.user.clone(),
                            program: program.clone(),
                        };
                        return Err(at_line(error.to_string()));
                    }
                }
                // A daemon's socket: the directories on the way as for a
                // program, and a socket at the end.
                Kind::Unix { path } | Kind::Pass { path } => {
                    let strict = nix::unistd::geteuid().is_root();
                    let what = format!("socket {path}");
                    let path = std::path::Path::new(path);
                    crate::strict::open(path, crate::strict::Use::Socket, strict, &what)
                        .map_err(|r| at_line(r.to_string()))?;
                }
                // Reached when a connection is forwarded.
                Kind::Tcp { .. } => {}
            }
        }
        Ok(table)
    });
    match checked {
        Ok(table) => {
            let mut err = std::io::stderr().lock();
            for warning in warnings {
                let _ = writeln!(err, "in.tcpmuxd: warning: {warning}");
            }
            let mut out = std::io::stdout().lock();
            let _ = writeln!(
                out,
                "# {}: {} besides tcpmux",
                path.display(),
                table.count()
            );
            let _ = write!(out, "{table}");
            Exit::Ok
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "in.tcpmuxd: {e}");
            Exit::Config
        }
    }
}
