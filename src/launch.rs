//! Handing the connection to a service's program: who it runs as, what
//! environment it gets, and the exec itself. No shell and no PATH search: the
//! table names the program by absolute path.

use std::ffi::CString;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::unistd::{self, AccessFlags, Gid, Group, Uid, User};

use crate::peer::Peer;
use crate::protocol::SERVICE_ACCEPT;
use crate::sys;
use crate::table::Service;

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

/// Looks up the service's user and group.
pub fn credentials(service: &Service) -> Result<Credentials, String> {
    let user = User::from_name(&service.user)
        .map_err(|e| format!("looking up user {}: {e}", service.user))?
        .ok_or_else(|| format!("no such user {:?}", service.user))?;
    let gid = match &service.group {
        None => user.gid,
        Some(name) => {
            Group::from_name(name)
                .map_err(|e| format!("looking up group {name}: {e}"))?
                .ok_or_else(|| format!("no such group {name:?}"))?
                .gid
        }
    };
    let name = CString::new(user.name.as_bytes()).map_err(|e| e.to_string())?;
    let groups = unistd::getgrouplist(&name, gid)
        .map_err(|e| format!("listing the groups of {}: {e}", service.user))?;
    Ok(Credentials {
        user: user.name,
        uid: user.uid,
        gid,
        groups,
    })
}

/// Whether this process can become `creds`: it is root, or it already runs
/// as that user and group and nothing need change.
pub fn check_can_switch(creds: &Credentials) -> Result<(), String> {
    let (euid, egid) = (unistd::geteuid(), unistd::getegid());
    if euid.is_root() || (creds.uid == euid && creds.gid == egid) {
        return Ok(());
    }
    Err(format!(
        "the server runs as uid {euid} gid {egid}, not root, so it cannot run a service as {} (uid {} gid {})",
        creds.user, creds.uid, creds.gid
    ))
}

/// Becomes `creds` for good: supplementary groups, then gid, then uid, each
/// failure fatal, then a check that root cannot be regained.
pub fn drop_privileges(creds: &Credentials) -> Result<(), &'static str> {
    if !unistd::geteuid().is_root() {
        // check_can_switch found us already running as the service's user.
        return Ok(());
    }
    unistd::setgroups(&creds.groups).map_err(|_| "setgroups failed")?;
    unistd::setgid(creds.gid).map_err(|_| "setgid failed")?;
    unistd::setuid(creds.uid).map_err(|_| "setuid failed")?;
    if unistd::getuid() != creds.uid
        || unistd::geteuid() != creds.uid
        || unistd::getgid() != creds.gid
        || unistd::getegid() != creds.gid
    {
        return Err("the ids did not change as asked");
    }
    if !creds.uid.is_root() && unistd::setuid(Uid::from_raw(0)).is_ok() {
        return Err("root could be regained after the switch");
    }
    Ok(())
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

/// The program's command: its arguments and its environment, nothing else.
fn command(service: &Service, peer: &Peer) -> Command {
    let mut command = Command::new(&service.program);
    command
        .args(&service.args)
        .env_clear()
        .envs(environment(service, peer));
    command
}

/// Why a launch failed, and whether the client was already told `+`.
#[derive(Debug)]
pub struct Failure {
    pub reason: String,
    pub accepted: bool,
}

/// Inetd mode: becomes the service's user in this process and execs its
/// program on the connection at fds 0 to 2. `ready` runs just before the
/// exec (to log). Returns only if the launch failed.
pub fn exec(
    service: &Service,
    peer: &Peer,
    out: &mut impl Write,
    ready: impl FnOnce(&Credentials),
) -> Failure {
    let refused = |reason: String| Failure {
        reason,
        accepted: false,
    };
    let creds = match credentials(service).and_then(|c| check_can_switch(&c).map(|()| c)) {
        Ok(creds) => creds,
        Err(reason) => return refused(reason),
    };
    if let Err(e) = sys::cloexec_above_stderr() {
        return refused(format!("marking descriptors close-on-exec: {e}"));
    }
    if let Err(reason) = drop_privileges(&creds) {
        return refused(format!("becoming {}: {reason}", creds.user));
    }
    // After the switch, so it is the service's user who must be able to run it.
    if let Err(e) = unistd::access(service.program.as_str(), AccessFlags::X_OK) {
        return refused(format!(
            "{} cannot run {}: {e}",
            creds.user, service.program
        ));
    }
    if service.mux_replies
        && out
            .write_all(SERVICE_ACCEPT)
            .and_then(|()| out.flush())
            .is_err()
    {
        return refused("the client went away before the + line".to_owned());
    }
    sys::reset_signals();
    ready(&creds);
    let error = command(service, peer).exec();
    Failure {
        reason: format!("exec {}: {error}", service.program),
        accepted: service.mux_replies,
    }
}
