//! The table file, `tcpmux.conf(5)`: one service a line, in the tradition of
//! inetd.conf. Pure: text in, a table or an error that names the file, line
//! and column out.
//!
//! ```text
//! # name    user[:group]    [option ...]               program [argument ...]
//! +echo     nobody          allow=127.0.0.0/8,::1      /bin/cat
//! date      nobody:nogroup  hidden                     /usr/local/libexec/date-service -u
//! ```
//!
//! A leading `+` on the name means the multiplexer sends the `+` line before
//! the program starts; without it the program sends its own. Options are
//! `hidden`, `allow=LIST` and `deny=LIST` (comma-separated addresses or CIDR
//! blocks, IPv4 or IPv6, repeatable). The program is the first field that
//! begins with `/`; the fields after it are its arguments.

use std::fmt;

use crate::access::{Cidr, Rules};
use crate::protocol::{HELP, MAX_NAME_LEN, TCPMUX};
use crate::table::{Service, Table};

/// Why a table file was refused, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    /// 1-based; 0 when the error is about the file as a whole.
    pub line: usize,
    /// 1-based; 0 when the error is about the line as a whole.
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (0, _) => write!(f, "{}: {}", self.path, self.message),
            (line, 0) => write!(f, "{}:{line}: {}", self.path, self.message),
            (line, column) => write!(f, "{}:{line}:{column}: {}", self.path, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// A field of a line and the column where it starts (1-based).
struct Field<'a> {
    text: &'a str,
    column: usize,
}

fn fields(line: &str) -> Vec<Field<'_>> {
    let mut fields = Vec::new();
    let mut start = None;
    for (i, c) in line.char_indices().chain([(line.len(), ' ')]) {
        match (c.is_ascii_whitespace(), start) {
            (true, Some(s)) => {
                let column = line[..s].chars().count() + 1;
                fields.push(Field {
                    text: &line[s..i],
                    column,
                });
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    fields
}

/// Parses the text of a table file; `path` is only for messages.
pub fn parse(path: &str, text: &str) -> Result<Table, ConfigError> {
    let mut table = Table::builtin();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let error = |column: usize, message: String| ConfigError {
            path: path.to_owned(),
            line: number,
            column,
            message,
        };
        let fields = fields(line);
        let Some(first) = fields.first() else {
            continue;
        };
        if first.text.starts_with('#') {
            continue;
        }
        // exec takes C strings: a NUL would cut an argument short unseen.
        if let Some(at) = line.find('\0') {
            let column = line[..at].chars().count() + 1;
            return Err(error(column, "a NUL byte is not allowed".to_owned()));
        }
        let service = parse_line(&fields, line.chars().count() + 1, number)
            .map_err(|(column, message)| error(column, message))?;
        let name = service.name.clone();
        if let Err(earlier) = table.insert(service) {
            let message = format!(
                "service {name:?} is already defined on line {} (names are not case sensitive)",
                earlier.line
            );
            return Err(error(first.column, message));
        }
    }
    Ok(table)
}

type LineError = (usize, String);

fn parse_line(fields: &[Field], end: usize, number: usize) -> Result<Service, LineError> {
    let mut fields = fields.iter();
    // The caller has seen a first field.
    let name_field = fields.next().ok_or((1, "empty line".to_owned()))?;
    let (mux_replies, name) = match name_field.text.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, name_field.text),
    };
    check_name(name).map_err(|m| (name_field.column, m))?;

    let owner = fields
        .next()
        .ok_or((end, "missing the user to run the program as".to_owned()))?;
    let (user, group) = match owner.text.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (owner.text, None),
    };
    if user.is_empty() {
        return Err((owner.column, "the user name is empty".to_owned()));
    }
    if group == Some("") {
        let column = owner.column + user.chars().count() + 1;
        return Err((column, "the group name after ':' is empty".to_owned()));
    }

    let mut rules = Rules::default();
    let mut hidden = false;
    let program = loop {
        let field = fields.next().ok_or((
            end,
            "missing the program (an absolute path such as /usr/bin/foo)".to_owned(),
        ))?;
        if field.text.starts_with('/') {
            break field;
        }
        match field.text.split_once('=') {
            None if field.text == "hidden" => hidden = true,
            Some(("allow", list)) => rules.allow.extend(cidrs(list, field.column + 6)?),
            Some(("deny", list)) => rules.deny.extend(cidrs(list, field.column + 5)?),
            Some((key, _)) => {
                let message =
                    format!("unknown option {key:?}; the options are allow=, deny= and hidden");
                return Err((field.column, message));
            }
            None => {
                let message = format!(
                    "{:?} is not an option (allow=, deny=, hidden), and the program must be an absolute path",
                    field.text
                );
                return Err((field.column, message));
            }
        }
    };
    Ok(Service {
        name: name.to_owned(),
        mux_replies,
        user: user.to_owned(),
        group: group.map(str::to_owned),
        rules,
        hidden,
        program: program.text.to_owned(),
        args: fields.map(|f| f.text.to_owned()).collect(),
        line: number,
    })
}

