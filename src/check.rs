//! `--check`: validate the table as a connection would load it, look up
//! every user and group it names, and print it, as `sshd -t` does.

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
        for service in table.services() {
            launch::credentials(service).map_err(|message| ConfigError {
                path: path.display().to_string(),
                line: service.line,
                column: 0,
                message,
            })?;
        }
        Ok(table)
    });
    match checked {
        Ok(table) => {
            let mut out = std::io::stdout().lock();
            let services = table.services().len();
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
