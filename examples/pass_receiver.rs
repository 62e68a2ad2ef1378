//! A daemon that takes connections passed by in.tcpmuxd (a `pass:` target
//! of the table): it listens on a Unix socket, and for each connection
//! in.tcpmuxd passes it reads the message that says what it is, greets the
//! client and echoes what the client sends, in a thread of its own.
//!
//! ```sh
//! cargo run --example pass_receiver /run/echo/tcpmux.sock
//! # /etc/tcpmux.conf: +echo nobody pass:/run/echo/tcpmux.sock
//! ```
//!
//! A daemon in another language does the same: `recvmsg` on the accepted
//! Unix connection returns the client's socket in an SCM_RIGHTS control
//! message and the text of `tcpmuxd::pass` (its module comment gives the
//! format), ended by an empty line.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixListener;
use std::thread;

fn main() -> anyhow::Result<()> {
    use anyhow::Context;
    let path = std::env::args()
        .nth(1)
        .context("usage: pass_receiver SOCKET_PATH")?;
    // A socket left by an earlier run.
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).with_context(|| format!("cannot listen on {path}"))?;
    println!("listening on {path}");
    for daemon_side in listener.incoming() {
        let daemon_side = daemon_side.context("accept")?;
        let (about, connection) = match tcpmuxd::pass::receive(&daemon_side) {
            Ok(passed) => passed,
            Err(e) => {
                eprintln!("pass_receiver: {e}");
                continue;
            }
        };
        let client = about.client.map_or("unknown".to_owned(), |c| c.to_string());
        println!("passed service={} client={client}", about.service);
        thread::spawn(move || {
            let mut out = TcpStream::from(connection);
            let Ok(input) = out.try_clone() else {
                return;
            };
            let _ = write!(out, "hello {client}, this is {}\r\n", about.service);
            for line in BufReader::new(input).lines() {
                let Ok(line) = line else {
                    break;
                };
                if writeln!(out, "{line}").is_err() {
                    break;
                }
            }
        });
    }
    Ok(())
}
