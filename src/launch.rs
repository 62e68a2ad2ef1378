//! Handing the connection to a service's program: who it runs as, what it
//! finds at exec, and the exec itself. One path for both modes: inetd mode
//! runs the last steps in its own process, the listener in a forked child.
//!
//! Everything that can allocate, lock or read files happens in
//! [`prepare`], in the launching process, immediately before the exec:
//! the user lookup, opening and checking the program (StrictModes on the
//! open file, see `strict`), the environment and arguments. What is left,
//! in `sys::ExecPlan`, is async-signal-safe, and execs the very file that
//! was checked, by descriptor.
//!
//! What the program finds at exec, in both modes:
//! - a session of its own, with no controlling terminal;
//! - fds 0, 1 and 2: the connection in listen mode; in inetd mode as the
//!   super-server gave them; nothing above 2;
//! - every signal at its default action, real-time ones included, none
//!   blocked;
//! - working directory `/`, umask 022, resource limits as inherited;
//! - the table's user, group and the user's supplementary groups, root not
//!   regainable;
//! - the environment of [`environment`] and nothing else.

use std::ffi::CString;
use std::fmt;
use std::io;
use std::path::Path;

use nix::errno::Errno;
use nix::unistd::{self, Gid, Group, Uid, User};

use crate::peer::Peer;
use crate::protocol::SERVICE_ACCEPT;
use crate::strict::{self, Refusal, Use};
use crate::sys::{self, ExecPlan, Ids, Step};
use crate::table::{Kind, Service};

/// The search path the program gets: system directories only.
pub const PATH: &str = "/usr/bin:/bin";

/// Who a service runs as, looked up from the user database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub uid: Uid,
    pub gid: Gid,
    /// The supplementary groups: the user's groups, with `gid` among them.
    pub groups: Vec<Gid>,
}

/// Why a launch failed. The client is told little; the log gets this.
#[derive(Debug)]
pub enum LaunchError {
    /// The user or group is unknown, or the lookup failed.
    Lookup(LookupError),
    /// This process cannot become the service's user.
    Switch(SwitchError),
    /// The program failed its checks.
    Program(Refusal),
    /// The service's user may not execute the program.
    MayNotRun { user: String, program: String },
    /// A NUL byte in an argument or the environment.
    Nul,
    /// A step after the point of no return.
    Step(Step, io::Error),
    /// The `+` line could not be sent.
    Client(io::Error),
    /// A forward's or a pass's daemon could not be reached.
    Unreachable { to: String, error: io::Error },
    /// A forward or a pass was taken for a program.
    NotAProgram,
}

impl fmt::Display for LaunchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LaunchError::Lookup(e) => write!(f, "{e}"),
            LaunchError::Switch(e) => write!(f, "{e}"),
            LaunchError::Program(refusal) => write!(f, "{refusal}"),
            LaunchError::MayNotRun { user, program } => {
                write!(f, "{user} cannot run {program}: {}", Errno::EACCES)
            }
            LaunchError::Nul => f.write_str("a NUL byte in an argument"),
            LaunchError::Step(step, e) => write!(f, "{}: {e}", step.describe()),
            LaunchError::Client(e) => write!(f, "the client went away before the + line: {e}"),
            LaunchError::Unreachable { to, error } => write!(f, "cannot reach {to}: {error}"),
            LaunchError::NotAProgram => f.write_str("the service runs no program"),
        }
    }
}

impl std::error::Error for LaunchError {}

/// Why a service's user or group could not be looked up. A failed lookup
/// keeps its errno, which the message gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    NoSuchUser {
        name: String,
    },
    NoSuchGroup {
        name: String,
    },
    /// Reading the user database failed.
    User {
        name: String,
        errno: Errno,
    },
    /// Reading the group database failed.
    Group {
        name: String,
        errno: Errno,
    },
    /// getgrouplist failed for the user.
    Groups {
        user: String,
        errno: Errno,
    },
    /// An account of uid 0 with another name than `root`.
    RootNotNamed {
        name: String,
    },
    /// A NUL byte in the user's name, which the user database cannot give.
    Nul(std::ffi::NulError),
}

