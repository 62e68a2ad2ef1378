//! `.ci/package` installs, tests and purges the Debian package: it must
//! never purge a tcpmuxd an administrator installed, with their edited
//! /etc/tcpmux.conf, unless told to. A fake `dpkg` that says the package
//! is installed shows what the script would do to it.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::TempDir;

#[test]
fn the_package_check_refuses_to_purge_a_package_it_did_not_install() {
    let dir = TempDir::new("fakedpkg");
    let calls = dir.path().join("calls");
    let dpkg = dir.path().join("dpkg");
    fs::write(
        &dpkg,
        format!("#!/bin/sh\necho \"$*\" >> {}\nexit 0\n", calls.display()),
    )
    .unwrap();
    fs::set_permissions(&dpkg, fs::Permissions::from_mode(0o755)).unwrap();
    // After a purge it was told to make, the script goes on to build the
    // package: a cargo that fails stops it there.
    for stop in ["cargo", "cargo-deb"] {
        let path = dir.path().join(stop);
        fs::write(
            &path,
            "#!/bin/sh
exit 1
",
        )
        .unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap()
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/package");
    let run = |may_purge: bool| {
        let _ = fs::remove_file(&calls);
        let mut command = Command::new("bash");
        command
            .arg(script)
            .env("PATH", &path)
            .env("TCPMUXD_PACKAGE_TEST_MARK", dir.path().join("mark"))
            .env_remove("TCPMUXD_PACKAGE_TEST_MAY_PURGE");
        if may_purge {
            command.env("TCPMUXD_PACKAGE_TEST_MAY_PURGE", "1");
        }
        let out = command.output().unwrap();
        let calls = fs::read_to_string(&calls).unwrap_or_default();
        (out, calls)
    };

    let (out, calls) = run(false);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "package check refused: tcpmuxd is installed here, and purging it would destroy its configuration;\n\
         run it on a machine without the package, or set TCPMUXD_PACKAGE_TEST_MAY_PURGE=1 to purge it.\n"
    );
    assert_eq!(calls, "-s tcpmuxd\n", "only asked, never purged");

    let (out, calls) = run(true);
    assert_ne!(out.status.code(), Some(0));
    assert_eq!(calls, "-s tcpmuxd\n--purge tcpmuxd\n");
}
