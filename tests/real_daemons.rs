//! Real daemons around in.tcpmuxd, run from configurations of the test's
//! own in a scratch directory, on loopback ports chosen here: nginx behind
//! `proxy=v1` and `proxy=v2` forwards, logging the client address the
//! header gave; HAProxy with `send-proxy-v2` and `send-proxy` in front of
//! `--listen --accept-proxy`; sshd as a running daemon behind `tcp:`,
//! reached with `ssh -o ProxyCommand='tcpmux ...'`. Each needs its program,
//! which `.ci/run` installs: missing skips here and fails in CI.

mod common;

use common::probe_report as report;

use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{
    Running, Server, TempDir, connect, connect_from, free_port, install_copy, loopback, present,
    read_reply, root, wait_until,
};
use tcpmuxd::protocol::UNKNOWN_SERVICE;
use tcpmuxd::session::NO_PROXY_HEADER;

/// `command`, a daemon in the foreground with its standard error in
/// `dir/NAME.stderr`, once it accepts connections on 127.0.0.1:`port`. A
/// daemon that exits instead fails the test with what it said.
fn daemon(name: &str, command: &mut Command, dir: &Path, port: u16) -> Running {
    let stderr = dir.join(format!("{name}.stderr"));
    let mut running = Running(
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}")),
    );
    wait_until(&format!("{name} never listened on {port}"), || {
        if let Some(status) = running.0.try_wait().unwrap() {
            panic!(
                "{name} exited, {status}:\n{}",
                fs::read_to_string(&stderr).unwrap_or_default()
            );
        }
        TcpStream::connect(loopback(port)).is_ok()
    });
    running
}

/// The lines of a log file a daemon writes, once it holds `count`.
fn log_lines(path: &Path, count: usize) -> Vec<String> {
    let read = || -> Vec<String> {
        fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    };
    wait_until(
        &format!("{} never held {count} lines", path.display()),
        || read().len() >= count,
    );
    read()
}

/// A listener's log line without its `in.tcpmuxd[pid]: `.
fn event(line: &str) -> &str {
    line.split_once("]: ").map_or(line, |(_, event)| event)
}

const NGINX: &str = "/usr/sbin/nginx";

/// nginx on 127.0.0.1:`port` reading a PROXY header on every connection,
/// answering every request with a fixed body, and logging the header's
/// client, then its own peer (the relay). One process, as root too
/// (`master_process off`), so that killing it leaves no worker behind;
/// every path it writes, temporary directories included, is in `dir`.
fn nginx(dir: &Path, port: u16) -> Running {
    let d = dir.to_str().unwrap();
    let config = dir.join("nginx.conf");
    fs::write(
        &config,
        format!(
            "master_process off;\n\
             pid {d}/nginx.pid;\n\
             error_log {d}/error.log info;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n\
             \x20   log_format tcpmux '$proxy_protocol_addr:$proxy_protocol_port via $remote_addr \"$request\" $status';\n\
             \x20   access_log {d}/access.log tcpmux;\n\
             \x20   client_body_temp_path {d}/body;\n\
             \x20   proxy_temp_path {d}/proxy;\n\
             \x20   fastcgi_temp_path {d}/fastcgi;\n\
             \x20   uwsgi_temp_path {d}/uwsgi;\n\
             \x20   scgi_temp_path {d}/scgi;\n\
             \x20   server_tokens off;\n\
             \x20   server {{\n\
             \x20       listen 127.0.0.1:{port} proxy_protocol;\n\
             \x20       default_type text/plain;\n\
             \x20       location / {{ return 200 \"served by nginx\\n\"; }}\n\
             \x20   }}\n\
             }}\n"
        ),
    )
    .unwrap();
    daemon(
        "nginx",
        Command::new(NGINX)
            .arg("-c")
            .arg(&config)
            .args(["-p", &format!("{d}/"), "-e", "stderr"])
            .args(["-g", "daemon off;"]),
        dir,
        port,
    )
}

/// nginx's answer to `GET / HTTP/1.0` after the `+Go`: the status line and
/// the body exactly, and the headers that say the body is all there is.
fn assert_nginx_answered(reply: &[u8], what: &str) {
    let text = String::from_utf8_lossy(reply);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("{what}: no end of headers in {text:?}"));
    assert_eq!(body, "served by nginx\n", "{what}");
    let lines: Vec<&str> = head.split("\r\n").collect();
    assert_eq!(lines[..2], ["+Go", "HTTP/1.1 200 OK"], "{what}: {text:?}");
    for header in ["Content-Length: 16", "Connection: close"] {
        assert!(lines.contains(&header), "{what}: no {header:?} in {text:?}");
    }
}

