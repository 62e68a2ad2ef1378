//! `--check`: validate the table as a connection would load it, look up
//! every user and group it names, check every program as a launch would
//! (StrictModes on the open file, every directory on its way), and print
//! it, as `sshd -t` does.

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

use crate::config::ConfigError;
use crate::exit::Exit;
use crate::launch;
use crate::load;

/// Prints the table on standard output, or the first error on standard
/// error. Good is 0; anything wrong is 1.
pub fn run(path: &Path, required: bool) -> Exit {
    let checked = load::load_for_this_process(path, required).and_then(|table| {
        // Many services may share a program; each is checked once.
        let mut checked = HashSet::new();
        for service in table.services() {
            let at_line = |message: String| ConfigError {
                path: path.display().to_string(),
                line: service.line,
                column: 0,
                message,
            };
            launch::credentials(&service).map_err(at_line)?;
            if !checked.contains(&service.program) {
                launch::open_program(&service.program).map_err(|r| at_line(r.to_string()))?;
                checked.insert(service.program);
            }
        }
        Ok(table)
    });
    match checked {
        Ok(table) => {
            let mut out = std::io::stdout().lock();
            let services = table.len();
            let _ = writeln!(
                out,
                "# {}: {services} services besides tcpmux",
                path.display()
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
