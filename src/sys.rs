//! The few system calls no maintained crate offers safely. Every `unsafe`
//! block of the crate is here, each with the reason it is sound.

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
