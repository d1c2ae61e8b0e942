//! nvme-exporter: Prometheus metrics of NVMe drives (temperature from hwmon; throughput,
//! latency and queue depth from the block layer's stat files), read fresh at every scrape.

mod sysfs;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;

use svckit::cli::{usage_exit, version_line, Args, UsageError};

const NAME: &str = "nvme-exporter";
const VERSION: &str = env!("CARGO_PKG_VERSION");
const DEFAULT_LISTEN: &str = "0.0.0.0:9469";
const USAGE: &str = "\
usage: nvme-exporter [--listen ADDR:PORT] [--sysfs-root DIR] [--once]

Serves Prometheus metrics of NVMe drives on http://ADDR:PORT/metrics (404 elsewhere):
temperatures from hwmon (DIR/class/hwmon/hwmon*/ named `nvme`) and reads, writes, bytes,
latency and queue depth from DIR/block/nvme*/stat.

  --listen ADDR:PORT  where to listen (default 0.0.0.0:9469; port 0 picks a free one)
  --sysfs-root DIR    the sysfs tree to read (default /sys)
  --once              print the metrics once to stdout and exit
  --version           print the version and the architecture
";

struct Options {
    listen: SocketAddr,
    root: PathBuf,
    once: bool,
}

enum Command {
    Run(Options),
    Print(String),
}

fn parse(mut args: Args) -> Result<Command, UsageError> {
    let mut options = Options {
        listen: DEFAULT_LISTEN.parse().expect("default address"),
        root: PathBuf::from("/sys"),
        once: false,
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => options.listen = args.value(&arg)?,
            "--sysfs-root" => options.root = args.value(&arg)?,
            "--once" => options.once = true,
            "--help" | "-h" => return Ok(Command::Print(USAGE.to_string())),
            "--version" => return Ok(Command::Print(version_line(NAME, VERSION) + "\n")),
            other => return Err(UsageError(format!("unknown argument `{other}`"))),
        }
    }
    Ok(Command::Run(options))
}

fn scrape(root: &std::path::Path) -> String {
    let snap = sysfs::collect(root);
    for error in &snap.errors {
        eprintln!("{NAME}: {error}");
    }
    sysfs::render(&snap, VERSION).render()
}

fn main() {
    let options = match parse(Args::from_env()) {
        Ok(Command::Run(options)) => options,
        Ok(Command::Print(text)) => return print!("{text}"),
        Err(error) => usage_exit(NAME, &error),
    };
    if options.once {
        print!("{}", scrape(&options.root));
        return;
    }
    let listener = TcpListener::bind(options.listen).unwrap_or_else(|e| {
        eprintln!("{NAME}: cannot listen on {}: {e}", options.listen);
        std::process::exit(1)
    });
    let address = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    eprintln!("{NAME}: listening on http://{address}/metrics, reading {}", options.root.display());
    let root = options.root;
    svckit::http::serve(listener, Arc::new(move || scrape(&root)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(list: &[&str]) -> Result<Command, UsageError> {
        parse(Args::new(list.iter().map(|s| s.to_string())))
    }

    #[test]
    fn flags() {
        let Ok(Command::Run(o)) = parsed(&["--listen=127.0.0.1:0", "--sysfs-root", "/t", "--once"]) else {
            panic!("not parsed")
        };
        assert_eq!((o.listen.to_string().as_str(), o.root.to_str(), o.once), ("127.0.0.1:0", Some("/t"), true));
        let Ok(Command::Run(o)) = parsed(&[]) else { panic!() };
        assert_eq!((o.listen.port(), o.root.to_str()), (9469, Some("/sys")));
    }

    #[test]
    fn mistakes_name_the_argument() {
        assert_eq!(parsed(&["--bogus"]).err(), Some(UsageError("unknown argument `--bogus`".into())));
        let e = parsed(&["--listen", "localhost"]).err().unwrap();
        assert!(e.0.starts_with("`--listen localhost`: invalid socket address"), "{e}");
    }
}
