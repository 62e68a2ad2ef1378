//! in.tcpmuxd: a TCPMUX server (RFC 1078) for inetd, xinetd and systemd.
//!
//! The pure parts (`protocol`, `table`) do no I/O and are unit-tested; the
//! session loop reads and writes through small traits so that inetd mode and
//! its tests share it.

// Unsafe code lives in `sys` alone, each block with the reason it is sound.
#![deny(unsafe_code)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod access;
pub mod check;
pub mod cli;
pub mod client;
pub mod close;
pub mod config;
pub mod exit;
pub mod inetd;
pub mod launch;
pub mod listener;
pub mod load;
pub mod logging;
pub mod peer;
pub mod protocol;
pub mod session;
pub mod strict;
pub mod sys;
pub mod table;
