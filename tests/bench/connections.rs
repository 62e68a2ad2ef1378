//! The benchmark: what a connection costs, side by side with the floor, a
//! static C program that answers `+` and exits, spawned the same way.
//!
//! `cargo bench --bench connections` prints the tables of the README;
//! `-- --quick` runs fewer connections; `-- --forward` only the section on
//! reaching running daemons (`forward.rs`), `-- --tables` and `-- --launch`
//! only theirs. It is a benchmark, not a test: it
//! prints what it measured and asserts nothing about time. Loopback only,
//! every loop bounded in count.

use std::fs;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::resource::{UsageWho, getrusage};

#[path = "../common/mod.rs"]
mod common;
mod forward;

use common::read_reply;

/// Per-connection latencies of one case, and the rate they came at.
struct Sample {
    latencies: Vec<Duration>,
    elapsed: Duration,
}

impl Sample {
    fn percentile(&self, p: usize) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
    }

    fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    fn p50_us(&self) -> f64 {
        self.percentile(50).as_secs_f64() * 1e6
    }
}

fn row(name: &str, sample: &Sample, floor: Option<&Sample>) {
    let ratio = floor.map_or("".to_owned(), |f| {
        format!("{:.2}", sample.p50_us() / f.p50_us())
    });
    println!(
        "| {name} | {:.0} | {:.0} | {:.0} | {ratio} |",
        sample.p50_us(),
        sample.percentile(99).as_secs_f64() * 1e6,
        sample.per_second(),
    );
}