#[test]
fn nginx_behind_a_forward_logs_the_client_the_proxy_header_gave() {
    if !present(NGINX) {
        return;
    }
    let dir = TempDir::new("nginx");
    let port = free_port();
    let _nginx = nginx(dir.path(), port);
    let access_log = dir.path().join("access.log");
    let request = b"web\r\nGET / HTTP/1.0\r\n\r\n";
    let mut served = 0;
    for version in ["v1", "v2"] {
        let table = format!("+web nobody proxy={version} tcp:127.0.0.1:{port}\n");
        let forwarded = format!(" name=web outcome=forward to=tcp:127.0.0.1:{port}");

        // Inetd mode: the client's address is the accepted socket's peer.
        let answer = Server::inetd().table(&table).syslog().ask(request);
        let what = format!("inetd {version}");
        assert_eq!(answer.code, 0, "{what}: {answer:?}");
        assert_nginx_answered(&answer.reply, &what);
        let expected = format!("]: peer={}{forwarded}", answer.client);
        assert!(answer.log_line().ends_with(&expected), "{answer:?}");
        served += 1;
        assert_eq!(
            log_lines(&access_log, served)[served - 1],
            format!(
                "{}:{} via 127.0.0.1 \"GET / HTTP/1.0\" 200",
                answer.client.ip(),
                answer.client.port()
            ),
            "{what}"
        );

        // --listen, from 127.0.0.1 and from ::1: a TCP6 header for nginx
        // behind an IPv4 forward.
        let server = Server::listen().table(&table).start();
        for addr in [server.v4, server.v6] {
            let what = format!("listen {version} from {addr}");
            let mut stream = connect(addr);
            let client = stream.local_addr().unwrap();
            stream.write_all(request).unwrap();
            stream.shutdown(Shutdown::Write).unwrap();
            assert_nginx_answered(&read_reply(&mut stream), &what);
            let logged = server.expect_log(&format!("peer={client} "));
            assert_eq!(event(&logged), format!("peer={client}{forwarded}"));
            served += 1;
            assert_eq!(
                log_lines(&access_log, served)[served - 1],
                format!(
                    "{}:{} via 127.0.0.1 \"GET / HTTP/1.0\" 200",
                    client.ip(),
                    client.port()
                ),
                "{what}"
            );
        }
    }
}

const HAPROXY: &str = "/usr/sbin/haproxy";

/// HAProxy in TCP mode on loopback, in front of a listener that takes
/// PROXY headers from 127.0.0.1 only. The client connects from 127.0.0.2,
/// and the probe admits 127.0.0.2 only: as the listener's own peer is
/// HAProxy at 127.0.0.1, only the header lets the client in.
#[test]
fn haproxy_in_front_of_accept_proxy_gives_the_clients_address() {
    if !(root() && present(HAPROXY)) {
        return;
    }
    let server = Server::listen()
        .probe()
        .table("+probe nobody allow=127.0.0.2 {dir}/probe\n")
        .args(["--accept-proxy", "127.0.0.1"])
        .start();
    let dir = TempDir::new("haproxy");
    // A front end for each version of the header.
    let (v2, v1) = (free_port(), free_port());
    let config = dir.path().join("haproxy.cfg");
    let backend = server.v4;
    fs::write(
        &config,
        format!(
            "global\n\
             \x20   maxconn 64\n\
             defaults\n\
             \x20   mode tcp\n\
             \x20   timeout connect 5s\n\
             \x20   timeout client 30s\n\
             \x20   timeout server 30s\n\
             listen front_v2\n\
             \x20   bind 127.0.0.1:{v2}\n\
             \x20   server mux {backend} send-proxy-v2\n\
             listen front_v1\n\
             \x20   bind 127.0.0.1:{v1}\n\
             \x20   server mux {backend} send-proxy\n"
        ),
    )
    .unwrap();
    let mut command = Command::new(HAPROXY);
    command.arg("-f").arg(&config).arg("-db");
    let _haproxy = daemon("haproxy", &mut command, dir.path(), v2);
    wait_until("haproxy's second front end never listened", || {
        TcpStream::connect(loopback(v1)).is_ok()
    });

    for (version, front) in [("send-proxy-v2", v2), ("send-proxy", v1)] {
        // From 127.0.0.2 through HAProxy: the probe sees the client.
        let mut stream = connect_from("127.0.0.2", loopback(front));
        let client = stream.local_addr().unwrap();
        stream.write_all(b"probe\r\nhello\r\n").unwrap();
        stream.shutdown(Shutdown::Write).unwrap();
        let reply = read_reply(&mut stream);
        assert!(
            reply.starts_with(b"+Go\r\n"),
            "{version}: {}",
            String::from_utf8_lossy(&reply)
        );
        for (key, value) in [
            ("TCPREMOTEIP", "127.0.0.2".to_owned()),
            ("TCPREMOTEPORT", client.port().to_string()),
            ("TCPLOCALIP", "127.0.0.1".to_owned()),
            ("TCPLOCALPORT", front.to_string()),
        ] {
            assert_eq!(
                report(&reply, &format!("env {key}=")),
                format!("env {key}={value}"),
                "{version}"
            );
        }
        // Its own socket's peer is still HAProxy.
        assert!(report(&reply, "peer=").starts_with("peer=127.0.0.1 "));
        assert_eq!(report(&reply, "read="), "read=hello", "{version}");
        let logged = server.expect_log(&format!("peer={client} "));
        let line = event(&logged);
        assert!(
            line.starts_with(&format!("peer={client} via=127.0.0.1:")),
            "{version}: {line}"
        );
        assert!(
            line.contains(" name=probe outcome=launch user=nobody "),
            "{version}: {line}"
        );

        // From 127.0.0.1 through HAProxy: the header says 127.0.0.1, which
        // the probe does not admit.
        let mut stream = connect_from("127.0.0.1", loopback(front));
        let client = stream.local_addr().unwrap();
        stream.write_all(b"probe\r\n").unwrap();
        stream.shutdown(Shutdown::Write).unwrap();
        assert_eq!(read_reply(&mut stream), UNKNOWN_SERVICE, "{version}");
        let logged = server.expect_log(&format!("peer={client} "));
        let line = event(&logged);
        assert!(
            line.starts_with(&format!("peer={client} via=127.0.0.1:")),
            "{version}: {line}"
        );
        assert!(
            line.ends_with(" name=probe outcome=denied"),
            "{version}: {line}"
        );
    }

    // From 127.0.0.1 straight to the listener: no header, refused.
    let mut stream = connect(server.v4);
    let client = stream.local_addr().unwrap();
    stream.write_all(b"probe\r\nhello\r\n").unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    assert_eq!(reply, NO_PROXY_HEADER);
    assert_eq!(
        NO_PROXY_HEADER,
        b"-Bad request: a PROXY protocol header was expected\r\n"
    );
    let logged = server.expect_log(&format!("peer={client} "));
    assert_eq!(
        event(&logged),
        format!("peer={client} outcome=bad-line (no PROXY protocol header)")
    );
}

