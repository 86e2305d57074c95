//! Prometheus export of the MDS: operation latencies, inodes, the group
//! committer and the destroy log. Counters are read at scrape time.

use crate::Mds;
use fabric::metrics::{Families, FamilySpec};
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use std::sync::Arc;
use std::sync::atomic::Ordering;

const MDS: &[FamilySpec] = &[
    FamilySpec::gauge("glint_mds_inodes_used", "Inodes in use on the MDT.", &["target"]),
    FamilySpec::gauge("glint_mds_inodes_free", "Inodes (FIDs) the MDT can still give out.", &["target"]),
    FamilySpec::counter("glint_mds_commits_total", "Durable group commits made.", &["target"]),
    FamilySpec::counter(
        "glint_mds_committed_ops_total",
        "Metadata changes those commits carried (refused ones included).",
        &["target"],
    ),
    FamilySpec::gauge("glint_mds_commit_largest_batch_ops", "The largest group commit so far.", &["target"]),
    FamilySpec::gauge("glint_mds_commit_queue_ops", "Changes waiting for the committer now.", &["target"]),
    FamilySpec::gauge(
        "glint_mds_destroy_log_objects",
        "OST objects of removed files still to be destroyed (the destroy-log backlog).",
        &["target"],
    ),
    FamilySpec::counter(
        "glint_mds_objects_precreated_total",
        "Objects precreated on OSTs for new files.",
        &["target"],
    ),
    FamilySpec::counter(
        "glint_mds_objects_destroyed_total",
        "OST objects destroyed from the destroy log.",
        &["target"],
    ),
];

/// Exports one MDS.
pub struct MdsCollector {
    mds: Arc<Mds>,
    target: String,
    families: Families,
}

impl MdsCollector {
    pub fn new(mds: Arc<Mds>) -> MdsCollector {
        let target = format!("{}-MDT0000", mds.mdt().fsname());
        MdsCollector { mds, target, families: Families::new(MDS) }
    }
}

impl Collector for MdsCollector {
    fn desc(&self) -> Vec<&Desc> {
        let mut d = self.families.descs();
        d.extend(self.mds.latency().desc());
        d.extend(self.mds.mdt().commit_batches().desc());
        d.extend(self.mds.mdt().commit_seconds().desc());
        d
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut s = self.families.scrape();
        let l = [self.target.as_str()];
        let mdt = self.mds.mdt();
        match mdt.statfs() {
            Ok(fs) => {
                s.add("glint_mds_inodes_used", &l, fs.files.saturating_sub(fs.ffree) as f64);
                s.add("glint_mds_inodes_free", &l, fs.ffree as f64);
            }
            Err(e) => tracing::warn!(error = %e, "MDT statfs for metrics failed"),
        }
        let c = mdt.commit_stats();
        s.add("glint_mds_commits_total", &l, c.commits as f64);
        s.add("glint_mds_committed_ops_total", &l, c.ops as f64);
        s.add("glint_mds_commit_largest_batch_ops", &l, c.largest_batch as f64);
        s.add("glint_mds_commit_queue_ops", &l, c.queued as f64);
        match mdt.destroy_log_len() {
            Ok(n) => s.add("glint_mds_destroy_log_objects", &l, n as f64),
            Err(e) => tracing::warn!(error = %e, "reading the destroy log for metrics failed"),
        }
        let st = &self.mds.stats;
        s.add("glint_mds_objects_precreated_total", &l, st.precreated.load(Ordering::Relaxed) as f64);
        s.add("glint_mds_objects_destroyed_total", &l, st.destroyed.load(Ordering::Relaxed) as f64);
        let mut out = s.finish();
        out.extend(self.mds.latency().collect());
        out.extend(mdt.commit_batches().collect());
        out.extend(mdt.commit_seconds().collect());
        out
    }
}
