//! The few system calls no maintained crate offers safely. Every `unsafe`
//! block of the crate is here, each with the reason it is sound.

#![allow(unsafe_code)]

use nix::libc;
use nix::sys::signal::{SigAction, SigHandler, SigSet, SigmaskHow, Signal, sigaction, sigprocmask};

/// Marks every descriptor from 3 up close-on-exec, so that a program we exec
/// gets only 0, 1 and 2, whatever the super-server left open, while we keep
/// ours (the syslog socket) until the exec.
pub fn cloexec_above_stderr() -> std::io::Result<()> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets a flag on
    // descriptors; it closes none, so no Rust object loses its descriptor.
    let done = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if done == 0 {
        return Ok(());
    }
    // Kernels before 5.11: set the flag on each open descriptor in turn.
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let name = entry?.file_name();
        let Some(fd) = name.to_str().and_then(|n| n.parse::<libc::c_int>().ok()) else {
            continue;
        };
        if fd > 2 {
            // SAFETY: F_SETFD only sets a flag; on a descriptor that closed
            // meanwhile (the directory's own) it fails with EBADF, harmlessly.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
    }
    Ok(())
}

/// Puts every signal back to its default action and unblocks them all, so
/// the program starts as if from a fresh login, not with what the
/// super-server or Rust's runtime set (Rust ignores SIGPIPE).
pub fn reset_signals() {
    let default = SigAction::new(
        SigHandler::SigDfl,
        nix::sys::signal::SaFlags::empty(),
        SigSet::empty(),
    );
    for signal in Signal::iterator() {
        // SIGPIPE stays ignored until std's exec resets it, so that a
        // failed exec can still write its refusal without dying of it.
        if matches!(signal, Signal::SIGKILL | Signal::SIGSTOP | Signal::SIGPIPE) {
            continue;
        }
        // SAFETY: installing SIG_DFL runs no code of ours in a signal
        // context, so no handler can break an invariant.
        let _ = unsafe { sigaction(signal, &default) };
    }
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}

unsafe extern "C" {
    /// glibc's own override of nsswitch.conf for one database (nss.h).
    fn __nss_configure_lookup(
        db: *const libc::c_char,
        service_line: *const libc::c_char,
    ) -> libc::c_int;
}

/// Makes user and group lookups read /etc/passwd and /etc/group only.
///
/// The binary is linked statically against glibc, whose "files" lookups are
/// built in; any other NSS module (systemd, sss, ldap) would be loaded with
/// dlopen, and a shared module inside a static process crashes it. Service
/// users are therefore local accounts. Call once, before any lookup.
pub fn local_accounts_only() {
    for db in [c"passwd", c"group", c"initgroups"] {
        // SAFETY: both arguments are NUL-terminated static strings, and this
        // runs at start-up, before any thread or lookup that could race it.
        unsafe { __nss_configure_lookup(db.as_ptr(), c"files".as_ptr()) };
    }
}

/// Makes host name lookups use /etc/hosts and DNS only, both built into a
/// static glibc, for the same reason as [`local_accounts_only`]: a module
/// such as mdns4 or resolve would be loaded with dlopen and crash the
/// static client. Call once, before any lookup.
pub fn plain_host_lookups() {
    // SAFETY: as in local_accounts_only: static NUL-terminated strings, at
    // start-up, before any thread.
    unsafe { __nss_configure_lookup(c"hosts".as_ptr(), c"files dns".as_ptr()) };
}

/// The listening sockets systemd passed to this process (socket activation
/// without `Accept=`): descriptors 3 and up, `LISTEN_FDS` of them, when
/// `LISTEN_PID` names this process. Each is checked to be a listening
/// socket before it is taken.
pub fn systemd_listeners() -> Result<Vec<std::net::TcpListener>, String> {
    use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd};
    let pid = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok());
    if pid != Some(std::process::id()) {
        return Err("no sockets from systemd (LISTEN_PID is not this process)".to_owned());
    }
    let count: i32 = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|n| (1..=64).contains(n))
        .ok_or("LISTEN_FDS is not a count of sockets")?;
    let mut listeners = Vec::new();
    for fd in 3..3 + count {
        // SAFETY: systemd opened descriptors 3 to 3 + LISTEN_FDS for this
        // very process (LISTEN_PID was checked) and nothing in it has
        // touched them; borrowing one only to ask what it is.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let listening =
            nix::sys::socket::getsockopt(&borrowed, nix::sys::socket::sockopt::AcceptConn);
        if listening != Ok(true) {
            return Err(format!(
                "descriptor {fd} from systemd is not a listening socket"
            ));
        }
        // SAFETY: as above; from here the listener owns the descriptor, and
        // no other object in this process refers to it.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        let _ = nix::fcntl::fcntl(
            &owned,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        );
        listeners.push(std::net::TcpListener::from(owned));
    }
    Ok(listeners)
}
