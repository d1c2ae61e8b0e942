//! fan-controller: drives a hwmon PWM from a temperature along a fan curve with hysteresis,
//! logging each decision and exporting its state as Prometheus metrics.

mod config;
mod curve;
mod toml;

use std::fs;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use config::{Config, Hwmon};
use curve::{Action, Curve, Decision};
use svckit::cli::{usage_exit, version_line, Args, UsageError};
use svckit::expo::Registry;

const NAME: &str = "fan-controller";
const VERSION: &str = env!("CARGO_PKG_VERSION");
const USAGE: &str = "\
usage: fan-controller --config FILE [--hwmon DIR] [--sysfs-root DIR] [--dry-run DIR]
                      [--once | --iterations N] [--interval SECONDS]
                      [--metrics-file PATH] [--listen ADDR:PORT]

Reads a temperature, picks the fan curve's PWM (with hysteresis on the way down) and writes
it to the hwmon device's PWM file, after setting <pwm>_enable to 1 (manual). One log line per
decision on stderr. See fan-controller.example.toml for the configuration.

  --config FILE        the curve and the device (TOML subset)
  --hwmon DIR          the hwmon directory, instead of the file's `hwmon`/`hwmon_name`
  --sysfs-root DIR     where `hwmon_name` is looked up: DIR/class/hwmon (default /sys)
  --dry-run DIR        read the real sensor and PWM, but write <pwm> and <pwm>_enable
                       under DIR instead of the device: the values it would set, nothing else
  --once               one reading and decision, then exit (--iterations 1)
  --iterations N       N readings, then exit (default: run until stopped)
  --interval SECONDS   between readings (default: the file's interval_seconds)
  --metrics-file PATH  write the state as Prometheus text after each decision (atomically:
                       node_exporter's textfile collector can read it)
  --listen ADDR:PORT   also serve the state on http://ADDR:PORT/metrics
  --version            print the version and the architecture
";

#[derive(Debug, Default)]
struct Options {
    config: Option<PathBuf>,
    hwmon: Option<PathBuf>,
    sysfs_root: Option<PathBuf>,
    dry_run: Option<PathBuf>,
    iterations: Option<u64>,
    interval: Option<f64>,
    metrics_file: Option<PathBuf>,
    listen: Option<SocketAddr>,
}

enum Command {
    Run(Options),
    Print(String),
}

fn parse_args(mut args: Args) -> Result<Command, UsageError> {
    let mut o = Options::default();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" => o.config = Some(args.value(&arg)?),
            "--hwmon" => o.hwmon = Some(args.value(&arg)?),
            "--sysfs-root" => o.sysfs_root = Some(args.value(&arg)?),
            "--dry-run" => o.dry_run = Some(args.value(&arg)?),
            "--once" => o.iterations = Some(1),
            "--iterations" => match args.value::<u64>(&arg)? {
                0 => return Err(UsageError("`--iterations` must be at least 1".into())),
                n => o.iterations = Some(n),
            },
            "--interval" => match args.value::<f64>(&arg)? {
                v if (0.0..=3600.0).contains(&v) => o.interval = Some(v),
                v => return Err(UsageError(format!("`--interval {v}`: give 0 to 3600 seconds"))),
            },
            "--metrics-file" => o.metrics_file = Some(args.value(&arg)?),
            "--listen" => o.listen = Some(args.value(&arg)?),
            "--help" | "-h" => return Ok(Command::Print(USAGE.to_string())),
            "--version" => return Ok(Command::Print(version_line(NAME, VERSION) + "\n")),
            other => return Err(UsageError(format!("unknown argument `{other}`"))),
        }
    }
    if o.config.is_none() {
        return Err(UsageError("`--config FILE` is required".into()));
    }
    Ok(Command::Run(o))
}

