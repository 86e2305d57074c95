//! The fabric's Prometheus export: after real calls between two endpoints
//! on loopback, the collectors report the traffic per peer, the RPC
//! counters and the service latency, through a real registry.

use fabric::metrics::FabricCollector;
use fabric::rpc::{Endpoint, EndpointConfig, Request, Response, Service};
use fabric::{Errno, Nid, Pid, ProcessId};
use prometheus::Registry;
use prometheus::proto::MetricFamily;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

const PORTAL: u16 = 9;
const ECHO: u16 = 5;

fn unique_nid() -> Nid {
    let mut b = [0u8; 3];
    // SAFETY: getrandom fills the 3-byte array.
    unsafe { libc::getrandom(b.as_mut_ptr() as *mut libc::c_void, 3, 0) };
    format!("127.{}.{}.{}@tcp", b[0], b[1], b[2].max(2)).parse().unwrap()
}

struct Echo;

impl Service for Echo {
    fn handle(self: Arc<Self>, req: Request) -> Pin<Box<dyn Future<Output = Response> + Send>> {
        Box::pin(async move { if req.opcode == ECHO { Ok(req.body().to_vec()) } else { Err(Errno::EINVAL) } })
    }
}

fn registry(ep: &Endpoint) -> Registry {
    let r = Registry::new();
    r.register(Box::new(FabricCollector::new(ep))).unwrap();
    r
}

fn family<'a>(fams: &'a [MetricFamily], name: &str) -> &'a MetricFamily {
    fams.iter().find(|f| f.name() == name).unwrap_or_else(|| panic!("no family {name}"))
}

/// The value of the sample of `name` whose labels include `labels`.
fn value(fams: &[MetricFamily], name: &str, labels: &[(&str, &str)]) -> f64 {
    let f = family(fams, name);
    let m = f
        .get_metric()
        .iter()
        .find(|m| labels.iter().all(|(k, v)| m.get_label().iter().any(|l| l.name() == *k && l.value() == *v)))
        .unwrap_or_else(|| panic!("no sample of {name} with {labels:?}"));
    match f.get_field_type() {
        prometheus::proto::MetricType::GAUGE => m.get_gauge().get_value(),
        _ => m.get_counter().get_value(),
    }
}

#[tokio::test]
async fn collectors_count_real_traffic() {
    let nid = unique_nid();
    let server = Endpoint::start(EndpointConfig::server(nid)).await.unwrap();
    server.register(PORTAL, Arc::new(Echo));
    let client = Endpoint::start(EndpointConfig::client(unique_nid())).await.unwrap();
    let to = ProcessId { nid, pid: Pid::SERVER };
    for _ in 0..10 {
        client.call(to, PORTAL, ECHO, &[7u8; 100]).await.unwrap();
    }
    assert!(client.call(to, PORTAL, 6, b"").await.is_err());

    let c = registry(&client).gather();
    let peer = to.to_string();
    let at = [("lnd", "tcp"), ("peer", peer.as_str())];
    assert_eq!(value(&c, "glint_fabric_tx_messages_total", &at), 11.0);
    assert_eq!(value(&c, "glint_fabric_rx_messages_total", &at), 11.0);
    assert!(value(&c, "glint_fabric_tx_bytes_total", &at) >= 1000.0);
    assert_eq!(value(&c, "glint_fabric_peer_credits", &at), 8.0);
    assert_eq!(value(&c, "glint_fabric_rpc_requests_sent_total", &[]), 11.0);
    assert_eq!(value(&c, "glint_fabric_rpcs_in_flight", &[]), 0.0);
    assert_eq!(value(&c, "glint_fabric_tcp_fallbacks_total", &[]), 0.0);
    assert_eq!(value(&c, "glint_fabric_connects_total", &[("lnd", "tcp")]), 1.0);
    assert_eq!(value(&c, "glint_fabric_reconnects_total", &[("lnd", "tcp")]), 0.0);

    let s = registry(&server).gather();
    assert_eq!(value(&s, "glint_fabric_rpc_requests_handled_total", &[]), 11.0);
    assert_eq!(value(&s, "glint_fabric_rpcs_serving", &[]), 0.0);
    let lat = family(&s, "glint_fabric_rpc_service_seconds");
    let counts: Vec<(String, u64)> = lat
        .get_metric()
        .iter()
        .map(|m| {
            let op = m.get_label().iter().find(|l| l.name() == "opcode").unwrap().value().to_string();
            (op, m.get_histogram().get_sample_count())
        })
        .collect();
    assert!(counts.contains(&("5".to_string(), 10)), "{counts:?}");
    assert!(counts.contains(&("6".to_string(), 1)), "{counts:?}");

    // A dropped connection and a new one count as a reconnect.
    client.tcp().disconnect(to);
    client.call(to, PORTAL, ECHO, b"again").await.unwrap();
    let c = registry(&client).gather();
    assert_eq!(value(&c, "glint_fabric_reconnects_total", &[("lnd", "tcp")]), 1.0);
    assert_eq!(value(&c, "glint_fabric_disconnects_total", &[("lnd", "tcp")]), 1.0);
}
