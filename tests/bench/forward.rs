//! Reaching a running daemon: a forwarded connection through `--listen`
//! against HAProxy (`mode tcp`) and `sslh-select` forwarding to the same
//! backend, with a direct connection to it as the floor and a passed
//! connection beside them; then the relay's throughput against a direct
//! loopback connection, and the listener's memory with 1,000 idle
//! forwarded connections.
//!
//! `cargo bench --bench connections -- --forward [--quick]` runs this
//! section alone. The backend is `tests/bench/greeter.py`, one asyncio
//! loop, the same for every case: it writes a greeting line at once and
//! closes when the client does. Every client sends `greet\r\n` first, which
//! the backend drops: in.tcpmuxd needs it as its request, and sslh
//! connects to a backend only once the client has sent something (or at
//! its timeout, a second or more), so the others get the same bytes. A
//! connection is connect, the request, reading through the greeting (and
//! `+Go` before it through in.tcpmuxd), close; its latency is from connect
//! to the greeting. The cases take turns connection by connection.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::resource::{Resource, getrlimit, setrlimit};

use super::{Listener, Sample, write_table};

const GREETING: &[u8] = b"hello from the backend\r\n";
const REQUEST: &[u8] = b"greet\r\n";
/// What a client waits for before it gives up on a reply.
const PATIENCE: Duration = Duration::from_secs(20);
/// Bytes through one connection in the throughput runs.
const GIB: u64 = 1 << 30;
/// Idle forwarded connections held open for the memory figure.
const IDLE: usize = 1000;

/// What the section measured, for the table of targets.
pub struct Figures {
    /// in.tcpmuxd's forward p50 over HAProxy's and sslh's, one client.
    pub vs_haproxy: Option<f64>,
    pub vs_sslh: Option<f64>,
    /// The same with 64 clients at once.
    pub vs_haproxy_64: Option<f64>,
    pub vs_sslh_64: Option<f64>,
    /// A passed connection's p50 over a forwarded one's.
    pub pass_vs_forward: Option<f64>,
    /// A forwarded connection's throughput over a direct one's.
    pub throughput: f64,
    /// The listener's peak RSS with [`IDLE`] forwarded connections, KiB.
    pub idle_hwm: u64,
}

/// A process this section started, killed and reaped when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One way to the backend: where to connect, what to send, and how the
/// reply must begin; the reply is read through its `lines`-th CR LF.
struct Way {
    name: &'static str,
    addr: SocketAddr,
    request: &'static [u8],
    begins: Vec<u8>,
    lines: usize,
}

/// Connect, request, read through the greeting, close: the time from
/// connect to the greeting, or `None` where the reply was cut short or
/// wrong (sslh-select 1.20 drops some connections under concurrent
/// clients: it reads a backend socket that select did not report, gets
/// EAGAIN and closes both sides). Those are counted, not timed.
fn one(way: &Way) -> Option<Duration> {
    let began = Instant::now();
    let mut client = TcpStream::connect(way.addr).unwrap();
    client.set_read_timeout(Some(PATIENCE)).unwrap();
    client.write_all(way.request).ok()?;
    let mut reply = Vec::with_capacity(128);
    let mut buf = [0u8; 512];
    while reply.windows(2).filter(|w| w == b"\r\n").count() < way.lines {
        match client.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("{}: reading the greeting: {e}", way.name),
        }
    }
    let latency = began.elapsed();
    let complete = reply.windows(2).filter(|w| w == b"\r\n").count() == way.lines;
    (complete && reply.starts_with(&way.begins)).then_some(latency)
}

/// The latencies of one way, and how many of its connections failed.
struct Tally {
    sample: Sample,
    failed: usize,
}

impl Tally {
    fn new(count: usize) -> Tally {
        Tally {
            sample: empty(count),
            failed: 0,
        }
    }

    fn add(&mut self, latency: Option<Duration>) {
        match latency {
            Some(latency) => self.sample.latencies.push(latency),
            None => self.failed += 1,
        }
    }
}

fn empty(count: usize) -> Sample {
    Sample {
        latencies: Vec::with_capacity(count),
        elapsed: Duration::ZERO,
    }
}

