//! Prometheus export of an OSS: each target's counters, space and
//! operation latencies, and the disk queue of each CPT. Counters are read
//! at scrape time; space is asked of the backing file system then too.

use crate::Oss;
use fabric::metrics::{Families, FamilySpec};
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use std::sync::Arc;
use std::sync::atomic::Ordering;

const OST: &[FamilySpec] = &[
    FamilySpec::counter(
        "glint_ost_read_bytes_total",
        "Bytes read from the target and sent to clients.",
        &["target"],
    ),
    FamilySpec::counter(
        "glint_ost_write_bytes_total",
        "Bytes received from clients and written.",
        &["target"],
    ),
    FamilySpec::counter("glint_ost_reads_total", "Read operations completed.", &["target"]),
    FamilySpec::counter("glint_ost_writes_total", "Write operations completed.", &["target"]),
    FamilySpec::counter(
        "glint_ost_checksum_errors_total",
        "Bulk writes refused because the data did not match the client's crc32c.",
        &["target"],
    ),
    FamilySpec::gauge("glint_ost_capacity_bytes", "Size of the target's backing file system.", &["target"]),
    FamilySpec::gauge("glint_ost_free_bytes", "Free space of the target's backing file system.", &["target"]),
    FamilySpec::gauge(
        "glint_ost_available_bytes",
        "Space the target can still fill (free less what the file system reserves).",
        &["target"],
    ),
    FamilySpec::gauge(
        "glint_ost_inodes",
        "Inodes (objects) the target's backing file system can hold.",
        &["target"],
    ),
    FamilySpec::gauge("glint_ost_inodes_free", "Inodes still free for objects.", &["target"]),
    FamilySpec::gauge(
        "glint_ost_open_objects",
        "Objects held open by the target's descriptor cache.",
        &["target"],
    ),
    FamilySpec::gauge("glint_ost_io_queue_depth", "Disk jobs waiting for a disk thread, per CPT.", &["cpt"]),
    FamilySpec::gauge(
        "glint_ost_ldlm_locks",
        "Extent locks clients hold on the target's objects.",
        &["target"],
    ),
    FamilySpec::counter("glint_ost_ldlm_granted_total", "Extent locks granted.", &["target"]),
    FamilySpec::counter(
        "glint_ost_ldlm_cancelled_total",
        "Extent locks given back: cancelled by their holder or answered callbacks.",
        &["target"],
    ),
    FamilySpec::counter(
        "glint_ost_ldlm_callbacks_total",
        "Blocking callbacks sent to lock holders.",
        &["target"],
    ),
    FamilySpec::counter(
        "glint_ost_ldlm_glimpses_total",
        "Stats answered from the sizes the PW lock holders knew, without calling their locks back.",
        &["target"],
    ),
    FamilySpec::counter(
        "glint_ost_ldlm_evictions_total",
        "Lock holders evicted for not answering a callback in time.",
        &["target"],
    ),
    FamilySpec::counter(
        "glint_ost_ldlm_stale_writes_total",
        "Writes refused because the lock their bytes were gathered under was taken from the client (evicted).",
        &["target"],
    ),
    FamilySpec::counter(
        "glint_ost_ldlm_replayed_total",
        "Locks of the target's previous run given back to their holders after a restart.",
        &["target"],
    ),
    FamilySpec::gauge(
        "glint_ost_recovering",
        "1 while the target waits for the lock holders of its previous run to replay their locks.",
        &["target"],
    ),
];

/// Exports the targets of one OSS.
pub struct OstCollector {
    oss: Arc<Oss>,
    families: Families,
}

impl OstCollector {
    pub fn new(oss: Arc<Oss>) -> OstCollector {
        OstCollector { oss, families: Families::new(OST) }
    }
}

impl Collector for OstCollector {
    fn desc(&self) -> Vec<&Desc> {
        let mut d = self.families.descs();
        d.extend(self.oss.latency().desc());
        d
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut s = self.families.scrape();
        for (_, t) in self.oss.targets() {
            let name = t.store.label().target_name();
            let l = [name.as_str()];
            let st = &t.stats;
            s.add("glint_ost_read_bytes_total", &l, st.read.sum() as f64);
            s.add("glint_ost_write_bytes_total", &l, st.write.sum() as f64);
            s.add("glint_ost_reads_total", &l, st.read.count() as f64);
            s.add("glint_ost_writes_total", &l, st.write.count() as f64);
            s.add("glint_ost_checksum_errors_total", &l, st.checksum_errors.load(Ordering::Relaxed) as f64);
            s.add("glint_ost_open_objects", &l, t.store.open_objects() as f64);
            let ls = t.ldlm.stats();
            s.add("glint_ost_ldlm_locks", &l, t.ldlm.lock_count() as f64);
            s.add("glint_ost_ldlm_granted_total", &l, ls.granted.load(Ordering::Relaxed) as f64);
            s.add("glint_ost_ldlm_cancelled_total", &l, ls.cancelled.load(Ordering::Relaxed) as f64);
            s.add("glint_ost_ldlm_callbacks_total", &l, ls.callbacks.load(Ordering::Relaxed) as f64);
            s.add("glint_ost_ldlm_glimpses_total", &l, ls.glimpses.load(Ordering::Relaxed) as f64);
            s.add("glint_ost_ldlm_evictions_total", &l, ls.evictions.load(Ordering::Relaxed) as f64);
            s.add("glint_ost_ldlm_stale_writes_total", &l, ls.stale_writes.load(Ordering::Relaxed) as f64);
            s.add("glint_ost_ldlm_replayed_total", &l, ls.replayed.load(Ordering::Relaxed) as f64);
            s.add("glint_ost_recovering", &l, f64::from(u8::from(t.ldlm.recovering())));
            match t.store.statfs() {
                Ok(fs) => {
                    let b = fs.bsize as f64;
                    s.add("glint_ost_capacity_bytes", &l, fs.blocks as f64 * b);
                    s.add("glint_ost_free_bytes", &l, fs.bfree as f64 * b);
                    s.add("glint_ost_available_bytes", &l, fs.bavail as f64 * b);
                    s.add("glint_ost_inodes", &l, fs.files as f64);
                    s.add("glint_ost_inodes_free", &l, fs.ffree as f64);
                }
                // A missing sample is what Prometheus understands as "unknown".
                Err(e) => tracing::warn!(ost = %name, error = %e, "statfs for metrics failed"),
            }
        }
        for (cpt, queued) in self.oss.queue_depth() {
            s.add("glint_ost_io_queue_depth", &[&cpt.to_string()], queued as f64);
        }
        let mut out = s.finish();
        out.extend(self.oss.latency().collect());
        out
    }
}
