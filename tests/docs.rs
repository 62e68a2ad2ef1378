//! The manual pages and the sample table say what the binary does.

mod common;

use std::fs;
use std::path::Path;

use common::{Server, TempDir, run_piped};
use tcpmuxd::event::Outcome;

fn shipped(path: &str) -> String {
    fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

/// The long flags the `--help` of `program` lists.
fn long_flags(program: &Path) -> Vec<String> {
    let out = std::process::Command::new(program)
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    let mut flags: Vec<String> = help
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(str::to_owned)
        .collect();
    flags.sort();
    flags.dedup();
    flags
}

/// Every long flag of `program` is in `page`, where mdoc's `Fl` adds one
/// dash: `.Fl -timeout` prints `--timeout`.
fn check_flags_in_page(program: &Path, page: &str, expected: &[&str]) {
    let text = shipped(page);
    let flags = long_flags(program);
    for flag in expected {
        assert!(
            flags.iter().any(|f| f == flag),
            "{flag} not in --help: {flags:?}"
        );
    }
    for flag in flags {
        let mdoc = format!("Fl {}", &flag[1..]);
        assert!(text.contains(&mdoc), "{flag} is not in {page}");
    }
}

#[test]
fn every_long_flag_is_in_the_manual_pages() {
    let server = [
        "--timeout",
        "--config",
        "--check",
        "--listen",
        "--max-per-source",
        "--ipv4-source-prefix",
        "--ipv6-source-prefix",
        "--accept-proxy",
        "--max-rate-per-source",
        "--rate-backoff",
    ];
    check_flags_in_page(common::binary(), "etc/man/in.tcpmuxd.8", &server);
    let client = common::install_copy(env!("CARGO_BIN_EXE_tcpmux"), "tcpmux");
    check_flags_in_page(
        &client,
        "etc/man/tcpmux.1",
        &["--list", "--port", "--timeout", "--service"],
    );
}

#[test]
fn the_exit_statuses_of_help_and_the_page_agree() {
    let (help, _, _) = run_piped(&["--help"], b"");
    let help = String::from_utf8(help).unwrap();
    let page = shipped("etc/man/in.tcpmuxd.8");
    for code in 0..=10 {
        assert!(
            help.contains(&format!("\n  {code}  ")),
            "exit {code} not in --help"
        );
        assert!(
            page.contains(&format!("\n.It {code}\n")),
            "exit {code} not in the page"
        );
    }
}

#[test]
fn the_sample_table_works_as_shipped_and_with_its_lines_enabled() {
    let dir = TempDir::new("sample");
    let sample = shipped("etc/tcpmux.conf");
    let path = dir.path().join("tcpmux.conf");
    fs::write(&path, &sample).unwrap();
    let table = path.to_str().unwrap();
    let (out, err, code) = run_piped(&["--check", "-c", table], b"");
    assert_eq!((String::from_utf8_lossy(&err).as_ref(), code), ("", 0));
    assert_eq!(
        out,
        format!("# {table}: 0 services besides tcpmux\n").as_bytes()
    );
    let server = Server::inetd().table_at(table);
    assert_eq!(server.ask(b"HELP\r\n"), (b"tcpmux\r\n", 0));

    // Each commented-out service, enabled, is a valid line that serves.
    let enabled: String = sample
        .lines()
        .map(|l| {
            l.strip_prefix('#')
                .filter(|s| s.starts_with('+'))
                .unwrap_or(l)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(&path, enabled).unwrap();
    let (_, err, code) = run_piped(&["--check", "-c", table], b"");
    assert_eq!((String::from_utf8_lossy(&err).as_ref(), code), ("", 0));
    assert_eq!(server.ask(b"HELP\r\n"), (b"tcpmux\r\necho\r\ndate\r\n", 0));
    assert_eq!(server.ask(b"echo\r\nping\r\n"), (b"+Go\r\nping\r\n", 0));
}

/// The README lists the outcomes a log line can name, all of them and no
/// others, in the order of `event::Outcome::ALL`.
#[test]
fn the_readme_lists_every_outcome() {
    let readme = shipped("README.md");
    let sentence = readme
        .split("The outcomes are ")
        .nth(1)
        .and_then(|rest| rest.split('.').next())
        .expect("README: The outcomes are ...");
    let listed: Vec<&str> = sentence
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|word| !word.starts_with('-'))
        .collect();
    let logged: Vec<&str> = Outcome::ALL.iter().map(|o| o.word()).collect();
    assert_eq!(listed, logged, "the README's outcomes against Outcome::ALL");
}
