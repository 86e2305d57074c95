//! Prometheus export of a client: operations, bytes and latencies of its
//! RPCs to the MDS and to each OST, and the RPCs in flight per OST. The
//! counters are atomics beside each OST link; the collector reads them at
//! scrape time.

use crate::client::{Client, OstLink};
use fabric::metrics::{Families, FamilySpec, OpHistograms, SampleSummary, Samples, latency_histogram};
use prometheus::HistogramVec;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use proto::OstReply;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// The latency histograms of one mounted client.
pub(crate) struct ClientMetrics {
    latency: HistogramVec,
    pub md: OpHistograms,
}

impl ClientMetrics {
    pub fn new(fsname: &str) -> ClientMetrics {
        let latency = latency_histogram(
            "glint_client_op_duration_seconds",
            "Time from sending an RPC to having its reply (resends included), per target and operation.",
            &["target", "op"],
        );
        let md = OpHistograms::new(latency.clone(), &[&format!("{fsname}-MDT0000")]);
        ClientMetrics { latency, md }
    }

    /// The counters of a new link to OST `index`.
    pub fn ost_link(&self, fsname: &str, index: u32) -> OstLinkStats {
        OstLinkStats {
            latency: OpHistograms::new(self.latency.clone(), &[&format!("{fsname}-OST{index:04x}")]),
            read: Samples::default(),
            write: Samples::default(),
        }
    }
}

/// What the client counts of its RPCs to one OST.
pub(crate) struct OstLinkStats {
    pub latency: OpHistograms,
    /// Bytes of each read and each write RPC that succeeded.
    pub read: Samples,
    pub write: Samples,
}

impl OstLinkStats {
    /// Counts the bytes a successful read or write moved (`data`: the
    /// bytes a short read brought back).
    pub fn count(&self, reply: &OstReply, data: usize) {
        match reply {
            OstReply::Written { len } => self.write.add(*len),
            OstReply::ReadDone { len, .. } => self.read.add(*len),
            OstReply::ReadShort { .. } => self.read.add(data as u64),
            _ => {}
        }
    }
}

/// What `lctl get_param osc.*.stats` shows of one OST's RPCs.
pub struct OscStats {
    /// Bytes per read and per write RPC.
    pub read: SampleSummary,
    pub write: SampleSummary,
    /// Each operation, with its times in microseconds.
    pub ops: Vec<(String, SampleSummary)>,
}

impl Client {
    /// The RPCs to OST `ost` so far, or None when it has no link.
    pub fn osc_stats(&self, ost: u32) -> Option<OscStats> {
        let osts = self.osts.read().expect("osts lock");
        let l = &osts.get(&ost)?.stats;
        Some(OscStats { read: l.read.summary(), write: l.write.summary(), ops: l.latency.summaries() })
    }

    /// The RPCs to the MDS so far, each operation with its times in
    /// microseconds (`mdc.*.md_stats`).
    pub fn mdc_stats(&self) -> Vec<(String, SampleSummary)> {
        self.metrics.md.summaries()
    }
}

const CLIENT: &[FamilySpec] = &[
    FamilySpec::counter("glint_client_read_bytes_total", "Bytes read from an OST.", &["target"]),
    FamilySpec::counter("glint_client_write_bytes_total", "Bytes written to an OST.", &["target"]),
    FamilySpec::gauge("glint_client_rpcs_in_flight", "RPCs to an OST in flight now.", &["target"]),
    FamilySpec::gauge(
        "glint_client_max_rpcs_in_flight",
        "The limit of RPCs in flight per OST (max_rpcs_in_flight).",
        &["target"],
    ),
    FamilySpec::gauge(
        "glint_client_ldlm_locks",
        "Extent locks this client holds on an OST's objects.",
        &["target"],
    ),
    FamilySpec::counter("glint_client_ldlm_granted_total", "Extent locks granted to this client.", &[]),
    FamilySpec::counter(
        "glint_client_ldlm_cancelled_total",
        "Extent locks this client gave back, called back or on its own.",
        &[],
    ),
    FamilySpec::counter(
        "glint_client_ldlm_callbacks_total",
        "Blocking callbacks the OSTs sent this client.",
        &[],
    ),
    FamilySpec::counter(
        "glint_client_ldlm_glimpses_total",
        "Glimpse callbacks answered: another client's stat was told the size this one knows, its lock kept.",
        &[],
    ),
    FamilySpec::counter(
        "glint_client_ldlm_callback_flushed_bytes_total",
        "Bytes of gathered writes sent early because another client needed their lock.",
        &[],
    ),
    FamilySpec::counter(
        "glint_client_readahead_hits_total",
        "Pages (4 KiB) of reads served from the read-ahead cache.",
        &[],
    ),
    FamilySpec::counter(
        "glint_client_readahead_misses_total",
        "Pages (4 KiB) of reads sent to the OSTs.",
        &[],
    ),
    FamilySpec::counter("glint_client_readahead_bytes_total", "Bytes read ahead into the cache.", &[]),
    FamilySpec::gauge("glint_client_cached_bytes", "File data cached under extent locks now.", &[]),
];

/// Exports one mounted client.
pub struct ClientCollector {
    client: Arc<Client>,
    families: Families,
}

impl ClientCollector {
    pub fn new(client: Arc<Client>) -> ClientCollector {
        ClientCollector { client, families: Families::new(CLIENT) }
    }
}

impl Collector for ClientCollector {
    fn desc(&self) -> Vec<&Desc> {
        let mut d = self.families.descs();
        d.extend(self.client.metrics.latency.desc());
        d
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut s = self.families.scrape();
        let links: Vec<Arc<OstLink>> =
            self.client.osts.read().expect("osts lock").values().cloned().collect();
        let fsname = self.client.fsname();
        for link in links {
            let name = format!("{fsname}-OST{:04x}", link.index);
            let l = [name.as_str()];
            s.add("glint_client_read_bytes_total", &l, link.stats.read.sum() as f64);
            s.add("glint_client_write_bytes_total", &l, link.stats.write.sum() as f64);
            s.add("glint_client_rpcs_in_flight", &l, link.in_flight.in_flight() as f64);
            s.add("glint_client_max_rpcs_in_flight", &l, link.in_flight.limit() as f64);
            s.add("glint_client_ldlm_locks", &l, self.client.lock_count_on(link.index) as f64);
        }
        let (locks, ra) = (self.client.lock_stats(), self.client.read_ahead_stats());
        let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64;
        s.add("glint_client_ldlm_granted_total", &[], n(&locks.granted));
        s.add("glint_client_ldlm_cancelled_total", &[], n(&locks.cancelled));
        s.add("glint_client_ldlm_callbacks_total", &[], n(&locks.callbacks));
        s.add("glint_client_ldlm_glimpses_total", &[], n(&locks.glimpses));
        s.add("glint_client_ldlm_callback_flushed_bytes_total", &[], n(&locks.callback_flushed_bytes));
        s.add("glint_client_readahead_hits_total", &[], n(&ra.hits));
        s.add("glint_client_readahead_misses_total", &[], n(&ra.misses));
        s.add("glint_client_readahead_bytes_total", &[], n(&ra.bytes));
        s.add("glint_client_cached_bytes", &[], self.client.cached_bytes() as f64);
        let mut out = s.finish();
        out.extend(self.client.metrics.latency.collect());
        out
    }
}
