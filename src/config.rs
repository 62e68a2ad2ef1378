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
//! blocks, IPv4 or IPv6, repeatable), `proxy=v1|v2` and `maxconn=N`. The
//! program is the first field that begins with `/`; the fields after it are
//! its arguments. In its place a target names a running daemon:
//! `tcp:HOST:PORT`, `unix:/PATH` (the connection relayed to it) or
//! `pass:/PATH` (the connection itself handed over), with nothing after it.
//!
//! A line must do what it says, so forms that read as something they are
//! not are refused: an option word after the program (it would be an
//! argument, and an address rule would go unapplied), a field that begins
//! with `#` inside a line (it would be an argument, not a comment), and
//! inetd.conf's `tcpmux/name`. A `--` field just before the program passes
//! the arguments as written.
//!
//! The grammar works both ways: a table prints as a file that reads back to
//! an equal table (`--check` prints it so), and both directions live here,
//! so that `table` holds only the data.

use std::fmt;

use crate::access::{Cidr, CidrError};
use crate::protocol::{HELP, MAX_NAME_LEN, TCPMUX};
use crate::table::{Index, Kind, KindText, Options, Service, ServiceLine, Table};

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

/// The blank-separated fields of a line. Blanks are ASCII, and no byte of
/// a multi-byte character is, so the fields are found byte by byte.
struct Fields<'a> {
    line: &'a str,
    at: usize,
}

fn fields(line: &str) -> Fields<'_> {
    Fields { line, at: 0 }
}

impl<'a> Iterator for Fields<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let bytes = self.line.as_bytes();
        let blank = |at: &usize| bytes.get(*at).is_some_and(u8::is_ascii_whitespace);
        while blank(&self.at) {
            self.at += 1;
        }
        if self.at >= bytes.len() {
            return None;
        }
        let start = self.at;
        while self.at < bytes.len() && !blank(&self.at) {
            self.at += 1;
        }
        Some(&self.line[start..self.at])
    }
}

/// Why `word`, after the program, would not do what it seems to: an option
/// word (any case) or a comment. Such arguments need `--` before the
/// program, and the printer writes it for them.
fn misleading_argument(word: &str) -> Option<&'static str> {
    let option_word = |option: &TableOption| {
        if option.takes_value {
            strip_prefix_ignoring_case(word, option.name).is_some_and(|rest| rest.starts_with('='))
        } else {
            word.eq_ignore_ascii_case(option.name)
        }
    };
    if word.starts_with('#') {
        Some("not a comment: a comment takes a whole line, starting with '#'")
    } else if OPTIONS.iter().any(option_word) {
        Some("not an option: options go before the program")
    } else {
        None
    }
}

/// A table option: how it is written, read into a service's [`Options`]
/// and printed back. Each is declared once, in [`OPTIONS`]; the parser,
/// the printer, the refusal of option words after the program and the
/// lists in messages all read it there.
struct TableOption {
    /// The word, before the `=` of an option that takes a value.
    name: &'static str,
    /// Written `name=VALUE`, rather than as the bare word.
    takes_value: bool,
    /// Adds the option's value (empty for a bare word) to `options`. An
    /// error names the part of the value that is wrong, and why.
    parse: for<'a> fn(&mut Options, &'a str) -> Result<(), Wrong<'a>>,
    /// The field that gives a service its setting, if it has one other
    /// than the default.
    print: fn(&Options) -> Option<String>,
}

