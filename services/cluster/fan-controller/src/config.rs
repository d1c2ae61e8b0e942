//! The controller's configuration file (see `fan-controller.example.toml`, which the tests
//! load): which hwmon device, which PWM and sensor, and the curve as `[[step]]` tables.

use crate::curve::{Curve, Step};
use crate::toml::{self, Entry, Table, Value};

/// Where the PWM lives: a directory, or the hwmon whose `name` file says this.
#[derive(Debug, Clone, PartialEq)]
pub enum Hwmon {
    Dir(String),
    Name(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub hwmon: Option<Hwmon>,
    pub pwm: String,    // pwm1: the file written, `<pwm>_enable` set to 1 (manual)
    pub sensor: String, // temp1_input in the same hwmon, or an absolute path
    pub interval: f64,  // seconds between readings
    pub failsafe_pwm: u8,
    pub curve: Curve,
}

pub type Error = toml::Error;

const TOP_KEYS: &[&str] = &["hwmon", "hwmon_name", "pwm", "sensor", "interval_seconds", "hysteresis", "idle_pwm", "failsafe_pwm"];
const STEP_KEYS: &[&str] = &["temp", "pwm"];

fn fail<T>(line: usize, message: String) -> Result<T, Error> {
    Err(Error { line, message })
}

/// Levenshtein distance, for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = (previous + usize::from(ca != *cb)).min(row[j] + 1).min(current + 1);
            previous = current;
        }
    }
    row[b.len()]
}

fn check_keys(table: &Table, known: &[&str], place: &str) -> Result<(), Error> {
    for entry in &table.entries {
        if !known.contains(&entry.key.as_str()) {
            let nearest = known.iter().min_by_key(|k| distance(k, &entry.key)).filter(|k| distance(k, &entry.key) <= 3);
            let hint = nearest.map(|k| format!("; did you mean `{k}`?")).unwrap_or_else(|| format!("; known: {}", known.join(", ")));
            return fail(entry.line, format!("unknown key `{}` in {place}{hint}", entry.key));
        }
    }
    Ok(())
}

fn number(entry: &Entry) -> Result<f64, Error> {
    match entry.value {
        Value::Int(i) => Ok(i as f64),
        Value::Float(f) => Ok(f),
        ref other => fail(entry.line, format!("`{}` must be a number, not {}", entry.key, other.type_name())),
    }
}

fn pwm_value(entry: &Entry) -> Result<u8, Error> {
    match entry.value {
        Value::Int(i) if (0..=255).contains(&i) => Ok(i as u8),
        _ => fail(entry.line, format!("`{}` must be a whole number from 0 to 255", entry.key)),
    }
}

fn string(entry: &Entry) -> Result<String, Error> {
    match &entry.value {
        Value::Str(s) if !s.is_empty() => Ok(s.clone()),
        other => fail(entry.line, format!("`{}` must be a non-empty string, not {}", entry.key, other.type_name())),
    }
}

/// `pwm3`, `temp2_input`: a channel file of the hwmon ABI (never a path).
fn channel_file(name: &str, prefix: &str, suffix: &str) -> bool {
    name.strip_prefix(prefix)
        .and_then(|rest| rest.strip_suffix(suffix))
        .is_some_and(|digits| !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()))
}

