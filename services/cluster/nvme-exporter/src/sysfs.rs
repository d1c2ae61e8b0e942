//! What the exporter reads under the sysfs root, and the metrics it makes of it.
//!
//! Block statistics: `block/nvme*/stat`, the fields of the kernel's
//! Documentation/block/stat.rst (11 since 2.6, 15 with discards since 4.18, 17 with flushes
//! since 5.5). Sectors there are always 512 bytes; times are milliseconds.
//! Temperatures: `class/hwmon/hwmon*` whose `name` is `nvme`, `temp<N>_input` in millidegrees
//! Celsius with an optional `temp<N>_label` ("Composite", "Sensor 1"), `_max` and `_crit`.

use std::fs;
use std::io;
use std::path::Path;

use svckit::expo::Registry;

/// One `block/<device>/stat`, its fields in the order of stat.rst.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockStat {
    pub device: String,
    pub fields: Vec<u64>,
}

/// One hwmon temperature channel of an NVMe controller.
#[derive(Debug, Clone, PartialEq)]
pub struct Sensor {
    pub hwmon: String,
    pub device: String, // the controller (`nvme0`) the hwmon belongs to, else the hwmon's name
    pub sensor: String, // temp1
    pub label: String,  // temp1_label, else the sensor
    pub celsius: f64,
    pub max: Option<f64>,
    pub crit: Option<f64>,
}

#[derive(Debug, Default)]
pub struct Snapshot {
    pub blocks: Vec<BlockStat>,
    pub sensors: Vec<Sensor>,
    pub errors: Vec<String>, // files that exist but could not be read or parsed
}

const STAT_FIELDS: usize = 11; // the fewest a kernel writes

/// The fields of a stat file: whitespace-separated unsigned integers, at least 11.
pub fn parse_stat(text: &str) -> Result<Vec<u64>, String> {
    let fields = text
        .split_whitespace()
        .map(|f| f.parse::<u64>().map_err(|_| format!("field `{f}` is not an unsigned integer")))
        .collect::<Result<Vec<_>, _>>()?;
    if fields.len() < STAT_FIELDS {
        return Err(format!("{} fields, expected at least {STAT_FIELDS}", fields.len()));
    }
    Ok(fields)
}

/// Entries of `dir` whose names start with `prefix`, sorted by name with numbers compared as
/// numbers (nvme2n1 before nvme10n1); a missing directory has none.
fn entries(dir: &Path, prefix: &str, errors: &mut Vec<String>) -> Vec<String> {
    let list = match fs::read_dir(dir) {
        Ok(list) => list,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            errors.push(format!("{}: {e}", dir.display()));
            return Vec::new();
        }
    };
    let mut names: Vec<String> = list
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort_by_key(|n| natural_key(n));
    names
}

/// `nvme10n1` → [("nvme", 10), ("n", 1)]: the order people expect.
fn natural_key(name: &str) -> Vec<(String, u64)> {
    let mut key = Vec::new();
    let (mut text, mut number) = (String::new(), String::new());
    for c in name.chars() {
        if c.is_ascii_digit() {
            number.push(c);
        } else {
            if !number.is_empty() {
                key.push((std::mem::take(&mut text), number.parse().unwrap_or(u64::MAX)));
                number.clear();
            }
            text.push(c);
        }
    }
    key.push((text, number.parse().unwrap_or(0)));
    key
}

fn read_trimmed(path: &Path) -> io::Result<String> {
    Ok(fs::read_to_string(path)?.trim().to_string())
}