/// Every option, in the order a service's are printed. Options may be
/// repeated: a flag stays set, lists add up.
const OPTIONS: [TableOption; 5] = [
    TableOption {
        name: "hidden",
        takes_value: false,
        parse: |options, _| {
            options.hidden = true;
            Ok(())
        },
        print: |options| options.hidden.then(|| "hidden".to_owned()),
    },
    TableOption {
        name: "allow",
        takes_value: true,
        parse: |options, list| cidrs(list, &mut options.rules.allow),
        print: |options| cidr_field("allow", &options.rules.allow),
    },
    TableOption {
        name: "deny",
        takes_value: true,
        parse: |options, list| cidrs(list, &mut options.rules.deny),
        print: |options| cidr_field("deny", &options.rules.deny),
    },
    TableOption {
        name: "maxconn",
        takes_value: true,
        parse: |options, value| {
            let n = value
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=65536).contains(n));
            let n = n.ok_or((value, format!("maxconn={value:?} is not 1 to 65536")))?;
            options.maxconn = Some(n);
            Ok(())
        },
        print: |options| options.maxconn.map(|n| format!("maxconn={n}")),
    },
    TableOption {
        name: "proxy",
        takes_value: true,
        parse: |options, value| {
            options.proxy = Some(match value {
                "v1" => crate::proxy::Version::V1,
                "v2" => crate::proxy::Version::V2,
                _ => return Err((value, format!("proxy={value:?} is not v1 or v2"))),
            });
            Ok(())
        },
        print: |options| {
            options.proxy.map(|v| match v {
                crate::proxy::Version::V1 => "proxy=v1".to_owned(),
                crate::proxy::Version::V2 => "proxy=v2".to_owned(),
            })
        },
    },
];

/// The options as a line names them, `allow=, deny=, hidden`, in
/// alphabetical order, with `last` before the last instead of a comma.
fn option_list(last: &str) -> String {
    let mut words: Vec<String> = OPTIONS
        .iter()
        .map(|o| format!("{}{}", o.name, if o.takes_value { "=" } else { "" }))
        .collect();
    words.sort();
    let last_word = words.pop().unwrap_or_default();
    if words.is_empty() {
        last_word
    } else {
        format!("{}{last}{last_word}", words.join(", "))
    }
}

/// The column (1-based, in characters) where `part`, a slice of `line`,
/// starts; worked out only for a message.
fn column(line: &str, part: &str) -> usize {
    let offset = part.as_ptr() as usize - line.as_ptr() as usize;
    line[..offset].chars().count() + 1
}

/// Parses the text of a table file; `path` is only for messages.
pub fn parse(path: &str, text: &str) -> Result<Table, ConfigError> {
    parse_text(path, text.to_owned())
}

/// [`parse`], keeping `text` in the table rather than a copy of it.
pub fn parse_text(path: &str, text: String) -> Result<Table, ConfigError> {
    let mut services = Index::for_text(&text);
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let error = |column: usize, message: String| ConfigError {
            path: path.to_owned(),
            line: number,
            column,
            message,
        };
        let mut fields = fields(line).peekable();
        let Some(first) = fields.peek() else {
            continue;
        };
        if first.starts_with('#') {
            continue;
        }
        let first_column = column(line, first);
        // exec takes C strings: a NUL would cut an argument short unseen.
        // Other control characters (ESC, backspace, C1 controls) would let
        // a line print in `--check` or a log as something it is not.
        if let Some((at, c)) = line
            .char_indices()
            .find(|(_, c)| c.is_control() && *c != '\t')
        {
            let at = line[..at].chars().count() + 1;
            let message = if c == '\0' {
                "a NUL byte is not allowed".to_owned()
            } else {
                format!("control characters are not allowed, and {c:?} is one")
            };
            return Err(error(at, message));
        }
        let service =
            parse_line(line, fields, number).map_err(|(column, message)| error(column, message))?;
        let name = service.name;
        if let Err(earlier) = services.insert(&text, service) {
            let message = format!(
                "service {name:?} is already defined on line {earlier} (names are not case sensitive)"
            );
            return Err(error(first_column, message));
        }
    }
    Ok(services.into_table(text))
}

type LineError = (usize, String);

/// The part of a field that is wrong, a slice of the line (so that its
/// column can be found), and why.
type Wrong<'a> = (&'a str, String);

