//! The few system calls no maintained crate offers safely. Every `unsafe`
//! block of the crate is here, each with the reason it is sound.

#![allow(unsafe_code)]

use std::fmt;
use std::os::fd::RawFd;

use nix::errno::Errno;
use nix::libc;
use nix::sys::socket::{AddressFamily, SockType};

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
/// users are therefore local accounts. Called before every lookup (the
/// first call does the work), not at start: setting NSS up reads
/// /etc/nsswitch.conf, which a connection that looks nobody up (HELP, a
/// refusal) need not pay for.
pub fn local_accounts_only() {
    static CONFIGURED: std::sync::Once = std::sync::Once::new();
    CONFIGURED.call_once(|| {
        for db in [c"passwd", c"group", c"initgroups"] {
            // SAFETY: both arguments are NUL-terminated static strings;
            // every lookup of the crate waits on this Once first, so none
            // runs while the configuration changes.
            unsafe { __nss_configure_lookup(db.as_ptr(), c"files".as_ptr()) };
        }
    });
}

/// Makes host name lookups use /etc/hosts and DNS only, both built into a
/// static glibc, for the same reason as [`local_accounts_only`]: a module
/// such as mdns4 or resolve would be loaded with dlopen and crash the
/// static client. Call once, before any lookup.
pub fn plain_host_lookups() {
    static CONFIGURED: std::sync::Once = std::sync::Once::new();
    CONFIGURED.call_once(|| {
        // SAFETY: static NUL-terminated strings; every host lookup of the
        // crate waits on this Once first, so none runs while it changes.
        unsafe { __nss_configure_lookup(c"hosts".as_ptr(), c"files dns".as_ptr()) };
    });
}

/// Why the sockets systemd passed cannot be taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SystemdError {
    /// `LISTEN_PID` is unset, or names another process.
    NotThisProcess,
    /// `LISTEN_FDS` is unset, not a number, or not 1 to 64.
    NotACount,
    /// The descriptor is not a listening socket; `errno` when asking
    /// failed (EBADF: it is not open; ENOTSOCK: not a socket).
    NotListening { fd: RawFd, errno: Option<Errno> },
    /// The descriptor listens, but not for TCP over IPv4 or IPv6.
    NotTcp { fd: RawFd, socket: OtherSocket },
}

impl fmt::Display for SystemdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SystemdError::NotThisProcess => {
                f.write_str("no sockets from systemd (LISTEN_PID is not this process)")
            }
            SystemdError::NotACount => f.write_str("LISTEN_FDS is not a count of sockets"),
            SystemdError::NotListening { fd, .. } => {
                write!(f, "descriptor {fd} from systemd is not a listening socket")
            }
            SystemdError::NotTcp { fd, socket } => write!(
                f,
                "descriptor {fd} from systemd is {socket}, not a TCP socket: \
                 list only ListenStream= of an IP address and port in the .socket unit"
            ),
        }
    }
}

/// The errno of a system call that failed on the descriptor, when the
/// message does not already say it: `{:#}` adds it to the log line.
impl std::error::Error for SystemdError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SystemdError::NotListening {
                errno: Some(errno), ..
            }
            | SystemdError::NotTcp {
                socket: OtherSocket::UnknownFamily(Some(errno)),
                ..
            } => Some(errno),
            _ => None,
        }
    }
}

/// What a socket is when it is not a TCP socket over IPv4 or IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtherSocket {
    Unix,
    Family(AddressFamily),
    /// A family nix does not name, or getsockname failed (its errno).
    UnknownFamily(Option<Errno>),
    Type(SockType),
    /// Asking for the type failed.
    UnknownType(Errno),
}

impl fmt::Display for OtherSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OtherSocket::Unix => f.write_str("a UNIX socket"),
            OtherSocket::Family(family) => write!(f, "a socket of family {family:?}"),
            OtherSocket::UnknownFamily(_) => f.write_str("a socket of unknown family"),
            OtherSocket::Type(kind) => write!(f, "a socket of type {kind:?}"),
            OtherSocket::UnknownType(errno) => {
                write!(f, "a socket of unknown type ({})", errno.desc())
            }
        }
    }
}

