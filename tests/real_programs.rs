//! Real programs written for inetd, run by in.tcpmuxd from a table that
//! holds them exactly as tcpmux.conf(5) shows them (only paths changed),
//! and reached the way tcpmux(1) shows: ssh with `ProxyCommand`, git with
//! `GIT_PROXY_COMMAND`, rsync with `RSYNC_CONNECT_PROG`. Each transfers
//! data and checks it byte for byte. They need root (sshd runs as root,
//! and in.tcpmuxd changes to nobody for the others) and the programs,
//! which `.ci/run` installs; either missing skips here and fails in CI.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{Listener, Server, TempDir, install_copy, present, root};

fn shipped(path: &str) -> String {
    fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

/// The table line of `name` as tcpmux.conf(5) shows it; the README must
/// show the same line.
fn documented_line(name: &str) -> String {
    let page = shipped("etc/man/tcpmux.conf.5");
    let prefix = format!("+{name} ");
    let line = page
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} line in tcpmux.conf(5)"));
    // mdoc writes a backslash as \e; these lines have none.
    assert!(!line.contains('\\'), "{line}");
    assert!(
        shipped("README.md").lines().any(|l| l == line),
        "the README does not show {line:?}"
    );
    line.to_owned()
}

/// The documented command line for `what`, from tcpmux(1)'s examples.
fn documented_client(what: &str) -> String {
    let page = shipped("etc/man/tcpmux.1");
    let line = page
        .lines()
        .find(|l| l.contains(what))
        .unwrap_or_else(|| panic!("no {what:?} in tcpmux(1)"));
    assert!(
        shipped("README.md").contains(line.trim_end_matches(" \\e")),
        "the README does not show {line:?}"
    );
    line.to_owned()
}

fn client() -> PathBuf {
    install_copy(env!("CARGO_BIN_EXE_tcpmux"), "tcpmux")
}

/// Whether root and every program are here; missing ones skip the test
/// here and fail it in CI.
fn ready(programs: &[&str]) -> bool {
    root() && programs.iter().all(|p| present(p))
}

/// in.tcpmuxd listening on loopback with a table of `line`, written
/// root-owned and 0644 as StrictModes wants it.
fn serve(line: &str) -> Listener {
    Server::listen().table(&format!("{line}\n")).start()
}

fn run(command: &mut Command) -> Output {
    let out = command.stdin(Stdio::null()).output().unwrap();
    assert!(
        out.status.success(),
        "{command:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn ssh_through_tcpmux_reaches_sshd_i() {
    let programs = ["/usr/sbin/sshd", "/usr/bin/ssh", "/usr/bin/ssh-keygen"];
    if !ready(&programs) {
        return;
    }
    let dir = TempDir::new("sshd");
    let config = common::throwaway_sshd(dir.path(), "");
    let line = documented_line("ssh").replace("/etc/ssh/sshd_config", config.to_str().unwrap());
    let server = serve(&line);

    let proxy = documented_client("ProxyCommand=")
        .split('\'')
        .nth(1)
        .unwrap()
        .replacen(
            "tcpmux",
            &format!("{} -p {}", client().display(), server.v4.port()),
            1,
        );
    let data = common::binary_data(1 << 20);
    let mut ssh = Command::new("/usr/bin/ssh")
        .args(["-F", "/dev/null", "-o", &format!("ProxyCommand={proxy}")])
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
        ])
        .args(["-o", "BatchMode=yes", "-o", "LogLevel=ERROR"])
        .arg("-i")
        .arg(dir.path().join("user_key"))
        .args(["root@127.0.0.1", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = ssh.stdin.take().unwrap();
    let input = data.clone();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        stdin.write_all(&input).unwrap();
    });
    let out = ssh.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(
        out.status.success(),
        "ssh: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout == data, "{} bytes came back", out.stdout.len());
    server.expect_log("name=ssh outcome=launch user=root");
}