fn parse_line<'a>(
    line: &'a str,
    mut fields: impl Iterator<Item = &'a str>,
    number: usize,
) -> Result<ServiceLine<'a>, LineError> {
    // The column just past the line, for what is missing at its end.
    let end = || line.chars().count() + 1;
    // The caller has seen a first field.
    let name_field = fields.next().ok_or((1, "empty line".to_owned()))?;
    let (mux_replies, name) = match name_field.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, name_field),
    };
    if let Some(rest) = strip_prefix_ignoring_case(name, "tcpmux/") {
        let plus = if mux_replies || rest.starts_with('+') {
            "+"
        } else {
            ""
        };
        let message = format!(
            "{name_field:?} is inetd.conf's spelling; this table holds only TCPMUX services: write {:?}",
            format!("{plus}{}", rest.trim_start_matches('+'))
        );
        return Err((column(line, name_field), message));
    }
    check_name(name).map_err(|m| (column(line, name_field), m))?;

    let owner = fields
        .next()
        .ok_or_else(|| (end(), "missing the user to run the program as".to_owned()))?;
    if owner.starts_with('#') {
        return Err((column(line, owner), comment_inside(owner)));
    }
    let (user, group) = match owner.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (owner, None),
    };
    if user.is_empty() {
        return Err((column(line, owner), "the user name is empty".to_owned()));
    }
    if let Some(group @ "") = group {
        let message = "the group name after ':' is empty".to_owned();
        return Err((column(line, group), message));
    }

    let mut options = Options::default();
    let mut as_written = false;
    let program = loop {
        let field = fields.next().ok_or_else(|| {
            (
                end(),
                "missing the program (an absolute path such as /usr/bin/foo)".to_owned(),
            )
        })?;
        if field.starts_with('/') {
            break field;
        }
        if let Some(kind) = target(field).map_err(|(part, m)| (column(line, part), m))? {
            return finish_target(
                line,
                name,
                mux_replies,
                user,
                group,
                options,
                kind,
                field,
                fields,
                number,
            );
        }
        if as_written {
            let message =
                format!("{field:?} follows \"--\", where the program (an absolute path) must be");
            return Err((column(line, field), message));
        }
        if field == "--" {
            as_written = true;
            continue;
        }
        if field.starts_with('#') {
            return Err((column(line, field), comment_inside(field)));
        }
        let (key, value) = field.split_once('=').unwrap_or((field, ""));
        let takes_value = key.len() < field.len();
        let Some(option) = OPTIONS
            .iter()
            .find(|o| o.name == key && o.takes_value == takes_value)
        else {
            let message = if takes_value {
                let options = option_list(" and ");
                format!("unknown option {key:?}; the options are {options}")
            } else {
                let options = option_list(", ");
                format!(
                    "{field:?} is not an option ({options}), and the program must be an absolute path"
                )
            };
            return Err((column(line, field), message));
        };
        (option.parse)(&mut options, value).map_err(|(part, m)| (column(line, part), m))?;
    };
    if options.proxy.is_some() {
        let message =
            "proxy= goes with tcp: and unix:, where the connection is relayed to a daemon"
                .to_owned();
        return Err((column(line, program), message));
    }
    // What would read as an option or a comment is refused, unless "--"
    // said the arguments are as written.
    if !as_written {
        for field in fields {
            if let Some(why) = misleading_argument(field) {
                let message = format!(
                    "{field:?} would be an argument of {program}, {why} (write -- before the program to pass it on)"
                );
                return Err((column(line, field), message));
            }
        }
    }
    // The arguments are the rest of the line, split when a launch needs them.
    let after = program.as_ptr() as usize - line.as_ptr() as usize + program.len();
    let args = line[after..].trim_matches(|c: char| c.is_ascii_whitespace());
    Ok(ServiceLine {
        name,
        mux_replies,
        user,
        group,
        options,
        kind: KindText::Exec { program, args },
        line: number,
    })
}

/// A forward's or a pass's target, if `field` is one: `tcp:HOST:PORT`,
/// `unix:/PATH` or `pass:/PATH`.
fn target(field: &str) -> Result<Option<KindText<&str>>, Wrong<'_>> {
    if let Some(rest) = field.strip_prefix("tcp:") {
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or((rest, "tcp: is written tcp:HOST:PORT".to_owned()))?;
        let ok_host = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            v6.parse::<std::net::Ipv6Addr>().is_ok()
        } else {
            !host.is_empty()
                && host.len() <= 253
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        };
        if !ok_host {
            let message = format!(
                "{host:?} is not an IPv4 address, a [bracketed] IPv6 address or a host name"
            );
            return Err((host, message));
        }
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or((port, format!("port {port:?} is not 1 to 65535")))?;
        return Ok(Some(KindText::Tcp { host, port }));
    }
    for (prefix, pass) in [("unix:", false), ("pass:", true)] {
        if let Some(path) = field.strip_prefix(prefix) {
            if !path.starts_with('/') {
                let message =
                    format!("{prefix} takes an absolute path, such as {prefix}/run/x.sock");
                return Err((path, message));
            }
            return Ok(Some(if pass {
                KindText::Pass { path }
            } else {
                KindText::Unix { path }
            }));
        }
    }
    Ok(None)
}

