//! Prometheus export of the fabric's counters, and the small pieces every
//! glint collector shares.
//!
//! The counters on the data path stay plain atomics; a [`Families`]
//! collector reads them only when Prometheus scrapes, so exporting costs
//! the data path nothing. Latencies are `prometheus::Histogram`s, whose
//! observation is a few atomic adds.

use crate::rpc::Endpoint;
use prometheus::core::{Collector, Desc};
use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{Histogram, HistogramOpts, HistogramVec};
use std::collections::HashMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// One metric family a collector exports: its name, help, type and labels.
#[derive(Clone, Copy, Debug)]
pub struct FamilySpec {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: MetricType,
    pub labels: &'static [&'static str],
}

impl FamilySpec {
    pub const fn counter(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        FamilySpec { name, help, kind: MetricType::COUNTER, labels }
    }

    pub const fn gauge(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        FamilySpec { name, help, kind: MetricType::GAUGE, labels }
    }
}

/// The descriptions of a custom collector's families, built once.
pub struct Families {
    specs: &'static [FamilySpec],
    descs: Vec<Desc>,
}

impl Families {
    /// Describes `specs`. The names are compile-time constants, so a bad
    /// one is a programming error caught by the tests of each collector.
    pub fn new(specs: &'static [FamilySpec]) -> Families {
        let descs = specs
            .iter()
            .map(|s| {
                Desc::new(
                    s.name.into(),
                    s.help.into(),
                    s.labels.iter().map(|l| l.to_string()).collect(),
                    HashMap::new(),
                )
                .unwrap_or_else(|e| panic!("metric {}: {e}", s.name))
            })
            .collect();
        Families { specs, descs }
    }

    pub fn descs(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    /// An empty scrape of these families, to fill with [`Scrape::add`].
    pub fn scrape(&self) -> Scrape {
        Scrape {
            specs: self.specs,
            families: self
                .specs
                .iter()
                .map(|s| {
                    let mut f = MetricFamily::default();
                    f.set_name(s.name.into());
                    f.set_help(s.help.into());
                    f.set_field_type(s.kind);
                    f
                })
                .collect(),
        }
    }
}

/// The values of one scrape, family by family.
pub struct Scrape {
    specs: &'static [FamilySpec],
    families: Vec<MetricFamily>,
}

impl Scrape {
    /// Adds one sample to family `name`, with `values` for its labels in order.
    pub fn add(&mut self, name: &str, values: &[&str], v: f64) {
        let Some(i) = self.specs.iter().position(|s| s.name == name) else {
            debug_assert!(false, "metric {name} was not described");
            return;
        };
        let spec = &self.specs[i];
        debug_assert_eq!(spec.labels.len(), values.len(), "labels of {name}");
        let labels = spec
            .labels
            .iter()
            .zip(values)
            .map(|(n, v)| {
                let mut l = LabelPair::default();
                l.set_name(n.to_string());
                l.set_value(v.to_string());
                l
            })
            .collect();
        let mut m = Metric::from_label(labels);
        match spec.kind {
            MetricType::GAUGE => {
                let mut g = Gauge::default();
                g.set_value(v);
                m.set_gauge(g);
            }
            _ => {
                let mut c = Counter::default();
                c.set_value(v);
                m.set_counter(c);
            }
        }
        self.families[i].mut_metric().push(m);
    }

    pub fn finish(self) -> Vec<MetricFamily> {
        self.families
    }
}

/// Buckets for service latencies: 10 µs to about 9 s, each 2.5 times the last.
pub fn latency_buckets() -> Vec<f64> {
    prometheus::exponential_buckets(1e-5, 2.5, 16).expect("constant, valid buckets")
}

/// A latency histogram family with the given labels.
pub fn latency_histogram(name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    HistogramVec::new(HistogramOpts::new(name, help).buckets(latency_buckets()), labels)
        .unwrap_or_else(|e| panic!("histogram {name}: {e}"))
}

/// Samples of one quantity as Lustre's stats files keep them: how many,
/// their sum, the smallest and the largest.
#[derive(Debug)]
pub struct Samples {
    count: AtomicU64,
    sum: AtomicU64,
    min: AtomicU64,
    max: AtomicU64,
}

impl Default for Samples {
    fn default() -> Samples {
        Samples {
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            min: AtomicU64::new(u64::MAX),
            max: AtomicU64::new(0),
        }
    }
}

/// What a [`Samples`] held at one moment (`min` is 0 when `count` is).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SampleSummary {
    pub count: u64,
    pub sum: u64,
    pub min: u64,
    pub max: u64,
}