pub fn parse(text: &str) -> Result<Config, Error> {
    let doc = toml::parse(text)?;
    let top = &doc.top;
    check_keys(top, TOP_KEYS, "the top level")?;
    for (array, table) in &doc.tables {
        if table.name != "step" || !array {
            return fail(table.line, format!("unknown table [{}]; the curve is [[step]] tables", table.name));
        }
        check_keys(table, STEP_KEYS, "[[step]]")?;
    }
    let hwmon = match (top.get("hwmon"), top.get("hwmon_name")) {
        (Some(_), Some(b)) => return fail(b.line, "set `hwmon` (a directory) or `hwmon_name`, not both".into()),
        (Some(dir), None) => Some(Hwmon::Dir(string(dir)?)),
        (None, Some(name)) => Some(Hwmon::Name(string(name)?)),
        (None, None) => None,
    };
    let pwm = match top.get("pwm") {
        Some(e) => {
            let name = string(e)?;
            if !channel_file(&name, "pwm", "") {
                return fail(e.line, format!("`pwm = \"{name}\"`: name a PWM channel file, like \"pwm1\""));
            }
            name
        }
        None => "pwm1".to_string(),
    };
    let sensor = match top.get("sensor") {
        Some(e) => {
            let name = string(e)?;
            if !channel_file(&name, "temp", "_input") && !name.starts_with('/') {
                return fail(e.line, format!("`sensor = \"{name}\"`: a temp<N>_input of the hwmon, or an absolute path"));
            }
            name
        }
        None => "temp1_input".to_string(),
    };
    let interval = match top.get("interval_seconds") {
        Some(e) => match number(e)? {
            v if v > 0.0 && v <= 3600.0 => v,
            v => return fail(e.line, format!("`interval_seconds = {v}`: give more than 0 and at most 3600")),
        },
        None => 5.0,
    };
    let hysteresis = match top.get("hysteresis") {
        Some(e) => match number(e)? {
            v if (0.0..=50.0).contains(&v) => v,
            v => return fail(e.line, format!("`hysteresis = {v}`: give degrees Celsius from 0 to 50")),
        },
        None => 3.0,
    };
    let idle_pwm = top.get("idle_pwm").map(pwm_value).transpose()?.unwrap_or(0);
    let failsafe_pwm = top.get("failsafe_pwm").map(pwm_value).transpose()?.unwrap_or(255);
    let mut steps: Vec<Step> = Vec::new();
    for (_, table) in &doc.tables {
        let (Some(temp), Some(pwm)) = (table.get("temp"), table.get("pwm")) else {
            return fail(table.line, "a [[step]] needs both `temp` (°C) and `pwm` (0-255)".into());
        };
        let step = Step { temp: number(temp)?, pwm: pwm_value(pwm)? };
        if let Some(last) = steps.last() {
            if step.temp <= last.temp {
                return fail(temp.line, format!("step temperatures must increase: {} after {}", step.temp, last.temp));
            }
            if step.pwm < last.pwm {
                return fail(pwm.line, format!("a hotter step must not slow the fan: pwm {} after {}", step.pwm, last.pwm));
            }
        }
        steps.push(step);
    }
    match steps.first() {
        None => return fail(text.lines().count().max(1), "no curve: add [[step]] tables with `temp` and `pwm`".into()),
        Some(first) if first.pwm < idle_pwm => {
            let line = top.get("idle_pwm").map_or(0, |e| e.line);
            return fail(line, format!("`idle_pwm = {idle_pwm}` is above the first step's pwm {}", first.pwm));
        }
        Some(_) => {}
    }
    Ok(Config { hwmon, pwm, sensor, interval, failsafe_pwm, curve: Curve { steps, idle_pwm, hysteresis } })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../fan-controller.example.toml");

    #[test]
    fn the_example_loads() {
        let c = parse(EXAMPLE).unwrap();
        assert_eq!(c.hwmon, Some(Hwmon::Name("nct6798".into())));
        assert_eq!((c.pwm.as_str(), c.sensor.as_str(), c.interval, c.failsafe_pwm), ("pwm2", "temp1_input", 5.0, 255));
        assert_eq!(c.curve.steps.len(), 4);
        assert_eq!((c.curve.idle_pwm, c.curve.hysteresis), (60, 4.0));
    }

    #[test]
    fn defaults() {
        let c = parse("[[step]]\ntemp = 50\npwm = 255\n").unwrap();
        assert_eq!((c.hwmon, c.pwm.as_str(), c.sensor.as_str()), (None, "pwm1", "temp1_input"));
        assert_eq!((c.interval, c.curve.hysteresis, c.curve.idle_pwm, c.failsafe_pwm), (5.0, 3.0, 0, 255));
    }

    #[test]
    fn mistakes_name_line_and_fix() {
        let step = "\n[[step]]\ntemp = 50\npwm = 200\n";
        let cases = [
            (format!("hysterisis = 2{step}"), 1, "unknown key `hysterisis` in the top level; did you mean `hysteresis`?"),
            (format!("hwmon = \"/a\"\nhwmon_name = \"b\"{step}"), 2, "not both"),
            (format!("pwm = \"../pwm1\"{step}"), 1, "name a PWM channel file"),
            (format!("sensor = \"temp1\"{step}"), 1, "temp<N>_input"),
            (format!("interval_seconds = 0{step}"), 1, "more than 0"),
            (format!("idle_pwm = 256{step}"), 1, "from 0 to 255"),
            (format!("idle_pwm = 201{step}"), 1, "above the first step"),
            (format!("hysteresis = \"3\"{step}"), 1, "must be a number, not a string"),
            (format!("{step}[[step]]\ntemp = 50\npwm = 255\n"), 6, "temperatures must increase"),
            (format!("{step}[[step]]\ntemp = 60\npwm = 100\n"), 7, "must not slow the fan"),
            (format!("{step}[[step]]\ntemp = 60\n"), 5, "needs both"),
            (format!("{step}[[step]]\ntmp = 60\n"), 6, "did you mean `temp`?"),
            (format!("[fan]\na = 1{step}"), 1, "unknown table [fan]"),
            ("pwm = \"pwm1\"\n".to_string(), 1, "no curve"),
        ];
        for (text, line, words) in cases {
            let e = parse(&text).unwrap_err();
            assert!(e.message.contains(words), "{text:?}: {e}");
            assert_eq!(e.line, line, "{text:?}: {e}");
        }
    }
}