/// The listening sockets systemd passed to this process (socket activation
/// without `Accept=`): descriptors 3 and up, `LISTEN_FDS` of them, when
/// `LISTEN_PID` names this process. Each is checked to be a listening
/// TCP socket, IPv4 or IPv6, before it is taken: a unit may list a UNIX
/// socket too (`ListenStream=/path`), which a `TcpListener` would take for
/// TCP, with no peer address for the caps and the service's environment.
pub fn systemd_listeners() -> Result<Vec<std::net::TcpListener>, SystemdError> {
    use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd};
    let pid = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok());
    if pid != Some(std::process::id()) {
        return Err(SystemdError::NotThisProcess);
    }
    let count: i32 = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|n| (1..=64).contains(n))
        .ok_or(SystemdError::NotACount)?;
    let mut listeners = Vec::new();
    for fd in 3..3 + count {
        // SAFETY: systemd opened descriptors 3 to 3 + LISTEN_FDS for this
        // very process (LISTEN_PID was checked) and nothing in it has
        // touched them; borrowing one only to ask what it is.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        match nix::sys::socket::getsockopt(&borrowed, nix::sys::socket::sockopt::AcceptConn) {
            Ok(true) => {}
            Ok(false) => return Err(SystemdError::NotListening { fd, errno: None }),
            Err(errno) => {
                return Err(SystemdError::NotListening {
                    fd,
                    errno: Some(errno),
                });
            }
        }
        if let Some(socket) = not_tcp(borrowed) {
            return Err(SystemdError::NotTcp { fd, socket });
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

/// What a socket is when it is not a TCP socket over IPv4 or IPv6; `None`
/// when it is one.
fn not_tcp(fd: std::os::fd::BorrowedFd) -> Option<OtherSocket> {
    use nix::sys::socket::{SockaddrLike, SockaddrStorage, sockopt};
    use std::os::fd::AsRawFd;
    let family = match nix::sys::socket::getsockname::<SockaddrStorage>(fd.as_raw_fd()) {
        Ok(addr) => addr.family(),
        Err(errno) => return Some(OtherSocket::UnknownFamily(Some(errno))),
    };
    match family {
        Some(AddressFamily::Inet | AddressFamily::Inet6) => {}
        Some(AddressFamily::Unix) => return Some(OtherSocket::Unix),
        Some(other) => return Some(OtherSocket::Family(other)),
        None => return Some(OtherSocket::UnknownFamily(None)),
    }
    match nix::sys::socket::getsockopt(&fd, sockopt::SockType) {
        Ok(SockType::Stream) => None,
        Ok(other) => Some(OtherSocket::Type(other)),
        Err(errno) => Some(OtherSocket::UnknownType(errno)),
    }
}

/// The soft limit on open files the process was started with, kept while
/// it is raised (see [`raise_open_files_limit`]) and given back to each
/// program launched; `u64::MAX` while nothing was raised.
static STARTED_WITH_OPEN_FILES: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(u64::MAX);

/// Raises the soft limit on open files (RLIMIT_NOFILE) to the hard one, as
/// a listener holding many connections needs, and returns the limits then
/// in force (soft, hard). Launched programs get the soft limit this process
/// was started with, as before, since many still use select(2), which
/// cannot take descriptors above 1023.
pub fn raise_open_files_limit() -> nix::Result<(u64, u64)> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft >= hard {
        return Ok((soft, hard));
    }
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    STARTED_WITH_OPEN_FILES.store(soft, std::sync::atomic::Ordering::Relaxed);
    Ok((hard, hard))
}

/// A step of the launch after the point of no return, for the message
/// when it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Fork,
    Descriptors,
    Session,
    Groups,
    Gid,
    Uid,
    /// The ids after the switch are not the ones asked for, or root can be
    /// regained.
    Verify,
    /// Giving back the limit on open files the server was started with.
    Limits,
    Directory,
    Exec,
}

