//! The service table: which names this multiplexer answers, and for whom.
//! Pure data and lookups; reading it from a file is `config`'s job.

use crate::peer::Peer;
use crate::protocol::TCPMUX;

/// One service a client may ask for by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// The name as the table spells it; clients may use any case.
    pub name: String,
    /// Left out of the HELP list.
    pub hidden: bool,
}

/// The services on offer, besides the built-in `tcpmux`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    services: Vec<Service>,
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

    /// Resolves `name`, compared without regard to ASCII case.
    pub fn lookup(&self, name: &str, _peer: &Peer) -> Lookup<'_> {
        if name.eq_ignore_ascii_case(TCPMUX) {
            return Lookup::Mux;
        }
        match self
            .services
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(name))
        {
            Some(service) => Lookup::Service(service),
            None => Lookup::Unknown,
        }
    }

    /// The names HELP lists for `peer`: `tcpmux` first.
    pub fn visible_names(&self, _peer: &Peer) -> Vec<&str> {
        let services = self.services.iter().filter(|s| !s.hidden);
        std::iter::once(TCPMUX)
            .chain(services.map(|s| s.name.as_str()))
            .collect()
    }
}
