//! A real multiplexer: services from a table, launched on the connection
//! with their user, groups, environment and descriptors as the table and
//! the rules say. These run as root, as CI does, and test the real thing.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use common::{Server, check, root, run_piped, tcp_pair_at};
use tcpmuxd::protocol::{UNAVAILABLE, UNKNOWN_SERVICE as UNKNOWN};

/// The server in inetd mode with the probe service and `table`, in which
/// `{dir}` stands for the probe's directory.
fn server(table: &str) -> Server {
    Server::inetd().probe().table(table)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_launched_service_sees_its_ids_environment_descriptors_and_client() {
    if !root() {
        return;
    }
    let setup = server("+probe nobody:nogroup {dir}/probe one two\n");
    // A descriptor the super-server left open must not reach the service.
    let (_leak_r, _leak_w) = nix::unistd::pipe().unwrap();
    let (client, server) = tcp_pair_at("127.0.0.1", "127.0.0.1");
    let client_addr = client.local_addr().unwrap();
    let server_port = server.local_addr().unwrap().port();
    let mut inetd = setup.start_on(client, server);
    inetd.send(b"PROBE\r\nhello, service\r\n");
    inetd.client.shutdown(std::net::Shutdown::Write).unwrap();
    let (reply, code) = inetd.finish();
    let port = client_addr.port();
    let expected = format!(
        "+Go\r\n\
         uid=65534 euid=65534\r\n\
         gid=65534 65534 egid=65534 65534\r\n\
         peer=127.0.0.1 {port}\r\n\
         fds=0 1 2\r\n\
         args=one two\r\n\
         session=own\r\n\
         tty=No such device or address\r\n\
         signals ignored=0000000000000000 blocked=0000000000000000\r\n\
         umask=0022 cwd=/\r\n\
         fd2=socket\r\n\
         parent fds=Permission denied\r\n\
         env PATH=/usr/bin:/bin\r\n\
         env PROTO=TCP\r\n\
         env TCPLOCALIP=127.0.0.1\r\n\
         env TCPLOCALPORT={server_port}\r\n\
         env TCPMUX_SERVICE=probe\r\n\
         env TCPREMOTEIP=127.0.0.1\r\n\
         env TCPREMOTEPORT={port}\r\n\
         read=hello, service\r\n"
    );
    assert_eq!(text(&reply), expected);
    assert_eq!(code, 0);
}

/// The groups the probe reports: (gid, egid's list), each as a sorted list.
fn groups(reply: &str) -> Vec<u32> {
    let line = reply.lines().find(|l| l.starts_with("gid=")).unwrap();
    let egid = line.split("egid=").nth(1).unwrap();
    let mut ids: Vec<u32> = egid
        .split_whitespace()
        .map(|g| g.parse().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

fn uid_line(reply: &str) -> &str {
    reply.lines().find(|l| l.starts_with("uid=")).unwrap()
}

/// CVE-2013-4342: xinetd ran TCPMUX services as root whatever their user
/// and group said. Here each line's user and group are what the program gets.
#[test]
fn each_service_runs_as_its_user_and_groups() {
    if !root() {
        return;
    }
    let Some(test_user) = nix::unistd::User::from_name("tcpmuxd-test").unwrap() else {
        assert!(
            std::env::var_os("TCPMUXD_REQUIRE_ROOT").is_none(),
            ".ci/run creates the user tcpmuxd-test"
        );
        return;
    };
    let users = nix::unistd::Group::from_name("users")
        .unwrap()
        .unwrap()
        .gid
        .as_raw();
    let setup = server(
        "+own tcpmuxd-test {dir}/probe\n\
         +other tcpmuxd-test:nogroup {dir}/probe\n\
         +nobody nobody {dir}/probe\n\
         +root root {dir}/probe\n",
    );
    let uid = test_user.uid.as_raw();
    let gid = test_user.gid.as_raw();

    let reply = setup.ask(b"own\r\n").text();
    assert_eq!(uid_line(&reply), format!("uid={uid} euid={uid}"));
    assert!(reply.contains(&format!("gid={gid} ")), "{reply}");
    let mut expected = vec![gid, users];
    expected.sort();
    assert_eq!(groups(&reply), expected);

    let reply = setup.ask(b"other\r\n").text();
    assert_eq!(uid_line(&reply), format!("uid={uid} euid={uid}"));
    assert!(reply.contains("gid=65534 "), "{reply}");
    let mut expected = vec![65534, users];
    expected.sort();
    assert_eq!(
        groups(&reply),
        expected,
        "the user's groups, with nogroup for its own"
    );

    let reply = setup.ask(b"nobody\r\n").text();
    assert_eq!(uid_line(&reply), "uid=65534 euid=65534");
    assert_eq!(groups(&reply), [65534]);

    let reply = setup.ask(b"root\r\n").text();
    assert_eq!(
        uid_line(&reply),
        "uid=0 euid=0",
        "root only where the line says root"
    );
    assert_eq!(groups(&reply), [0]);
}

/// CVE-2012-0862: xinetd made every enabled service reachable through
/// TCPMUX. Here only the table's services are, however the name is spelt.
#[test]
fn only_services_in_the_table_are_reachable() {
    let setup = server("+probe nobody {dir}/probe\n");
    for name in [
        "echo",
        "chargen",
        "daytime",
        "ssh",
        "sshd",
        "telnet",
        "login",
        "shell",
        "/bin/sh",
        "../probe",
        "probe/",
        "probe.",
        "tcpmux-server",
        "probe\\",
    ] {
        let input = format!("{name}\r\n");
        assert_eq!(setup.ask(input.as_bytes()), (UNKNOWN, 3), "{name}");
    }
}

#[test]
fn bytes_after_the_name_reach_the_service() {
    let setup = server("echo nobody /bin/cat\n+Echo2 nobody /bin/cat\n");
    assert_eq!(setup.ask(b"echo\r\nhello\r\n"), (b"hello\r\n", 0));
    assert_eq!(setup.ask(b"ECHO2\r\nhello\r\n"), (b"+Go\r\nhello\r\n", 0));
    assert_eq!(
        setup.ask(b"tcpmux\r\nechO\r\n\0\xff\r\n"),
        (b"+OK\r\n\0\xff\r\n", 0)
    );
}

#[test]
fn allow_and_deny_for_ipv4_ipv6_and_mapped_peers() {
    let setup = server(
        "+loop4 nobody allow=127.0.0.0/8 /bin/true\n\
         +ten nobody allow=10.0.0.0/8 /bin/true\n\
         +notme nobody deny=127.0.0.1 /bin/true\n\
         +loop6 nobody allow=::1 /bin/true\n\
         +v4only nobody allow=0.0.0.0/0 /bin/true\n\
         +open nobody /bin/true\n",
    );
    let go = (&b"+Go\r\n"[..], 0);
    let no = (UNKNOWN, 3);
    let v4 = |name: &str| setup.ask_at("127.0.0.1", "127.0.0.1", format!("{name}\r\n").as_bytes());
    let v6 = |name: &str| setup.ask_at("::1", "::1", format!("{name}\r\n").as_bytes());
    let mapped = |name: &str| setup.ask_at("::", "127.0.0.1", format!("{name}\r\n").as_bytes());

    for (name, ipv4, ipv6, ipv4_mapped) in [
        ("loop4", &go, &no, &go),
        ("ten", &no, &no, &no),
        ("notme", &no, &go, &no),
        ("loop6", &no, &go, &no),
        ("v4only", &go, &no, &go),
        ("open", &go, &go, &go),
    ] {
        assert_eq!(v4(name), *ipv4, "{name} over IPv4");
        assert_eq!(v6(name), *ipv6, "{name} over IPv6");
        assert_eq!(mapped(name), *ipv4_mapped, "{name} over IPv4-mapped IPv6");
    }

    // HELP lists what the peer may use; a denied service is not there.
    assert_eq!(v4("HELP").text(), "tcpmux\r\nloop4\r\nv4only\r\nopen\r\n");
    assert_eq!(v6("HELP").text(), "tcpmux\r\nnotme\r\nloop6\r\nopen\r\n");
    assert_eq!(
        mapped("HELP").text(),
        "tcpmux\r\nloop4\r\nv4only\r\nopen\r\n"
    );
}

#[test]
fn a_mapped_peer_is_handed_on_as_ipv4() {
    if !root() {
        return;
    }
    let setup = server("+probe nobody allow=127.0.0.1 {dir}/probe\n");
    let reply = setup.ask_at("::", "127.0.0.1", b"probe\r\n").text();
    assert!(reply.contains("env TCPREMOTEIP=127.0.0.1\r\n"), "{reply}");
    assert!(reply.contains("env TCPLOCALIP=127.0.0.1\r\n"), "{reply}");
}

#[test]
fn hidden_services_work_but_are_not_listed() {
    let setup = server("+shown nobody /bin/true\n+secret nobody hidden /bin/true\n");
    assert_eq!(setup.ask(b"HELP\r\n").text(), "tcpmux\r\nshown\r\n");
    assert_eq!(setup.ask(b"SECRET\r\n"), (b"+Go\r\n", 0));
}

#[test]
fn an_unknown_peer_is_denied_where_there_is_an_allow_list() {
    let setup = server("+open nobody /bin/true\n+listed nobody allow=0.0.0.0/0,::/0 /bin/true\n");
    let args = setup.argv();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(
        run_piped(&args, b"listed\r\n"),
        (UNKNOWN.to_vec(), vec![], 3)
    );
    assert_eq!(run_piped(&args, b"HELP\r\n").0, b"tcpmux\r\nopen\r\n");
    if root() {
        assert_eq!(
            run_piped(&args, b"open\r\n"),
            (b"+Go\r\n".to_vec(), vec![], 0)
        );
    }
}

#[test]
fn the_launch_and_the_refusals_are_logged() {
    if !root() {
        return;
    }
    let setup = server("+probe nobody allow=127.0.0.1 {dir}/probe\n").syslog();
    for (input, expected) in [
        (
            &b"probe\r\n"[..],
            "name=probe outcome=launch user=nobody uid=65534 gid=65534 program=",
        ),
        (b"nosuch\r\n", "name=nosuch outcome=unknown"),
    ] {
        let answer = setup.ask(input);
        let line = answer.log_line();
        assert!(
            line.contains(&format!("peer={} {expected}", answer.client)),
            "{line}"
        );
    }
    // Denied looks like unknown to the client, but not in the log.
    let answer = setup.ask_at("::1", "::1", b"probe\r\n");
    assert_eq!(answer, (UNKNOWN, 3));
    assert!(answer.log_line().contains("name=probe outcome=denied"));
}

#[test]
fn check_prints_a_good_table_and_names_the_fault_in_a_bad_one() {
    let setup = server(
        "# sample\n+echo  nobody  allow=127.0.0.0/8  /bin/cat\n\nsecret nobody:nogroup hidden /bin/cat -u\n",
    );
    let path = setup.table_path();
    assert_eq!(
        check(path, &[]),
        (
            format!(
                "# {path}: 2 services besides tcpmux\n+echo\tnobody\tallow=127.0.0.0/8\t/bin/cat\nsecret\tnobody:nogroup\thidden\t/bin/cat -u\n"
            ),
            String::new(),
            0
        )
    );

    for (table, message) in [
        (
            "+echo nobody allow=127.0.0.1/8 /bin/cat\n",
            ":1:20: 127.0.0.1/8 has host bits set; the block is 127.0.0.0/8",
        ),
        (
            "\n+echo nobody cat\n",
            ":2:14: \"cat\" is not an option (allow=, deny=, hidden, maxconn=, proxy=), and the program must be an absolute path",
        ),
        (
            "+echo no-such-user-here /bin/cat\n",
            ":1: no such user \"no-such-user-here\"",
        ),
        (
            "+echo nobody:no-such-group /bin/cat\n",
            ":1: no such group \"no-such-group\"",
        ),
    ] {
        setup.write_table(table);
        assert_eq!(
            check(path, &[]),
            (String::new(), format!("in.tcpmuxd: {path}{message}\n"), 1),
            "{table:?}"
        );
    }

    let missing = setup.dir().join("missing.conf");
    let (out, err, code) = check(&missing, &[]);
    assert_eq!((out.as_str(), code), ("", 1));
    assert_eq!(
        err,
        format!(
            "in.tcpmuxd: {}: cannot open the table: No such file or directory\n",
            missing.display()
        )
    );
}

#[test]
fn a_broken_table_refuses_every_client_and_logs_why() {
    let setup = server("+echo nobody /bin/cat bogus-line\nbroken\n").syslog();
    let answer = setup.ask(b"HELP\r\n");
    assert_eq!(answer, (UNAVAILABLE, 1));
    let line = answer.log_line();
    assert!(line.starts_with("<27>"), "{line}");
    assert!(
        line.ends_with(&format!(
            "outcome=config-error ({}:2:7: missing the user to run the program as)",
            setup.table_path()
        )),
        "{line}"
    );
}

#[test]
fn as_root_a_table_or_program_others_could_change_is_refused() {
    if !root() {
        return;
    }
    let setup = server("+probe nobody {dir}/probe\n");
    let path = setup.table_path();
    let probe = setup.dir().join("probe").display().to_string();
    let refused = |err: String| (String::new(), format!("in.tcpmuxd: {err}\n"), 1);

    nix::unistd::chown(path, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    assert_eq!(
        check(path, &[]),
        refused(format!(
            "{path}: the table is owned by uid 65534, not root; refused, as sshd's StrictModes would"
        ))
    );
    nix::unistd::chown(path, Some(nix::unistd::Uid::from_raw(0)), None).unwrap();

    fs::set_permissions(path, fs::Permissions::from_mode(0o664)).unwrap();
    assert_eq!(
        check(path, &[]),
        refused(format!(
            "{path}: the table is writable by group or others (mode 0664); refused, as sshd's StrictModes would"
        ))
    );
    fs::set_permissions(path, fs::Permissions::from_mode(0o644)).unwrap();

    fs::set_permissions(&probe, fs::Permissions::from_mode(0o757)).unwrap();
    assert_eq!(
        check(path, &[]),
        refused(format!(
            "{path}:1: program {probe} is writable by group or others (mode 0757); refused, as sshd's StrictModes would"
        ))
    );
    fs::set_permissions(&probe, fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(
        check(path, &[]),
        refused(format!("{path}:1: program {probe} is not executable"))
    );

    setup.write_table("+probe nobody {dir}\n");
    let dir = setup.dir().display();
    assert_eq!(
        check(path, &[]),
        refused(format!("{path}:1: program {dir} is not a regular file"))
    );
    setup.write_table("+probe nobody {dir}/missing\n");
    assert_eq!(
        check(path, &[]),
        refused(format!(
            "{path}:1: cannot open program {dir}/missing: No such file or directory"
        ))
    );

    // Programs are checked when launched: the launch gets the short
    // refusal, while HELP, which launches nothing, is answered.
    assert_eq!(setup.ask(b"probe\r\n"), (UNAVAILABLE, 8));
    assert_eq!(setup.ask(b"HELP\r\n"), (b"tcpmux\r\nprobe\r\n", 0));
}

#[test]
fn a_program_the_user_cannot_run_gets_a_refusal_not_a_hang() {
    if !root() {
        return;
    }
    let setup = server("+plus nobody {dir}/probe\nown nobody {dir}/probe\n").syslog();
    let probe = setup.dir().join("probe");
    // Root may run it, so the table passes, but nobody may not.
    fs::set_permissions(&probe, fs::Permissions::from_mode(0o700)).unwrap();
    for name in ["plus", "own"] {
        let answer = setup.ask(format!("{name}\r\n").as_bytes());
        assert_eq!(answer, (UNAVAILABLE, 8), "{name}");
        let line = answer.log_line();
        assert!(line.contains(&format!("name={name} outcome=launch-failed (nobody cannot run {}: EACCES: Permission denied)", probe.display())), "{line}");
    }
}

#[test]
fn a_server_that_is_not_root_runs_only_its_own_user() {
    if !root() {
        return;
    }
    let setup = server(
        "+mine nobody:nogroup /bin/cat\n+theirs root /bin/cat\n+gone nobody {dir}/missing\n",
    )
    .syslog()
    .as_nobody();
    assert_eq!(setup.ask(b"mine\r\nhi\r\n"), (b"+Go\r\nhi\r\n", 0));
    let answer = setup.ask(b"theirs\r\n");
    assert_eq!(answer, (UNAVAILABLE, 8));
    let line = answer.log_line();
    assert!(line.contains("outcome=launch-failed (the server runs as uid 65534 gid 65534, not root, so it cannot run a service as root (uid 0 gid 0))"), "{line}");
    // Not root, so no StrictModes: the missing program is found at launch.
    let answer = setup.ask(b"gone\r\n");
    assert_eq!(answer, (UNAVAILABLE, 8));
    let line = answer.log_line();
    let missing = setup.dir().join("missing");
    assert!(
        line.ends_with(&format!(
            "outcome=launch-failed (cannot open program {}: No such file or directory)",
            missing.display()
        )),
        "{line}"
    );
}
