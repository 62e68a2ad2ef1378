//! The service table: which names this multiplexer answers, for whom, and
//! how each service is run. Pure data and lookups; `config` reads it from
//! text.

use std::collections::HashMap;
use std::fmt;

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
    pub rules: Rules,
    /// Left out of the HELP list.
    pub hidden: bool,
    /// The program, an absolute path, and its arguments after argv[0].
    pub program: String,
    pub args: Vec<String>,
    /// Where the service is defined, for messages.
    pub line: usize,
}

impl Service {
    /// Whether a client at `peer` may use the service or see it in HELP.
    pub fn admits(&self, peer: &Peer) -> bool {
        self.rules.admit(peer.remote.map(|a| a.ip()))
    }
}

/// The services on offer, besides the built-in `tcpmux`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    services: Vec<Service>,
    /// Lower-cased name to position, so a lookup costs the same in a table
    /// of ten services or of a hundred thousand.
    index: HashMap<String, usize>,
}

/// What a requested name resolves to for one peer.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// The multiplexer itself.
    Mux,
    Service(&'a Service),
    /// In the table, but not for this peer.
    Denied,
    Unknown,
}

impl Table {
    /// The table with no configured services: only `tcpmux` is served.
    pub fn builtin() -> Self {
        Table::default()
    }

    /// Adds a service, unless one of the same name (in any case) is there
    /// already: then that one is the error.
    pub fn insert(&mut self, service: Service) -> Result<(), &Service> {
        use std::collections::hash_map::Entry;
        match self.index.entry(service.name.to_ascii_lowercase()) {
            Entry::Occupied(earlier) => Err(&self.services[*earlier.get()]),
            Entry::Vacant(slot) => {
                slot.insert(self.services.len());
                self.services.push(service);
                Ok(())
            }
        }
    }

    pub fn services(&self) -> &[Service] {
        &self.services
    }

    /// Resolves `name`, compared without regard to ASCII case.
    pub fn lookup(&self, name: &str, peer: &Peer) -> Lookup<'_> {
        if name.eq_ignore_ascii_case(TCPMUX) {
            return Lookup::Mux;
        }
        match self.find(name) {
            Some(service) if service.admits(peer) => Lookup::Service(service),
            Some(_) => Lookup::Denied,
            None => Lookup::Unknown,
        }
    }

    pub fn find(&self, name: &str) -> Option<&Service> {
        let at = *self.index.get(&name.to_ascii_lowercase())?;
        self.services.get(at)
    }

    /// The names HELP lists for `peer`: `tcpmux` first, then the services
    /// it may use that are not hidden. An iterator, so that listing a large
    /// table costs no memory.
    pub fn visible_names<'a>(&'a self, peer: &'a Peer) -> impl Iterator<Item = &'a str> + 'a {
        let services = self.services.iter().filter(|s| !s.hidden && s.admits(peer));
        std::iter::once(TCPMUX).chain(services.map(|s| s.name.as_str()))
    }
}

/// A service as a line of the table file, as `config` reads it back.
impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plus = if self.mux_replies { "+" } else { "" };
        write!(f, "{plus}{}\t{}", self.name, self.user)?;
        if let Some(group) = &self.group {
            write!(f, ":{group}")?;
        }
        if self.hidden {
            f.write_str("\thidden")?;
        }
        for (key, list) in [("allow", &self.rules.allow), ("deny", &self.rules.deny)] {
            if !list.is_empty() {
                let items: Vec<String> = list.iter().map(|c| c.to_string()).collect();
                write!(f, "\t{key}={}", items.join(","))?;
            }
        }
        write!(f, "\t{}", self.program)?;
        for arg in &self.args {
            write!(f, " {arg}")?;
        }
        Ok(())
    }
}

/// The whole table as a file `config` reads back to an equal table.
impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for service in &self.services {
            writeln!(f, "{service}")?;
        }
        Ok(())
    }
}
