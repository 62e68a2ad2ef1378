//! StrictModes, as sshd means them, done on open descriptors so that what is
//! checked is what is used.
//!
//! A file is opened by walking its path from `/` one name at a time with
//! `openat`, each step going on from the descriptor the last one checked.
//! Symlinks are read and followed by the walk itself, never re-resolved by
//! the kernel, so every directory the file is reached through is checked,
//! like sshd's `secure_filename` after `realpath`, but without its window.
//! The last name is first opened with `O_PATH` and looked at before it is
//! opened for real, so a FIFO or a device in a table's place is refused
//! without ever being opened.
//!
//! With `strict` (the server runs as root), every directory must be owned
//! by root and writable by nobody else, as sshd's `secure_filename` asks;
//! the file itself must be owned by root and writable by nobody else.
//! Sticky directories such as `/tmp` are refused too: a user may create a
//! directory there, and a file system mounted on it (FUSE, with
//! `user_allow_other`) can say that anything in it is root's.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fmt;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat, readlinkat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat};

/// Symlinks followed in one walk before it is taken for a loop, as Linux's
/// own limit.
const MAX_LINKS: usize = 40;

/// What the opened file is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// Read, like the table.
    Read,
    /// Executed by descriptor, like a service's program.
    Exec,
    /// Connected to, like a daemon's Unix socket: it must be a socket, and
    /// may be anyone's (its daemon's); the directories on the way are
    /// checked as for any file.
    Socket,
}

/// A file opened and checked.
#[derive(Debug)]
pub struct Opened {
    pub fd: OwnedFd,
    pub stat: FileStat,
    /// The path the walk took, with every symlink resolved.
    pub resolved: PathBuf,
    /// Whether `fd` may be read: an executable only root may read, opened by
    /// a server that is not root, is held with `O_PATH`.
    pub readable: bool,
}

/// Why a file was refused. `what` says which file the caller meant ("the
/// table", "program /usr/bin/foo").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub what: String,
    pub problem: Problem,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    NotAbsolute,
    /// A system call on `path` failed; `last` when that is the file itself.
    Sys {
        path: PathBuf,
        last: bool,
        errno: Errno,
    },
    TooManyLinks,
    NotADirectory(PathBuf),
    NotRegular,
    NotASocket,
    NotExecutable,
    /// The file is not root's.
    Owner {
        uid: u32,
    },
    /// Others may write the file.
    Writable {
        mode: u32,
    },
    /// A directory on the way is not root's.
    DirOwner {
        path: PathBuf,
        uid: u32,
    },
    /// Others may write a directory on the way.
    DirWritable {
        path: PathBuf,
        mode: u32,
    },
    /// The name was replaced between the look and the open.
    Replaced,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = &self.what;
        let strict = "refused, as sshd's StrictModes would";
        match &self.problem {
            Problem::NotAbsolute => write!(f, "{what} is not an absolute path"),
            Problem::Sys {
                last: true, errno, ..
            } => write!(f, "cannot open {what}: {}", errno.desc()),
            Problem::Sys { path, errno, .. } => {
                write!(
                    f,
                    "cannot open {what}: {}: {}",
                    path.display(),
                    errno.desc()
                )
            }
            Problem::TooManyLinks => write!(f, "{what}: too many levels of symbolic links"),
            Problem::NotADirectory(path) => {
                write!(f, "{what}: {} is not a directory", path.display())
            }
            Problem::NotRegular => write!(f, "{what} is not a regular file"),
            Problem::NotASocket => write!(f, "{what} is not a socket"),
            Problem::NotExecutable => write!(f, "{what} is not executable"),
            Problem::Owner { uid } => {
                write!(f, "{what} is owned by uid {uid}, not root; {strict}")
            }
            Problem::Writable { mode } => write!(
                f,
                "{what} is writable by group or others (mode {mode:04o}); {strict}"
            ),
            Problem::DirOwner { path, uid } => write!(
                f,
                "{what}: directory {} is owned by uid {uid}, not root; {strict}",
                path.display()
            ),
            Problem::DirWritable { path, mode } => write!(
                f,
                "{what}: directory {} is writable by group or others (mode {mode:04o}); {strict}",
                path.display()
            ),
            Problem::Replaced => write!(f, "{what} was replaced while it was being opened"),
        }
    }
}