impl fmt::Display for LookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LookupError::NoSuchUser { name } => write!(f, "no such user {name:?}"),
            LookupError::NoSuchGroup { name } => write!(f, "no such group {name:?}"),
            LookupError::User { name, errno } => write!(f, "looking up user {name}: {errno}"),
            LookupError::Group { name, errno } => write!(f, "looking up group {name}: {errno}"),
            LookupError::Groups { user, errno } => {
                write!(f, "listing the groups of {user}: {errno}")
            }
            LookupError::RootNotNamed { name } => write!(
                f,
                "user {name:?} has uid 0 but is not named root; write root to run a service as root"
            ),
            LookupError::Nul(e) => write!(f, "{e}"),
        }
    }
}

/// The errno is in the message already, so there is no source to add.
impl std::error::Error for LookupError {}

/// Looks up a user by name, from local accounts only.
pub fn look_up_user(name: &str) -> Result<User, LookupError> {
    sys::local_accounts_only();
    User::from_name(name)
        .map_err(|errno| LookupError::User {
            name: name.to_owned(),
            errno,
        })?
        .ok_or_else(|| LookupError::NoSuchUser {
            name: name.to_owned(),
        })
}

/// Looks up a group's id by name, from local groups only.
pub fn look_up_group(name: &str) -> Result<Gid, LookupError> {
    sys::local_accounts_only();
    let group = Group::from_name(name)
        .map_err(|errno| LookupError::Group {
            name: name.to_owned(),
            errno,
        })?
        .ok_or_else(|| LookupError::NoSuchGroup {
            name: name.to_owned(),
        })?;
    Ok(group.gid)
}

/// Looks up the service's user and group. An account of uid 0 must be
/// named `root`: another name for root in a table would hide what runs as
/// root from whoever reads it.
pub fn credentials(service: &Service) -> Result<Credentials, LookupError> {
    let user = look_up_user(&service.user)?;
    check_root_is_named(&user.name, user.uid)?;
    let gid = match &service.group {
        None => user.gid,
        Some(name) => look_up_group(name)?,
    };
    let name = CString::new(user.name.as_bytes()).map_err(LookupError::Nul)?;
    let groups = unistd::getgrouplist(&name, gid).map_err(|errno| LookupError::Groups {
        user: service.user.clone(),
        errno,
    })?;
    Ok(Credentials {
        user: user.name,
        uid: user.uid,
        gid,
        groups,
    })
}

