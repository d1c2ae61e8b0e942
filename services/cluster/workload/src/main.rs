//! workload: the cluster's test workloads (message passing over TCP, storage, CPU, and all
//! three at once), each ending by printing its metrics as Prometheus text on stdout.

mod cpu;
mod pingpong;
mod storage;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use svckit::cli::{usage_exit, version_line, Args, UsageError};
use svckit::expo::Registry;

const NAME: &str = "workload";
const VERSION: &str = env!("CARGO_PKG_VERSION");
const USAGE: &str = "\
usage: workload pingpong --listen ADDR:PORT [--peers N]
       workload pingpong --connect ADDR:PORT [--messages N] [--message-size BYTES]
       workload storage --dir DIR [--files N] [--file-size BYTES] [--block BYTES] [--keep]
       workload cpu [--iterations N] [--threads N]
       workload mixed --dir DIR [any of the cpu, storage and --messages/--message-size options]

pingpong: the server checks and echoes numbered messages from each of N clients in turn (it
  prints `listening on ADDR:PORT` on stderr first; port 0 picks one); the client times each
  round trip. Each side reports the other's architecture from the hello they exchange.
storage: in a directory of its own under DIR, writes N files block by block, fsyncs each,
  reads them back checking every byte, removes them (unless --keep).
cpu: N iterations of an integer mixing function over threads; the checksum is the same for
  any thread count and on every architecture.
mixed: cpu, storage and a loopback pingpong at the same time.

When the work is done its metrics go to stdout (Prometheus text), and to PATH with
--metrics-file PATH. Defaults: --messages 1000, --message-size 64, --files 16,
--file-size 1048576, --block 65536, --iterations 100000, --threads 1, --peers 1,
--timeout 60 (seconds a socket may wait).
";

#[derive(Debug, Clone)]
struct Options {
    command: String,
    given: Vec<String>,
    listen: Option<SocketAddr>,
    connect: Option<SocketAddr>,
    peers: u64,
    messages: u64,
    message_size: usize,
    dir: Option<PathBuf>,
    files: u64,
    file_size: u64,
    block: u64,
    keep: bool,
    iterations: u64,
    threads: u64,
    timeout: Duration,
    metrics_file: Option<PathBuf>,
}

/// The options each command takes (besides --metrics-file and --timeout).
fn allowed(command: &str) -> &'static [&'static str] {
    const CPU: &[&str] = &["--iterations", "--threads"];
    const STORAGE: &[&str] = &["--dir", "--files", "--file-size", "--block", "--keep"];
    match command {
        "pingpong" => &["--listen", "--connect", "--peers", "--messages", "--message-size"],
        "storage" => STORAGE,
        "cpu" => CPU,
        _ => &["--dir", "--files", "--file-size", "--block", "--keep", "--iterations", "--threads", "--messages", "--message-size"],
    }
}

enum Command {
    Run(Options),
    Print(String),
}

fn positive<T: PartialOrd + Default + std::fmt::Display>(flag: &str, value: T) -> Result<T, UsageError> {
    if value > T::default() {
        Ok(value)
    } else {
        Err(UsageError(format!("`{flag} {value}`: give a number above 0")))
    }
}