impl Step {
    pub fn describe(self) -> &'static str {
        match self {
            Step::Fork => "fork",
            Step::Descriptors => "putting the connection on fds 0 to 2",
            Step::Session => "setsid",
            Step::Groups => "setgroups",
            Step::Gid => "setgid",
            Step::Uid => "setuid",
            Step::Verify => "the ids did not change as asked, or root could be regained",
            Step::Limits => "setrlimit RLIMIT_NOFILE",
            Step::Directory => "chdir /",
            Step::Exec => "exec",
        }
    }
}

/// The umask a program starts with: files it creates are not writable by
/// group or others unless it says so, as with systemd's default.
pub const UMASK: libc::mode_t = 0o022;

/// Everything the last steps of a launch need, made ready beforehand, so
/// that running them allocates nothing, takes no lock and calls only
/// async-signal-safe system calls: safe in the forked child of a threaded
/// process, and the same steps in inetd mode's own process.
pub struct ExecPlan {
    program: std::os::fd::OwnedFd,
    /// For a `#!` script: the kernel gives the interpreter the script's
    /// name, so it is exec'd by its resolved path instead of by descriptor.
    script: Option<std::ffi::CString>,
    /// Kept for the pointers below, which point into them.
    _argv: Vec<std::ffi::CString>,
    _envp: Vec<std::ffi::CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    envp_ptrs: Vec<*const libc::c_char>,
    /// The ids to become; `None` when the server already runs as them.
    ids: Option<Ids>,
}

/// A user's ids, as the system calls take them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
    pub groups: Vec<libc::gid_t>,
}

impl ExecPlan {
    /// `argv` and `envp` must hold no NUL byte inside a string; the table's
    /// parser refuses them, and a NUL here is an error, not a truncation.
    pub fn new(
        program: std::os::fd::OwnedFd,
        script: Option<&std::path::Path>,
        argv: &[&str],
        envp: &[String],
        ids: Option<Ids>,
    ) -> Result<ExecPlan, std::ffi::NulError> {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let script = script
            .map(|p| CString::new(p.as_os_str().as_bytes()))
            .transpose()?;
        let argv: Vec<CString> = argv
            .iter()
            .map(|a| CString::new(*a))
            .collect::<Result<_, _>>()?;
        let envp: Vec<CString> = envp
            .iter()
            .map(|e| CString::new(e.as_str()))
            .collect::<Result<_, _>>()?;
        let pointers = |strings: &[CString]| {
            strings
                .iter()
                .map(|s| s.as_ptr())
                .chain([std::ptr::null()])
                .collect()
        };
        Ok(ExecPlan {
            program,
            script,
            argv_ptrs: pointers(&argv),
            envp_ptrs: pointers(&envp),
            _argv: argv,
            _envp: envp,
            ids,
        })
    }

