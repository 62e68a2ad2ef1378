//! `--max-rate-per-source`: a source that opens more than N new connections
//! a second is refused for `--rate-backoff` seconds, then served again; no
//! other source is touched. Like xinetd's `cps` without its shutdown of
//! the service for everyone, and like systemd's trigger limit without its
//! failing the socket for good.
//!
//! Each source is a bucket of N connections that refills at N a second
//! (kept as the time it will be full again, GCRA), so a burst of N at once
//! is allowed and a steady rate above N is not. Pure: the caller gives the
//! time.
//!
//! Memory is bounded: at most [`MAX_SOURCES`] sources are remembered. A
//! source whose bucket is full and who is not backing off carries nothing
//! and is forgotten first; when every one remembered still matters, the
//! one that would be forgotten soonest makes room.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::access::Cidr;

/// The most sources remembered at once: about 64 bytes each.
pub const MAX_SOURCES: usize = 4096;

/// What a new connection from a source gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Over the rate: `starts` for the connection that began the back-off,
    /// the others during it.
    Limited {
        starts: bool,
    },
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// When the bucket is full again.
    full_at: Instant,
    /// When a back-off ends.
    refused_until: Option<Instant>,
}

impl Entry {
    /// From when the entry says nothing a fresh one would not.
    fn forgotten_at(&self) -> Instant {
        self.refused_until
            .map_or(self.full_at, |until| until.max(self.full_at))
    }
}

/// The rate of new connections of each source.
#[derive(Debug)]
pub struct Rates {
    /// One connection's share of a second: the bucket refills one per.
    interval: Duration,
    backoff: Duration,
    capacity: usize,
    sources: HashMap<Cidr, Entry>,
}

impl Rates {
    /// `per_second` (at least 1) new connections a second from one source,
    /// then `backoff` refused; at most `capacity` sources remembered.
    pub fn new(per_second: u32, backoff: Duration, capacity: usize) -> Rates {
        Rates {
            interval: Duration::from_secs(1) / per_second.max(1),
            backoff,
            capacity: capacity.max(1),
            sources: HashMap::new(),
        }
    }

    /// Counts a new connection from `source` at `now`.
    pub fn arrive(&mut self, source: Cidr, now: Instant) -> Verdict {
        if !self.sources.contains_key(&source) {
            self.make_room(now);
        }
        let entry = self.sources.entry(source).or_insert(Entry {
            full_at: now,
            refused_until: None,
        });
        if let Some(until) = entry.refused_until {
            if now < until {
                return Verdict::Limited { starts: false };
            }
            // Served again with a full bucket.
            *entry = Entry {
                full_at: now,
                refused_until: None,
            };
        }
        let full_at = entry.full_at.max(now) + self.interval;
        if full_at > now + Duration::from_secs(1) {
            entry.refused_until = Some(now + self.backoff);
            return Verdict::Limited { starts: true };
        }
        entry.full_at = full_at;
        Verdict::Allowed
    }

    /// How many sources are remembered.
    pub fn len(&self) -> usize {
        self.sources.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// Room for one more source: those that carry nothing go, then, if need
    /// be, the one that would go soonest.
    fn make_room(&mut self, now: Instant) {
        if self.sources.len() < self.capacity {
            return;
        }
        self.sources.retain(|_, entry| entry.forgotten_at() > now);
        if self.sources.len() < self.capacity {
            return;
        }
        let soonest = self
            .sources
            .iter()
            .min_by_key(|(_, entry)| entry.forgotten_at())
            .map(|(source, _)| *source);
        if let Some(source) = soonest {
            self.sources.remove(&source);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(text: &str) -> Cidr {
        text.parse().unwrap()
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn a_burst_of_n_passes_and_the_next_starts_the_back_off() {
        let mut rates = Rates::new(5, 10 * SECOND, MAX_SOURCES);
        let now = Instant::now();
        let a = source("192.0.2.7");
        for _ in 0..5 {
            assert_eq!(rates.arrive(a, now), Verdict::Allowed);
        }
        assert_eq!(rates.arrive(a, now), Verdict::Limited { starts: true });
        assert_eq!(rates.arrive(a, now), Verdict::Limited { starts: false });
        // Another source is not touched.
        assert_eq!(rates.arrive(source("192.0.2.8"), now), Verdict::Allowed);
        // Still refused near the end of the back-off, served after it, with
        // a whole burst again.
        let later = now + 10 * SECOND - Duration::from_millis(1);
        assert_eq!(rates.arrive(a, later), Verdict::Limited { starts: false });
        let after = now + 10 * SECOND;
        for _ in 0..5 {
            assert_eq!(rates.arrive(a, after), Verdict::Allowed);
        }
        assert_eq!(rates.arrive(a, after), Verdict::Limited { starts: true });
    }

    #[test]
    fn a_steady_rate_of_n_a_second_is_never_refused() {
        let mut rates = Rates::new(4, 10 * SECOND, MAX_SOURCES);
        let start = Instant::now();
        let a = source("192.0.2.7");
        for i in 0..100 {
            let now = start + SECOND / 4 * i;
            assert_eq!(rates.arrive(a, now), Verdict::Allowed, "{i}");
        }
        // Twice that rate is refused within the second.
        let now = start + 25 * SECOND;
        let refused = (0..8)
            .map(|i| rates.arrive(a, now + SECOND / 8 * i))
            .filter(|v| *v != Verdict::Allowed)
            .count();
        assert!(refused > 0);
    }

    #[test]
    fn a_thousand_sources_do_not_grow_the_table_past_its_cap() {
        let mut rates = Rates::new(1, 10 * SECOND, 100);
        let now = Instant::now();
        // Every one of them backing off, so none can simply be forgotten.
        for i in 0..1000u32 {
            let ip = std::net::Ipv4Addr::from(0xC000_0000 + i);
            let s = Cidr::around(ip.into(), 32);
            assert_eq!(rates.arrive(s, now), Verdict::Allowed);
            assert_eq!(rates.arrive(s, now), Verdict::Limited { starts: true });
            assert!(rates.len() <= 100);
        }
        assert_eq!(rates.len(), 100);
        // Quiet sources are forgotten once their bucket is full again.
        let mut rates = Rates::new(1, SECOND, 100);
        for i in 0..1000u32 {
            let ip = std::net::Ipv4Addr::from(0xC000_0000 + i);
            let at = now + 2 * SECOND * i;
            assert_eq!(
                rates.arrive(Cidr::around(ip.into(), 32), at),
                Verdict::Allowed
            );
            assert!(rates.len() <= 100);
        }
    }
}
