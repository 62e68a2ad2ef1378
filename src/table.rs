//! The service table: which names this multiplexer answers, for whom, and
//! how each service is run. Pure data and lookups; `config`, the table
//! file's grammar, reads it from text and prints it back.

use std::collections::{HashMap, hash_map};
use std::hash::{BuildHasherDefault, Hasher};

use crate::access::Rules;
use crate::peer::Peer;
use crate::protocol::TCPMUX;

/// One service a client may ask for by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// The name as the table spells it; clients may use any case.
    pub name: String,
    /// The multiplexer sends the `+` line; otherwise the program does
    /// (inetd's `tcpmux/+name` against `tcpmux/name`).
    pub mux_replies: bool,
    /// The user the program runs as, and the group instead of the user's
    /// own, when given.
    pub user: String,
    pub group: Option<String>,
    pub options: Options,
    pub kind: Kind,
    /// Where the service is defined, for messages.
    pub line: usize,
}

impl Service {
    /// Whether a client at `peer` may use the service or see it in HELP.
    pub fn admits(&self, peer: &Peer) -> bool {
        self.options.rules.admit(peer.remote.map(|a| a.ip()))
    }
}

/// What a service runs when a client asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A program, by absolute path, run on the connection with these
    /// arguments after argv[0].
    Exec { program: String, args: Vec<String> },
    /// A running daemon reached by TCP, the connection relayed to it: an
    /// address (`[...]` for IPv6) or a host name, and a port.
    Tcp { host: String, port: u16 },
    /// A running daemon on a Unix socket, the connection relayed to it.
    Unix { path: String },
    /// A running daemon on a Unix socket that takes the connection itself
    /// (see `pass`).
    Pass { path: String },
}

impl Kind {
    /// How the table writes the target of a forward or a pass.
    pub fn target(&self) -> Option<String> {
        match self {
            Kind::Exec { .. } => None,
            Kind::Tcp { host, port } => Some(format!("tcp:{host}:{port}")),
            Kind::Unix { path } => Some(format!("unix:{path}")),
            Kind::Pass { path } => Some(format!("pass:{path}")),
        }
    }
}

/// What a service runs, as where it is written: slices of the table's
/// text in the parser's hands, spans of it in the index, so that the index
/// stays small and a [`Kind`] is built only for the service asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KindText<T> {
    /// The program field, and the rest of the line after it: the
    /// arguments, separated by blanks.
    Exec { program: T, args: T },
    /// The host of `tcp:HOST:PORT`, brackets of an IPv6 address included,
    /// and the port, read already.
    Tcp { host: T, port: u16 },
    /// The path of `unix:PATH`.
    Unix { path: T },
    /// The path of `pass:PATH`.
    Pass { path: T },
}

impl<T> KindText<T> {
    fn map<U>(self, f: impl Fn(T) -> U) -> KindText<U> {
        match self {
            KindText::Exec { program, args } => KindText::Exec {
                program: f(program),
                args: f(args),
            },
            KindText::Tcp { host, port } => KindText::Tcp {
                host: f(host),
                port,
            },
            KindText::Unix { path } => KindText::Unix { path: f(path) },
            KindText::Pass { path } => KindText::Pass { path: f(path) },
        }
    }
}

impl KindText<&str> {
    fn to_kind(self) -> Kind {
        match self {
            KindText::Exec { program, args } => Kind::Exec {
                program: program.to_owned(),
                args: args.split_ascii_whitespace().map(str::to_owned).collect(),
            },
            KindText::Tcp { host, port } => Kind::Tcp {
                host: host.to_owned(),
                port,
            },
            KindText::Unix { path } => Kind::Unix {
                path: path.to_owned(),
            },
            KindText::Pass { path } => Kind::Pass {
                path: path.to_owned(),
            },
        }
    }
}

/// A service's options, the table's `[option ...]` fields; `config`
/// declares how each is written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// Left out of the HELP list.
    pub hidden: bool,
    pub rules: Rules,
    /// The PROXY protocol header a forward sends the daemon first.
    pub proxy: Option<crate::proxy::Version>,
    /// With --listen: at most this many connections at once.
    pub maxconn: Option<u32>,
}

impl Options {
    /// No options but `hidden`, as most services have.
    fn just(hidden: bool) -> Options {
        Options {
            hidden,
            ..Options::default()
        }
    }
}

/// A service line as the parser found it, borrowing the table's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceLine<'a> {
    pub name: &'a str,
    pub mux_replies: bool,
    pub user: &'a str,
    pub group: Option<&'a str>,
    pub options: Options,
    pub kind: KindText<&'a str>,
    pub line: usize,
}

