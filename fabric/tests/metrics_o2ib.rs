//! The o2ib side of the fabric's Prometheus export on a host without an
//! RDMA device (this one has none): the configured o2ib NI shows as down,
//! and calls to an o2ib peer are counted as tcp fallbacks for that peer.
//! The o2ib traffic figures themselves are checked in the Soft-RoCE VM
//! (`o2ib_selftest`, RPC check).

use fabric::metrics::FabricCollector;
use fabric::rpc::{Endpoint, EndpointConfig, Request, Response, Service};
use fabric::{Net, Nid, Pid, ProcessId};
use prometheus::core::Collector;
use prometheus::proto::MetricFamily;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

struct Echo;

impl Service for Echo {
    fn handle(self: Arc<Self>, req: Request) -> Pin<Box<dyn Future<Output = Response> + Send>> {
        Box::pin(async move { Ok(req.body().to_vec()) })
    }
}

fn loopback() -> IpAddr {
    let mut b = [0u8; 3];
    // SAFETY: getrandom fills the 3-byte array.
    unsafe { libc::getrandom(b.as_mut_ptr() as *mut libc::c_void, 3, 0) };
    IpAddr::from([127, b[0], b[1], b[2].max(2)])
}

fn samples(fams: &[MetricFamily], name: &str) -> Vec<(Vec<(String, String)>, f64)> {
    let Some(f) = fams.iter().find(|f| f.name() == name) else { return Vec::new() };
    let gauge = f.get_field_type() == prometheus::proto::MetricType::GAUGE;
    f.get_metric()
        .iter()
        .map(|m| {
            let labels = m.get_label().iter().map(|l| (l.name().to_owned(), l.value().to_owned())).collect();
            let v = if gauge { m.get_gauge().get_value() } else { m.get_counter().get_value() };
            (labels, v)
        })
        .collect()
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_o2ib_ni_and_fallbacks_per_peer() {
    if fabric::o2ib::list_devices().is_ok() {
        return;
    }
    let addr = loopback();
    let port = 19881;
    let mut scfg = EndpointConfig::server(Nid::new(addr, Net::tcp(0)));
    scfg.tcp.port = port;
    let server = Endpoint::start(scfg).await.unwrap();
    server.register(9, Arc::new(Echo));
    let mut ccfg =
        EndpointConfig::client(Nid::new(addr, Net::tcp(0))).with_o2ib(Nid::new(addr, Net::o2ib(0)));
    ccfg.tcp.port = port;
    let client = Endpoint::start(ccfg).await.unwrap();

    let peer = Nid::new(addr, Net::o2ib(0));
    let target = ProcessId { nid: peer, pid: Pid::SERVER };
    for _ in 0..3 {
        client.call(target, 9, 1, b"hi").await.unwrap();
    }
    let c = FabricCollector::new(&client).collect();
    let up = samples(&c, "glint_fabric_ni_up");
    assert!(up.contains(&(labels(&[("lnd", "o2ib")]), 0.0)), "{up:?}");
    assert!(up.contains(&(labels(&[("lnd", "tcp")]), 1.0)), "{up:?}");
    let fallbacks = samples(&c, "glint_fabric_peer_tcp_fallbacks_total");
    assert_eq!(fallbacks, vec![(labels(&[("peer", &peer.to_string())]), 3.0)]);
    assert_eq!(samples(&c, "glint_fabric_tcp_fallbacks_total"), vec![(vec![], 3.0)]);
    // No o2ib NI runs, so no o2ib traffic family has an o2ib sample.
    let o2ib_samples = c
        .iter()
        .flat_map(|f| f.get_metric())
        .filter(|m| m.get_label().iter().any(|l| l.name() == "lnd" && l.value() == "o2ib"))
        .count();
    assert_eq!(o2ib_samples, 1, "only ni_up speaks for the down NI");

    // A tcp-only node shows no o2ib NI at all.
    let s = FabricCollector::new(&server).collect();
    assert_eq!(samples(&s, "glint_fabric_ni_up"), vec![(labels(&[("lnd", "tcp")]), 1.0)]);
    client.shutdown();
    server.shutdown();
}