/// A scratch directory anyone can read, so services run as nobody can run
/// what is in it; as root under /run, since in.tcpmuxd refuses a table
/// under a directory others may write to, /tmp included.
fn scratch() -> PathBuf {
    let base = if nix::unistd::geteuid().is_root() {
        PathBuf::from("/run")
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("in.tcpmuxd-bench-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// One program run per connection the inetd way, with its request and the
/// reply it must give.
struct Case<'a> {
    program: &'a Path,
    args: &'a [&'a str],
    request: &'a [u8],
    expect: &'a [u8],
}

/// Runs each case `count` times, taking turns, so that every case sees
/// the machine in the same state: a drift in load or frequency touches
/// all of them alike, which matters when their ratio is the result.
fn interleaved(cases: &[Case], count: usize) -> Vec<Sample> {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut samples: Vec<Sample> = cases
        .iter()
        .map(|_| Sample {
            latencies: Vec::with_capacity(count),
            elapsed: Duration::ZERO,
        })
        .collect();
    for _ in 0..count {
        for (case, sample) in cases.iter().zip(&mut samples) {
            let began = Instant::now();
            let latency = one_connection(&listener, addr, case);
            sample.latencies.push(latency);
            sample.elapsed += began.elapsed();
        }
    }
    samples
}

/// Connects, spawns the program on the accepted socket as inetd does,
/// sends the request and reads the reply to the end; returns the time from
/// connect to the end of the reply, and reaps the program.
fn one_connection(listener: &TcpListener, addr: SocketAddr, case: &Case) -> Duration {
    let began = Instant::now();
    let mut client = TcpStream::connect(addr).unwrap();
    let (server, _) = listener.accept().unwrap();
    let fd = || Stdio::from(OwnedFd::from(server.try_clone().unwrap()));
    let mut child = Command::new(case.program)
        .args(case.args)
        .stdin(fd())
        .stdout(fd())
        .stderr(fd())
        .spawn()
        .unwrap();
    drop(server);
    client.write_all(case.request).unwrap();
    let reply = read_reply(&mut client);
    let latency = began.elapsed();
    assert_eq!(reply, case.expect, "{}", case.program.display());
    // Closed as a client does once it has read to the end: after a refusal
    // the server drains the client's input until it closes (or for 1 s).
    drop(client);
    child.wait().unwrap();
    latency
}

/// One case alone, `count` times in a row.
fn inetd_style(
    program: &Path,
    args: &[&str],
    request: &[u8],
    expect: &[u8],
    count: usize,
) -> Sample {
    let case = Case {
        program,
        args,
        request,
        expect,
    };
    interleaved(&[case], count).remove(0)
}

/// `count` connections to `addr` from each of `clients` threads at once.
fn against(
    addr: SocketAddr,
    request: &'static [u8],
    expect: &'static [u8],
    clients: usize,
    count: usize,
) -> Sample {
    let start = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            thread::spawn(move || {
                (0..count)
                    .map(|_| {
                        let began = Instant::now();
                        let mut client = TcpStream::connect(addr).unwrap();
                        client.write_all(request).unwrap();
                        let reply = read_reply(&mut client);
                        assert_eq!(reply, expect);
                        began.elapsed()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let latencies = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    Sample {
        latencies,
        elapsed: start.elapsed(),
    }
}

/// The floor spawned the inetd way and each request to the listener, in
/// turns, `count` times: the floor first in the result, then one sample a
/// request.
fn listen_turns(
    floor: &Case,
    addr: SocketAddr,
    requests: &[(&[u8], &[u8])],
    count: usize,
) -> Vec<Sample> {
    let spawner = TcpListener::bind("127.0.0.1:0").unwrap();
    let spawner_addr = spawner.local_addr().unwrap();
    let mut samples: Vec<Sample> = (0..=requests.len())
        .map(|_| Sample {
            latencies: Vec::with_capacity(count),
            elapsed: Duration::ZERO,
        })
        .collect();
    for _ in 0..count {
        let began = Instant::now();
        samples[0]
            .latencies
            .push(one_connection(&spawner, spawner_addr, floor));
        samples[0].elapsed += began.elapsed();
        for ((request, expect), sample) in requests.iter().zip(&mut samples[1..]) {
            let began = Instant::now();
            let mut client = TcpStream::connect(addr).unwrap();
            client.write_all(request).unwrap();
            assert_eq!(read_reply(&mut client), *expect);
            let latency = began.elapsed();
            sample.latencies.push(latency);
            sample.elapsed += latency;
        }
    }
    samples
}

/// A syslog socket that reads and drops, so the server logs as it would on
/// a real host instead of finding no /dev/log.
fn log_sink(dir: &Path) -> String {
    let path = dir.join("log");
    let socket = UnixDatagram::bind(&path).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
    thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while socket.recv(&mut buf).is_ok() {}
    });
    path.to_str().unwrap().to_owned()
}

struct Listener {
    child: Child,
    addr: SocketAddr,
}

impl Listener {
    fn start(binary: &Path, table: &str) -> Listener {
        let mut child = Command::new(binary)
            .args(["--listen", "127.0.0.1:0", "--log", "none", "-c", table])
            .args(["--max-connections", "1024", "--max-per-source", "1024"])
            .args(["--max-rate-per-source", "1000000"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // With --log none the listener prints nothing; find its port in /proc.
        let addr = loop {
            if let Some(addr) = listening_port(child.id()) {
                break addr;
            }
            thread::sleep(Duration::from_millis(10));
        };
        drop(child.stderr.take());
        Listener { child, addr }
    }

    /// VmRSS and VmHWM, in KiB.
    fn memory(&self) -> (u64, u64) {
        let status = fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let field = |name: &str| -> u64 {
            let line = status.lines().find(|l| l.starts_with(name)).unwrap();
            line.split_whitespace().nth(1).unwrap().parse().unwrap()
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The loopback port a process listens on, from /proc/net/tcp and the
/// socket inodes among its descriptors.
fn listening_port(pid: u32) -> Option<SocketAddr> {
    let inodes: Vec<String> = fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .flatten()
        .filter_map(|e| fs::read_link(e.path()).ok())
        .filter_map(|l| {
            l.to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')
                .map(str::to_owned)
        })
        .collect();
    let table = fs::read_to_string("/proc/net/tcp").ok()?;
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // State 0A is LISTEN.
        if fields[3] == "0A" && inodes.iter().any(|i| i == fields[9]) {
            let port = u16::from_str_radix(fields[1].split(':').nth(1)?, 16).ok()?;
            return Some(SocketAddr::from(([127, 0, 0, 1], port)));
        }
    }
    None
}

fn write_table(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    path.to_str().unwrap().to_owned()
}

/// A table of `size` services, all open but the last, which refuses
/// 127.0.0.1, so asking for it costs a lookup and no exec.
fn sized_table(dir: &Path, size: usize, program: &Path) -> String {
    let mut text = String::with_capacity(size * 64);
    for i in 0..size - 1 {
        text.push_str(&format!("+service{i} nobody {}\n", program.display()));
    }
    text.push_str(&format!(
        "+service{} nobody allow=192.0.2.0/24 {}\n",
        size - 1,
        program.display()
    ));
    write_table(dir, &format!("table-{size}.conf"), &text)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let inetd_only = std::env::args().any(|a| a == "--inetd-only");
    let n = if quick { 300 } else { 2000 };
    let dir = scratch();
    let binary = dir.join("in.tcpmuxd");
    fs::copy(env!("CARGO_BIN_EXE_in-tcpmuxd"), &binary).unwrap();
    let empty = write_table(&dir, "empty.conf", "");
    let sink = log_sink(&dir);
    let args = ["-c", &empty, "--syslog-socket", &sink];

    if std::env::args().any(|a| a == "--forward") {
        if let Some(figures) = forward::section(&binary, &dir, n, quick) {
            println!("\n## Against the targets\n");
            println!("| target | measured | met |");
            println!("|---|---|---|");
            forward::targets(&figures);
        }
        let _ = fs::remove_dir_all(&dir);
        return;
    }

    // Peak memory of one inetd-mode process: the first child this process
    // waits for (before gcc and rustc build the references), so
    // RUSAGE_CHILDREN holds its peak alone.
    inetd_style(&binary, &args, b"HELP\r\n", b"tcpmux\r\n", 1);
    let inetd_rss = getrusage(UsageWho::RUSAGE_CHILDREN).unwrap().max_rss();

    let floor = dir.join("floor");
    let built = Command::new("gcc")
        .args(["-O2", "-static", "-o"])
        .arg(&floor)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/bench/floor.c"))
        .status()
        .unwrap();
    assert!(built.success(), "gcc -static failed");

    if std::env::args().any(|a| a == "--launch") {
        launch_against_xinetd(&binary, &dir, &floor, n);
        let _ = fs::remove_dir_all(&dir);
        return;
    }
    if std::env::args().any(|a| a == "--tables") {
        table_size_side_by_side(&binary, &dir, &sink, n);
        let _ = fs::remove_dir_all(&dir);
        return;
    }

    // Built as the release profile builds in.tcpmuxd: static, LTO, abort.
    let minimal = dir.join("minimal");
    let built = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned()))
        .args([
            "--edition",
            "2024",
            "-C",
            "opt-level=3",
            "-C",
            "panic=abort",
            "-C",
            "lto",
        ])
        .args([
            "-C",
            "codegen-units=1",
            "-C",
            "strip=symbols",
            "-C",
            "target-feature=+crt-static",
            "-o",
        ])
        .arg(&minimal)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/bench/minimal.rs"
        ))
        .status()
        .unwrap();
    assert!(built.success(), "rustc failed on minimal.rs");

    let services = write_table(
        &dir,
        "services.conf",
        &format!("+svc nobody {}\n", floor.display()),
    );
    let with_services = ["-c", services.as_str(), "--syslog-socket", &sink];

    println!("## Per connection, spawned the inetd way ({n} connections each, in turns)\n");
    println!("| case | p50 µs | p99 µs | conn/s | p50 / floor |");
    println!("|---|---|---|---|---|");
    let unknown: &[u8] = b"-Service not available; send HELP for a list\r\n";
    let cases = [
        Case {
            program: &floor,
            args: &[],
            request: b"HELP\r\n",
            expect: b"+\r\n",
        },
        Case {
            program: &minimal,
            args: &[],
            request: b"HELP\r\n",
            expect: b"+\r\n",
        },
        Case {
            program: &binary,
            args: &args,
            request: b"HELP\r\n",
            expect: b"tcpmux\r\n",
        },
        Case {
            program: &binary,
            args: &args,
            request: b"nosuch\r\n",
            expect: unknown,
        },
        Case {
            program: &binary,
            args: &with_services,
            request: b"svc\r\n",
            expect: b"+Go\r\n+\r\n",
        },
    ];
    // Warm the page cache before any timing.
    interleaved(&cases, 20);
    let mut samples = interleaved(&cases, n).into_iter();
    let floor_sample = samples.next().unwrap();
    let minimal_sample = samples.next().unwrap();
    let help = samples.next().unwrap();
    let refusal = samples.next().unwrap();
    let launch = samples.next().unwrap();
    row("floor: static C, `+` and exit", &floor_sample, None);
    row(
        "minimal static Rust: read a line, `+`",
        &minimal_sample,
        Some(&floor_sample),
    );
    row("in.tcpmuxd: HELP", &help, Some(&floor_sample));
    row("in.tcpmuxd: unknown name", &refusal, Some(&floor_sample));
    row(
        "in.tcpmuxd: launch the floor as a service",
        &launch,
        Some(&floor_sample),
    );

    if inetd_only {
        println!(
            "\nin.tcpmuxd: HELP p50 / floor p50 = {:.2}",
            help.p50_us() / floor_sample.p50_us()
        );
        return;
    }
    let listener = Listener::start(&binary, &services);
    println!("\n## Through `--listen` ({n} connections each, in turns with the floor)\n");
    println!("| case | p50 µs | p99 µs | conn/s | p50 / floor |");
    println!("|---|---|---|---|---|");
    let floor_case = Case {
        program: &floor,
        args: &[],
        request: b"HELP\r\n",
        expect: b"+\r\n",
    };
    let listen_cases: [(&[u8], &[u8]); 3] = [
        (b"HELP\r\n", b"tcpmux\r\nsvc\r\n"),
        (b"nosuch\r\n", unknown),
        (b"svc\r\n", b"+Go\r\n+\r\n"),
    ];
    listen_turns(&floor_case, listener.addr, &listen_cases, 20);
    let mut samples = listen_turns(&floor_case, listener.addr, &listen_cases, n).into_iter();
    let listen_floor = samples.next().unwrap();
    let listen_help = samples.next().unwrap();
    let listen_refusal = samples.next().unwrap();
    let listen_launch = samples.next().unwrap();
    row("floor, spawned the inetd way", &listen_floor, None);
    row("--listen: HELP", &listen_help, Some(&listen_floor));
    row(
        "--listen: unknown name",
        &listen_refusal,
        Some(&listen_floor),
    );
    row(
        "--listen: launch the floor as a service",
        &listen_launch,
        Some(&listen_floor),
    );

    println!("\n## `--listen` under concurrent clients (HELP)\n");
    println!("| clients | connections | p50 µs | p99 µs | conn/s |");
    println!("|---|---|---|---|---|");
    for clients in [1, 16, 64] {
        let each = (n * 4 / clients).max(20);
        let sample = against(
            listener.addr,
            b"HELP\r\n",
            b"tcpmux\r\nsvc\r\n",
            clients,
            each,
        );
        println!(
            "| {clients} | {} | {:.0} | {:.0} | {:.0} |",
            clients * each,
            sample.p50_us(),
            sample.percentile(99).as_secs_f64() * 1e6,
            sample.per_second()
        );
    }
    let (rss, hwm) = listener.memory();
    drop(listener);

    println!("\n## Memory\n");
    println!("| process | KiB |");
    println!("|---|---|");
    println!("| inetd mode, one HELP connection: peak RSS | {inetd_rss} |");
    println!("| listener after the runs above: RSS | {rss} |");
    println!("| listener after the runs above: peak RSS | {hwm} |");

    println!("\n## Cost against table size\n");
    println!(
        "The last service refuses 127.0.0.1, so asking for it is a lookup and a refusal, no exec.\n"
    );
    println!(
        "| services | inetd HELP p50 µs | inetd lookup p50 µs | --listen HELP p50 µs | --listen lookup p50 µs |"
    );
    println!("|---|---|---|---|---|");
    let mut lookups = Vec::new();
    for size in [10, 1000, 100_000] {
        let table = sized_table(&dir, size, &floor);
        let last = format!("service{}\r\n", size - 1);
        let last: &'static [u8] = Box::leak(last.into_bytes().into_boxed_slice());
        let mut list = b"tcpmux\r\n".to_vec();
        for i in 0..size - 1 {
            list.extend_from_slice(format!("service{i}\r\n").as_bytes());
        }
        let list: &'static [u8] = Box::leak(list.into_boxed_slice());
        let refused: &'static [u8] = b"-Service not available; send HELP for a list\r\n";
        let targs = ["-c", table.as_str(), "--syslog-socket", &sink];
        let count = if size > 1000 { n / 10 } else { n / 2 };
        let inetd_help = inetd_style(&binary, &targs, b"HELP\r\n", list, count);
        let inetd_lookup = inetd_style(&binary, &targs, last, refused, count);
        let listener = Listener::start(&binary, &table);
        let listen_help = against(listener.addr, b"HELP\r\n", list, 1, count);
        let listen_lookup = against(listener.addr, last, refused, 1, count);
        println!(
            "| {size} | {:.0} | {:.0} | {:.0} | {:.0} |",
            inetd_help.p50_us(),
            inetd_lookup.p50_us(),
            listen_help.p50_us(),
            listen_lookup.p50_us()
        );
        lookups.push((inetd_lookup.p50_us(), listen_lookup.p50_us()));
    }

    let ratio = table_size_side_by_side(&binary, &dir, &sink, n);
    let launch_ratio = launch_against_xinetd(&binary, &dir, &floor, n);
    let forwarding = forward::section(&binary, &dir, n, quick);

    println!("\n## Against the targets\n");
    println!("| target | measured | met |");
    println!("|---|---|---|");
    let check = |name: &str, value: f64, limit: f64, unit: &str| {
        let met = if value <= limit { "yes" } else { "no" };
        println!("| {name} ≤ {limit}{unit} | {value:.2}{unit} | {met} |");
    };
    check(
        "inetd-mode HELP p50 / floor p50",
        help.p50_us() / floor_sample.p50_us(),
        1.15,
        "",
    );
    check(
        "--listen HELP p50 / floor p50",
        listen_help.p50_us() / listen_floor.p50_us(),
        0.25,
        "",
    );
    check(
        "inetd-mode peak RSS",
        inetd_rss as f64 / 1024.0,
        2.0,
        " MiB",
    );
    check(
        "inetd-mode lookup, 100,000 / 10 services",
        lookups[2].0 / lookups[0].0,
        2.0,
        "",
    );
    if let Some(ratio) = launch_ratio {
        check(
            "--listen launch p50 / xinetd's TCPMUX launch p50",
            ratio,
            0.8,
            "",
        );
    }
    check(
        "inetd-mode lookup, 1,000 / 10 services, side by side",
        ratio,
        1.2,
        "",
    );
    check(
        "--listen lookup, 100,000 / 10 services",
        lookups[2].1 / lookups[0].1,
        2.0,
        "",
    );
    if let Some(figures) = &forwarding {
        forward::targets(figures);
    }
    let _ = fs::remove_dir_all(&dir);
}

/// Inetd mode's cost per connection with a table of 1,000 services against
/// one of 10, the two taking turns connection by connection; returns the
/// ratio of their p50s. Each asks for the table's last service, which
/// refuses 127.0.0.1: the whole table is read, one service looked up, and
/// no program is checked, since programs are checked only at launch.
fn table_size_side_by_side(binary: &Path, dir: &Path, sink: &str, n: usize) -> f64 {
    println!("\n## Inetd mode against table size, side by side\n");
    println!("| services | lookup p50 µs | p99 µs | p50 / 10 services |");
    println!("|---|---|---|---|");
    let refused: &[u8] = b"-Service not available; send HELP for a list\r\n";
    let small = sized_table(dir, 10, Path::new("/bin/true"));
    let large = sized_table(dir, 1000, Path::new("/bin/true"));
    let small_args = ["-c", small.as_str(), "--syslog-socket", sink];
    let large_args = ["-c", large.as_str(), "--syslog-socket", sink];
    let cases = [
        Case {
            program: binary,
            args: &small_args,
            request: b"service9\r\n",
            expect: refused,
        },
        Case {
            program: binary,
            args: &large_args,
            request: b"service999\r\n",
            expect: refused,
        },
    ];
    interleaved(&cases, 20);
    let samples = interleaved(&cases, n);
    let base = samples[0].p50_us();
    for (size, sample) in [10, 1000].iter().zip(&samples) {
        println!(
            "| {size} | {:.0} | {:.0} | {:.2} |",
            sample.p50_us(),
            sample.percentile(99).as_secs_f64() * 1e6,
            sample.p50_us() / base
        );
    }
    samples[1].p50_us() / base
}

/// Launching the floor program through `--listen` against xinetd's own
/// TCPMUX (an INTERNAL tcpmux and a TCPMUXPLUS service, both sending
/// `+Go`), in turns, connection by connection; returns the ratio of their
/// p50s, or `None` where xinetd is not installed.
fn launch_against_xinetd(binary: &Path, dir: &Path, floor: &Path, n: usize) -> Option<f64> {
    let xinetd = Path::new("/usr/sbin/xinetd");
    if !xinetd.exists() {
        println!("\n(xinetd is not installed: no launch comparison)");
        return None;
    }
    println!("\n## Launching a program: `--listen` against xinetd's TCPMUX\n");
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = dir.join("xinetd.conf");
    let service = |lines: &str| {
        format!(
            "{{\n{lines}\tsocket_type = stream\n\tprotocol = tcp\n\twait = no\n\
             \tinstances = UNLIMITED\n\tper_source = UNLIMITED\n\tcps = 1000000 1\n\
             \tlog_on_success =\n\tlog_on_failure =\n}}\n"
        )
    };
    let text = format!(
        "defaults\n{{\n\tlog_type = FILE {}\n}}\nservice tcpmux\n{}service floor\n{}",
        dir.join("xinetd.log").display(),
        service(&format!(
            "\ttype = INTERNAL UNLISTED\n\tid = tcpmux-server\n\tuser = root\n\tport = {port}\n\tbind = 127.0.0.1\n"
        )),
        service(&format!(
            "\ttype = TCPMUXPLUS UNLISTED\n\tuser = nobody\n\tserver = {}\n",
            floor.display()
        )),
    );
    fs::write(&conf, text).unwrap();
    let mut xinetd = Command::new(xinetd)
        .args(["-dontfork", "-f"])
        .arg(&conf)
        .arg("-pidfile")
        .arg(dir.join("xinetd.pid"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let xinetd_addr = SocketAddr::from(([127, 0, 0, 1], port));
    let began = Instant::now();
    while TcpStream::connect(xinetd_addr).is_err() {
        assert!(
            began.elapsed() < Duration::from_secs(20),
            "xinetd does not listen"
        );
        thread::sleep(Duration::from_millis(20));
    }
    let mut probe = TcpStream::connect(xinetd_addr).unwrap();
    probe.write_all(b"floor\r\n").unwrap();
    let xinetd_reply: &'static [u8] = Box::leak(read_reply(&mut probe).into_boxed_slice());
    let table = write_table(
        dir,
        "launch.conf",
        &format!("+floor nobody {}\n", floor.display()),
    );
    let listener = Listener::start(binary, &table);
    let cases: [(SocketAddr, &[u8]); 2] = [
        (xinetd_addr, xinetd_reply),
        (listener.addr, b"+Go\r\n+\r\n"),
    ];
    let mut samples: Vec<Sample> = (0..2)
        .map(|_| Sample {
            latencies: Vec::with_capacity(n),
            elapsed: Duration::ZERO,
        })
        .collect();
    for round in 0..n + 20 {
        for ((addr, expect), sample) in cases.iter().zip(&mut samples) {
            let began = Instant::now();
            let mut client = TcpStream::connect(addr).unwrap();
            client.write_all(b"floor\r\n").unwrap();
            assert_eq!(read_reply(&mut client), *expect);
            let latency = began.elapsed();
            // The first rounds warm both up and are not counted.
            if round >= 20 {
                sample.latencies.push(latency);
                sample.elapsed += latency;
            }
        }
    }
    let _ = xinetd.kill();
    let _ = xinetd.wait();
    println!(
        "xinetd's reply: {:?}\n",
        String::from_utf8_lossy(xinetd_reply)
    );
    println!("| server | p50 µs | p99 µs | conn/s | p50 / xinetd |");
    println!("|---|---|---|---|---|");
    let base = samples[0].p50_us();
    for (name, sample) in ["xinetd TCPMUXPLUS", "in.tcpmuxd --listen"]
        .iter()
        .zip(&samples)
    {
        println!(
            "| {name} | {:.0} | {:.0} | {:.0} | {:.2} |",
            sample.p50_us(),
            sample.percentile(99).as_secs_f64() * 1e6,
            sample.per_second(),
            sample.p50_us() / base
        );
    }
    Some(samples[1].p50_us() / base)
}
