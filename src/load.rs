//! Reading the table file from disk, with sshd's StrictModes when root: a
//! table others could change would let them run code as whoever it names.
//!
//! The file is opened once, by the walk of `strict`, and what is checked is
//! the open file that is then read: a rename, a FIFO or a device put in its
//! place is caught, not read. Programs are not checked here but when one is
//! launched, in the process that launches it (see `launch`), so a table of
//! a thousand services costs no more per connection than its own text.

use std::io::{self, Read};
use std::path::PathBuf;

use nix::errno::Errno;

use crate::config::{self, ConfigError};
use crate::strict::{self, Problem, Use};
use crate::table::Table;

/// The table read when `-c` does not name another.
pub const DEFAULT_PATH: &str = "/etc/tcpmux.conf";

/// Which table file to read, and what its absence means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableFile {
    pub path: PathBuf,
    /// Named with `-c`, so it must exist. The default file may be missing:
    /// then only tcpmux is served.
    pub required: bool,
}

impl TableFile {
    /// The file `-c` named, or the default one.
    pub fn new(named: Option<PathBuf>) -> TableFile {
        match named {
            Some(path) => TableFile {
                path,
                required: true,
            },
            None => TableFile {
                path: DEFAULT_PATH.into(),
                required: false,
            },
        }
    }
}

/// The largest table read: some 300,000 services of 50 bytes fit, and a
/// file without end (a device or a FIFO in the table's place, or one that
/// grows while read) cannot take memory without bound.
pub const MAX_TABLE_BYTES: u64 = 16 << 20;

/// Reads the table as this process must: with StrictModes when it runs as
/// root, since then the table decides what runs as whom.
pub fn load_for_this_process(file: &TableFile) -> Result<Table, ConfigError> {
    load(file, nix::unistd::geteuid().is_root())
}

/// Reads and checks the table `file`. A missing file is the built-in
/// table when it is not required (the default path), an error otherwise.
/// `strict` (when running as root) adds the ownership and mode checks, of
/// the file and of every directory on its way.
pub fn load(file: &TableFile, strict: bool) -> Result<Table, ConfigError> {
    let path = file.path.as_path();
    let name = path.display().to_string();
    let file_error = |message: String| ConfigError {
        path: name.clone(),
        line: 0,
        column: 0,
        message,
    };
    let opened = match strict::open(path, Use::Read, strict, "the table") {
        Ok(opened) => opened,
        Err(refusal) => {
            let missing = matches!(
                refusal.problem,
                Problem::Sys {
                    errno: Errno::ENOENT,
                    ..
                }
            );
            if missing && !file.required {
                return Ok(Table::builtin());
            }
            return Err(file_error(refusal.to_string()));
        }
    };
    // Room for the whole file at once: no copy as it grows.
    let size = usize::try_from(opened.stat.st_size).unwrap_or(0);
    let mut bytes = Vec::with_capacity(size.min(MAX_TABLE_BYTES as usize) + 1);
    std::fs::File::from(opened.fd)
        .take(MAX_TABLE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e: io::Error| file_error(format!("cannot read the table: {e}")))?;
    if bytes.len() as u64 > MAX_TABLE_BYTES {
        return Err(file_error(format!(
            "the table is larger than {} MiB",
            MAX_TABLE_BYTES >> 20
        )));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| file_error("the table is not UTF-8 text".to_owned()))?;
    config::parse_text(&name, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_default_is_the_builtin_table_and_a_missing_named_file_an_error() {
        let missing = |required| TableFile {
            path: "/nonexistent/tcpmux.conf".into(),
            required,
        };
        assert_eq!(load(&missing(false), false), Ok(Table::builtin()));
        let error = load(&missing(true), false).unwrap_err();
        assert_eq!(
            error.to_string(),
            "/nonexistent/tcpmux.conf: cannot open the table: /nonexistent: No such file or directory"
        );
    }

    #[test]
    fn a_file_named_with_c_is_required_and_the_default_is_not() {
        assert_eq!(
            TableFile::new(None),
            TableFile {
                path: DEFAULT_PATH.into(),
                required: false
            }
        );
        assert_eq!(
            TableFile::new(Some("/srv/t.conf".into())),
            TableFile {
                path: "/srv/t.conf".into(),
                required: true
            }
        );
    }

    #[test]
    fn a_device_or_a_directory_is_not_a_table() {
        for path in ["/dev/zero", "/etc"] {
            let named = TableFile::new(Some(path.into()));
            let error = load(&named, false).unwrap_err();
            assert_eq!(
                error.to_string(),
                format!("{path}: the table is not a regular file")
            );
        }
    }
}