impl std::error::Error for Refusal {}

/// Opens `path` for `purpose`, walking and checking as the module says.
/// `what` names the file in a refusal.
pub fn open(path: &Path, purpose: Use, strict: bool, what: &str) -> Result<Opened, Refusal> {
    let refuse = |problem| Refusal {
        what: what.to_owned(),
        problem,
    };
    Walk::new(strict).run(path, purpose).map_err(refuse)
}

/// A directory reached by the walk.
struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

struct Walk {
    strict: bool,
}

impl Walk {
    fn new(strict: bool) -> Walk {
        Walk { strict }
    }

    fn run(&self, path: &Path, purpose: Use) -> Result<Opened, Problem> {
        if !path.is_absolute() {
            return Err(Problem::NotAbsolute);
        }
        let root_path = PathBuf::from("/");
        let root = nix::fcntl::open(
            "/",
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| Problem::Sys {
            path: root_path.clone(),
            last: false,
            errno,
        })?;
        let root = self.directory(root, root_path)?;
        let mut dirs = vec![root];
        let mut todo = names(path);
        let mut links = 0;
        while let Some(name) = todo.pop_front() {
            if name == ".." {
                if dirs.len() > 1 {
                    dirs.pop();
                }
                continue;
            }
            // `dirs` starts with the root and never loses it.
            let dir = dirs.last().expect("the root stays on the stack");
            let here = dir.path.join(&name);
            let sys = |errno| Problem::Sys {
                path: here.clone(),
                last: todo.is_empty(),
                errno,
            };
            let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
            let fd = openat(&dir.fd, name.as_os_str(), flags, Mode::empty()).map_err(sys)?;
            let stat = fstat(&fd).map_err(sys)?;
            match kind(&stat) {
                SFlag::S_IFLNK => {
                    links += 1;
                    if links > MAX_LINKS {
                        return Err(Problem::TooManyLinks);
                    }
                    let target = PathBuf::from(readlinkat(&fd, "").map_err(sys)?);
                    if target.is_absolute() {
                        dirs.truncate(1);
                    }
                    for name in names(&target).into_iter().rev() {
                        todo.push_front(name);
                    }
                }
                SFlag::S_IFDIR if !todo.is_empty() => {
                    dirs.push(self.directory(fd, here)?);
                }
                _ if !todo.is_empty() => return Err(Problem::NotADirectory(here)),
                _ => return self.last(dir, &name, here, &stat, purpose),
            }
        }
        // The path ended at a directory (or at `/`).
        Err(Problem::NotRegular)
    }

    /// Checks a directory the walk goes through.
    fn directory(&self, fd: OwnedFd, path: PathBuf) -> Result<Dir, Problem> {
        let stat = fstat(&fd).map_err(|errno| Problem::Sys {
            path: path.clone(),
            last: false,
            errno,
        })?;
        if kind(&stat) != SFlag::S_IFDIR {
            return Err(Problem::NotADirectory(path));
        }
        if self.strict {
            if stat.st_uid != 0 {
                return Err(Problem::DirOwner {
                    path,
                    uid: stat.st_uid,
                });
            }
            if stat.st_mode & 0o022 != 0 {
                return Err(Problem::DirWritable {
                    path,
                    mode: stat.st_mode & 0o7777,
                });
            }
        }
        Ok(Dir { fd, path })
    }