    /// The last steps, in order: the connection onto fds 0 to 2 (when
    /// given; otherwise a stray terminal on fd 2 to /dev/null), a session
    /// of its own, groups, gid, uid and a check that they
    /// hold, every signal to its default and none blocked, the umask, `/`
    /// as working directory, exec. Returns only on failure, with the step.
    ///
    /// Every call here is a raw system call or an async-signal-safe libc
    /// function, on memory made ready before: nothing allocates or locks.
    /// The ids are changed with raw system calls rather than glibc's
    /// wrappers, which in a threaded process signal every thread to change
    /// theirs: here the caller is alone (a forked child, or inetd mode's
    /// single thread), and the raw calls need no signal to work.
    fn run(&self, connection: Option<libc::c_int>) -> (Step, i32) {
        let errno = || std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        // SAFETY: each call below is a system call on plain values, on a
        // limit on this stack, or on memory this plan owns and keeps alive
        // until the exec: the id list, the C strings and their
        // NULL-terminated pointer arrays.
        unsafe {
            if let Some(fd) = connection {
                // A connection on 0 to 2 already is moved up first, so the
                // dup2 calls cannot close it under themselves.
                let fd = if fd < 3 {
                    libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3)
                } else {
                    fd
                };
                if fd < 0 || libc::dup2(fd, 0) < 0 || libc::dup2(fd, 1) < 0 || libc::dup2(fd, 2) < 0
                {
                    return (Step::Descriptors, errno());
                }
            }
            // Inetd mode: a terminal on fd 2 that is not the client's (the
            // operator's, under a super-server started by hand) is not
            // handed on, so a service cannot read the operator's keys.
            if connection.is_none() && libc::isatty(2) == 1 && libc::isatty(0) != 1 {
                let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
                if null < 0 || libc::dup2(null, 2) < 0 {
                    return (Step::Descriptors, errno());
                }
                if null > 2 {
                    libc::close(null);
                }
            }
            // A session leader already (systemd makes one) has its own session.
            if libc::getsid(0) != libc::getpid() && libc::setsid() < 0 {
                return (Step::Session, errno());
            }
            if let Some(Err(failed)) = self.ids.as_ref().map(switch_ids) {
                return failed;
            }
            reset_all_signals();
            // The listener's raised limit on open files is its own; the
            // program starts with the limit in.tcpmuxd was started with.
            let soft = STARTED_WITH_OPEN_FILES.load(std::sync::atomic::Ordering::Relaxed);
            if soft != u64::MAX {
                let mut limit = libc::rlimit64 {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                let none = std::ptr::null::<libc::rlimit64>();
                let nofile = libc::RLIMIT_NOFILE;
                if libc::syscall(libc::SYS_prlimit64, 0, nofile, none, &raw mut limit) < 0 {
                    return (Step::Limits, errno());
                }
                limit.rlim_cur = soft;
                let keep = std::ptr::null_mut::<libc::rlimit64>();
                if libc::syscall(libc::SYS_prlimit64, 0, nofile, &raw const limit, keep) < 0 {
                    return (Step::Limits, errno());
                }
            }
            libc::umask(UMASK);
            if libc::chdir(c"/".as_ptr()) < 0 {
                return (Step::Directory, errno());
            }
            use std::os::fd::AsRawFd;
            match &self.script {
                Some(path) => {
                    libc::execve(
                        path.as_ptr(),
                        self.argv_ptrs.as_ptr(),
                        self.envp_ptrs.as_ptr(),
                    );
                }
                None => {
                    libc::syscall(
                        libc::SYS_execveat,
                        self.program.as_raw_fd(),
                        c"".as_ptr(),
                        self.argv_ptrs.as_ptr(),
                        self.envp_ptrs.as_ptr(),
                        libc::AT_EMPTY_PATH,
                    );
                }
            }
            (Step::Exec, errno())
        }
    }

    /// Inetd mode: runs the last steps in this process, which becomes the
    /// program. Returns only on failure. The caller has made sure this
    /// process may start a session (see [`may_start_session`]).
    pub fn exec_here(&self) -> (Step, std::io::Error) {
        let (step, errno) = self.run(None);
        (step, std::io::Error::from_raw_os_error(errno))
    }

