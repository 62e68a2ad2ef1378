//! in.tcpmuxd: a TCPMUX server (RFC 1078) for inetd, xinetd and systemd,
//! or on its own; and `tcpmux`, its client (`client`).
//!
//! The path of a request, from the command line to the exec:
//!
//! - `cli` reads the command line into one `Mode`: `--check` (`check`),
//!   inetd mode (`inetd`) or listen mode (`listener`). `logging` sets up
//!   where the log goes; `event` is what a connection's log line says,
//!   rendered in one place, and counted in listen mode (`counters`);
//!   `exit` holds every exit status.
//! - The connection: in inetd mode the super-server accepted it and put it
//!   on fds 0 to 2; in listen mode `listener` accepts it (on its own
//!   sockets, or systemd's, via `sys`), applies the rate limit (`rate`) and
//!   the caps per source (`access::Cidr`) and gives it a thread. `peer` names both ends.
//! - The table: `load` opens the file (`load::TableFile`) through
//!   `strict`, which checks the open file and every directory on its way
//!   when root, and `config` parses it into a `table::Table`.
//! - The conversation: from a front end of `--accept-proxy`, `session`
//!   first reads its PROXY header (`accept_proxy`, `proxy`), whose client
//!   is the peer from then on; then the request line, with `protocol`, a
//!   pure parser with a hard cap, all under one deadline, and answers
//!   HELP, `tcpmux` and refusals itself; its bytes come and go through
//!   `source`, which the client reads its reply through too. After a `-`
//!   line `close` drains the connection so the line is not lost to a
//!   reset.
//! - The launch: `access` checks the service's address rules in the
//!   session; `launch` looks up the user, opens and checks the program,
//!   and builds its argv and environment; `sys::ExecPlan` runs the last
//!   steps (descriptors, session, groups, gid, uid, signals, exec), in
//!   place in inetd mode, in a child in listen mode.

// Unsafe code lives in `sys` alone, each block with the reason it is sound.
#![deny(unsafe_code)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod accept_proxy;
pub mod access;
pub mod check;
pub mod cli;
pub mod client;
pub mod close;
pub mod config;
pub mod counters;
pub mod event;
pub mod exit;
pub mod forward;
pub mod inetd;
pub mod launch;
pub mod listener;
pub mod load;
pub mod logging;
pub mod pass;
pub mod peer;
pub mod protocol;
pub mod proxy;
pub mod rate;
pub mod relay;
pub mod session;
pub mod source;
pub mod strict;
pub mod sys;
pub mod table;