    /// The last name: checked as looked at, then opened for real and
    /// compared, so that a swap in between is caught.
    fn last(
        &self,
        dir: &Dir,
        name: &OsString,
        here: PathBuf,
        looked: &FileStat,
        purpose: Use,
    ) -> Result<Opened, Problem> {
        let sys = |errno| Problem::Sys {
            path: here.clone(),
            last: true,
            errno,
        };
        if purpose == Use::Socket {
            // A socket cannot be opened; the look was with O_PATH, and the
            // caller connects by the resolved path, through directories
            // only root can change.
            if kind(looked) != SFlag::S_IFSOCK {
                return Err(Problem::NotASocket);
            }
            let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
            let fd = openat(&dir.fd, name.as_os_str(), flags, Mode::empty()).map_err(sys)?;
            return Ok(Opened {
                fd,
                stat: *looked,
                resolved: here,
                readable: false,
            });
        }
        self.check_file(looked, purpose)?;
        // O_NONBLOCK: a FIFO swapped in after the look must not hang us.
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NOCTTY;
        let (fd, readable) = match openat(
            &dir.fd,
            name.as_os_str(),
            flags | OFlag::O_NONBLOCK,
            Mode::empty(),
        ) {
            Ok(fd) => (fd, true),
            // A server that is not root may run a program it may not read.
            Err(Errno::EACCES) if purpose == Use::Exec => {
                let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
                (
                    openat(&dir.fd, name.as_os_str(), flags, Mode::empty()).map_err(sys)?,
                    false,
                )
            }
            Err(errno) => return Err(sys(errno)),
        };
        let stat = fstat(&fd).map_err(sys)?;
        if (stat.st_dev, stat.st_ino) != (looked.st_dev, looked.st_ino) {
            return Err(Problem::Replaced);
        }
        self.check_file(&stat, purpose)?;
        Ok(Opened {
            fd,
            stat,
            resolved: here,
            readable,
        })
    }

    fn check_file(&self, stat: &FileStat, purpose: Use) -> Result<(), Problem> {
        if kind(stat) != SFlag::S_IFREG {
            return Err(Problem::NotRegular);
        }
        if purpose == Use::Exec && stat.st_mode & 0o111 == 0 {
            return Err(Problem::NotExecutable);
        }
        if self.strict {
            if stat.st_uid != 0 {
                return Err(Problem::Owner { uid: stat.st_uid });
            }
            if stat.st_mode & 0o022 != 0 {
                return Err(Problem::Writable {
                    mode: stat.st_mode & 0o7777,
                });
            }
        }
        Ok(())
    }
}

fn kind(stat: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT
}

/// The names of a path to walk, `.` dropped, `..` kept for the walk.
fn names(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_owned()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_system_file_is_found_through_its_symlinks() {
        // /bin is a symlink to usr/bin on merged-/usr systems, and /bin/sh
        // one to dash: the walk ends at the file, on a path of no symlinks.
        let opened = open(Path::new("/bin/sh"), Use::Exec, false, "sh").unwrap();
        assert_eq!(kind(&opened.stat), SFlag::S_IFREG);
        for step in opened.resolved.ancestors() {
            let meta = std::fs::symlink_metadata(step).unwrap();
            assert!(!meta.file_type().is_symlink(), "{}", step.display());
        }
    }

    #[test]
    fn what_is_not_a_regular_file_is_refused_unopened() {
        for path in ["/dev/zero", "/", "/etc"] {
            let refusal = open(Path::new(path), Use::Read, false, "the table").unwrap_err();
            assert_eq!(
                refusal.to_string(),
                "the table is not a regular file",
                "{path}"
            );
        }
        let refusal = open(Path::new("etc/passwd"), Use::Read, false, "t").unwrap_err();
        assert_eq!(refusal.problem, Problem::NotAbsolute);
    }

    #[test]
    fn a_sticky_directory_is_not_trusted() {
        // /tmp is root's, and mode 1777: anyone may make a directory there.
        let refusal = open(Path::new("/tmp/x"), Use::Read, true, "the table").unwrap_err();
        assert_eq!(
            refusal.problem,
            Problem::DirWritable {
                path: PathBuf::from("/tmp"),
                mode: 0o1777
            }
        );
    }

    #[test]
    fn dot_dot_walks_back_up() {
        let opened = open(Path::new("/etc/../etc/./passwd"), Use::Read, false, "t").unwrap();
        assert_eq!(opened.resolved, Path::new("/etc/passwd"));
    }
}