/// The rest of a line whose program field is a target: nothing may follow
/// it, and `proxy=` goes with a relayed connection only.
#[allow(clippy::too_many_arguments)]
fn finish_target<'a>(
    line: &'a str,
    name: &'a str,
    mux_replies: bool,
    user: &'a str,
    group: Option<&'a str>,
    options: Options,
    kind: KindText<&'a str>,
    field: &'a str,
    mut fields: impl Iterator<Item = &'a str>,
    number: usize,
) -> Result<ServiceLine<'a>, LineError> {
    if let Some(extra) = fields.next() {
        let message = format!("{field} takes no arguments, and {extra:?} follows it");
        return Err((column(line, extra), message));
    }
    if options.proxy.is_some() && matches!(kind, KindText::Pass { .. }) {
        let message =
            "proxy= goes with tcp: and unix:, where the connection is relayed; a passed connection is the client's own".to_owned();
        return Err((column(line, field), message));
    }
    Ok(ServiceLine {
        name,
        mux_replies,
        user,
        group,
        options,
        kind,
        line: number,
    })
}

/// `text` after `prefix`, compared without regard to ASCII case.
fn strip_prefix_ignoring_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.as_bytes().get(..prefix.len())?;
    // An ASCII prefix matched, so the rest starts on a character boundary.
    head.eq_ignore_ascii_case(prefix.as_bytes())
        .then(|| &text[prefix.len()..])
}

/// The refusal of a field that begins with `#` before the program.
fn comment_inside(field: &str) -> String {
    format!("{field:?} is not a comment: a comment takes a whole line, starting with '#'")
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

/// Adds a comma-separated list of blocks to `blocks`; an error names the
/// item that is wrong.
fn cidrs<'a>(list: &'a str, blocks: &mut Vec<Cidr>) -> Result<(), Wrong<'a>> {
    for item in list.split(',') {
        if item.is_empty() {
            return Err((item, "an empty address in the list".to_owned()));
        }
        blocks.push(item.parse().map_err(|e: CidrError| (item, e.to_string()))?);
    }
    Ok(())
}

/// `key=LIST`, unless the list is empty.
fn cidr_field(key: &str, blocks: &[Cidr]) -> Option<String> {
    let items: Vec<String> = blocks.iter().map(Cidr::to_string).collect();
    (!items.is_empty()).then(|| format!("{key}={}", items.join(",")))
}

/// A service as a line of the table file, which [`parse`] reads back.
impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plus = if self.mux_replies { "+" } else { "" };
        write!(f, "{plus}{}\t{}", self.name, self.user)?;
        if let Some(group) = &self.group {
            write!(f, ":{group}")?;
        }
        for option in &OPTIONS {
            if let Some(field) = (option.print)(&self.options) {
                write!(f, "\t{field}")?;
            }
        }
        match &self.kind {
            Kind::Exec { program, args } => {
                // Arguments that would read as options or comments need "--".
                if args.iter().any(|a| misleading_argument(a).is_some()) {
                    f.write_str("\t--")?;
                }
                write!(f, "\t{program}")?;
                for arg in args {
                    write!(f, " {arg}")?;
                }
            }
            Kind::Tcp { host, port } => write!(f, "\ttcp:{host}:{port}")?,
            Kind::Unix { path } => write!(f, "\tunix:{path}")?,
            Kind::Pass { path } => write!(f, "\tpass:{path}")?,
        }
        Ok(())
    }
}