fn parse_args(mut args: Args) -> Result<Command, UsageError> {
    let command = match args.next() {
        None => return Err(UsageError("name a workload: pingpong, storage, cpu or mixed".into())),
        Some(c) if c == "--help" || c == "-h" => return Ok(Command::Print(USAGE.to_string())),
        Some(c) if c == "--version" => return Ok(Command::Print(version_line(NAME, VERSION) + "\n")),
        Some(c) if ["pingpong", "storage", "cpu", "mixed"].contains(&c.as_str()) => c,
        Some(c) => return Err(UsageError(format!("unknown workload `{c}`: pingpong, storage, cpu or mixed"))),
    };
    let mut o = Options {
        command, given: Vec::new(), listen: None, connect: None, peers: 1, messages: 1000, message_size: 64,
        dir: None, files: 16, file_size: 1 << 20, block: 64 << 10, keep: false, iterations: 100_000, threads: 1,
        timeout: Duration::from_secs(60), metrics_file: None,
    };
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--listen" => o.listen = Some(args.value(&flag)?),
            "--connect" => o.connect = Some(args.value(&flag)?),
            "--peers" => o.peers = positive(&flag, args.value(&flag)?)?,
            "--messages" => o.messages = args.value(&flag)?,
            "--message-size" => match args.value::<usize>(&flag)? {
                size if (8..=pingpong::MAX_FRAME).contains(&size) => o.message_size = size,
                size => return Err(UsageError(format!("`--message-size {size}`: give 8 to {} bytes", pingpong::MAX_FRAME))),
            },
            "--dir" => o.dir = Some(args.value(&flag)?),
            "--files" => o.files = args.value(&flag)?,
            "--file-size" => o.file_size = args.value(&flag)?,
            "--block" => o.block = positive(&flag, args.value(&flag)?)?,
            "--keep" => o.keep = true,
            "--iterations" => o.iterations = args.value(&flag)?,
            "--threads" => o.threads = positive(&flag, args.value(&flag)?)?,
            "--timeout" => o.timeout = Duration::from_secs(positive(&flag, args.value(&flag)?)?),
            "--metrics-file" => o.metrics_file = Some(args.value(&flag)?),
            "--help" | "-h" => return Ok(Command::Print(USAGE.to_string())),
            other if other.starts_with("--") => return Err(UsageError(format!("unknown option `{other}`"))),
            other => return Err(UsageError(format!("unexpected argument `{other}`"))),
        }
        if !["--timeout", "--metrics-file"].contains(&flag.as_str()) && !allowed(&o.command).contains(&flag.as_str()) {
            return Err(UsageError(format!("`{flag}` is not an option of `{}`", o.command)));
        }
        o.given.push(flag);
    }
    match o.command.as_str() {
        "pingpong" if o.listen.is_some() == o.connect.is_some() => {
            return Err(UsageError("pingpong needs exactly one of `--listen ADDR:PORT` (server) or `--connect ADDR:PORT` (client)".into()))
        }
        "pingpong" if o.listen.is_some() && o.given.iter().any(|f| f == "--messages" || f == "--message-size") => {
            return Err(UsageError("`--messages` and `--message-size` are the client's (`--connect`)".into()))
        }
        "pingpong" if o.connect.is_some() && o.given.iter().any(|f| f == "--peers") => {
            return Err(UsageError("`--peers` is the server's (`--listen`)".into()))
        }
        "storage" | "mixed" if o.dir.is_none() => return Err(UsageError(format!("{} needs `--dir DIR`", o.command))),
        _ => {}
    }
    Ok(Command::Run(o))
}

fn storage_plan(o: &Options) -> storage::Plan {
    storage::Plan { dir: o.dir.clone().expect("checked"), files: o.files, size: o.file_size, block: o.block, keep: o.keep }
}

fn join<T>(handle: thread::JoinHandle<io::Result<T>>, what: &str) -> io::Result<T> {
    handle.join().unwrap_or_else(|_| Err(io::Error::other(format!("the {what} thread panicked"))))
}

/// Run the workload; its metrics, and whether the work found a fault (data that did not read
/// back as written).
fn run(o: &Options) -> io::Result<(Registry, bool)> {
    let mut r = Registry::new();
    let mut faulty = false;
    match o.command.as_str() {
        "pingpong" => {
            let report = if let Some(address) = o.listen {
                let listener = TcpListener::bind(address)?;
                eprintln!("{NAME}: listening on {}", listener.local_addr()?);
                pingpong::server(listener, o.peers, o.timeout)?
            } else {
                pingpong::client(o.connect.expect("checked"), o.messages, o.message_size, o.timeout)?
            };
            eprintln!("{NAME}: {} {} messages with a {} peer", report.role, report.received, report.peer_arch);
            report.metrics(&mut r);
        }
        "storage" => {
            let (report, _) = storage::run(&storage_plan(o))?;
            faulty = report.mismatches > 0;
            report.metrics(&mut r, o.dir.as_deref().expect("checked"));
        }
        "cpu" => cpu::run(o.iterations, o.threads).metrics(&mut r),
        _ => {
            let (iterations, threads, plan) = (o.iterations, o.threads, storage_plan(o));
            let cpu = thread::spawn(move || Ok(cpu::run(iterations, threads)));
            let storage = thread::spawn(move || storage::run(&plan));
            let listener = TcpListener::bind("127.0.0.1:0")?;
            let address = listener.local_addr()?;
            let timeout = o.timeout;
            let server = thread::spawn(move || pingpong::server(listener, 1, timeout));
            let client = pingpong::client(address, o.messages, o.message_size, o.timeout);
            let server = join(server, "pingpong server");
            let (client, server) = (client?, server?);
            client.metrics(&mut r);
            server.metrics(&mut r);
            join(cpu, "cpu")?.metrics(&mut r);
            let (storage, _) = join(storage, "storage")?;
            faulty = storage.mismatches > 0;
            storage.metrics(&mut r, o.dir.as_deref().expect("checked"));
        }
    }
    Ok((r, faulty))
}

