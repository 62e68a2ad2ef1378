//! StrictModes that deserve the name, each test an attack the review made:
//! a local user who owns a directory on the way to a program or the table,
//! a program changed after the table was read, a FIFO, a device or a huge
//! file in the table's place, an argument with a NUL, another name for root.

mod common;

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{Listener, Server, TempDir, ask, check, root, wait_for};
use tcpmuxd::protocol::UNAVAILABLE;

const STRICT: &str = "refused, as sshd's StrictModes would";

/// A copy of /bin/cat, root's and 0755, at `path`: an ELF program, exec'd
/// by descriptor.
fn cat_at(path: &Path) -> PathBuf {
    fs::copy("/bin/cat", path).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
    path.to_owned()
}

fn nobody() -> nix::unistd::Uid {
    nix::unistd::Uid::from_raw(65534)
}

/// The attack: a user who owns a directory on a root service's program path
/// puts a symlink to /bin/sh in the program's place.
#[test]
fn a_directory_a_user_owns_on_the_way_to_a_program_is_refused() {
    if !root() {
        return;
    }
    let dir = TempDir::new("userdir");
    let owned = dir.path().join("owned");
    fs::create_dir(&owned).unwrap();
    nix::unistd::chown(&owned, Some(nobody()), None).unwrap();
    let program = cat_at(&owned.join("prog"));
    let table = common::table(&dir, &format!("+svc root {}\n", program.display()));
    let (out, err, code) = check(&table, &[]);
    assert_eq!(
        (out.as_str(), err, code),
        (
            "",
            format!(
                "in.tcpmuxd: {table}:1: program {}: directory {} is owned by uid 65534, not root; {STRICT}\n",
                program.display(),
                owned.display()
            ),
            1
        )
    );
    // The user swaps in a shell: the client must not get root's.
    fs::remove_file(&program).unwrap();
    std::os::unix::fs::symlink("/bin/sh", &program).unwrap();
    let inetd = Server::inetd().table_at(&table);
    assert_eq!(inetd.ask(b"svc\r\nid -u\r\n"), (UNAVAILABLE, 8));
    let server = Listener::start(&["-c", &table]);
    assert_eq!(ask(server.v4, b"svc\r\nid -u\r\n"), UNAVAILABLE);
    let line = server.expect_log("outcome=launch-failed");
    assert!(line.contains("is owned by uid 65534, not root"), "{line}");
    // Through a symlink to the user's directory: the same.
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&owned, &link).unwrap();
    let table = common::table(&dir, &format!("+svc root {}/prog\n", link.display()));
    assert_eq!(check(&table, &[]).2, 1);
}

/// The attack: the program is fine when the table is read, and made
/// writable by others (or swapped) before the launch. The check is at the
/// launch, on the file exec'd.
#[test]
fn the_program_is_checked_at_launch_not_when_the_table_was_read() {
    if !root() {
        return;
    }
    let dir = TempDir::new("late");
    let program = cat_at(&dir.path().join("prog"));
    let table = common::table(&dir, &format!("+svc root {}\n", program.display()));

    // Inetd mode: `+OK` shows the table is read; then the program changes.
    let mut conn = Server::inetd().table_at(&table).connect();
    conn.send(b"tcpmux\r\n");
    let mut ok = [0u8; 5];
    conn.client.read_exact(&mut ok).unwrap();
    assert_eq!(&ok, b"+OK\r\n");
    fs::set_permissions(&program, fs::Permissions::from_mode(0o777)).unwrap();
    conn.send(b"svc\r\nhi\r\n");
    conn.client.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(conn.finish(), (UNAVAILABLE.to_vec(), 8));

    // Listen mode: fine at start, then changed.
    fs::set_permissions(&program, fs::Permissions::from_mode(0o755)).unwrap();
    let server = Listener::start(&["-c", &table]);
    assert_eq!(ask(server.v4, b"svc\r\nhi\r\n"), b"+Go\r\nhi\r\n");
    fs::set_permissions(&program, fs::Permissions::from_mode(0o757)).unwrap();
    assert_eq!(ask(server.v4, b"svc\r\nhi\r\n"), UNAVAILABLE);
    let line = server.expect_log("outcome=launch-failed");
    assert!(
        line.ends_with(&format!(
            "(program {} is writable by group or others (mode 0757); {STRICT})",
            program.display()
        )),
        "{line}"
    );
}