/// A service name must be one a client can send, and not a reserved one.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the service name after '+' is empty".to_owned());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!("service names are at most {MAX_NAME_LEN} bytes"));
    }
    if let Some(c) = name.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(format!(
            "service names are printable ASCII, and {c:?} is not"
        ));
    }
    if name.starts_with('+') {
        return Err("a service name cannot start with '+'; one '+' marks who replies".to_owned());
    }
    for reserved in [HELP, TCPMUX] {
        if name.eq_ignore_ascii_case(reserved) {
            return Err(format!("{name:?} is reserved by RFC 1078"));
        }
    }
    Ok(())
}

/// A comma-separated list of blocks that starts at `column`.
fn cidrs(list: &str, column: usize) -> Result<Vec<Cidr>, LineError> {
    let mut offset = 0;
    let mut blocks = Vec::new();
    for item in list.split(',') {
        let at = column + offset;
        if item.is_empty() {
            return Err((at, "an empty address in the list".to_owned()));
        }
        blocks.push(item.parse().map_err(|m| (at, m))?);
        offset += item.chars().count() + 1;
    }
    Ok(blocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Table {
        parse("t.conf", text).unwrap()
    }

    fn err(text: &str) -> String {
        parse("t.conf", text).unwrap_err().to_string()
    }

    #[test]
    fn a_full_line_is_read_field_by_field() {
        let table =
            ok("+Echo nobody:nogroup hidden allow=10.0.0.0/8,::1 deny=10.0.0.5 /bin/cat -u -\n");
        let s = &table.services()[0];
        assert_eq!(s.name, "Echo");
        assert!(s.mux_replies);
        assert_eq!(s.user, "nobody");
        assert_eq!(s.group.as_deref(), Some("nogroup"));
        assert!(s.hidden);
        let allow: Vec<String> = s.rules.allow.iter().map(|c| c.to_string()).collect();
        assert_eq!(allow, ["10.0.0.0/8", "::1"]);
        assert_eq!(s.rules.deny[0].to_string(), "10.0.0.5");
        assert_eq!(s.program, "/bin/cat");
        assert_eq!(s.args, ["-u", "-"]);
        assert_eq!(s.line, 1);
    }

    #[test]
    fn a_minimal_line_has_defaults() {
        let table = ok("date daemon /bin/date");
        let s = &table.services()[0];
        assert!(!s.mux_replies && !s.hidden);
        assert_eq!(s.group, None);
        assert_eq!(s.rules, Rules::default());
        assert!(s.args.is_empty());
    }

    #[test]
    fn comments_blank_lines_tabs_and_crlf_are_fine() {
        let table =
            ok("# a comment\n\n   \n\t# indented\r\na\tnobody\t/bin/a\r\n  b nobody /bin/b\n");
        let names: Vec<&str> = table.services().iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(table.services()[1].line, 6);
    }

    #[test]
    fn options_accumulate() {
        let table = ok("a nobody allow=10.0.0.0/8 allow=192.0.2.1 /bin/a");
        assert_eq!(table.services()[0].rules.allow.len(), 2);
    }

    #[test]
    fn every_error_names_file_line_column_and_rule() {
        let cases = [
            ("a", "t.conf:1:2: missing the user to run the program as"),
            (
                "a nobody",
                "t.conf:1:9: missing the program (an absolute path such as /usr/bin/foo)",
            ),
            (
                "a nobody hidden",
                "t.conf:1:16: missing the program (an absolute path such as /usr/bin/foo)",
            ),
            (
                "a nobody bin/cat",
                "t.conf:1:10: \"bin/cat\" is not an option (allow=, deny=, hidden), and the program must be an absolute path",
            ),
            (
                "a nobody color=red /bin/a",
                "t.conf:1:10: unknown option \"color\"; the options are allow=, deny= and hidden",
            ),
            (
                "a nobody allow=10.0.0.1/8 /bin/a",
                "t.conf:1:16: 10.0.0.1/8 has host bits set; the block is 10.0.0.0/8",
            ),
            (
                "a nobody deny=::1,nohost /bin/a",
                "t.conf:1:19: \"nohost\" is not an IPv4 or IPv6 address",
            ),
            (
                "a nobody allow=::1,,::2 /bin/a",
                "t.conf:1:20: an empty address in the list",
            ),
            (
                "a nobody allow=10.0.0.0/99 /bin/a",
                "t.conf:1:16: prefix length \"99\" is not 0 to 32",
            ),
            (
                "+ nobody /bin/a",
                "t.conf:1:1: the service name after '+' is empty",
            ),
            (
                "++a nobody /bin/a",
                "t.conf:1:1: a service name cannot start with '+'; one '+' marks who replies",
            ),
            (
                "help nobody /bin/a",
                "t.conf:1:1: \"help\" is reserved by RFC 1078",
            ),
            (
                "+TCPMUX nobody /bin/a",
                "t.conf:1:1: \"TCPMUX\" is reserved by RFC 1078",
            ),
            (
                "caf\u{e9} nobody /bin/a",
                "t.conf:1:1: service names are printable ASCII, and '\u{e9}' is not",
            ),
            ("a :wheel /bin/a", "t.conf:1:3: the user name is empty"),
            (
                "a nobody /bin/a x\0y",
                "t.conf:1:18: a NUL byte is not allowed",
            ),
            (
                "a nobody: /bin/a",
                "t.conf:1:10: the group name after ':' is empty",
            ),
            (
                "a nobody /bin/a\n# x\nA nobody /bin/b",
                "t.conf:3:1: service \"A\" is already defined on line 1 (names are not case sensitive)",
            ),
        ];
        for (text, message) in cases {
            assert_eq!(err(text), message, "{text:?}");
        }
        let long = format!("{} nobody /bin/a", "n".repeat(257));
        assert_eq!(
            err(&long),
            "t.conf:1:1: service names are at most 256 bytes"
        );
        assert!(parse("t", &format!("{} nobody /bin/a", "n".repeat(256))).is_ok());
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let message = "t.conf:2:10: \"bad\" is not an option (allow=, deny=, hidden), and the program must be an absolute path";
        assert_eq!(
            err("a nobody /bin/\u{e9}\nb n\u{e9}body bad /bin/b"),
            message
        );
    }

    #[test]
    fn a_table_prints_back_to_an_equal_table() {
        let text = "+echo nobody allow=127.0.0.0/8,::1 /bin/cat\nx daemon:adm hidden deny=::ffff:10.0.0.0/104 /bin/x a b\n";
        let table = ok(text);
        let printed = table.to_string();
        assert_eq!(
            printed,
            "+echo\tnobody\tallow=127.0.0.0/8,::1\t/bin/cat\nx\tdaemon:adm\thidden\tdeny=10.0.0.0/8\t/bin/x a b\n"
        );
        assert_eq!(ok(&printed), table);
    }
}