fn main() {
    let o = match parse_args(Args::from_env()) {
        Ok(Command::Run(o)) => o,
        Ok(Command::Print(text)) => return print!("{text}"),
        Err(error) => usage_exit(NAME, &error),
    };
    let started = Instant::now();
    let (work, faulty) = run(&o).unwrap_or_else(|e| {
        eprintln!("{NAME}: {}: {e}", o.command);
        std::process::exit(1)
    });
    let mut r = Registry::new();
    r.gauge("workload_info", "The workload run, its version and the architecture it ran on.",
            &[("workload", &o.command), ("version", VERSION), ("arch", std::env::consts::ARCH)], 1.0);
    r.gauge("workload_duration_seconds", "Wall time of the whole workload.", &[("workload", &o.command)],
            started.elapsed().as_secs_f64());
    r.extend(work);
    let text = r.render();
    print!("{text}");
    if let Some(file) = &o.metrics_file {
        if let Err(e) = svckit::files::write_atomic(file, text.as_bytes()) {
            eprintln!("{NAME}: cannot write {}: {e}", file.display());
            std::process::exit(1);
        }
    }
    if faulty {
        eprintln!("{NAME}: files did not read back as written (workload_storage_mismatched_files_total)");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Options, UsageError> {
        match parse_args(Args::new(list.iter().map(|s| s.to_string())))? {
            Command::Run(o) => Ok(o),
            Command::Print(_) => panic!("printed"),
        }
    }

    fn error(list: &[&str]) -> String {
        args(list).unwrap_err().0
    }

    #[test]
    fn commands_and_defaults() {
        let o = args(&["pingpong", "--connect", "127.0.0.1:7", "--messages=5"]).unwrap();
        assert_eq!((o.connect.unwrap().port(), o.messages, o.message_size), (7, 5, 64));
        let o = args(&["cpu", "--threads", "2"]).unwrap();
        assert_eq!((o.iterations, o.threads), (100_000, 2));
        let o = args(&["mixed", "--dir", "/d", "--files", "2", "--messages", "3", "--metrics-file", "m"]).unwrap();
        assert_eq!((o.files, o.messages, o.metrics_file.unwrap().to_str()), (2, 3, Some("m")));
    }

    #[test]
    fn mistakes() {
        assert!(error(&[]).contains("name a workload"));
        assert!(error(&["sleep"]).contains("unknown workload `sleep`"));
        assert!(error(&["cpu", "--dir", "/d"]).contains("`--dir` is not an option of `cpu`"));
        assert!(error(&["pingpong"]).contains("exactly one of"));
        assert!(error(&["pingpong", "--listen", "127.0.0.1:0", "--connect", "127.0.0.1:1"]).contains("exactly one of"));
        assert!(error(&["pingpong", "--listen", "127.0.0.1:0", "--messages", "3"]).contains("the client's"));
        assert!(error(&["pingpong", "--connect", "127.0.0.1:1", "--peers", "2"]).contains("the server's"));
        assert!(error(&["pingpong", "--connect", "127.0.0.1:1", "--message-size", "4"]).contains("give 8 to"));
        assert!(error(&["storage"]).contains("needs `--dir DIR`"));
        assert!(error(&["cpu", "--threads", "0"]).contains("above 0"));
        assert!(error(&["cpu", "--bogus"]).contains("unknown option `--bogus`"));
    }

    #[test]
    fn mixed_runs_everything_and_reports_it() {
        let dir = std::env::temp_dir().join(format!("workload-mixed-{}", std::process::id()));
        let o = args(&["mixed", "--dir", dir.to_str().unwrap(), "--files", "2", "--file-size", "5000",
                       "--messages", "20", "--iterations", "100", "--threads", "2"]).unwrap();
        let (r, faulty) = run(&o).unwrap();
        let text = r.render();
        assert!(!faulty);
        for line in ["workload_messages_received_total{role=\"server\"} 20", "workload_cpu_iterations_total 100"] {
            assert!(text.lines().any(|l| l == line), "no {line} in\n{text}");
        }
        assert!(text.contains("workload_storage_written_bytes_total{dir="), "{text}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
