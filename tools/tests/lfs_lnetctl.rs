//! `lnetctl ping` and `peer show` against a real MGS on loopback, and a
//! NID where nothing listens. The unit tests of the `lnetctl` modules run
//! here too, as the module is compiled into this test.

#[allow(dead_code)]
#[path = "../src/lnetctl/mod.rs"]
mod lnetctl;
// The same in-process file system the client crate tests with.
#[path = "../../client/tests/support/mod.rs"]
mod support;

use fabric::Errno;
use lnet_shim::{LnetConfig, PeerShow, PeerState};
use lnetctl::{local, peer_entry, ping};
use std::time::Duration;
use support::{TestFs, unique_nid};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_and_peer_show() {
    let fs = TestFs::start(1).await;
    let dead = unique_nid();
    let ep = ping::endpoint(fs.mgs, Duration::from_secs(1)).await.unwrap();

    let alive = ping::ping(&ep, fs.mgs).await;
    assert!(matches!(alive, ping::Outcome::Alive { .. }), "{alive:?}");
    let gone = ping::ping(&ep, dead).await;
    assert!(matches!(gone, ping::Outcome::Failed(_)), "{gone:?}");
    let o2ib = format!("{}@o2ib", fs.mgs.addr).parse().unwrap();
    assert_eq!(ping::ping(&ep, o2ib).await, ping::Outcome::Failed(Errno::EHOSTUNREACH));

    // This node as a tcp-only one, and the server as a peer with an o2ib NID too.
    let host = lnet_shim::HostInterfaces::system().unwrap();
    let cfg = LnetConfig::from_networks(&format!("tcp({})", "lo")).unwrap();
    let (nis, _) = local::local_nis(&cfg, &host, &local::Rdma::Usable).unwrap();
    let local_nis = local::selection_nis(&nis);
    let mut state = PeerState::new(o2ib, [fs.mgs]);
    let results = [(o2ib, ping::ping(&ep, o2ib).await), (fs.mgs, alive)];
    let peer = peer_entry(&mut state, &local_nis, &results, true);
    let mut dead_state = PeerState::new(dead, []);
    let dead_peer = peer_entry(&mut dead_state, &local_nis, &[(dead, gone)], false);
    let out = PeerShow { peers: vec![peer, dead_peer] }.to_yaml();
    let v: serde_norway::Value = serde_norway::from_str(&out).unwrap();
    let p = &v["peer"][0];
    assert_eq!(p["lnd"].as_str(), Some("tcp"), "{out}");
    assert_eq!(p["peer ni"][0]["state"].as_str(), Some("down"), "{out}");
    assert_eq!(p["peer ni"][1]["state"].as_str(), Some("up"), "{out}");
    assert_eq!(p["peer ni"][1]["health stats"]["health value"], serde_norway::Value::from(1000));
    assert_eq!(p["peer ni"][0]["health stats"]["health value"], serde_norway::Value::from(900));
    assert_eq!(v["peer"][1]["peer ni"][0]["state"].as_str(), Some("down"), "{out}");
    assert!(v["peer"][1].get("lnd").is_none() || v["peer"][1]["lnd"].as_str() == Some("tcp"));

    ep.shutdown();
    fs.shutdown();
}