/// The table is opened once and the open file checked: a FIFO, a device or
/// a symlink to one in its place is refused at once, unopened.
#[test]
fn a_table_that_is_not_a_regular_file_is_refused_without_waiting() {
    if !root() {
        return;
    }
    let dir = TempDir::new("fifo");
    let fifo = dir.path().join("fifo.conf");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    let zero = dir.path().join("zero.conf");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    for table in [&fifo, &zero] {
        let table = table.to_str().unwrap();
        assert_eq!(
            Server::inetd().table_at(table).ask(b"HELP\r\n"),
            (UNAVAILABLE, 1),
            "{table}"
        );
        let (_, err, code) = check(table, &[]);
        assert_eq!(
            (err, code),
            (
                format!("in.tcpmuxd: {table}: the table is not a regular file\n"),
                1
            )
        );
    }

    // A listener asked to re-read a FIFO keeps its table and still stops.
    let path = common::table(&dir, "+one nobody /bin/true\n");
    let mut server = Listener::start(&["-c", &path]);
    fs::rename(&fifo, &path).unwrap();
    server.signal(nix::sys::signal::Signal::SIGHUP);
    let line = server.expect_log("SIGHUP: keeping the old table");
    assert!(line.ends_with("the table is not a regular file"), "{line}");
    assert_eq!(ask(server.v4, b"HELP\r\n"), b"tcpmux\r\none\r\n");
    server.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(wait_for(&mut server.child).code(), Some(0));
}

#[test]
fn a_table_in_a_directory_a_user_owns_is_refused() {
    if !root() {
        return;
    }
    let dir = TempDir::new("tabledir");
    let owned = dir.path().join("owned");
    fs::create_dir(&owned).unwrap();
    let table = owned.join("tcpmux.conf");
    fs::write(&table, "+echo nobody /bin/cat\n").unwrap();
    fs::set_permissions(&table, fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(check(&table, &[]).2, 0);
    nix::unistd::chown(&owned, Some(nobody()), None).unwrap();
    let (_, err, code) = check(&table, &[]);
    assert_eq!(
        (err, code),
        (
            format!(
                "in.tcpmuxd: {}: the table: directory {} is owned by uid 65534, not root; {STRICT}\n",
                table.display(),
                owned.display()
            ),
            1
        )
    );
}

#[test]
fn a_table_over_the_size_cap_is_refused() {
    let dir = TempDir::new("huge");
    let mut text = "+echo nobody /bin/cat\n".to_owned();
    text.push_str(&"#".repeat(16 << 20));
    let table = common::table(&dir, &text);
    let (_, err, code) = check(&table, &[]);
    assert_eq!(
        (err, code),
        (
            format!("in.tcpmuxd: {table}: the table is larger than 16 MiB\n"),
            1
        )
    );
}

#[test]
fn a_nul_in_an_argument_is_refused() {
    let dir = TempDir::new("nul");
    let table = common::table(&dir, "+echo nobody /bin/echo one tw\0o\n");
    let (_, err, code) = check(&table, &[]);
    assert_eq!(
        (err, code),
        (
            format!("in.tcpmuxd: {table}:1:30: a NUL byte is not allowed\n"),
            1
        )
    );
}

/// An account of uid 0 not named root (a `toor`) is refused: a table that
/// says toor must not run a service as root unseen. The account exists
/// only in a private mount namespace, over a copy of /etc/passwd.
#[test]
fn another_name_for_root_is_refused() {
    if !root() || !common::present("/usr/bin/unshare") {
        return;
    }
    let dir = TempDir::new("toor");
    let passwd = dir.path().join("passwd");
    let mut accounts = fs::read_to_string("/etc/passwd").unwrap();
    accounts.push_str("toor:x:0:0:root by another name:/root:/bin/sh\n");
    fs::write(&passwd, accounts).unwrap();
    let table = common::table(&dir, "+echo toor /bin/cat\n");
    let script = format!(
        "mount --bind {} /etc/passwd && exec {} --check -c {table}",
        passwd.display(),
        common::binary().display()
    );
    let out = Command::new("/usr/bin/unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        (
            String::from_utf8_lossy(&out.stderr).into_owned(),
            out.status.code()
        ),
        (
            format!(
                "in.tcpmuxd: {table}:1: user \"toor\" has uid 0 but is not named root; write root to run a service as root\n"
            ),
            Some(1)
        )
    );
}
