//! Lustre's stats files, made from a process's Prometheus metrics:
//!
//! ```text
//! snapshot_time             1700000000.123456789 secs.nsecs
//! write                     16 samples [reqs]
//! ```
//!
//! one line per counter that is not zero, `NAME COUNT samples [UNIT]`,
//! followed by `MIN MAX SUM` where the counter keeps them, as Lustre's do:
//! bytes per transfer (`read_bytes`, `write_bytes`) and microseconds per
//! operation. Lustre's optional `SUMSQ` is not kept.

use fabric::metrics::SampleSummary;
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
}

/// One line of a stats file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counter {
    pub name: String,
    pub count: u64,
    pub unit: &'static str,
    /// Smallest, largest and sum of the samples, where they are kept.
    pub min_max_sum: Option<(u64, u64, u64)>,
}

impl Counter {
    pub fn new(name: impl Into<String>, count: u64, unit: &'static str) -> Counter {
        Counter { name: name.into(), count, unit, min_max_sum: None }
    }

    /// A counter that keeps its samples' extremes and sum.
    pub fn samples(name: impl Into<String>, s: SampleSummary, unit: &'static str) -> Counter {
        Counter { name: name.into(), count: s.count, unit, min_max_sum: Some((s.min, s.max, s.sum)) }
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
        if let Some((min, max, sum)) = c.min_max_sum {
            out.push_str(&format!(" {min} {max} {sum}"));
        }
    }
    out
}

/// One `[usecs]` line per operation, with its fastest, slowest and total
/// time.
pub fn op_lines(ops: Vec<(String, SampleSummary)>) -> Vec<Counter> {
    ops.into_iter().map(|(op, s)| Counter::samples(op, s, "usecs")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn renders_like_lustre() {
        let at = UNIX_EPOCH + Duration::new(1_700_000_000, 5);
        let bytes = SampleSummary { count: 3, sum: 1_052_672, min: 4096, max: 1_048_576 };
        let text = render(
            at,
            &[
                Counter::new("read_bytes", 0, "bytes"),
                Counter::samples("write_bytes", bytes, "bytes"),
                Counter::new("write", 16, "reqs"),
            ],
        );
        assert_eq!(
            text,
            "snapshot_time             1700000000.000000005 secs.nsecs\n\
             write_bytes               3 samples [bytes] 4096 1048576 1052672\n\
             write                     16 samples [reqs]"
        );
    }

    #[test]
    fn values_sum_the_series_with_the_labels() {
        let r = Registry::new();
        let c = prometheus::IntCounterVec::new(prometheus::Opts::new("n", "help"), &["target"]).unwrap();
        r.register(Box::new(c.clone())).unwrap();
        c.with_label_values(&["a"]).inc_by(2);
        c.with_label_values(&["b"]).inc_by(3);
        let s = Snapshot::gather(&r);
        assert_eq!(s.value("n", &[("target", "a")]), Some(2.0));
        assert_eq!(s.value("n", &[]), Some(5.0));
        assert_eq!(s.value("nothing", &[]), None);
    }
}