const SSHD: &str = "/usr/sbin/sshd";
const SSH: &str = "/usr/bin/ssh";
const SSH_KEYGEN: &str = "/usr/bin/ssh-keygen";

/// sshd as a running daemon on 127.0.0.1:`port`, with a host key and a
/// user key of the test's own in `dir`; the machine's sshd, its keys and
/// its pid file are left alone. Its log goes to `dir/sshd.stderr`.
fn sshd(dir: &Path, port: u16) -> (Running, PathBuf) {
    let extra = format!("ListenAddress 127.0.0.1:{port}\nPidFile none\n");
    let config = common::throwaway_sshd(dir, &extra);
    let mut command = Command::new(SSHD);
    command.args(["-D", "-e", "-f"]).arg(&config);
    (
        daemon("sshd", &mut command, dir, port),
        dir.join("user_key"),
    )
}

/// ssh through `tcpmux -p PORT %h ssh` as its ProxyCommand, running `cat`
/// on 1 MiB: what comes back must be the same bytes.
fn ssh_cat_through(port: u16, key: &Path) {
    let tcpmux = install_copy(env!("CARGO_BIN_EXE_tcpmux"), "tcpmux");
    let proxy = format!("{} -p {port} %h ssh", tcpmux.display());
    let data = common::binary_data(1 << 20);
    let mut ssh = Command::new(SSH)
        .args(["-F", "/dev/null", "-o", &format!("ProxyCommand={proxy}")])
        .args(["-o", "StrictHostKeyChecking=no"])
        .args(["-o", "UserKnownHostsFile=/dev/null"])
        .args(["-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-i"])
        .arg(key)
        .args(["root@127.0.0.1", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = ssh.stdin.take().unwrap();
    let input = data.clone();
    let writer = std::thread::spawn(move || stdin.write_all(&input).unwrap());
    let out = ssh.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(
        out.status.success(),
        "ssh: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout == data, "{} bytes came back", out.stdout.len());
}

/// sshd running on its own port, not started per connection, behind
/// `tcp:`, in both modes (inetd mode under systemd-socket-activate).
#[test]
fn ssh_through_tcpmux_reaches_a_running_sshd() {
    if !(root() && [SSHD, SSH, SSH_KEYGEN].iter().all(|p| present(p))) {
        return;
    }
    let dir = TempDir::new("sshd-daemon");
    let port = free_port();
    let (_sshd, key) = sshd(dir.path(), port);
    let table = format!("+ssh nobody tcp:127.0.0.1:{port}\n");
    let logged = dir.path().join("sshd.stderr");
    let accepted = || {
        fs::read_to_string(&logged)
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("Accepted publickey for root from 127.0.0.1 port "))
            .count()
    };

    let server = Server::listen().table(&table).start();
    ssh_cat_through(server.v4.port(), &key);
    let line = server.expect_log(" name=ssh ");
    assert!(
        event(&line).ends_with(&format!(
            " name=ssh outcome=forward to=tcp:127.0.0.1:{port}"
        )),
        "{line}"
    );
    // sshd logged the login, from the relay (here 127.0.0.1 too).
    wait_until("sshd never logged the login", || accepted() == 1);

    let inetd = Server::inetd().table(&table);
    let Some((_activate, mux)) =
        common::socket_activated(&inetd.argv().iter().map(String::as_str).collect::<Vec<_>>())
    else {
        return;
    };
    ssh_cat_through(mux, &key);
    wait_until("sshd never logged the second login", || accepted() == 2);
}