    /// Starts a child that runs the last steps with `connection` on its fds
    /// 0 to 2. Returns once the child has exec'd the program (its pid) or
    /// failed (the step and error; the child is reaped).
    ///
    /// The child is made as posix_spawn makes one: `clone` with `CLONE_VM`
    /// and `CLONE_VFORK`, on a stack of its own, so no page table is
    /// copied and no page is copied on write; this thread waits until the
    /// child has exec'd or exited. Sharing memory is safe because the
    /// child only reads this plan (kept alive by this waiting thread) and
    /// writes its own stack and the report below, and it calls nothing
    /// that allocates or locks. Every signal is blocked around the clone,
    /// so no handler of ours can run in the child before it resets them.
    pub fn spawn(
        &self,
        connection: Option<std::os::fd::BorrowedFd>,
    ) -> Result<nix::unistd::Pid, (Step, std::io::Error)> {
        use std::os::fd::AsRawFd;
        /// What the child tells the parent through their shared memory.
        struct Child<'a> {
            plan: &'a ExecPlan,
            connection: Option<libc::c_int>,
            failed: Option<(Step, i32)>,
        }
        extern "C" fn child(arg: *mut libc::c_void) -> libc::c_int {
            // SAFETY: `arg` is the `Child` below, alive and not otherwise
            // touched while the parent waits for this child (CLONE_VFORK).
            let child = unsafe { &mut *arg.cast::<Child>() };
            child.failed = Some(child.plan.run(child.connection));
            127
        }
        // Enough for `run`, which keeps a few words on its stack.
        let mut stack = vec![0u8; 64 * 1024];
        let mut state = Child {
            plan: self,
            connection: connection.map(|c| c.as_raw_fd()),
            failed: None,
        };
        let mut all = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
        let mut old = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigfillset fills the set it is given; pthread_sigmask
        // reads that set and writes the old mask to `old`; both live here.
        let masked = unsafe {
            libc::sigfillset(all.as_mut_ptr());
            libc::pthread_sigmask(libc::SIG_SETMASK, all.as_ptr(), old.as_mut_ptr()) == 0
        };
        // SAFETY: the stack is ours for the child's life (this thread waits
        // until the child execs or exits), its top is 16-byte aligned, and
        // `child` runs only what its comment and `run`'s say.
        let pid = unsafe {
            let top = stack.as_mut_ptr().add(stack.len());
            let top = top.sub(top as usize % 16);
            libc::clone(
                child,
                top.cast(),
                libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                (&raw mut state).cast(),
            )
        };
        let clone_error = std::io::Error::last_os_error();
        if masked {
            // SAFETY: restores the mask saved above.
            unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, old.as_ptr(), std::ptr::null_mut()) };
        }
        drop(stack);
        if pid < 0 {
            return Err((Step::Fork, clone_error));
        }
        let pid = nix::unistd::Pid::from_raw(pid);
        match state.failed {
            None => Ok(pid),
            Some((step, errno)) => {
                let _ = nix::sys::wait::waitpid(pid, None);
                Err((step, std::io::Error::from_raw_os_error(errno)))
            }
        }
    }
}

/// Whether this process can give itself a session of its own: it leads one
/// already, or it does not lead a process group (a group leader, as a shell
/// makes a command it runs, cannot call setsid).
pub fn may_start_session() -> bool {
    let me = nix::unistd::getpid();
    if nix::unistd::getpgrp() != me {
        return true;
    }
    // A session leader already has a session of its own, but it must not
    // have a terminal: started by `script` or `setsid -c` it does.
    nix::unistd::getsid(None) == Ok(me) && !has_controlling_terminal()
}

/// Whether this process has a controlling terminal: /dev/tty opens only
/// then. With O_NOCTTY, opening it changes nothing; where it cannot be told
/// (no /dev/tty in a chroot), the answer is yes, the safe side.
fn has_controlling_terminal() -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOCTTY)
        .open("/dev/tty");
    !matches!(tty, Err(e) if e.raw_os_error() == Some(libc::ENXIO))
}

/// Makes this process undumpable, so that no process of the same user, a
/// service the listener started as its own user among them, can attach to
/// it with ptrace or take its descriptors (every client's connection) with
/// pidfd_getfd or /proc/PID/fd: the kernel allows both only on a dumpable
/// process. A program it executes is dumpable again.
pub fn undumpable() -> nix::Result<()> {
    nix::sys::prctl::set_dumpable(false)
}

