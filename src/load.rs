//! Reading the table file from disk, with sshd's StrictModes when root: a
//! file or program others could change would let them run code as whoever
//! the table names.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::config::{self, ConfigError};
use crate::table::Table;

/// The table read when `-c` does not name another.
pub const DEFAULT_PATH: &str = "/etc/tcpmux.conf";

/// Reads the table as this process must: with StrictModes when it runs as
/// root, since then the table decides what runs as whom.
pub fn load_for_this_process(path: &Path, required: bool) -> Result<Table, ConfigError> {
    load(path, required, nix::unistd::geteuid().is_root())
}

/// Reads and checks the table at `path`. A missing file is the built-in
/// table when `required` is false (the default path), an error otherwise.
/// `strict` (when running as root) adds the ownership and mode checks.
pub fn load(path: &Path, required: bool, strict: bool) -> Result<Table, ConfigError> {
    let name = path.display().to_string();
    let file_error = |message: String| ConfigError {
        path: name.clone(),
        line: 0,
        column: 0,
        message,
    };
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound && !required => {
            return Ok(Table::builtin());
        }
        Err(e) => return Err(file_error(format!("cannot read the table: {e}"))),
    };
    if strict {
        let meta = fs::metadata(path).map_err(|e| file_error(e.to_string()))?;
        check_owner_and_mode(&meta, "the table").map_err(file_error)?;
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| file_error("the table is not UTF-8 text".to_owned()))?;
    let table = config::parse(&name, &text)?;
    if strict {
        // Many services may share a program; each is checked once.
        let mut checked = HashSet::new();
        for service in table.services() {
            if !checked.insert(service.program.as_str()) {
                continue;
            }
            check_program(&service.program).map_err(|message| ConfigError {
                path: name.clone(),
                line: service.line,
                column: 0,
                message,
            })?;
        }
    }
    Ok(table)
}

/// Root must own it and nobody else may write it.
fn check_owner_and_mode(meta: &fs::Metadata, what: &str) -> Result<(), String> {
    if meta.uid() != 0 {
        return Err(format!(
            "{what} is owned by uid {}, not root; refused, as sshd's StrictModes would",
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "{what} is writable by group or others (mode {:04o}); refused, as sshd's StrictModes would",
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

/// The program must be an executable regular file that only root can change.
fn check_program(program: &str) -> Result<(), String> {
    let meta = fs::metadata(program).map_err(|e| format!("program {program}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("program {program} is not a regular file"));
    }
    if meta.mode() & 0o111 == 0 {
        return Err(format!("program {program} is not executable"));
    }
    check_owner_and_mode(&meta, &format!("program {program}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_default_is_the_builtin_table_and_a_missing_named_file_an_error() {
        let missing = Path::new("/nonexistent/tcpmux.conf");
        assert_eq!(load(missing, false, false), Ok(Table::builtin()));
        let error = load(missing, true, false).unwrap_err();
        assert_eq!(
            error.to_string(),
            "/nonexistent/tcpmux.conf: cannot read the table: No such file or directory (os error 2)"
        );
    }
}
