//! Lustre's stats files, made from a process's Prometheus metrics:
//!
//! ```text
//! snapshot_time             1700000000.123456789 secs.nsecs
//! write                     16 samples [reqs]
//! ```
//!
//! one line per counter that is not zero, `NAME COUNT samples [UNIT]`.
//! Lustre adds `MIN MAX SUM [SUMSQ]` for counters that keep them; the
//! glint services keep latency histograms and totals, not per-sample
//! minima and maxima, so the lines stop after the unit (the form Lustre
//! itself prints for counters without them) rather than show estimates.

use prometheus::Registry;
use prometheus::proto::{Metric, MetricFamily};
use std::time::{SystemTime, UNIX_EPOCH};

/// One gather of a registry, to read several values of the same moment.
pub struct Snapshot {
    families: Vec<MetricFamily>,
    pub at: SystemTime,
}

fn has_labels(m: &Metric, labels: &[(&str, &str)]) -> bool {
    labels.iter().all(|(k, v)| m.get_label().iter().any(|l| l.name() == *k && l.value() == *v))
}

fn label<'a>(m: &'a Metric, name: &str) -> Option<&'a str> {
    m.get_label().iter().find(|l| l.name() == name).map(|l| l.value())
}

impl Snapshot {
    pub fn gather(r: &Registry) -> Snapshot {
        Snapshot { families: r.gather(), at: SystemTime::now() }
    }

    fn metrics<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Metric> + 'a {
        self.families.iter().filter(move |f| f.name() == name).flat_map(|f| f.get_metric().iter())
    }

    /// A counter or gauge summed over the series with `labels`; None when
    /// there is no such series.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut found = None;
        for m in self.metrics(name).filter(|m| has_labels(m, labels)) {
            let v = if m.get_counter().get_value() != 0.0 {
                m.get_counter().get_value()
            } else {
                m.get_gauge().get_value()
            };
            *found.get_or_insert(0.0) += v;
        }
        found
    }

    /// Samples per `op` of a histogram, over the series with `labels`.
    pub fn op_counts(&self, histogram: &str, labels: &[(&str, &str)]) -> Vec<(String, u64)> {
        let mut out: Vec<(String, u64)> = Vec::new();
        for m in self.metrics(histogram).filter(|m| has_labels(m, labels)) {
            let Some(op) = label(m, "op") else { continue };
            let n = m.get_histogram().get_sample_count();
            match out.iter_mut().find(|(o, _)| o == op) {
                Some((_, c)) => *c += n,
                None => out.push((op.to_string(), n)),
            }
        }
        out.sort();
        out
    }
}

/// One line of a stats file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counter {
    pub name: String,
    pub count: u64,
    pub unit: &'static str,
}

impl Counter {
    pub fn new(name: impl Into<String>, count: u64, unit: &'static str) -> Counter {
        Counter { name: name.into(), count, unit }
    }
}

/// `snapshot_time` as Lustre prints it: seconds and nanoseconds.
pub fn snapshot_time(at: SystemTime) -> String {
    let d = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("{:<25} {}.{:09} secs.nsecs", "snapshot_time", d.as_secs(), d.subsec_nanos())
}

/// A stats file: the snapshot time, then each counter that is not zero.
pub fn render(at: SystemTime, counters: &[Counter]) -> String {
    let mut out = snapshot_time(at);
    for c in counters.iter().filter(|c| c.count > 0) {
        out.push_str(&format!("\n{:<25} {} samples [{}]", c.name, c.count, c.unit));
    }
    out
}

/// The operation counts of `histogram` for `target`, as `[reqs]` lines.
pub fn op_lines(s: &Snapshot, histogram: &str, target: &str) -> Vec<Counter> {
    s.op_counts(histogram, &[("target", target)])
        .into_iter()
        .map(|(op, n)| Counter::new(op, n, "reqs"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{HistogramOpts, HistogramVec};
    use std::time::Duration;

    #[test]
    fn renders_like_lustre() {
        let at = UNIX_EPOCH + Duration::new(1_700_000_000, 5);
        let text = render(at, &[Counter::new("read_bytes", 0, "bytes"), Counter::new("write", 16, "reqs")]);
        assert_eq!(
            text,
            "snapshot_time             1700000000.000000005 secs.nsecs\nwrite                     16 samples [reqs]"
        );
    }

    #[test]
    fn reads_histogram_counts_by_target_and_op() {
        let r = Registry::new();
        let h = HistogramVec::new(HistogramOpts::new("lat", "help"), &["target", "op"]).unwrap();
        r.register(Box::new(h.clone())).unwrap();
        h.with_label_values(&["a", "write"]).observe(0.1);
        h.with_label_values(&["a", "write"]).observe(0.2);
        h.with_label_values(&["a", "read"]).observe(0.2);
        h.with_label_values(&["b", "write"]).observe(0.2);
        let s = Snapshot::gather(&r);
        assert_eq!(s.op_counts("lat", &[("target", "a")]), vec![("read".into(), 1), ("write".into(), 2)]);
        assert_eq!(s.op_counts("lat", &[]).iter().find(|(o, _)| o == "write").unwrap().1, 3);
        assert_eq!(s.value("nothing", &[]), None);
    }
}