/// Where a service's fields are in the table's text, kept small: a table
/// of a thousand services is read at every connection in inetd mode, and
/// every page its index touches is a page fault of that connection.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    name: Span,
    user: Span,
    /// Empty when the line names no group (the parser refuses an empty one).
    group: Span,
    kind: KindText<Span>,
    line: u32,
    mux_replies: bool,
    /// Kept out of `options`, as HELP reads it of every entry.
    hidden: bool,
    /// Most services have no options but `hidden`; those that do keep them
    /// aside, `hidden` included.
    options: Option<Box<Options>>,
}

/// A stretch of the table's text, by byte offsets (a table is at most
/// 16 MiB, see `load`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn of(text: &str, part: &str) -> Span {
        let start = part.as_ptr() as usize - text.as_ptr() as usize;
        let offset = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Span {
            start: offset(start),
            end: offset(start + part.len()),
        }
    }

    fn get(self, text: &str) -> &str {
        text.get(self.start as usize..self.end as usize)
            .unwrap_or("")
    }
}

impl Entry {
    fn admits(&self, remote: Option<std::net::IpAddr>) -> bool {
        self.options.as_ref().is_none_or(|o| o.rules.admit(remote))
    }
}

/// The services on offer, besides the built-in `tcpmux`.
///
/// The table keeps its text and, for each service, where its fields are in
/// it; a [`Service`] is built only for the one a client asks for. Reading a
/// table of a thousand services in inetd mode, where every connection reads
/// it anew, so costs no allocation per service (beyond options other than
/// `hidden`).
#[derive(Debug, Clone, Default)]
pub struct Table {
    text: String,
    index: Index,
}

/// Where each service is in a table's text, and a way to find it by name.
#[derive(Debug, Clone, Default)]
pub struct Index {
    entries: Vec<Entry>,
    /// A case-folded hash of each name to its entry, so that a lookup costs
    /// the same in a table of ten services or of a hundred thousand.
    by_name: HashMap<u32, u32, BuildHasherDefault<KeyIsHash>>,
    /// Entries whose name's hash an earlier, different name had already;
    /// searched in turn.
    collided: Vec<usize>,
}

/// What a requested name resolves to for one peer.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The multiplexer itself.
    Mux,
    Service(Service),
    /// In the table, but not for this peer.
    Denied,
    Unknown,
}

impl Index {
    /// An empty index, with room for a service on every line of `text`.
    pub fn for_text(text: &str) -> Index {
        let lines = text.bytes().filter(|b| *b == b'\n').count() + 1;
        Index {
            entries: Vec::with_capacity(lines),
            by_name: HashMap::with_capacity_and_hasher(lines, BuildHasherDefault::default()),
            collided: Vec::new(),
        }
    }

    /// Adds a service found in `text`, unless one of the same name (in any
    /// case) is there already: then that one's line number is the error.
    pub fn insert(&mut self, text: &str, line: ServiceLine<'_>) -> Result<(), usize> {
        let at = |part: &str| Span::of(text, part);
        let hash = folded_hash(line.name);
        if let Some(earlier) = self.position(text, line.name, hash) {
            return Err(self.entries[earlier].line as usize);
        }
        let position = self.entries.len() as u32;
        let hidden = line.options.hidden;
        let plain = line.options == Options::just(hidden);
        self.entries.push(Entry {
            name: at(line.name),
            user: at(line.user),
            group: line.group.map(at).unwrap_or_default(),
            kind: line.kind.map(at),
            line: u32::try_from(line.line).unwrap_or(u32::MAX),
            mux_replies: line.mux_replies,
            hidden,
            options: (!plain).then(|| Box::new(line.options)),
        });
        match self.by_name.entry(hash) {
            hash_map::Entry::Vacant(slot) => {
                slot.insert(position);
            }
            hash_map::Entry::Occupied(_) => self.collided.push(position as usize),
        }
        Ok(())
    }

    /// The table of `text`, which must be the text the services were
    /// found in.
    pub fn into_table(self, text: String) -> Table {
        Table { text, index: self }
    }

    /// The entry of `name`, whose folded hash is `hash`.
    fn position(&self, text: &str, name: &str, hash: u32) -> Option<usize> {
        let named = |at: &usize| self.entries[*at].name.get(text).eq_ignore_ascii_case(name);
        match self.by_name.get(&hash).map(|at| *at as usize) {
            Some(at) if named(&at) => Some(at),
            Some(_) => self.collided.iter().copied().find(|at| named(at)),
            None => None,
        }
    }
}

impl Table {
    /// The table with no configured services: only `tcpmux` is served.
    pub fn builtin() -> Self {
        Table::default()
    }