/// A millidegree file as degrees Celsius; None if absent, an error recorded if unreadable.
fn read_millidegrees(path: &Path, errors: &mut Vec<String>) -> Option<f64> {
    match read_trimmed(path) {
        Ok(text) => match text.parse::<i64>() {
            Ok(milli) => Some(milli as f64 / 1000.0),
            Err(_) => {
                errors.push(format!("{}: `{text}` is not an integer (millidegrees)", path.display()));
                None
            }
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => {
            errors.push(format!("{}: {e}", path.display()));
            None
        }
    }
}

pub fn collect(root: &Path) -> Snapshot {
    let mut snap = Snapshot::default();
    let block = root.join("block");
    for device in entries(&block, "nvme", &mut snap.errors) {
        let path = block.join(&device).join("stat");
        match fs::read_to_string(&path) {
            Ok(text) => match parse_stat(&text) {
                Ok(fields) => snap.blocks.push(BlockStat { device, fields }),
                Err(e) => snap.errors.push(format!("{}: {e}", path.display())),
            },
            Err(e) => snap.errors.push(format!("{}: {e}", path.display())),
        }
    }
    let hwmons = root.join("class").join("hwmon");
    for hwmon in entries(&hwmons, "hwmon", &mut snap.errors) {
        let dir = hwmons.join(&hwmon);
        if read_trimmed(&dir.join("name")).map(|n| n != "nvme").unwrap_or(true) {
            continue;
        }
        let device = fs::read_link(dir.join("device"))
            .ok()
            .and_then(|target| target.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| hwmon.clone());
        for file in entries(&dir, "temp", &mut snap.errors) {
            let Some(sensor) = file.strip_suffix("_input") else { continue };
            let Some(celsius) = read_millidegrees(&dir.join(&file), &mut snap.errors) else { continue };
            let label = read_trimmed(&dir.join(format!("{sensor}_label"))).unwrap_or_else(|_| sensor.to_string());
            snap.sensors.push(Sensor {
                hwmon: hwmon.clone(),
                device: device.clone(),
                sensor: sensor.to_string(),
                label,
                celsius,
                max: read_millidegrees(&dir.join(format!("{sensor}_max")), &mut snap.errors),
                crit: read_millidegrees(&dir.join(format!("{sensor}_crit")), &mut snap.errors),
            });
        }
    }
    snap
}

/// (stat field index, name, help, scale to base units) of each counter.
const COUNTERS: &[(usize, &str, &str, f64)] = &[
    (0, "nvme_reads_completed_total", "Reads completed (block stat field 1, read I/Os).", 1.0),
    (1, "nvme_reads_merged_total", "Adjacent reads merged (block stat field 2).", 1.0),
    (2, "nvme_read_bytes_total", "Bytes read (block stat field 3, 512-byte sectors).", 512.0),
    (3, "nvme_read_time_seconds_total", "Time reads waited, summed over requests (field 4, read ticks).", 0.001),
    (4, "nvme_writes_completed_total", "Writes completed (block stat field 5, write I/Os).", 1.0),
    (5, "nvme_writes_merged_total", "Adjacent writes merged (block stat field 6).", 1.0),
    (6, "nvme_written_bytes_total", "Bytes written (block stat field 7, 512-byte sectors).", 512.0),
    (7, "nvme_write_time_seconds_total", "Time writes waited, summed over requests (field 8, write ticks).", 0.001),
    (9, "nvme_io_time_seconds_total", "Time the device had requests in flight (field 10, io_ticks).", 0.001),
    (10, "nvme_io_time_weighted_seconds_total", "Requests in flight integrated over time (field 11, time_in_queue).", 0.001),
    (11, "nvme_discards_completed_total", "Discards completed (block stat field 12).", 1.0),
    (12, "nvme_discards_merged_total", "Adjacent discards merged (block stat field 13).", 1.0),
    (13, "nvme_discarded_bytes_total", "Bytes discarded (block stat field 14, 512-byte sectors).", 512.0),
    (14, "nvme_discard_time_seconds_total", "Time discards waited, summed over requests (field 15).", 0.001),
    (15, "nvme_flushes_completed_total", "Flush requests completed (block stat field 16).", 1.0),
    (16, "nvme_flush_time_seconds_total", "Time flushes waited, summed over requests (field 17).", 0.001),
];

/// `total / count`, NaN when there is nothing to average (no request yet).
fn ratio(total: u64, count: u64) -> f64 {
    if count == 0 {
        f64::NAN
    } else {
        total as f64 / count as f64
    }
}

pub fn render(snap: &Snapshot, version: &str) -> Registry {
    let mut r = Registry::new();
    r.gauge(
        "nvme_exporter_build_info",
        "The exporter's version and the architecture it runs on.",
        &[("version", version), ("arch", std::env::consts::ARCH)],
        1.0,
    );
    r.gauge(
        "nvme_exporter_scrape_errors",
        "Files under the sysfs root that could not be read or parsed in this scrape.",
        &[],
        snap.errors.len() as f64,
    );
    for s in &snap.sensors {
        let labels = [("device", s.device.as_str()), ("hwmon", s.hwmon.as_str()),
                      ("sensor", s.sensor.as_str()), ("label", s.label.as_str())];
        r.gauge("nvme_temperature_celsius", "NVMe temperature (hwmon temp*_input).", &labels, s.celsius);
    }
    for (name, help, pick) in [
        ("nvme_temperature_max_celsius", "NVMe warning temperature threshold (hwmon temp*_max).",
         (|s: &Sensor| s.max) as fn(&Sensor) -> Option<f64>),
        ("nvme_temperature_critical_celsius", "NVMe critical temperature threshold (hwmon temp*_crit).",
         |s: &Sensor| s.crit),
    ] {
        for s in &snap.sensors {
            if let Some(value) = pick(s) {
                r.gauge(name, help, &[("device", s.device.as_str()), ("sensor", s.sensor.as_str())], value);
            }
        }
    }
    for &(field, name, help, scale) in COUNTERS {
        for b in snap.blocks.iter().filter(|b| b.fields.len() > field) {
            r.counter(name, help, &[("device", b.device.as_str())], b.fields[field] as f64 * scale);
        }
    }
    let derived: [(&str, &str, fn(&[u64]) -> f64); 4] = [
        ("nvme_queue_depth", "Requests in flight now: the queue depth (block stat field 9, in_flight).",
         |f| f[8] as f64),
        ("nvme_queue_depth_average",
         "Mean requests in flight while the device was busy since boot (time_in_queue / io_ticks).",
         |f| ratio(f[10], f[9])),
        ("nvme_read_latency_average_seconds", "Mean time per read since boot (read ticks / read I/Os).",
         |f| ratio(f[3], f[0]) / 1000.0),
        ("nvme_write_latency_average_seconds", "Mean time per write since boot (write ticks / write I/Os).",
         |f| ratio(f[7], f[4]) / 1000.0),
    ];
    for (name, help, value) in derived {
        for b in &snap.blocks {
            r.gauge(name, help, &[("device", b.device.as_str())], value(&b.fields));
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn tree(name: &str) -> PathBuf {
        let root = std::env::temp_dir().join(format!("nvme-exporter-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).unwrap();
        root
    }

    fn put(root: &Path, rel: &str, text: &str) {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    #[test]
    fn parses_11_15_and_17_field_stat_files() {
        assert_eq!(parse_stat("1 2 3 4 5 6 7 8 9 10 11\n").unwrap().len(), 11);
        let padded = "     100        0     8000       50      200        0    16000      400        3      420      460        0        0        0        0       10        5\n";
        assert_eq!(parse_stat(padded).unwrap()[..3], [100, 0, 8000]);
        assert!(parse_stat("1 2 3").unwrap_err().contains("3 fields"));
        assert!(parse_stat("1 2 3 4 5 6 7 8 9 10 x").unwrap_err().contains("`x`"));
        assert!(parse_stat("1 2 3 4 5 6 7 8 9 10 -1").is_err());
    }

    #[test]
    fn natural_order() {
        let mut names = vec!["nvme10n1", "nvme2n1", "nvme1n2", "nvme1n1"];
        names.sort_by_key(|n| natural_key(n));
        assert_eq!(names, ["nvme1n1", "nvme1n2", "nvme2n1", "nvme10n1"]);
    }

    #[test]
    fn collects_nvme_blocks_and_nvme_hwmon_only() {
        let root = tree("collect");
        put(&root, "block/nvme0n1/stat", "100 0 8000 50 200 0 16000 400 3 420 460\n");
        put(&root, "block/sda/stat", "1 1 1 1 1 1 1 1 1 1 1\n");
        put(&root, "block/nvme1n1/stat", "garbage\n");
        put(&root, "class/hwmon/hwmon0/name", "acpitz\n");
        put(&root, "class/hwmon/hwmon0/temp1_input", "30000\n");
        put(&root, "class/hwmon/hwmon3/name", "nvme\n");
        put(&root, "class/hwmon/hwmon3/temp1_input", "41850\n");
        put(&root, "class/hwmon/hwmon3/temp1_label", "Composite\n");
        put(&root, "class/hwmon/hwmon3/temp1_crit", "84850\n");
        put(&root, "class/hwmon/hwmon3/temp2_input", "-1000\n");
        fs::create_dir_all(root.join("devices/nvme0")).unwrap();
        std::os::unix::fs::symlink("../../../devices/nvme0", root.join("class/hwmon/hwmon3/device")).unwrap();
        let snap = collect(&root);
        assert_eq!(snap.blocks, vec![BlockStat { device: "nvme0n1".into(), fields: vec![100, 0, 8000, 50, 200, 0, 16000, 400, 3, 420, 460] }]);
        assert_eq!(snap.errors.len(), 1, "{:?}", snap.errors);
        assert!(snap.errors[0].contains("nvme1n1/stat"));
        assert_eq!(snap.sensors.len(), 2);
        let composite = &snap.sensors[0];
        assert_eq!((composite.device.as_str(), composite.label.as_str(), composite.celsius), ("nvme0", "Composite", 41.85));
        assert_eq!((composite.max, composite.crit), (None, Some(84.85)));
        assert_eq!((snap.sensors[1].label.as_str(), snap.sensors[1].celsius), ("temp2", -1.0));
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_missing_root_is_empty_not_an_error() {
        let snap = collect(Path::new("/nonexistent/sysfs"));
        assert!(snap.blocks.is_empty() && snap.sensors.is_empty() && snap.errors.is_empty());
    }

    #[test]
    fn renders_counters_gauges_and_averages() {
        let snap = Snapshot {
            blocks: vec![BlockStat { device: "nvme0n1".into(), fields: vec![100, 0, 8000, 50, 200, 0, 16000, 400, 3, 420, 460, 0, 0, 0, 0, 10, 5] }],
            sensors: vec![],
            errors: vec![],
        };
        let text = render(&snap, "0.1.0").render();
        for line in [
            "nvme_read_bytes_total{device=\"nvme0n1\"} 4096000",
            "nvme_read_time_seconds_total{device=\"nvme0n1\"} 0.05",
            "nvme_written_bytes_total{device=\"nvme0n1\"} 8192000",
            "nvme_queue_depth{device=\"nvme0n1\"} 3",
            "nvme_read_latency_average_seconds{device=\"nvme0n1\"} 0.0005",
            "nvme_write_latency_average_seconds{device=\"nvme0n1\"} 0.002",
            "nvme_flushes_completed_total{device=\"nvme0n1\"} 10",
            "# TYPE nvme_io_time_weighted_seconds_total counter",
            "nvme_exporter_scrape_errors 0",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
        }
    }

    #[test]
    fn no_io_yet_averages_are_nan_and_old_kernels_have_no_discards() {
        let snap = Snapshot {
            blocks: vec![BlockStat { device: "nvme0n1".into(), fields: vec![0; 11] }],
            ..Snapshot::default()
        };
        let text = render(&snap, "0.1.0").render();
        assert!(text.contains("nvme_read_latency_average_seconds{device=\"nvme0n1\"} NaN\n"));
        assert!(text.contains("nvme_queue_depth_average{device=\"nvme0n1\"} NaN\n"));
        assert!(!text.contains("discard"));
    }
}
