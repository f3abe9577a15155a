//! The Prometheus text exposition format (version 0.0.4), written from a snapshot of the daemon's
//! state at scrape time. Every value here is read from the router's or the services' own counters
//! when `/metrics` is asked for, so there is no registry of live metric objects to keep; the format
//! is a page of rules (a `# HELP` and `# TYPE` line per family, then `name{label="value"} number`
//! lines), checked by `promtool check metrics` in `netns-tests/t_metrics.sh`. A metrics crate would
//! bring a registry and atomics this does not use.

use std::fmt::Write;

/// What a family's samples are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Only ever grows (its name ends in `_total`).
    Counter,
    /// Goes up and down.
    Gauge,
}

/// A number in a sample: counters stay exact integers.
pub(crate) trait SampleValue {
    fn write_to(&self, out: &mut String);
}

impl SampleValue for u64 {
    fn write_to(&self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

impl SampleValue for usize {
    fn write_to(&self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

impl SampleValue for f64 {
    fn write_to(&self, out: &mut String) {
        if self.is_nan() {
            out.push_str("NaN");
        } else if self.is_infinite() {
            out.push_str(if *self > 0.0 { "+Inf" } else { "-Inf" });
        } else {
            let _ = write!(out, "{self}");
        }
    }
}

/// The text of one scrape.
#[derive(Default)]
pub(crate) struct Exposition {
    out: String,
}

/// True if `name` is a valid metric or label name.
fn valid_name(name: &str, colons: bool) -> bool {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || (colons && c == ':'));
    first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colons && c == ':'))
}

impl Exposition {
    /// Continues `text` (a part written by another thread).
    #[cfg_attr(not(feature = "services"), allow(dead_code))]
    pub(crate) fn continuing(text: String) -> Self {
        Self { out: text }
    }

    /// Starts a family: its help and type lines. `name` is a constant of the code, checked in tests.
    pub(crate) fn family(&mut self, name: &str, kind: Kind, help: &str) {
        debug_assert!(valid_name(name, true), "{name}");
        debug_assert!(kind != Kind::Counter || name.ends_with("_total"), "{name}");
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let _ = writeln!(self.out, "# HELP {name} {}", escape(help, false));
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    /// One sample of the family just started.
    pub(crate) fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl SampleValue) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (label, text)) in labels.iter().enumerate() {
                debug_assert!(valid_name(label, false), "{label}");
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{label}=\"{}\"", escape(text, true));
            }
            self.out.push('}');
        }
        self.out.push(' ');
        value.write_to(&mut self.out);
        self.out.push('\n');
    }

    /// A family of one unlabelled sample.
    pub(crate) fn single(&mut self, name: &str, kind: Kind, help: &str, value: impl SampleValue) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    /// The text.
    pub(crate) fn finish(self) -> String {
        self.out
    }
}

/// Escapes a help text (backslash, newline) or a label value (also the double quote).
fn escape(text: &str, quote: bool) -> std::borrow::Cow<'_, str> {
    if !text.contains(['\\', '\n', '"']) {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Samples in an exposition (its lines that are not comments).
    fn series(text: &str) -> usize {
        text.lines().filter(|l| !l.starts_with('#')).count()
    }

    #[test]
    fn families_samples_and_escapes_follow_the_text_format() {
        let mut e = Exposition::default();
        e.family("meshrouter_x_total", Kind::Counter, "what \\ it\ncounts");
        e.sample("meshrouter_x_total", &[("peer", "a\"b\\c\nd")], 3u64);
        e.single("meshrouter_y_seconds", Kind::Gauge, "y", 0.25f64);
        e.single("meshrouter_z", Kind::Gauge, "z", f64::NAN);
        let text = e.finish();
        assert_eq!(series(&text), 3);
        assert_eq!(
            text,
            "# HELP meshrouter_x_total what \\\\ it\\ncounts\n# TYPE meshrouter_x_total counter\n\
             meshrouter_x_total{peer=\"a\\\"b\\\\c\\nd\"} 3\n\
             # HELP meshrouter_y_seconds y\n# TYPE meshrouter_y_seconds gauge\nmeshrouter_y_seconds 0.25\n\
             # HELP meshrouter_z z\n# TYPE meshrouter_z gauge\nmeshrouter_z NaN\n"
        );
    }

    #[test]
    fn names_are_checked() {
        assert!(valid_name("meshrouter_link_rx_bytes_total", true));
        assert!(valid_name("a:b", true));
        assert!(!valid_name("a:b", false));
        assert!(!valid_name("9a", true));
        assert!(!valid_name("", true));
        assert!(!valid_name("a-b", true));
    }

    #[test]
    fn a_continued_exposition_keeps_the_samples_before() {
        let mut e = Exposition::default();
        e.single("a", Kind::Gauge, "a", 1u64);
        let mut more = Exposition::continuing(e.finish());
        more.single("b", Kind::Gauge, "b", 2u64);
        assert_eq!(series(&more.finish()), 2);
    }
}