    /// How many services there are, `tcpmux` not counted.
    pub fn len(&self) -> usize {
        self.index.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.entries.is_empty()
    }

    /// How many services, in words: "1 service", "2 services".
    pub fn count(&self) -> String {
        match self.len() {
            1 => "1 service".to_owned(),
            n => format!("{n} services"),
        }
    }

    /// Every service, in the table's order, for `--check` and tests:
    /// connections build only the one they ask for.
    pub fn services(&self) -> Vec<Service> {
        let entries = self.index.entries.iter();
        entries.map(|e| self.service(e)).collect()
    }

    /// Resolves `name`, compared without regard to ASCII case.
    pub fn lookup(&self, name: &str, peer: &Peer) -> Lookup {
        if name.eq_ignore_ascii_case(TCPMUX) {
            return Lookup::Mux;
        }
        let Some(at) = self.index.position(&self.text, name, folded_hash(name)) else {
            return Lookup::Unknown;
        };
        let entry = &self.index.entries[at];
        if entry.admits(peer.remote.map(|a| a.ip())) {
            Lookup::Service(self.service(entry))
        } else {
            Lookup::Denied
        }
    }

    pub fn find(&self, name: &str) -> Option<Service> {
        let at = self.index.position(&self.text, name, folded_hash(name))?;
        Some(self.service(&self.index.entries[at]))
    }

    /// The names HELP lists for `peer`: `tcpmux` first, then the services
    /// it may use that are not hidden. An iterator, so that listing a large
    /// table costs no memory.
    pub fn visible_names<'a>(&'a self, peer: &'a Peer) -> impl Iterator<Item = &'a str> + 'a {
        let remote = peer.remote.map(|a| a.ip());
        let services = self
            .index
            .entries
            .iter()
            .filter(move |e| !e.hidden && e.admits(remote));
        std::iter::once(TCPMUX).chain(services.map(|e| e.name.get(&self.text)))
    }

    fn service(&self, entry: &Entry) -> Service {
        let text = |span: Span| span.get(&self.text).to_owned();
        Service {
            name: text(entry.name),
            mux_replies: entry.mux_replies,
            user: text(entry.user),
            group: (entry.group != Span::default()).then(|| text(entry.group)),
            options: match &entry.options {
                Some(options) => Options::clone(options),
                None => Options::just(entry.hidden),
            },
            kind: entry.kind.map(|span| span.get(&self.text)).to_kind(),
            line: entry.line as usize,
        }
    }
}

/// Tables are equal when they offer the same services, whatever their text.
impl PartialEq for Table {
    fn eq(&self, other: &Table) -> bool {
        self.len() == other.len() && self.services() == other.services()
    }
}

impl Eq for Table {}

/// The index's keys are hashes already: they are used as they are.
#[derive(Default)]
struct KeyIsHash(u64);

impl Hasher for KeyIsHash {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }

    fn write_u32(&mut self, n: u32) {
        // Spread over the 64 bits the map takes its buckets and tags from.
        self.0 = u64::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// FNV-1a over the ASCII-lower-cased bytes of a name. Names come from the
/// table's root-owned file; a client's name only selects among them, so no
/// client can make the index slow.
fn folded_hash(name: &str) -> u32 {
    name.bytes().fold(0x811c_9dc5, |hash, byte| {
        (hash ^ u32::from(byte.to_ascii_lowercase())).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_whose_hashes_collide_are_both_found_and_told_apart() {
        assert_eq!(folded_hash("s31597"), folded_hash("S618190"));
        let table = crate::config::parse(
            "t",
            "s31597 nobody /bin/a\n+S618190 daemon hidden /bin/b x  y\n",
        )
        .unwrap();
        let peer = Peer::unknown();
        let a = table.find("S31597").unwrap();
        let b = table.find("s618190").unwrap();
        let exec = |program: &str, args: &[&str]| Kind::Exec {
            program: program.to_owned(),
            args: args.iter().map(|a| a.to_string()).collect(),
        };
        assert_eq!((&a.kind, a.line), (&exec("/bin/a", &[]), 1));
        assert_eq!(b.kind, exec("/bin/b", &["x", "y"]));
        assert!(b.mux_replies && b.options.hidden && b.group.is_none());
        assert_eq!(table.lookup("s618191", &peer), Lookup::Unknown);
        let names: Vec<&str> = table.visible_names(&peer).collect();
        assert_eq!(names, ["tcpmux", "s31597"]);
        let again = crate::config::parse("t", "s31597 nobody /bin/a\nS31597 nobody /bin/b\n");
        assert_eq!(
            again.unwrap_err().to_string(),
            "t:2:1: service \"S31597\" is already defined on line 1 (names are not case sensitive)"
        );
    }
}