impl Samples {
    pub fn add(&self, v: u64) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(v, Ordering::Relaxed);
        // A plain load first: the extremes seldom move, and a fetch_min is
        // a compare-and-swap loop on a line every service thread shares.
        if v < self.min.load(Ordering::Relaxed) {
            self.min.fetch_min(v, Ordering::Relaxed);
        }
        if v > self.max.load(Ordering::Relaxed) {
            self.max.fetch_max(v, Ordering::Relaxed);
        }
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn sum(&self) -> u64 {
        self.sum.load(Ordering::Relaxed)
    }

    pub fn summary(&self) -> SampleSummary {
        let count = self.count();
        let min = if count == 0 { 0 } else { self.min.load(Ordering::Relaxed) };
        SampleSummary { count, sum: self.sum(), min, max: self.max.load(Ordering::Relaxed) }
    }
}

impl SampleSummary {
    /// Both sets of samples as one.
    pub fn merge(self, o: SampleSummary) -> SampleSummary {
        match (self.count, o.count) {
            (0, _) => o,
            (_, 0) => self,
            _ => SampleSummary {
                count: self.count + o.count,
                sum: self.sum + o.sum,
                min: self.min.min(o.min),
                max: self.max.max(o.max),
            },
        }
    }
}

/// Histograms of one label set per small opcode, resolved once, so the
/// request path pays one atomic load to find its histogram instead of the
/// label lookup (a hash and a read lock) of `HistogramVec`. Beside each, the
/// count, sum, minimum and maximum in microseconds, for Lustre's stats
/// lines (`NAME COUNT samples [usecs] MIN MAX SUM`), which a histogram
/// cannot give.
pub struct OpHistograms {
    vec: HistogramVec,
    fixed: Vec<String>,
    slots: Box<[OnceLock<OpSlot>]>,
}

struct OpSlot {
    hist: Histogram,
    name: String,
    micros: Samples,
}

/// Opcodes below this get a resolved slot; others go through the vec and
/// have no minimum and maximum.
const OP_SLOTS: usize = 128;

impl OpHistograms {
    /// `vec`'s labels are `fixed` (the same for every sample, e.g. the
    /// target) followed by one for the operation.
    pub fn new(vec: HistogramVec, fixed: &[&str]) -> OpHistograms {
        OpHistograms {
            vec,
            fixed: fixed.iter().map(|s| s.to_string()).collect(),
            slots: (0..OP_SLOTS).map(|_| OnceLock::new()).collect(),
        }
    }

    fn resolve(&self, name: &str) -> Histogram {
        let mut values: Vec<&str> = self.fixed.iter().map(|s| s.as_str()).collect();
        values.push(name);
        self.vec.with_label_values(&values)
    }

    fn slot<S: AsRef<str>>(&self, opcode: u16, name: impl FnOnce() -> S) -> Option<&OpSlot> {
        let slot = self.slots.get(opcode as usize)?;
        Some(slot.get_or_init(|| {
            let name = name().as_ref().to_string();
            OpSlot { hist: self.resolve(&name), name, micros: Samples::default() }
        }))
    }

    /// The histogram of operation `opcode`; `name` labels it the first time.
    pub fn get<S: AsRef<str>>(&self, opcode: u16, name: impl FnOnce() -> S) -> Histogram {
        match self.slots.get(opcode as usize) {
            Some(_) => self.slot(opcode, name).expect("a slot").hist.clone(),
            None => self.resolve(name().as_ref()),
        }
    }

    /// Observes `secs` for operation `opcode`, labelled `name`.
    pub fn observe<S: AsRef<str>>(&self, opcode: u16, name: impl FnOnce() -> S, secs: f64) {
        if (opcode as usize) >= OP_SLOTS {
            self.resolve(name().as_ref()).observe(secs);
            return;
        }
        let slot = match self.slots[opcode as usize].get() {
            Some(s) => s,
            None => self.slot(opcode, name).expect("a slot"),
        };
        slot.hist.observe(secs);
        slot.micros.add((secs * 1e6) as u64);
    }