/// Every way `count` times, in turns, one client.
fn in_turns(ways: &[Way], count: usize) -> Vec<Tally> {
    let mut tallies: Vec<Tally> = ways.iter().map(|_| Tally::new(count)).collect();
    for _ in 0..count {
        for (way, tally) in ways.iter().zip(&mut tallies) {
            tally.add(one(way));
        }
    }
    for tally in &mut tallies {
        tally.sample.elapsed = tally.sample.latencies.iter().sum();
    }
    tallies
}

/// `clients` threads at once, each taking every way in turn `count` times.
/// A sample's `elapsed` is set so that its rate is `clients` over its mean
/// latency: the rate that way would give if all the clients used it alone
/// at that latency (the ways share the time, so no other rate is its own).
fn concurrent(ways: &Arc<Vec<Way>>, clients: usize, count: usize) -> Vec<Tally> {
    let start = Arc::new(Barrier::new(clients));
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let ways = Arc::clone(ways);
            let start = Arc::clone(&start);
            thread::spawn(move || {
                start.wait();
                let mut mine: Vec<Tally> = ways.iter().map(|_| Tally::new(count)).collect();
                for _ in 0..count {
                    for (way, tally) in ways.iter().zip(&mut mine) {
                        tally.add(one(way));
                    }
                }
                mine
            })
        })
        .collect();
    let mut tallies: Vec<Tally> = ways.iter().map(|_| Tally::new(clients * count)).collect();
    for thread in threads {
        for (tally, theirs) in tallies.iter_mut().zip(thread.join().unwrap()) {
            tally.sample.latencies.extend(theirs.sample.latencies);
            tally.failed += theirs.failed;
        }
    }
    for tally in &mut tallies {
        let total: Duration = tally.sample.latencies.iter().sum();
        tally.sample.elapsed = total / clients as u32;
    }
    tallies
}

/// Prints the tallies of `ways`, with each p50 against the first way's
/// (the direct connection) and against in.tcpmuxd's forward.
fn table(ways: &[Way], tallies: &[Tally], forward: usize) {
    println!(
        "| case | p50 µs | p99 µs | conn/s | failed | p50 / direct | p50 / in.tcpmuxd forward |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (way, tally) in ways.iter().zip(tallies) {
        let sample = &tally.sample;
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {} | {:.2} | {:.2} |",
            way.name,
            sample.p50_us(),
            sample.percentile(99).as_secs_f64() * 1e6,
            sample.per_second(),
            tally.failed,
            sample.p50_us() / tallies[0].sample.p50_us(),
            sample.p50_us() / tallies[forward].sample.p50_us(),
        );
    }
}