/// Refuses an account of uid 0 that is not called `root` (toor and the like).
pub fn check_root_is_named(name: &str, uid: Uid) -> Result<(), LookupError> {
    if uid.is_root() && name != "root" {
        return Err(LookupError::RootNotNamed {
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// Why this process cannot become a service's user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwitchError {
    /// Not root, and the service runs as another user or group.
    NotRoot {
        euid: Uid,
        egid: Gid,
        user: String,
        uid: Uid,
        gid: Gid,
    },
    /// Not root, and this process's groups (`have`) are not the user's
    /// (`want`), which only root could change; each list sorted, no
    /// repeats, the primary group among them.
    Groups {
        have: Vec<Gid>,
        user: String,
        want: Vec<Gid>,
    },
    /// getgroups failed.
    GetGroups(Errno),
}

impl fmt::Display for SwitchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |groups: &[Gid]| {
            let ids: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
            ids.join(",")
        };
        match self {
            SwitchError::NotRoot {
                euid,
                egid,
                user,
                uid,
                gid,
            } => write!(
                f,
                "the server runs as uid {euid} gid {egid}, not root, so it cannot run a service as {user} (uid {uid} gid {gid})"
            ),
            SwitchError::Groups { have, user, want } => write!(
                f,
                "the server runs with the groups {}, not {user}'s {}, and only root can change them",
                list(have),
                list(want)
            ),
            SwitchError::GetGroups(errno) => write!(f, "getgroups: {errno}"),
        }
    }
}

/// The errno is in the message already, so there is no source to add.
impl std::error::Error for SwitchError {}

/// Whether this process can become `creds`: it is root, or it already runs
/// as that user and group and nothing need change.
pub fn check_can_switch(creds: &Credentials) -> Result<(), SwitchError> {
    let (euid, egid) = (unistd::geteuid(), unistd::getegid());
    if !can_switch(euid, egid, creds) {
        return Err(SwitchError::NotRoot {
            euid,
            egid,
            user: creds.user.clone(),
            uid: creds.uid,
            gid: creds.gid,
        });
    }
    if euid.is_root() {
        return Ok(());
    }
    // Not root, the service keeps this process's supplementary groups,
    // which only root could change: they must be the user's own.
    let set = |mut groups: Vec<Gid>, gid: Gid| {
        groups.push(gid);
        groups.sort_by_key(|g| g.as_raw());
        groups.dedup();
        groups
    };
    let have = set(unistd::getgroups().map_err(SwitchError::GetGroups)?, egid);
    let want = set(creds.groups.clone(), creds.gid);
    if have != want {
        return Err(SwitchError::Groups {
            have,
            user: creds.user.clone(),
            want,
        });
    }
    Ok(())
}

/// Whether a server running as `uid` and `gid` can start a service as
/// `creds`: it is root, or it is that user and group already.
pub fn can_switch(uid: Uid, gid: Gid, creds: &Credentials) -> bool {
    uid.is_root() || (creds.uid == uid && creds.gid == gid)
}

/// The program's whole environment: a fixed PATH, the service's name, and
/// UCSPI-TCP's description of the connection when it is a TCP socket.
pub fn environment(service: &Service, peer: &Peer) -> Vec<(String, String)> {
    let mut env = vec![
        ("PATH".to_owned(), PATH.to_owned()),
        ("TCPMUX_SERVICE".to_owned(), service.name.clone()),
    ];
    if let (Some(local), Some(remote)) = (peer.local, peer.remote) {
        env.extend([
            ("PROTO".to_owned(), "TCP".to_owned()),
            ("TCPLOCALIP".to_owned(), local.ip().to_string()),
            ("TCPLOCALPORT".to_owned(), local.port().to_string()),
            ("TCPREMOTEIP".to_owned(), remote.ip().to_string()),
            ("TCPREMOTEPORT".to_owned(), remote.port().to_string()),
        ]);
    }
    env
}

/// Opens and checks a service's program as this process must: StrictModes
/// when it runs as root. `--check` uses it too.
pub fn open_program(program: &str) -> Result<strict::Opened, Refusal> {
    let strict = unistd::geteuid().is_root();
    strict::open(
        Path::new(program),
        Use::Exec,
        strict,
        &format!("program {program}"),
    )
}

/// A launch made ready: the exec plan and what the log says of it.
pub struct Launch {
    pub plan: ExecPlan,
    pub creds: Credentials,
}

/// Gets everything ready to launch `service` for `peer`, in the process
/// that will launch it, right before it does.
pub fn prepare(service: &Service, peer: &Peer) -> Result<Launch, LaunchError> {
    let creds = credentials(service).map_err(LaunchError::Lookup)?;
    check_can_switch(&creds).map_err(LaunchError::Switch)?;
    match &service.kind {
        Kind::Exec { program, args } => prepare_exec(service, program, args, peer, creds),
        Kind::Tcp { .. } | Kind::Unix { .. } | Kind::Pass { .. } => Err(LaunchError::NotAProgram),
    }
}

/// Inetd mode, before a forward or a pass: this process becomes the
/// service's user, so that the daemon is reached as the table says.
pub fn become_service_user(service: &Service) -> Result<Credentials, LaunchError> {
    let creds = credentials(service).map_err(LaunchError::Lookup)?;
    check_can_switch(&creds).map_err(LaunchError::Switch)?;
    if unistd::geteuid().is_root() {
        let ids = Ids {
            uid: creds.uid.as_raw(),
            gid: creds.gid.as_raw(),
            groups: creds.groups.iter().map(|g| g.as_raw()).collect(),
        };
        sys::become_ids(&ids).map_err(|(step, e)| LaunchError::Step(step, e))?;
    }
    Ok(creds)
}

/// [`prepare`] for a program, once its user is known.
fn prepare_exec(
    service: &Service,
    program: &str,
    args: &[String],
    peer: &Peer,
    creds: Credentials,
) -> Result<Launch, LaunchError> {
    let opened = open_program(program).map_err(LaunchError::Program)?;
    if !may_execute(&opened.stat, &creds) {
        return Err(LaunchError::MayNotRun {
            user: creds.user.clone(),
            program: program.to_owned(),
        });
    }
    let script = opened.readable && starts_with_hash_bang(&opened.fd);
    let argv: Vec<&str> = std::iter::once(program)
        .chain(args.iter().map(String::as_str))
        .collect();
    let envp: Vec<String> = environment(service, peer)
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let ids = unistd::geteuid().is_root().then(|| Ids {
        uid: creds.uid.as_raw(),
        gid: creds.gid.as_raw(),
        groups: creds.groups.iter().map(|g| g.as_raw()).collect(),
    });
    let script = script.then_some(opened.resolved.as_path());
    let plan = ExecPlan::new(opened.fd, script, &argv, &envp, ids).map_err(|_| LaunchError::Nul)?;
    Ok(Launch { plan, creds })
}

/// Why a launch failed, and whether the client was already told `+`.
#[derive(Debug)]
pub struct Failure {
    pub error: LaunchError,
    pub accepted: bool,
}

/// The steps before the point of no return, in both modes: [`prepare`],
/// then the `+` line when the table says the multiplexer sends it, written
/// to `out` (the conversation, under its deadline).
pub fn ready(service: &Service, peer: &Peer, out: &mut impl io::Write) -> Result<Launch, Failure> {
    let launch = prepare(service, peer).map_err(|error| Failure {
        error,
        accepted: false,
    })?;
    accept(service, out)?;
    Ok(launch)
}

/// The `+` line, when the table says the multiplexer sends it: in both
/// modes, for every kind, once the service is ready and before it starts.
pub fn accept(service: &Service, out: &mut impl io::Write) -> Result<(), Failure> {
    if service.mux_replies {
        out.write_all(SERVICE_ACCEPT)
            .and_then(|()| out.flush())
            .map_err(|e| Failure {
                error: LaunchError::Client(e),
                accepted: true,
            })?;
    }
    Ok(())
}

/// Whether `creds` may execute a file of this owner and mode, as the kernel
/// decides it (without ACLs), so that a refusal comes before any `+`.
pub fn may_execute(stat: &nix::sys::stat::FileStat, creds: &Credentials) -> bool {
    let mode = stat.st_mode;
    if creds.uid.is_root() {
        return mode & 0o111 != 0;
    }
    if stat.st_uid == creds.uid.as_raw() {
        return mode & 0o100 != 0;
    }
    let in_group =
        creds.gid.as_raw() == stat.st_gid || creds.groups.iter().any(|g| g.as_raw() == stat.st_gid);
    if in_group {
        return mode & 0o010 != 0;
    }
    mode & 0o001 != 0
}

/// Whether the open file is a `#!` script, which the kernel runs by name.
fn starts_with_hash_bang(fd: &std::os::fd::OwnedFd) -> bool {
    use std::os::unix::fs::FileExt;
    let Ok(file) = fd.try_clone().map(std::fs::File::from) else {
        return false;
    };
    let mut head = [0u8; 2];
    matches!(file.read_at(&mut head, 0), Ok(2) if &head == b"#!")
}

/// Inetd mode: becomes the program in this process. A process that leads
/// its process group (run by hand from a shell) cannot start a session of
/// its own, so it forks a child for the launch and waits for it, giving its
/// exit status as its own. Returns only if the launch failed.
pub fn exec_here(launch: &Launch) -> LaunchError {
    if let Err(e) = sys::cloexec_above_stderr() {
        return LaunchError::Step(Step::Descriptors, e);
    }
    if sys::may_start_session() {
        let (step, e) = launch.plan.exec_here();
        return LaunchError::Step(step, e);
    }
    match launch.plan.spawn(None) {
        Ok(pid) => {
            // The connection is the child's now; this process only waits.
            sys::let_go_of_stdio();
            let code = match nix::sys::wait::waitpid(pid, None) {
                Ok(nix::sys::wait::WaitStatus::Exited(_, code)) => code,
                Ok(nix::sys::wait::WaitStatus::Signaled(_, signal, _)) => 128 + signal as i32,
                _ => 1,
            };
            std::process::exit(code)
        }
        Err((step, e)) => LaunchError::Step(step, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_lookup_error_says_what_is_wrong() {
        let name = || "svc".to_owned();
        let nul = CString::new("a\0b").unwrap_err();
        let cases = [
            (
                LookupError::NoSuchUser { name: name() },
                "no such user \"svc\"",
            ),
            (
                LookupError::NoSuchGroup { name: name() },
                "no such group \"svc\"",
            ),
            (
                LookupError::User {
                    name: name(),
                    errno: Errno::EIO,
                },
                "looking up user svc: EIO: I/O error",
            ),
            (
                LookupError::Group {
                    name: name(),
                    errno: Errno::EIO,
                },
                "looking up group svc: EIO: I/O error",
            ),
            (
                LookupError::Groups {
                    user: name(),
                    errno: Errno::EINVAL,
                },
                "listing the groups of svc: EINVAL: Invalid argument",
            ),
            (
                LookupError::RootNotNamed {
                    name: "toor".to_owned(),
                },
                "user \"toor\" has uid 0 but is not named root; write root to run a service as root",
            ),
            (
                LookupError::Nul(nul),
                "nul byte found in provided data at position: 1",
            ),
        ];
        for (error, message) in cases {
            assert_eq!(error.to_string(), message);
        }
    }

    #[test]
    fn each_switch_error_says_what_is_wrong() {
        let gids = |ids: &[u32]| ids.iter().map(|&g| Gid::from_raw(g)).collect();
        let cases = [
            (
                SwitchError::NotRoot {
                    euid: Uid::from_raw(65534),
                    egid: Gid::from_raw(65534),
                    user: "root".to_owned(),
                    uid: Uid::from_raw(0),
                    gid: Gid::from_raw(0),
                },
                "the server runs as uid 65534 gid 65534, not root, so it cannot run a service as root (uid 0 gid 0)",
            ),
            (
                SwitchError::Groups {
                    have: gids(&[100, 1000]),
                    user: "svc".to_owned(),
                    want: gids(&[1000]),
                },
                "the server runs with the groups 100,1000, not svc's 1000, and only root can change them",
            ),
            (
                SwitchError::GetGroups(Errno::EINVAL),
                "getgroups: EINVAL: Invalid argument",
            ),
        ];
        for (error, message) in cases {
            assert_eq!(error.to_string(), message);
        }
    }

    /// A launch's log line gives the lookup's or the switch's message as is.
    #[test]
    fn a_launch_error_says_its_cause() {
        let lookup = LaunchError::Lookup(LookupError::NoSuchUser {
            name: "svc".to_owned(),
        });
        assert_eq!(lookup.to_string(), "no such user \"svc\"");
        let switch = LaunchError::Switch(SwitchError::GetGroups(Errno::EINVAL));
        assert_eq!(switch.to_string(), "getgroups: EINVAL: Invalid argument");
    }

    #[test]
    fn an_alias_of_root_is_refused() {
        assert_eq!(check_root_is_named("root", Uid::from_raw(0)), Ok(()));
        assert_eq!(check_root_is_named("toor", Uid::from_raw(1000)), Ok(()));
        assert_eq!(
            check_root_is_named("toor", Uid::from_raw(0)).map_err(|e| e.to_string()),
            Err(
                "user \"toor\" has uid 0 but is not named root; write root to run a service as root"
                    .to_owned()
            )
        );
    }
}
