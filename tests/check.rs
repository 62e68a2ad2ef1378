//! `in.tcpmuxd --check`: the table as understood on standard output, the
//! first error or the warnings on standard error, and the exit status; and
//! the lines it refuses, refused in inetd mode too.

mod common;

use common::{Server, TempDir, check, table};

#[test]
fn one_service_is_one_service() {
    let dir = TempDir::new("check-one");
    let path = table(&dir, "+echo nobody /bin/cat\n");
    assert_eq!(
        check(&path, &[]),
        (
            format!("# {path}: 1 service besides tcpmux\n+echo\tnobody\t/bin/cat\n"),
            String::new(),
            0
        )
    );
}

#[test]
fn services_the_server_could_not_start_are_warned_of_and_the_table_is_good() {
    let dir = TempDir::new("check-as");
    let path = table(
        &dir,
        "+echo nobody /bin/cat\n+date nobody:nogroup /bin/date\n+admin root /bin/cat\n",
    );
    let printed = format!(
        "# {path}: 3 services besides tcpmux\n+echo\tnobody\t/bin/cat\n+date\tnobody:nogroup\t/bin/date\n+admin\troot\t/bin/cat\n"
    );
    // As shipped, in.tcpmuxd runs as nobody: it cannot start admin.
    let warning = |user: &str, ids: &str| {
        format!(
            "in.tcpmuxd: warning: {path}:3: in.tcpmuxd run as {user} ({ids}) cannot start \"admin\", which runs as root (uid 0 gid 0): run in.tcpmuxd as root, or give --as the user it runs as\n"
        )
    };
    let nobody = (printed.clone(), warning("nobody", "uid 65534 gid 65534"), 0);
    assert_eq!(check(&path, &[]), nobody);
    assert_eq!(check(&path, &["--as", "nobody"]), nobody);
    // Run as root, it can start them all.
    assert_eq!(
        check(&path, &["--as", "root"]),
        (printed.clone(), String::new(), 0)
    );
    // Run as daemon, it can start none of them.
    let (out, err, code) = check(&path, &["--as", "daemon:nogroup"]);
    assert_eq!((out, code), (printed, 0));
    assert_eq!(err.lines().count(), 3, "{err}");
    assert!(
        err.starts_with(&format!(
            "in.tcpmuxd: warning: {path}:1: in.tcpmuxd run as daemon:nogroup (uid 1 gid 65534) cannot start \"echo\""
        )),
        "{err}"
    );
    assert_eq!(
        check(&path, &["--as", "no-such-user-here"]),
        (
            String::new(),
            "in.tcpmuxd: --as: no such user \"no-such-user-here\"\n".to_owned(),
            2
        )
    );
}

#[test]
fn lines_that_would_not_do_what_they_say_are_refused_with_the_fix() {
    let dir = TempDir::new("check-refused");
    for (text, message) in [
        (
            "+echo nobody /bin/cat allow=127.0.0.1\n",
            ":1:23: \"allow=127.0.0.1\" would be an argument of /bin/cat, not an option: options go before the program (write -- before the program to pass it on)",
        ),
        (
            "+echo nobody /bin/cat # comment\n",
            ":1:23: \"#\" would be an argument of /bin/cat, not a comment: a comment takes a whole line, starting with '#' (write -- before the program to pass it on)",
        ),
        (
            "tcpmux/+echo nobody /bin/cat\n",
            ":1:1: \"tcpmux/+echo\" is inetd.conf's spelling; this table holds only TCPMUX services: write \"+echo\"",
        ),
    ] {
        let path = table(&dir, text);
        assert_eq!(
            check(&path, &[]),
            (String::new(), format!("in.tcpmuxd: {path}{message}\n"), 1),
            "{text:?}"
        );
        // Every mode refuses such a table: inetd mode's clients are told
        // little.
        assert_eq!(
            Server::inetd().table_at(&path).ask(b"echo\r\n"),
            (b"-Service temporarily unavailable\r\n", 1)
        );
    }

    // "--" passes such words on purpose, and is printed back.
    let path = table(&dir, "+echo nobody -- /bin/echo hidden # as-is\n");
    assert_eq!(
        check(&path, &[]),
        (
            format!(
                "# {path}: 1 service besides tcpmux\n+echo\tnobody\t--\t/bin/echo hidden # as-is\n"
            ),
            String::new(),
            0
        )
    );
    // Launching as nobody takes root.
    if common::root() {
        assert_eq!(
            Server::inetd().table_at(&path).ask(b"echo\r\n"),
            (b"+Go\r\nhidden # as-is\n", 0)
        );
    }
}
