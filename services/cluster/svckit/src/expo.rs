//! Prometheus text exposition format 0.0.4: `# HELP`, `# TYPE`, then the family's samples.
//!
//! Names are the program's own constants and are checked (a bad one is a bug: panic); label
//! values and help text come from data and are escaped as the format says: `\` and newline in
//! HELP, `\`, `"` and newline in label values.

use std::fmt::Write;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Summary,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Summary => "summary",
        }
    }
}

#[derive(Debug)]
struct Sample {
    suffix: &'static str,
    labels: Vec<(String, String)>,
    value: f64,
}

/// One metric family: its samples share a name (plus `_sum`/`_count` for a summary), a help
/// text and a type.
#[derive(Debug)]
pub struct Family {
    name: String,
    help: String,
    kind: Kind,
    samples: Vec<Sample>,
}

impl Family {
    /// A sample named as the family.
    pub fn add(&mut self, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.add_suffixed("", labels, value)
    }

    /// A sample named `<family><suffix>`: a summary's `_sum` and `_count`.
    pub fn add_suffixed(&mut self, suffix: &'static str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        assert!(
            matches!(suffix, "" | "_sum" | "_count"),
            "sample suffix {suffix:?} is not one the text format knows"
        );
        for (label, _) in labels {
            assert!(valid_label_name(label), "invalid label name {label:?}");
        }
        let labels = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.samples.push(Sample { suffix, labels, value });
        self
    }
}

/// Families in the order they were first registered; rendered as one exposition.
#[derive(Debug, Default)]
pub struct Registry {
    families: Vec<Family>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// The family `name`, registered on first use. Registering a name again with another type
    /// or help is a bug in the program (one name, one meaning).
    pub fn family(&mut self, name: &str, help: &str, kind: Kind) -> &mut Family {
        assert!(valid_metric_name(name), "invalid metric name {name:?}");
        if let Some(i) = self.families.iter().position(|f| f.name == name) {
            let family = &mut self.families[i];
            assert!(family.kind == kind && family.help == help, "metric {name} registered twice differently");
            return family;
        }
        self.families.push(Family { name: name.to_string(), help: help.to_string(), kind, samples: Vec::new() });
        self.families.last_mut().expect("just pushed")
    }

    /// A gauge with one sample: the common case.
    pub fn gauge(&mut self, name: &str, help: &str, labels: &[(&str, &str)], value: f64) {
        self.family(name, help, Kind::Gauge).add(labels, value);
    }

    /// A counter with one sample.
    pub fn counter(&mut self, name: &str, help: &str, labels: &[(&str, &str)], value: f64) {
        self.family(name, help, Kind::Counter).add(labels, value);
    }

    /// A summary of `observations`: the quantiles asked for (nearest rank; NaN when there are
    /// none), `_sum` and `_count`.
    pub fn summary(&mut self, name: &str, help: &str, labels: &[(&str, &str)], observations: &[f64], quantiles: &[f64]) {
        let mut sorted = observations.to_vec();
        sorted.sort_by(f64::total_cmp);
        let family = self.family(name, help, Kind::Summary);
        for &q in quantiles {
            let value = if sorted.is_empty() {
                f64::NAN
            } else {
                let rank = (q * sorted.len() as f64).ceil() as usize;
                sorted[rank.clamp(1, sorted.len()) - 1]
            };
            let q = format_value(q);
            let mut with_quantile = labels.to_vec();
            with_quantile.push(("quantile", &q));
            family.add(&with_quantile, value);
        }
        family.add_suffixed("_sum", labels, sorted.iter().sum());
        family.add_suffixed("_count", labels, sorted.len() as f64);
    }

    /// Move every family of `other` in after ours (a name both have is merged).
    pub fn extend(&mut self, other: Registry) {
        for family in other.families {
            let Family { name, help, kind, samples } = family;
            self.family(&name, &help, kind).samples.extend(samples);
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for family in &self.families {
            let _ = writeln!(out, "# HELP {} {}", family.name, escape_help(&family.help));
            let _ = writeln!(out, "# TYPE {} {}", family.name, family.kind.word());
            for sample in &family.samples {
                out.push_str(&family.name);
                out.push_str(sample.suffix);
                if !sample.labels.is_empty() {
                    out.push('{');
                    for (i, (k, v)) in sample.labels.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        let _ = write!(out, "{k}=\"{}\"", escape_label_value(v));
                    }
                    out.push('}');
                }
                out.push(' ');
                out.push_str(&format_value(sample.value));
                out.push('\n');
            }
        }
        out
    }
}