    /// Each operation seen so far, by name, with its times in microseconds.
    pub fn summaries(&self) -> Vec<(String, SampleSummary)> {
        let mut v: Vec<_> =
            self.slots.iter().filter_map(|s| s.get()).map(|s| (s.name.clone(), s.micros.summary())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    pub fn vec(&self) -> &HistogramVec {
        &self.vec
    }
}

const FABRIC: &[FamilySpec] = &[
    FamilySpec::counter(
        "glint_fabric_tx_messages_total",
        "Immediate messages sent, per peer.",
        &["lnd", "peer"],
    ),
    FamilySpec::counter(
        "glint_fabric_rx_messages_total",
        "Immediate messages received, per peer.",
        &["lnd", "peer"],
    ),
    FamilySpec::counter(
        "glint_fabric_tx_bytes_total",
        "Bytes sent to a peer: immediate messages and bulk.",
        &["lnd", "peer"],
    ),
    FamilySpec::counter(
        "glint_fabric_rx_bytes_total",
        "Bytes received from a peer: immediate messages and bulk.",
        &["lnd", "peer"],
    ),
    FamilySpec::counter(
        "glint_fabric_bulk_tx_bytes_total",
        "Bulk bytes sent to a peer (the part of tx_bytes that moved as bulk).",
        &["lnd", "peer"],
    ),
    FamilySpec::counter(
        "glint_fabric_bulk_rx_bytes_total",
        "Bulk bytes received from a peer.",
        &["lnd", "peer"],
    ),
    FamilySpec::counter(
        "glint_fabric_rdma_read_bytes_total",
        "Bytes this node read from a peer's memory by RDMA READ (o2ib: a write RPC's data).",
        &["lnd", "peer"],
    ),
    FamilySpec::counter(
        "glint_fabric_rdma_write_bytes_total",
        "Bytes this node wrote into a peer's memory by RDMA WRITE (o2ib: a read RPC's data).",
        &["lnd", "peer"],
    ),
    FamilySpec::gauge(
        "glint_fabric_peer_credits",
        "Credits available now for sending immediate messages to a connected peer.",
        &["lnd", "peer"],
    ),
    FamilySpec::gauge("glint_fabric_peers", "Peers with a live connection.", &["lnd"]),
    FamilySpec::counter("glint_fabric_connects_total", "Connections set up (either side).", &["lnd"]),
    FamilySpec::counter(
        "glint_fabric_reconnects_total",
        "Connections set up to a peer that had been connected before.",
        &["lnd"],
    ),
    FamilySpec::counter("glint_fabric_disconnects_total", "Connections lost or closed.", &["lnd"]),
    FamilySpec::counter(
        "glint_fabric_checksum_errors_total",
        "Frames whose crc32c did not match (the connection is dropped).",
        &["lnd"],
    ),
    FamilySpec::counter(
        "glint_fabric_frames_refused_total",
        "Malformed frames and refused hellos (checksum errors included).",
        &["lnd"],
    ),
    FamilySpec::counter(
        "glint_fabric_bulk_refused_total",
        "Bulk transfers refused because the named buffer was not exposed for it.",
        &["lnd"],
    ),
    FamilySpec::counter(
        "glint_fabric_rdma_refused_total",
        "RDMA this node started that the peer's HCA refused (bad rkey, range or direction).",
        &["lnd"],
    ),
    FamilySpec::counter(
        "glint_fabric_error_completions_total",
        "Work requests that completed with an error (the connection is dropped).",
        &["lnd"],
    ),
    FamilySpec::gauge(
        "glint_fabric_rdma_exposures",
        "Ranges this node exposes now with an RDMA registration (their rkeys are live).",
        &["lnd"],
    ),
    FamilySpec::gauge(
        "glint_fabric_ni_up",
        "Whether an NI this node is configured with runs (0: o2ib configured, but no RDMA device).",
        &["lnd"],
    ),
    FamilySpec::counter("glint_fabric_rpc_requests_sent_total", "RPC requests sent (first sends).", &[]),
    FamilySpec::counter("glint_fabric_rpc_resends_total", "RPC requests sent again with the same xid.", &[]),
    FamilySpec::counter("glint_fabric_rpc_timeouts_total", "RPC replies not in time (then resent).", &[]),
    FamilySpec::counter(
        "glint_fabric_rpc_late_replies_total",
        "Replies that came after their caller left.",
        &[],
    ),
    FamilySpec::counter("glint_fabric_rpc_requests_handled_total", "RPC requests this node served.", &[]),
    FamilySpec::counter(
        "glint_fabric_rpc_replays_total",
        "Resent requests answered from the reply cache instead of running again.",
        &[],
    ),
    FamilySpec::counter("glint_fabric_rpc_bad_messages_total", "Messages with a malformed RPC header.", &[]),
    FamilySpec::counter(
        "glint_fabric_rpc_dispatch_overflows_total",
        "Requests served on the network runtime because their partition's queue was full.",
        &[],
    ),
    FamilySpec::gauge(
        "glint_fabric_rpc_service_threads",
        "Pinned RPC service threads, per CPU partition.",
        &["cpt"],
    ),
    FamilySpec::counter(
        "glint_fabric_tcp_fallbacks_total",
        "Calls to a peer of an RDMA network that went over tcp instead.",
        &[],
    ),
    FamilySpec::counter(
        "glint_fabric_peer_tcp_fallbacks_total",
        "Messages to one peer of an RDMA network that went over tcp instead.",
        &["peer"],
    ),
    FamilySpec::gauge(
        "glint_fabric_rpcs_in_flight",
        "RPC requests this node sent and awaits replies to.",
        &[],
    ),
    FamilySpec::gauge("glint_fabric_rpcs_serving", "RPC requests this node is serving now.", &[]),
];

/// Exports an endpoint's LND and RPC counters, and its service latencies.
pub struct FabricCollector {
    ep: Endpoint,
    families: Families,
}

impl FabricCollector {
    pub fn new(ep: &Endpoint) -> FabricCollector {
        FabricCollector { ep: ep.clone(), families: Families::new(FABRIC) }
    }
}

impl FabricCollector {
    /// The o2ib NI's counters, labelled `lnd` with its network (`o2ib`,
    /// `o2ib1`, ...); an NI configured but down shows only `ni_up` 0.
    fn collect_o2ib(&self, s: &mut Scrape) {
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64;
        let Some(o2ib) = self.ep.o2ib() else {
            if self.ep.o2ib_down().is_some() {
                s.add("glint_fabric_ni_up", &["o2ib"], 0.0);
            }
            return;
        };
        let lnd = crate::lnd::Lnd::net(o2ib).to_string();
        let mut live = 0;
        for (peer, st) in o2ib.peer_stats() {
            let p = peer.to_string();
            let labels = [lnd.as_str(), p.as_str()];
            let (read, written) = (load(&st.rdma_read_bytes), load(&st.rdma_write_bytes));
            s.add("glint_fabric_tx_messages_total", &labels, load(&st.tx_msgs));
            s.add("glint_fabric_rx_messages_total", &labels, load(&st.rx_msgs));
            s.add("glint_fabric_tx_bytes_total", &labels, load(&st.tx_bytes) + written);
            s.add("glint_fabric_rx_bytes_total", &labels, load(&st.rx_bytes) + read);
            s.add("glint_fabric_bulk_tx_bytes_total", &labels, written);
            s.add("glint_fabric_bulk_rx_bytes_total", &labels, read);
            s.add("glint_fabric_rdma_read_bytes_total", &labels, read);
            s.add("glint_fabric_rdma_write_bytes_total", &labels, written);
            if let Some(c) = o2ib.peer_credits(peer) {
                live += 1;
                s.add("glint_fabric_peer_credits", &labels, f64::from(c));
            }
        }
        let l = [lnd.as_str()];
        let t = o2ib.stats();
        let (registered, deregistered) = o2ib.exposure_registrations();
        s.add("glint_fabric_peers", &l, f64::from(live));
        s.add("glint_fabric_connects_total", &l, load(&t.connects));
        s.add("glint_fabric_reconnects_total", &l, load(&t.reconnects));
        s.add("glint_fabric_disconnects_total", &l, load(&t.disconnects));
        s.add("glint_fabric_frames_refused_total", &l, load(&t.protocol_errors));
        s.add("glint_fabric_bulk_refused_total", &l, load(&t.bulk_refused));
        s.add("glint_fabric_rdma_refused_total", &l, load(&t.rdma_refused));
        s.add("glint_fabric_error_completions_total", &l, load(&t.error_completions));
        s.add("glint_fabric_rdma_exposures", &l, registered.saturating_sub(deregistered) as f64);
        s.add("glint_fabric_ni_up", &l, 1.0);
    }
}

impl Collector for FabricCollector {
    fn desc(&self) -> Vec<&Desc> {
        let mut d = self.families.descs();
        d.extend(self.ep.service_latency().desc());
        d
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut s = self.families.scrape();
        let tcp = self.ep.tcp();
        let lnd = crate::lnd::Lnd::net(tcp).to_string();
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64;
        let mut live = 0u32;
        for (peer, st) in tcp.peer_stats() {
            let p = peer.to_string();
            let labels = [lnd.as_str(), p.as_str()];
            s.add("glint_fabric_tx_messages_total", &labels, load(&st.tx_msgs));
            s.add("glint_fabric_rx_messages_total", &labels, load(&st.rx_msgs));
            s.add("glint_fabric_tx_bytes_total", &labels, load(&st.tx_bytes) + load(&st.bulk_tx_bytes));
            s.add("glint_fabric_rx_bytes_total", &labels, load(&st.rx_bytes) + load(&st.bulk_rx_bytes));
            s.add("glint_fabric_bulk_tx_bytes_total", &labels, load(&st.bulk_tx_bytes));
            s.add("glint_fabric_bulk_rx_bytes_total", &labels, load(&st.bulk_rx_bytes));
            if let Some(c) = tcp.peer_credits(peer) {
                live += 1;
                s.add("glint_fabric_peer_credits", &labels, c as f64);
            }
        }
        let l = [lnd.as_str()];
        let t = tcp.stats();
        s.add("glint_fabric_peers", &l, live as f64);
        s.add("glint_fabric_connects_total", &l, load(&t.connects));
        s.add("glint_fabric_reconnects_total", &l, load(&t.reconnects));
        s.add("glint_fabric_disconnects_total", &l, load(&t.disconnects));
        s.add("glint_fabric_checksum_errors_total", &l, load(&t.checksum_errors));
        s.add("glint_fabric_frames_refused_total", &l, load(&t.frames_refused));
        s.add("glint_fabric_bulk_refused_total", &l, load(&t.bulk_refused));
        s.add("glint_fabric_ni_up", &l, 1.0);
        self.collect_o2ib(&mut s);
        let r = self.ep.stats();
        s.add("glint_fabric_rpc_requests_sent_total", &[], load(&r.requests_sent));
        s.add("glint_fabric_rpc_resends_total", &[], load(&r.resends));
        s.add("glint_fabric_rpc_timeouts_total", &[], load(&r.timeouts));
        s.add("glint_fabric_rpc_late_replies_total", &[], load(&r.late_replies));
        s.add("glint_fabric_rpc_requests_handled_total", &[], load(&r.requests_handled));
        s.add("glint_fabric_rpc_replays_total", &[], load(&r.replays));
        s.add("glint_fabric_rpc_bad_messages_total", &[], load(&r.bad_messages));
        s.add("glint_fabric_tcp_fallbacks_total", &[], load(&r.tcp_fallbacks));
        for route in self.ep.peer_routes() {
            s.add(
                "glint_fabric_peer_tcp_fallbacks_total",
                &[&route.peer.to_string()],
                route.fallbacks as f64,
            );
        }
        s.add("glint_fabric_rpc_dispatch_overflows_total", &[], load(&r.dispatch_overflows));
        for (cpt, n) in self.ep.service_threads().into_iter().enumerate() {
            s.add("glint_fabric_rpc_service_threads", &[&cpt.to_string()], n as f64);
        }
        s.add("glint_fabric_rpcs_in_flight", &[], self.ep.in_flight() as f64);
        s.add("glint_fabric_rpcs_serving", &[], load(&r.serving));
        let mut out = s.finish();
        out.extend(self.ep.service_latency().collect());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn op_histograms_keep_each_operations_extremes_and_sum() {
        let ops = OpHistograms::new(latency_histogram("t_ops", "help", &["target", "op"]), &["OST0000"]);
        ops.observe(4, || "write", 0.000_010);
        ops.observe(4, || "write", 0.000_030);
        ops.observe(3, || "read", 0.002);
        // Past the resolved slots: counted by the histogram only.
        ops.observe(500, || "odd", 1.0);
        let s = ops.summaries();
        assert_eq!(
            s,
            vec![
                ("read".to_string(), SampleSummary { count: 1, sum: 2000, min: 2000, max: 2000 }),
                ("write".to_string(), SampleSummary { count: 2, sum: 40, min: 10, max: 30 }),
            ]
        );
        assert_eq!(ops.get(4, || "write").get_sample_count(), 2);
        assert_eq!(ops.vec().with_label_values(&["OST0000", "odd"]).get_sample_count(), 1);
    }

    #[test]
    fn no_samples_summarise_as_zeros() {
        assert_eq!(Samples::default().summary(), SampleSummary::default());
    }

    proptest! {
        #[test]
        fn summaries_match_the_samples_and_merge_as_one_set(
            a in proptest::collection::vec(0u64..1 << 40, 0..50),
            b in proptest::collection::vec(0u64..1 << 40, 0..50),
        ) {
            let (sa, sb, both) = (Samples::default(), Samples::default(), Samples::default());
            for v in &a { sa.add(*v); both.add(*v); }
            for v in &b { sb.add(*v); both.add(*v); }
            let expect = |v: &[u64]| SampleSummary {
                count: v.len() as u64,
                sum: v.iter().sum(),
                min: v.iter().copied().min().unwrap_or(0),
                max: v.iter().copied().max().unwrap_or(0),
            };
            prop_assert_eq!(sa.summary(), expect(&a));
            prop_assert_eq!(sa.summary().merge(sb.summary()), both.summary());
        }
    }
}