/// The hwmon directory `name` names under `root`/class/hwmon.
fn find_hwmon(root: &Path, name: &str) -> Result<PathBuf, String> {
    let class = root.join("class").join("hwmon");
    let mut found = Vec::new();
    let list = fs::read_dir(&class).map_err(|e| format!("cannot list {}: {e}", class.display()))?;
    let mut dirs: Vec<PathBuf> = list.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    dirs.sort();
    for dir in dirs {
        let own = fs::read_to_string(dir.join("name")).unwrap_or_default().trim().to_string();
        if own == name {
            return Ok(dir);
        }
        found.push(own);
    }
    Err(format!("no hwmon named `{name}` under {} (found: {})", class.display(), found.join(", ")))
}

/// What the controller reads and writes.
struct Device {
    sensor: PathBuf,
    pwm: PathBuf,         // the device's PWM file (read for the starting state)
    write_dir: PathBuf,   // the device's directory, or the dry run's
    pwm_name: String,
    dry_run: bool,
}

impl Device {
    fn written_pwm(&self) -> PathBuf {
        self.write_dir.join(&self.pwm_name)
    }

    fn written_enable(&self) -> PathBuf {
        self.write_dir.join(format!("{}_enable", self.pwm_name))
    }
}

fn read_int(path: &Path) -> io::Result<i64> {
    let text = fs::read_to_string(path)?;
    text.trim().parse().map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("`{}` is not an integer", text.trim())))
}

/// The PWM the fan is at now: the dry run's last value, else the device's.
fn current_pwm(device: &Device) -> Option<u8> {
    let read = |p: &Path| read_int(p).ok().and_then(|v| u8::try_from(v).ok());
    if device.dry_run {
        if let Some(v) = read(&device.written_pwm()) {
            return Some(v);
        }
    }
    read(&device.pwm)
}