/// Every signal, real-time ones included, to its default action, and none
/// blocked. Raw system calls: glibc's sigaction refuses the two signals it
/// keeps for itself (32 and 33), which an ignoring parent would otherwise
/// pass on ignored through exec.
fn reset_all_signals() {
    /// The kernel's struct sigaction on x86_64 and aarch64.
    #[repr(C)]
    struct KernelSigaction {
        handler: usize,
        flags: libc::c_ulong,
        restorer: usize,
        mask: u64,
    }
    let default = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for signal in 1..=64 {
        if signal == libc::SIGKILL || signal == libc::SIGSTOP {
            continue;
        }
        // SAFETY: installs SIG_DFL from a struct on this stack, sized as the
        // kernel's (sigsetsize 8); no handler of ours runs afterwards.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                signal,
                &default as *const KernelSigaction,
                std::ptr::null_mut::<KernelSigaction>(),
                8usize,
            )
        };
    }
    let empty: u64 = 0;
    // SAFETY: sets the mask from a value on this stack.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &empty as *const u64,
            std::ptr::null_mut::<u64>(),
            8usize,
        )
    };
}

/// Points fds 0 to 2 at /dev/null, so that this process no longer holds the
/// connection open: a waiting parent must not keep the client from seeing
/// the service close.
pub fn let_go_of_stdio() {
    if let Ok(null) = std::fs::File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        let _ = nix::unistd::dup2_stdin(&null);
        let _ = nix::unistd::dup2_stdout(&null);
        let _ = nix::unistd::dup2_stderr(&null);
    }
}

/// Receives bytes and at most one descriptor (SCM_RIGHTS) from a Unix
/// socket: how many bytes, and the descriptor if one came. Any further
/// descriptors are closed.
pub fn receive_with_fd(
    socket: std::os::fd::BorrowedFd,
    buf: &mut [u8],
) -> std::io::Result<(usize, Option<std::os::fd::OwnedFd>)> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 4]);
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut fds = Vec::new();
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(received) = cmsg {
            fds.extend(received);
        }
    }
    let bytes = msg.bytes;
    let mut owned = fds.into_iter().map(|fd| {
        // SAFETY: the kernel has just installed these descriptors in this
        // process for this call; nothing else refers to them.
        unsafe { OwnedFd::from_raw_fd(fd) }
    });
    let first = owned.next();
    // The rest are dropped, and so closed.
    owned.for_each(drop);
    Ok((bytes, first))
}

/// Ignores SIGPIPE, as Rust's runtime does for a program with a Rust
/// `main`: a write to a connection the client closed then fails with EPIPE
/// instead of killing the process. A launched program gets it back at its
/// default (`ExecPlan` resets every signal).
pub fn ignore_sigpipe() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: SIG_IGN runs no code of ours in a signal context.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigIgn) };
}

/// Groups, then gid, then uid, each for real, effective and saved, then a
/// check that they hold and that root cannot be regained. Raw system
/// calls, which change the calling thread alone: the caller is alone (a
/// launch's child, or inetd mode's single thread). Async-signal-safe.
fn switch_ids(ids: &Ids) -> Result<(), (Step, i32)> {
    let errno = || std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
    // SAFETY: system calls on plain values and on the id list, which
    // `ids` keeps alive for the call.
    unsafe {
        if libc::syscall(libc::SYS_setgroups, ids.groups.len(), ids.groups.as_ptr()) < 0 {
            return Err((Step::Groups, errno()));
        }
        if libc::syscall(libc::SYS_setresgid, ids.gid, ids.gid, ids.gid) < 0 {
            return Err((Step::Gid, errno()));
        }
        if libc::syscall(libc::SYS_setresuid, ids.uid, ids.uid, ids.uid) < 0 {
            return Err((Step::Uid, errno()));
        }
    }
    if !ids_hold(ids) {
        return Err((Step::Verify, 0));
    }
    Ok(())
}