#[test]
fn git_clones_through_tcpmux_from_git_daemon_inetd() {
    if !ready(&["/usr/bin/git"]) {
        return;
    }
    let dir = TempDir::new("git");
    let base = dir.path().join("srv-git");
    let work = dir.path().join("work");
    fs::create_dir_all(&work).unwrap();
    let data = common::binary_data(300 << 10);
    fs::write(work.join("data"), &data).unwrap();
    fs::write(work.join("README"), "through TCPMUX\n").unwrap();
    // Nothing of the machine's or root's git configuration is used.
    let git = |cwd: &Path| {
        let mut git = Command::new("/usr/bin/git");
        git.current_dir(cwd)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", dir.path())
            .env("GIT_CONFIG_NOSYSTEM", "1");
        git
    };
    run(git(&work).args(["init", "-q", "-b", "main"]));
    run(git(&work).args(["add", "."]));
    run(git(&work)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.org"])
        .args(["commit", "-q", "-m", "data"]));
    // Owned by root, as the documented line's safe.directory wants it.
    let bare = base.join("project.git");
    run(git(dir.path())
        .args(["clone", "-q", "--bare"])
        .arg(&work)
        .arg(&bare));

    let line = documented_line("git").replace("/srv/git", base.to_str().unwrap());
    let server = serve(&line);

    // GIT_PROXY_COMMAND=tcpmux TCPMUX_PROXY_SERVICE=git git clone git://host.example/project.git
    let documented = documented_client("GIT_PROXY_COMMAND=");
    assert!(documented.contains("GIT_PROXY_COMMAND=tcpmux TCPMUX_PROXY_SERVICE=git "));
    let cloned = dir.path().join("cloned");
    run(git(dir.path())
        .env("GIT_PROXY_COMMAND", client())
        .env("TCPMUX_PROXY_SERVICE", "git")
        .env("TCPMUX_PORT", server.v4.port().to_string())
        .args(["clone", "-q", "git://127.0.0.1/project.git"])
        .arg(&cloned));
    assert!(
        fs::read(cloned.join("data")).unwrap() == data,
        "data differs"
    );
    assert_eq!(
        fs::read(cloned.join("README")).unwrap(),
        b"through TCPMUX\n"
    );
    server.expect_log("name=git outcome=launch user=nobody");
}

#[test]
fn rsync_through_tcpmux_from_rsync_daemon() {
    if !ready(&["/usr/bin/rsync"]) {
        return;
    }
    let dir = TempDir::new("rsync");
    let d = dir.path().to_str().unwrap();
    let public = dir.path().join("pub");
    fs::create_dir_all(public.join("sub")).unwrap();
    let data = common::binary_data(500 << 10);
    fs::write(public.join("data"), &data).unwrap();
    fs::write(public.join("sub/note"), "through TCPMUX\n").unwrap();
    // The configuration tcpmux.conf(5) shows, its path changed.
    let page = shipped("etc/man/tcpmux.conf.5");
    let shown = "use chroot = no\n[pub]\n\tpath = /srv/pub\n\tread only = yes\n";
    assert!(
        page.contains(shown),
        "tcpmux.conf(5) shows another rsyncd.conf"
    );
    let config = dir.path().join("rsyncd.conf");
    fs::write(&config, shown.replace("/srv/pub", public.to_str().unwrap())).unwrap();
    let line = documented_line("rsync").replace("/etc/rsyncd.conf", config.to_str().unwrap());
    let server = serve(&line);

    let documented = documented_client("RSYNC_CONNECT_PROG=");
    let connect = documented.split('\'').nth(1).unwrap().replacen(
        "tcpmux",
        &format!("{} -p {}", client().display(), server.v4.port()),
        1,
    );
    assert_eq!(
        documented.split('\'').nth(2).unwrap(),
        " rsync -a rsync://host.example/pub/ pub/"
    );
    run(Command::new("/usr/bin/rsync")
        .env("RSYNC_CONNECT_PROG", connect)
        .args(["-a", "rsync://127.0.0.1/pub/", &format!("{d}/copy/")]));
    assert!(
        fs::read(dir.path().join("copy/data")).unwrap() == data,
        "data differs"
    );
    assert_eq!(
        fs::read(dir.path().join("copy/sub/note")).unwrap(),
        b"through TCPMUX\n"
    );
    server.expect_log("name=rsync outcome=launch user=nobody");
}