fn write_value(path: &Path, value: &str) -> Result<(), String> {
    // Plain write, not rename: sysfs attributes cannot be replaced, only written.
    fs::write(path, format!("{value}\n")).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The running state the metrics show.
#[derive(Default)]
struct State {
    temp: Option<f64>,
    decision: Option<Decision>,
    pwm: Option<u8>,
    changes: u64,
    sensor_errors: u64,
}

fn render(state: &State, device: &Device, curve: &Curve) -> String {
    let mut r = Registry::new();
    r.gauge("fan_controller_build_info", "The controller's version and architecture.",
            &[("version", VERSION), ("arch", std::env::consts::ARCH)], 1.0);
    let sensor = device.sensor.display().to_string();
    r.gauge("fan_controller_temperature_celsius", "The last temperature read (NaN: unreadable).",
            &[("sensor", &sensor)], state.temp.unwrap_or(f64::NAN));
    let pwm = [("pwm", device.pwm_name.as_str())];
    r.gauge("fan_controller_pwm", "The PWM value set (0-255).", &pwm, state.pwm.map_or(f64::NAN, f64::from));
    if let Some(d) = state.decision {
        r.gauge("fan_controller_curve_step", "The curve step in force (0: idle, below the first step).", &pwm, d.level as f64);
        r.gauge("fan_controller_curve_target_step", "The step the temperature reaches, before hysteresis.", &pwm, d.target as f64);
        let threshold = curve.threshold(d.level).map_or(f64::NAN, |t| t - curve.hysteresis);
        r.gauge("fan_controller_step_down_below_celsius",
                "Below this temperature the fan steps down (NaN: idle, nothing lower).", &pwm, threshold);
    }
    r.gauge("fan_controller_hysteresis_celsius", "Degrees below a step's threshold before leaving it.", &pwm, curve.hysteresis);
    r.gauge("fan_controller_dry_run", "1 when PWM values go to the dry run's directory, not the device.",
            &pwm, if device.dry_run { 1.0 } else { 0.0 });
    r.counter("fan_controller_pwm_changes_total", "PWM values written that differed from the one before.", &pwm, state.changes as f64);
    r.counter("fan_controller_sensor_errors_total", "Readings that failed (the fan then runs at failsafe_pwm).",
              &[("sensor", &sensor)], state.sensor_errors as f64);
    r.render()
}

fn log(device: &Device, line: String) {
    let mode = if device.dry_run { " dry_run=1" } else { "" };
    eprintln!("{NAME}: {line}{mode}");
}

/// One reading, decision and write.
fn tick(config: &Config, device: &Device, state: &mut State) -> Result<(), String> {
    let curve = &config.curve;
    let current = state.pwm.and_then(|p| curve.level_of_pwm(p));
    let (pwm, line) = match read_int(&device.sensor) {
        Ok(milli) => {
            let temp = milli as f64 / 1000.0;
            let d = curve.decide(current, temp);
            state.temp = Some(temp);
            state.decision = Some(d);
            let note = match (d.action, curve.threshold(d.level)) {
                (Action::Hold, Some(t)) => format!(" note=\"step {} ({t} °C) holds until below {} °C\"", d.level, t - curve.hysteresis),
                _ => String::new(),
            };
            (d.pwm, format!("temp={temp} target_step={} step={} pwm={} action={}{note}", d.target, d.level, d.pwm, d.action.word()))
        }
        Err(e) => {
            state.temp = None;
            state.decision = None;
            state.sensor_errors += 1;
            let pwm = config.failsafe_pwm;
            (pwm, format!("sensor={} error=\"{e}\" pwm={pwm} action=failsafe", device.sensor.display()))
        }
    };
    if state.pwm != Some(pwm) {
        write_value(&device.written_pwm(), &pwm.to_string())?;
        state.changes += u64::from(state.pwm.is_some());
        state.pwm = Some(pwm);
    }
    log(device, line);
    Ok(())
}

fn fail(status: i32, message: String) -> ! {
    eprintln!("{NAME}: {message}");
    std::process::exit(status)
}

fn main() {
    let o = match parse_args(Args::from_env()) {
        Ok(Command::Run(o)) => o,
        Ok(Command::Print(text)) => return print!("{text}"),
        Err(error) => usage_exit(NAME, &error),
    };
    let path = o.config.clone().expect("checked by parse_args");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| fail(2, format!("cannot read {}: {e}", path.display())));
    let config = config::parse(&text).unwrap_or_else(|e| fail(2, format!("{}:{}: {}", path.display(), e.line, e.message)));
    let dir = match (o.hwmon.clone(), config.hwmon.clone()) {
        (Some(dir), _) => dir,
        (None, Some(Hwmon::Dir(dir))) => PathBuf::from(dir),
        (None, Some(Hwmon::Name(name))) => {
            let root = o.sysfs_root.clone().unwrap_or_else(|| PathBuf::from("/sys"));
            find_hwmon(&root, &name).unwrap_or_else(|e| fail(2, e))
        }
        (None, None) => fail(2, format!("{}: set `hwmon` or `hwmon_name`, or pass --hwmon DIR", path.display())),
    };
    let sensor = if config.sensor.starts_with('/') { PathBuf::from(&config.sensor) } else { dir.join(&config.sensor) };
    if let Some(shadow) = &o.dry_run {
        fs::create_dir_all(shadow).unwrap_or_else(|e| fail(1, format!("cannot create {}: {e}", shadow.display())));
    }
    let device = Device {
        sensor,
        pwm: dir.join(&config.pwm),
        write_dir: o.dry_run.clone().unwrap_or_else(|| dir.clone()),
        pwm_name: config.pwm.clone(),
        dry_run: o.dry_run.is_some(),
    };
    let mut state = State { pwm: current_pwm(&device), ..State::default() };
    let enable = device.written_enable();
    if read_int(&enable).ok() != Some(1) {
        write_value(&enable, "1").unwrap_or_else(|e| fail(1, e));
        log(&device, format!("{}=1 (manual control)", enable.display()));
    }
    let shared = Arc::new(Mutex::new(String::new()));
    if let Some(address) = o.listen {
        let listener = TcpListener::bind(address).unwrap_or_else(|e| fail(1, format!("cannot listen on {address}: {e}")));
        let local = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
        eprintln!("{NAME}: listening on http://{local}/metrics");
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || svckit::http::serve(listener, Arc::new(move || shared.lock().map(|s| s.clone()).unwrap_or_default())));
    }
    let interval = Duration::from_secs_f64(o.interval.unwrap_or(config.interval));
    let mut done = 0u64;
    loop {
        tick(&config, &device, &mut state).unwrap_or_else(|e| fail(1, e));
        let text = render(&state, &device, &config.curve);
        if let Some(file) = &o.metrics_file {
            if let Err(e) = svckit::files::write_atomic(file, text.as_bytes()) {
                eprintln!("{NAME}: cannot write {}: {e}", file.display());
            }
        }
        *shared.lock().expect("metrics lock") = text;
        done += 1;
        if o.iterations.is_some_and(|n| done >= n) {
            break;
        }
        std::thread::sleep(interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Command, UsageError> {
        parse_args(Args::new(list.iter().map(|s| s.to_string())))
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("fan-controller-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn flags() {
        let Ok(Command::Run(o)) = args(&["--config", "c.toml", "--once", "--dry-run=/tmp/d", "--interval", "0.5"]) else { panic!() };
        assert_eq!((o.iterations, o.interval, o.dry_run.as_deref()), (Some(1), Some(0.5), Some(Path::new("/tmp/d"))));
        assert_eq!(args(&[]).err(), Some(UsageError("`--config FILE` is required".into())));
        assert!(args(&["--config", "c", "--iterations", "0"]).err().unwrap().0.contains("at least 1"));
        assert!(args(&["--config", "c", "--interval", "-1"]).err().unwrap().0.contains("0 to 3600"));
    }

    #[test]
    fn finds_the_hwmon_by_name() {
        let root = temp_dir("find");
        for (dir, name) in [("hwmon0", "acpitz"), ("hwmon1", "nct6798")] {
            fs::create_dir_all(root.join("class/hwmon").join(dir)).unwrap();
            fs::write(root.join("class/hwmon").join(dir).join("name"), format!("{name}\n")).unwrap();
        }
        assert_eq!(find_hwmon(&root, "nct6798").unwrap(), root.join("class/hwmon/hwmon1"));
        assert!(find_hwmon(&root, "it87").unwrap_err().contains("found: acpitz, nct6798"));
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn ticks_write_only_changes_and_fail_safe() {
        let dir = temp_dir("tick");
        let config = config::parse("hysteresis = 5\nfailsafe_pwm = 250\n[[step]]\ntemp = 40\npwm = 80\n[[step]]\ntemp = 60\npwm = 160\n").unwrap();
        let device = Device { sensor: dir.join("temp1_input"), pwm: dir.join("pwm1"), write_dir: dir.clone(), pwm_name: "pwm1".into(), dry_run: false };
        let mut state = State::default();
        let pwm_after = |milli: Option<&str>, state: &mut State| {
            match milli {
                Some(m) => fs::write(dir.join("temp1_input"), m).unwrap(),
                None => fs::remove_file(dir.join("temp1_input")).unwrap(),
            }
            tick(&config, &device, state).unwrap();
            fs::read_to_string(dir.join("pwm1")).unwrap()
        };
        assert_eq!(pwm_after(Some("65000"), &mut state), "160\n");
        assert_eq!(pwm_after(Some("57000"), &mut state), "160\n"); // held
        assert_eq!(pwm_after(Some("50000"), &mut state), "80\n");
        assert_eq!(pwm_after(None, &mut state), "250\n"); // failsafe
        assert_eq!((state.changes, state.sensor_errors), (2, 1));
        let text = render(&state, &device, &config.curve);
        assert!(text.contains("fan_controller_temperature_celsius{sensor=\"") && text.contains("\"} NaN\n"), "{text}");
        assert!(text.contains("fan_controller_pwm{pwm=\"pwm1\"} 250\n"), "{text}");
        assert!(text.contains("fan_controller_sensor_errors_total{sensor="), "{text}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