pub fn valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

pub fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

pub fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

pub fn escape_label_value(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Go's strconv-style spellings the parsers accept: `NaN`, `+Inf`, `-Inf`; whole numbers
/// without a fraction; others in Rust's shortest round-trip form.
pub fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_string()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else if value == value.trunc() && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_help_type_and_samples_in_registration_order() {
        let mut r = Registry::new();
        r.gauge("b_temp_celsius", "Temperature.", &[("device", "nvme0")], 41.5);
        r.counter("a_reads_total", "Reads.", &[], 3.0);
        r.family("b_temp_celsius", "Temperature.", Kind::Gauge).add(&[("device", "nvme1")], 40.0);
        assert_eq!(
            r.render(),
            "# HELP b_temp_celsius Temperature.\n# TYPE b_temp_celsius gauge\n\
             b_temp_celsius{device=\"nvme0\"} 41.5\nb_temp_celsius{device=\"nvme1\"} 40\n\
             # HELP a_reads_total Reads.\n# TYPE a_reads_total counter\na_reads_total 3\n"
        );
    }

    #[test]
    fn escapes_label_values_and_help() {
        let mut r = Registry::new();
        r.gauge("x", "a \\ b\nc \"q\"", &[("label", "say \"hi\"\\\n")], 1.0);
        let text = r.render();
        assert!(text.contains("# HELP x a \\\\ b\\nc \"q\"\n"), "{text}");
        assert!(text.contains("x{label=\"say \\\"hi\\\"\\\\\\n\"} 1\n"), "{text}");
    }

    #[test]
    fn special_values() {
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_value(-2.0), "-2");
        assert_eq!(format_value(0.25), "0.25");
        assert_eq!(format_value(1.5e20), "150000000000000000000");
    }

    #[test]
    fn summary_suffixes() {
        let mut r = Registry::new();
        r.family("rtt_seconds", "RTT.", Kind::Summary)
            .add(&[("quantile", "0.5")], 0.001)
            .add_suffixed("_sum", &[], 0.5)
            .add_suffixed("_count", &[], 10.0);
        assert!(r.render().ends_with("rtt_seconds{quantile=\"0.5\"} 0.001\nrtt_seconds_sum 0.5\nrtt_seconds_count 10\n"));
    }

    #[test]
    fn summary_of_observations() {
        let mut r = Registry::new();
        r.summary("s", "S.", &[("role", "client")], &[4.0, 1.0, 3.0, 2.0], &[0.5, 0.99]);
        r.summary("e", "E.", &[], &[], &[0.5]);
        let text = r.render();
        for line in ["s{role=\"client\",quantile=\"0.5\"} 2", "s{role=\"client\",quantile=\"0.99\"} 4",
                     "s_sum{role=\"client\"} 10", "s_count{role=\"client\"} 4", "e{quantile=\"0.5\"} NaN", "e_count 0"] {
            assert!(text.lines().any(|l| l == line), "no {line} in {text}");
        }
    }

    #[test]
    fn extend_merges_families_of_the_same_name() {
        let (mut a, mut b) = (Registry::new(), Registry::new());
        a.gauge("g", "G.", &[("k", "1")], 1.0);
        b.gauge("g", "G.", &[("k", "2")], 2.0);
        b.gauge("h", "H.", &[], 3.0);
        a.extend(b);
        assert_eq!(a.render().matches("# TYPE g gauge").count(), 1);
        assert!(a.render().contains("g{k=\"2\"} 2\n# HELP h H."));
    }

    #[test]
    fn names_are_checked() {
        assert!(valid_metric_name("nvme_read_bytes_total") && valid_metric_name(":a"));
        assert!(!valid_metric_name("1abc") && !valid_metric_name("a-b") && !valid_metric_name(""));
        assert!(valid_label_name("device") && !valid_label_name("__reserved") && !valid_label_name("a:b"));
    }

    #[test]
    #[should_panic(expected = "registered twice differently")]
    fn one_name_one_type() {
        let mut r = Registry::new();
        r.gauge("m", "M.", &[], 1.0);
        r.counter("m", "M.", &[], 1.0);
    }
}