/// Whether the real, effective and saved ids are the ones asked for and,
/// for a user other than root, root cannot be regained.
fn ids_hold(ids: &Ids) -> bool {
    let (mut r, mut e, mut s) = (0, 0, 0);
    // SAFETY: getresuid and getresgid write three ids to the places given,
    // which live on this stack frame.
    let uids = unsafe { libc::syscall(libc::SYS_getresuid, &mut r, &mut e, &mut s) } == 0
        && [r, e, s] == [ids.uid; 3];
    let (mut r, mut e, mut s) = (0, 0, 0);
    // SAFETY: as above.
    let gids = unsafe { libc::syscall(libc::SYS_getresgid, &mut r, &mut e, &mut s) } == 0
        && [r, e, s] == [ids.gid; 3];
    // SAFETY: a system call on plain values; if it succeeds we are root
    // again, and the switch is refused.
    let regained = ids.uid != 0 && unsafe { libc::syscall(libc::SYS_setresuid, 0, 0, 0) } == 0;
    uids && gids && !regained
}

/// Inetd mode, before a forward or a pass: this single-threaded process
/// becomes `ids` for good.
pub fn become_ids(ids: &Ids) -> Result<(), (Step, std::io::Error)> {
    switch_ids(ids).map_err(|(step, errno)| (step, std::io::Error::from_raw_os_error(errno)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_systemd_error_says_what_is_wrong() {
        let tail = ", not a TCP socket: list only ListenStream= of an IP address and port \
                    in the .socket unit";
        let not_tcp = |socket| SystemdError::NotTcp { fd: 4, socket };
        let cases = [
            (
                SystemdError::NotThisProcess,
                "no sockets from systemd (LISTEN_PID is not this process)".to_owned(),
            ),
            (
                SystemdError::NotACount,
                "LISTEN_FDS is not a count of sockets".to_owned(),
            ),
            (
                SystemdError::NotListening { fd: 3, errno: None },
                "descriptor 3 from systemd is not a listening socket".to_owned(),
            ),
            (
                SystemdError::NotListening {
                    fd: 3,
                    errno: Some(Errno::EBADF),
                },
                "descriptor 3 from systemd is not a listening socket".to_owned(),
            ),
            (
                not_tcp(OtherSocket::Unix),
                format!("descriptor 4 from systemd is a UNIX socket{tail}"),
            ),
            (
                not_tcp(OtherSocket::Family(AddressFamily::Netlink)),
                format!("descriptor 4 from systemd is a socket of family Netlink{tail}"),
            ),
            (
                not_tcp(OtherSocket::UnknownFamily(None)),
                format!("descriptor 4 from systemd is a socket of unknown family{tail}"),
            ),
            (
                not_tcp(OtherSocket::UnknownFamily(Some(Errno::ENOTSOCK))),
                format!("descriptor 4 from systemd is a socket of unknown family{tail}"),
            ),
            (
                not_tcp(OtherSocket::Type(SockType::Datagram)),
                format!("descriptor 4 from systemd is a socket of type Datagram{tail}"),
            ),
            (
                not_tcp(OtherSocket::UnknownType(Errno::EBADF)),
                format!(
                    "descriptor 4 from systemd is a socket of unknown type (Bad file number){tail}"
                ),
            ),
        ];
        for (error, message) in cases {
            assert_eq!(error.to_string(), message);
        }
    }

    /// The errno of a failed call is kept as the error's source, where the
    /// message does not say it already, so the log line (`{:#}`) ends with it.
    #[test]
    fn a_failed_call_on_a_systemd_descriptor_keeps_its_errno() {
        use std::error::Error;
        let source = |e: &SystemdError| e.source().map(|s| s.to_string());
        let ebadf = Some(Errno::EBADF.to_string());
        let failed = SystemdError::NotListening {
            fd: 3,
            errno: Some(Errno::EBADF),
        };
        assert_eq!(source(&failed), ebadf);
        let unnamed = SystemdError::NotTcp {
            fd: 3,
            socket: OtherSocket::UnknownFamily(Some(Errno::EBADF)),
        };
        assert_eq!(source(&unnamed), ebadf);
        let said = SystemdError::NotTcp {
            fd: 3,
            socket: OtherSocket::UnknownType(Errno::EBADF),
        };
        assert_eq!(source(&said), None);
        assert_eq!(
            source(&SystemdError::NotListening { fd: 3, errno: None }),
            None
        );
    }
}