/// Lets this process and its children hold the descriptors of 1,000
/// forwarded connections: the listener needs about 6 for each (the client,
/// the backend, two pipes of two ends), the backend and this process one.
fn enough_descriptors() {
    let wanted = 16_384;
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    let hard = if hard < wanted && setrlimit(Resource::RLIMIT_NOFILE, wanted, wanted).is_ok() {
        wanted
    } else {
        hard
    };
    if soft < hard {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
    if hard < wanted {
        println!("(the limit on open files is {hard}: the 1,000 idle connections may not fit)");
    }
}

/// Waits until `running` accepts on `addr`.
fn wait_listening(running: &mut Running, addr: SocketAddr, what: &str) {
    let began = Instant::now();
    while TcpStream::connect(addr).is_err() {
        if let Ok(Some(status)) = running.0.try_wait() {
            panic!("{what} exited before it listened on {addr}: {status}");
        }
        assert!(
            began.elapsed() < PATIENCE,
            "{what} does not listen on {addr}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The greeting backend, and its address.
fn greeter() -> Option<(Running, SocketAddr)> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/bench/greeter.py");
    let Ok(mut child) = Command::new("python3")
        .arg(script)
        .stdout(Stdio::piped())
        .spawn()
    else {
        println!("(python3 is not installed: no forwarding section)");
        return None;
    };
    let mut port = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut port)
        .unwrap();
    let mut running = Running(child);
    let port: u16 = port.trim().parse().expect("greeter.py printed no port");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_listening(&mut running, addr, "greeter.py");
    Some((running, addr))
}

/// HAProxy in `mode tcp` in front of `backend`, where it is installed.
fn start_haproxy(dir: &Path, name: &str, backend: SocketAddr) -> Option<(Running, SocketAddr)> {
    let program = Path::new("/usr/sbin/haproxy");
    if !program.exists() {
        println!("(HAProxy is not installed, /usr/sbin/haproxy: no HAProxy case)");
        return None;
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let conf = dir.join(format!("haproxy-{name}.cfg"));
    fs::write(
        &conf,
        format!(
            "global\n\tmaxconn 4096\ndefaults\n\tmode tcp\n\ttimeout connect 5s\n\
             \ttimeout client 60s\n\ttimeout server 60s\nfrontend front\n\tbind {addr}\n\
             \tdefault_backend greeter\nbackend greeter\n\tserver greeter {backend}\n"
        ),
    )
    .unwrap();
    let child = Command::new(program)
        .arg("-f")
        .arg(&conf)
        .arg("-db")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut running = Running(child);
    wait_listening(&mut running, addr, "haproxy");
    Some((running, addr))
}

/// sslh-select sending any protocol to `backend`, where it is installed.
fn start_sslh(backend: SocketAddr) -> Option<(Running, SocketAddr)> {
    let program = Path::new("/usr/sbin/sslh-select");
    if !program.exists() {
        println!("(sslh is not installed, /usr/sbin/sslh-select: no sslh case)");
        return None;
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    // -n: no reverse lookups for its log line.
    let child = Command::new(program)
        .args(["-f", "-n", "-p", &addr.to_string()])
        .args(["--anyprot", &backend.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut running = Running(child);
    wait_listening(&mut running, addr, "sslh-select");
    Some((running, addr))
}

/// The example daemon that takes passed connections, listening on `socket`,
/// where it has been built.
fn pass_receiver(socket: &Path) -> Option<Running> {
    let mut path = std::env::current_exe().unwrap();
    path.pop();
    if path.ends_with("deps") {
        path.pop();
    }
    let program = path.join("examples/pass_receiver");
    if !program.exists() {
        // cargo bench builds the examples of the test profile only; build
        // the release one beside the bench, with the cargo that runs it.
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let _ = Command::new(cargo)
            .args([
                "build",
                "--release",
                "--quiet",
                "--example",
                "pass_receiver",
            ])
            .arg("--manifest-path")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
            .status();
    }
    if !program.exists() {
        println!(
            "(no {}: `cargo build --release --example pass_receiver` first; no pass case)",
            program.display()
        );
        return None;
    }
    let mut child = Command::new(program)
        .arg(socket)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    said.read_line(&mut line).unwrap();
    assert!(line.starts_with("listening on"), "pass_receiver: {line}");
    // It prints a line a connection: read and drop them.
    thread::spawn(move || while matches!(said.read_line(&mut line), Ok(n) if n > 0) {});
    fs::set_permissions(socket, fs::Permissions::from_mode(0o666)).unwrap();
    Some(Running(child))
}

/// A backend that reads to the end and answers how many bytes it got, a
/// thread a connection.
fn sink() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            thread::spawn(move || {
                let mut buf = vec![0u8; 256 * 1024];
                let mut got = 0u64;
                loop {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got += n as u64,
                    }
                }
                let _ = write!(stream, "{got}\r\n");
            });
        }
    });
    addr
}

/// Writes 1 GiB to `addr` (after `request`, and its `+Go`, when it goes
/// through in.tcpmuxd), ends its side, and waits for the count: MB/s.
fn push(name: &str, addr: SocketAddr, request: Option<&[u8]>) -> f64 {
    let mut client = TcpStream::connect(addr).unwrap();
    client.set_read_timeout(Some(PATIENCE)).unwrap();
    if let Some(request) = request {
        client.write_all(request).unwrap();
        let mut go = [0u8; 5];
        client.read_exact(&mut go).unwrap();
        assert_eq!(&go, b"+Go\r\n");
    }
    let block = vec![b'x'; 256 * 1024];
    let began = Instant::now();
    let mut sent = 0;
    while sent < GIB {
        client.write_all(&block).unwrap();
        sent += block.len() as u64;
    }
    client.shutdown(Shutdown::Write).unwrap();
    let mut count = String::new();
    client.read_to_string(&mut count).unwrap();
    let secs = began.elapsed().as_secs_f64();
    assert_eq!(
        count.trim(),
        GIB.to_string(),
        "{name}: bytes the backend got"
    );
    GIB as f64 / secs / 1e6
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The forward's p50 over that of the way `at`, where that way ran.
fn ratio(tallies: &[Tally], forward: usize, at: Option<usize>) -> Option<f64> {
    at.map(|i| tallies[forward].sample.p50_us() / tallies[i].sample.p50_us())
}

/// Runs the section and prints its tables.
pub fn section(binary: &Path, dir: &Path, n: usize, quick: bool) -> Option<Figures> {
    enough_descriptors();
    println!("\n## Reaching a running daemon: forward and pass against HAProxy and sslh\n");
    let (_greeter, backend) = greeter()?;
    let haproxy = start_haproxy(dir, "greeter", backend);
    let sslh = start_sslh(backend);
    let socket = dir.join("pass.sock");
    let receiver = pass_receiver(&socket);
    let bulk = sink();
    let table_path = write_table(
        dir,
        "forward.conf",
        &format!(
            "+greet nobody tcp:{backend}\n+p nobody pass:{}\n+sink nobody tcp:{bulk}\n",
            socket.display()
        ),
    );
    let listener = Listener::start(binary, &table_path);

    let mut forwarded = b"+Go\r\n".to_vec();
    forwarded.extend_from_slice(GREETING);
    let mut ways = vec![Way {
        name: "direct to the backend",
        addr: backend,
        request: REQUEST,
        begins: GREETING.to_vec(),
        lines: 1,
    }];
    let haproxy_at = haproxy.as_ref().map(|(_, addr)| {
        at(
            &mut ways,
            Way {
                name: "HAProxy, mode tcp",
                addr: *addr,
                request: REQUEST,
                begins: GREETING.to_vec(),
                lines: 1,
            },
        )
    });
    let sslh_at = sslh.as_ref().map(|(_, addr)| {
        at(
            &mut ways,
            Way {
                name: "sslh-select --anyprot",
                addr: *addr,
                request: REQUEST,
                begins: GREETING.to_vec(),
                lines: 1,
            },
        )
    });
    let forward_at = at(
        &mut ways,
        Way {
            name: "in.tcpmuxd --listen, `tcp:` forward",
            addr: listener.addr,
            request: REQUEST,
            begins: forwarded,
            lines: 2,
        },
    );
    let pass_at = receiver.as_ref().map(|_| {
        at(
            &mut ways,
            Way {
                name: "in.tcpmuxd --listen, `pass:` to pass_receiver",
                addr: listener.addr,
                request: b"p\r\n",
                begins: b"+Go\r\nhello 127.0.0.1:".to_vec(),
                lines: 2,
            },
        )
    });

    println!("### One client ({n} connections each, in turns)\n");
    in_turns(&ways, 20);
    let one_client = in_turns(&ways, n);
    table(&ways, &one_client, forward_at);

    let clients = 64;
    let each = if quick { 10 } else { 60 };
    println!(
        "\n### {clients} clients at once ({} connections each way, every client in turns)\n",
        clients * each
    );
    println!("conn/s here is {clients} over the mean latency: the ways share the clients' time.\n");
    let ways = Arc::new(ways);
    let many = concurrent(&ways, clients, each);
    table(&ways, &many, forward_at);

    println!("\n### Throughput: 1 GiB through one connection, in turns\n");
    let rounds = if quick { 1 } else { 3 };
    // HAProxy in front of the same sink, for reference: it too is a third
    // busy thread on the machine's cores. Not sslh-select 1.20: it closes
    // both ways at the client's half-close, so the sink's count is lost.
    let haproxy_bulk = start_haproxy(dir, "sink", bulk);
    let mut pushes: Vec<(&str, SocketAddr, Option<&[u8]>)> = vec![
        ("direct, loopback", bulk, None),
        (
            "forwarded by in.tcpmuxd --listen (splice)",
            listener.addr,
            Some(b"sink\r\n"),
        ),
    ];
    if let Some((_, addr)) = &haproxy_bulk {
        pushes.push(("HAProxy, mode tcp (reference)", *addr, None));
    }
    let mut rates: Vec<Vec<f64>> = pushes.iter().map(|_| Vec::new()).collect();
    for _ in 0..rounds {
        for ((name, addr, request), rates) in pushes.iter().zip(&mut rates) {
            rates.push(push(name, *addr, *request));
        }
    }
    let rates: Vec<f64> = rates.into_iter().map(median).collect();
    println!("| connection | MB/s (median of {rounds}) | / direct |");
    println!("|---|---|---|");
    for ((name, _, _), rate) in pushes.iter().zip(&rates) {
        println!("| {name} | {rate:.0} | {:.2} |", rate / rates[0]);
    }
    let (direct, through) = (rates[0], rates[1]);
    drop(haproxy_bulk);
    drop(listener);

    println!("\n### Memory: {IDLE} idle forwarded connections\n");
    let listener = Listener::start(binary, &table_path);
    let (before, _) = listener.memory();
    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        let mut client = TcpStream::connect(listener.addr).unwrap();
        client.set_read_timeout(Some(PATIENCE)).unwrap();
        client.write_all(REQUEST).unwrap();
        let mut reply = vec![0u8; 5 + GREETING.len()];
        client.read_exact(&mut reply).unwrap();
        assert!(reply.ends_with(GREETING));
        idle.push(client);
    }
    let (rss, hwm) = listener.memory();
    let pid = listener.child.id();
    let fds = fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count();
    let threads = fs::read_dir(format!("/proc/{pid}/task")).unwrap().count();
    println!("| listener | value |");
    println!("|---|---|");
    println!("| RSS before, KiB | {before} |");
    println!("| RSS with {IDLE} forwarded connections, KiB | {rss} |");
    println!("| peak RSS (VmHWM), KiB | {hwm} |");
    println!("| open descriptors | {fds} |");
    println!("| threads | {threads} |");
    drop(idle);
    drop(listener);
    drop(receiver);

    Some(Figures {
        vs_haproxy: ratio(&one_client, forward_at, haproxy_at),
        vs_sslh: ratio(&one_client, forward_at, sslh_at),
        vs_haproxy_64: ratio(&many, forward_at, haproxy_at),
        vs_sslh_64: ratio(&many, forward_at, sslh_at),
        pass_vs_forward: pass_at
            .map(|i| one_client[i].sample.p50_us() / one_client[forward_at].sample.p50_us()),
        throughput: through / direct,
        idle_hwm: hwm,
    })
}

/// Adds `way` to `ways`; where it is.
fn at(ways: &mut Vec<Way>, way: Way) -> usize {
    ways.push(way);
    ways.len() - 1
}

/// The rows of the table of targets.
pub fn targets(figures: &Figures) {
    let row = |name: &str, value: Option<f64>, limit: f64, below: bool| {
        let Some(value) = value else {
            println!("| {name} | not measured | |");
            return;
        };
        let met = if below {
            value <= limit
        } else {
            value >= limit
        };
        let sign = if below { "≤" } else { "≥" };
        let met = if met { "yes" } else { "no" };
        println!("| {name} {sign} {limit} | {value:.2} | {met} |");
    };
    row(
        "forward p50 / HAProxy p50, 1 client",
        figures.vs_haproxy,
        1.0,
        true,
    );
    row(
        "forward p50 / sslh-select p50, 1 client",
        figures.vs_sslh,
        1.0,
        true,
    );
    row(
        "forward p50 / HAProxy p50, 64 clients",
        figures.vs_haproxy_64,
        1.0,
        true,
    );
    row(
        "forward p50 / sslh-select p50, 64 clients",
        figures.vs_sslh_64,
        1.0,
        true,
    );
    row(
        "forwarded throughput / direct loopback, 1 GiB",
        Some(figures.throughput),
        0.9,
        false,
    );
    match figures.pass_vs_forward {
        Some(value) => println!(
            "| pass p50 / forward p50 < 1 | {value:.2} | {} |",
            if value < 1.0 { "yes" } else { "no" }
        ),
        None => println!("| pass p50 / forward p50 < 1 | not measured | |"),
    }
    let mib = figures.idle_hwm as f64 / 1024.0;
    let met = if mib < 64.0 { "yes" } else { "no" };
    println!("| listener peak RSS, {IDLE} idle forwards < 64 MiB | {mib:.2} MiB | {met} |");
}