/// The whole table as a file that [`parse`] reads back to an equal table.
impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for service in self.services() {
            writeln!(f, "{service}")?;
        }
        Ok(())
    }
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

    fn exec(program: &str, args: &[&str]) -> Kind {
        Kind::Exec {
            program: program.to_owned(),
            args: args.iter().map(|a| a.to_string()).collect(),
        }
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
        assert!(s.options.hidden);
        let allow: Vec<String> = s
            .options
            .rules
            .allow
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert_eq!(allow, ["10.0.0.0/8", "::1"]);
        assert_eq!(s.options.rules.deny[0].to_string(), "10.0.0.5");
        assert_eq!(s.kind, exec("/bin/cat", &["-u", "-"]));
        assert_eq!(s.line, 1);
    }

    #[test]
    fn a_minimal_line_has_defaults() {
        let table = ok("date daemon /bin/date");
        let s = &table.services()[0];
        assert!(!s.mux_replies);
        assert_eq!(s.group, None);
        assert_eq!(s.options, Options::default());
        assert_eq!(s.kind, exec("/bin/date", &[]));
    }

    #[test]
    fn comments_blank_lines_tabs_and_crlf_are_fine() {
        let table =
            ok("# a comment\n\n   \n\t# indented\r\na\tnobody\t/bin/a\r\n  b nobody /bin/b\n");
        let names: Vec<String> = table.services().into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(table.services()[1].line, 6);
    }

    #[test]
    fn options_accumulate() {
        let table = ok("a nobody allow=10.0.0.0/8 allow=192.0.2.1 /bin/a");
        assert_eq!(table.services()[0].options.rules.allow.len(), 2);
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
                "t.conf:1:10: \"bin/cat\" is not an option (allow=, deny=, hidden, maxconn=, proxy=), and the program must be an absolute path",
            ),
            (
                "a nobody color=red /bin/a",
                "t.conf:1:10: unknown option \"color\"; the options are allow=, deny=, hidden, maxconn= and proxy=",
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
                "a nobody /bin/sh -c id;#\u{1b}[2K+a nobody /bin/cat",
                "t.conf:1:25: control characters are not allowed, and '\\u{1b}' is one",
            ),
            (
                "a nobody /bin/a \u{9b}2K",
                "t.conf:1:17: control characters are not allowed, and '\\u{9b}' is one",
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
    fn lines_that_would_not_do_what_they_say_are_refused() {
        let cases = [
            (
                "+echo nobody /bin/cat allow=127.0.0.1",
                "t.conf:1:23: \"allow=127.0.0.1\" would be an argument of /bin/cat, not an option: options go before the program (write -- before the program to pass it on)",
            ),
            (
                "+echo nobody /bin/cat -u DENY=::1",
                "t.conf:1:26: \"DENY=::1\" would be an argument of /bin/cat, not an option: options go before the program (write -- before the program to pass it on)",
            ),
            (
                "+echo nobody /bin/cat hidden",
                "t.conf:1:23: \"hidden\" would be an argument of /bin/cat, not an option: options go before the program (write -- before the program to pass it on)",
            ),
            (
                "+echo nobody /bin/cat # comment",
                "t.conf:1:23: \"#\" would be an argument of /bin/cat, not a comment: a comment takes a whole line, starting with '#' (write -- before the program to pass it on)",
            ),
            (
                "+echo nobody /bin/cat #comment",
                "t.conf:1:23: \"#comment\" would be an argument of /bin/cat, not a comment: a comment takes a whole line, starting with '#' (write -- before the program to pass it on)",
            ),
            (
                "+echo nobody #no /bin/cat",
                "t.conf:1:14: \"#no\" is not a comment: a comment takes a whole line, starting with '#'",
            ),
            (
                "+echo #nobody /bin/cat",
                "t.conf:1:7: \"#nobody\" is not a comment: a comment takes a whole line, starting with '#'",
            ),
            (
                "tcpmux/+echo nobody /bin/cat",
                "t.conf:1:1: \"tcpmux/+echo\" is inetd.conf's spelling; this table holds only TCPMUX services: write \"+echo\"",
            ),
            (
                "TCPMUX/echo nobody /bin/cat",
                "t.conf:1:1: \"TCPMUX/echo\" is inetd.conf's spelling; this table holds only TCPMUX services: write \"echo\"",
            ),
            (
                "+tcpmux/echo nobody /bin/cat",
                "t.conf:1:1: \"+tcpmux/echo\" is inetd.conf's spelling; this table holds only TCPMUX services: write \"+echo\"",
            ),
            (
                "+echo nobody -- hidden /bin/cat",
                "t.conf:1:17: \"hidden\" follows \"--\", where the program (an absolute path) must be",
            ),
        ];
        for (text, message) in cases {
            assert_eq!(err(text), message, "{text:?}");
        }
    }

    #[test]
    fn dashes_before_the_program_pass_its_arguments_as_written() {
        let table = ok("+echo nobody allow=::1 -- /bin/echo hidden allow=x # not-a-comment\n");
        let s = &table.services()[0];
        let args = ["hidden", "allow=x", "#", "not-a-comment"];
        assert_eq!(s.kind, exec("/bin/echo", &args));
        assert_eq!(s.options.rules.allow.len(), 1);
        assert_eq!(
            table.to_string(),
            "+echo\tnobody\tallow=::1\t--\t/bin/echo hidden allow=x # not-a-comment\n"
        );
        assert_eq!(ok(&table.to_string()), table);
        // Plain arguments need no "--", and it is not printed for them.
        let table = ok("a nobody -- /bin/a -x a#b --hidden allow\n");
        assert_eq!(
            table.to_string(),
            "a\tnobody\t/bin/a -x a#b --hidden allow\n"
        );
        // A '#' inside a name is part of it.
        assert_eq!(ok("a#b nobody /bin/a").services()[0].name, "a#b");
    }

    #[test]
    fn every_option_is_in_the_manual_and_refused_after_the_program() {
        let page = include_str!("../etc/man/tcpmux.conf.5");
        for option in &OPTIONS {
            let (item, word) = if option.takes_value {
                let item = format!(".It Cm {} Ns = Ns Ar ", option.name);
                (item, format!("{}=x", option.name.to_ascii_uppercase()))
            } else {
                (format!(".It Cm {}\n", option.name), option.name.to_owned())
            };
            assert!(page.contains(&item), "tcpmux.conf(5) lacks {item:?}");
            assert!(misleading_argument(&word).is_some(), "{word}");
        }
        assert_eq!(misleading_argument("allow"), None);
        assert_eq!(misleading_argument("hidden=x"), None);
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let message = "t.conf:2:10: \"bad\" is not an option (allow=, deny=, hidden, maxconn=, proxy=), and the program must be an absolute path";
        assert_eq!(
            err("a nobody /bin/\u{e9}\nb n\u{e9}body bad /bin/b"),
            message
        );
    }

    #[test]
    fn a_service_with_every_field_set_prints_and_reads_back_equal() {
        let cidr = |text: &str| text.parse::<Cidr>().unwrap();
        let service = Service {
            name: "Every".to_owned(),
            mux_replies: true,
            user: "nobody".to_owned(),
            group: Some("nogroup".to_owned()),
            options: Options {
                hidden: true,
                rules: crate::access::Rules {
                    allow: vec![cidr("192.0.2.0/24"), cidr("::1")],
                    deny: vec![cidr("192.0.2.7")],
                },
                proxy: None,
                maxconn: Some(8),
            },
            // Arguments that need "--" before the program, among others.
            kind: exec("/usr/bin/env", &["-u", "HIDDEN", "#x", "Allow=1", "a#b"]),
            line: 1,
        };
        // proxy= goes with a relayed forward, so a second service sets it.
        let forward = Service {
            name: "Relayed".to_owned(),
            options: Options {
                proxy: Some(crate::proxy::Version::V2),
                ..service.options.clone()
            },
            kind: Kind::Tcp {
                host: "[2001:db8::1]".to_owned(),
                port: 8080,
            },
            line: 2,
            ..service.clone()
        };
        // An option added to the table must be set here too.
        for option in &OPTIONS {
            let set = [&service, &forward].map(|s| (option.print)(&s.options));
            assert!(
                set.iter().any(Option::is_some),
                "{} is not set",
                option.name
            );
        }
        let printed = format!("{service}\n{forward}\n");
        assert_eq!(
            printed,
            "+Every\tnobody:nogroup\thidden\tallow=192.0.2.0/24,::1\tdeny=192.0.2.7\tmaxconn=8\t--\t/usr/bin/env -u HIDDEN #x Allow=1 a#b\n\
             +Relayed\tnobody:nogroup\thidden\tallow=192.0.2.0/24,::1\tdeny=192.0.2.7\tmaxconn=8\tproxy=v2\ttcp:[2001:db8::1]:8080\n"
        );
        assert_eq!(ok(&printed).services(), [service, forward]);
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
