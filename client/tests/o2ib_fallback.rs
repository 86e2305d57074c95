//! A file system whose servers are named by o2ib NIDs, on a host without an
//! RDMA device (as every build host is): the servers answer over tcp on the
//! same addresses and register only the NIDs they serve, and a client
//! mounting `ADDR@o2ib:/FSNAME` reaches the MGS over tcp, counts each such
//! message as a fallback and shows why per peer, while a striped file is
//! written and read back whole. The Soft-RoCE VM runs the same file system
//! over o2ib itself (`client/examples/o2ib_fs.rs`).

mod support;

use client::{Client, process_cred};
use fabric::rpc::FallbackCause;
use fabric::{Net, NetType, Nid};
use mds::{Mds, MdsConfig};
use ost::{ObjectStore, Oss, OssConfig, TargetConfig};
use proto::StripeSpec;
use std::sync::atomic::Ordering;

/// An o2ib NID on a loopback address no other test uses.
fn o2ib_nid() -> Nid {
    Nid::new(support::unique_nid().addr, Net::o2ib(0))
}

fn tcp_twin(nid: Nid) -> Nid {
    Nid::new(nid.addr, Net::tcp(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_file_system_named_by_o2ib_nids_works_over_tcp_without_rdma() {
    if fabric::o2ib::list_devices().is_ok() {
        // With a device the NIs come up and this is the VM's test, not
        // a fallback one.
        eprintln!("this host has an RDMA device: the fallback is not exercised here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mdt_dir = dir.path().join("mdt");
    mds::format(&mdt_dir, support::FSNAME).unwrap();
    let mgs = o2ib_nid();
    let cfg = MdsConfig {
        dir: mdt_dir,
        nid: mgs,
        port: fabric::tcp::DEFAULT_PORT,
        metrics: None,
        root_squash: None,
    };
    let mds = Mds::start(cfg).await.unwrap();
    assert_eq!(mds.endpoint.o2ib_down(), Some("no RDMA device"));
    assert_eq!(mds.endpoint.nids(), vec![tcp_twin(mgs)]);

    let mut osses = Vec::new();
    let mut oss_nids = Vec::new();
    for index in 0..2 {
        let odir = dir.path().join(format!("ost{index}"));
        std::fs::create_dir_all(&odir).unwrap();
        ObjectStore::format(&odir, support::FSNAME, index).unwrap();
        let nid = o2ib_nid();
        let mut cfg = OssConfig::new(support::FSNAME, nid, mgs, vec![TargetConfig { dir: odir, index }]);
        cfg.buffers = 8;
        cfg.io_threads = 2;
        // The OSS registers with the MGS by its o2ib NID: over tcp too.
        let oss = Oss::start(cfg).await.unwrap();
        assert!(oss.endpoint.stats().tcp_fallbacks.load(Ordering::Relaxed) >= 1);
        osses.push(oss);
        oss_nids.push(nid);
    }

    // Targets register the NIDs they answer on: tcp only, on this host.
    let config = mds.mds.mgs().config(support::FSNAME).unwrap();
    assert_eq!(config.mdt.as_ref().unwrap().nids, vec![tcp_twin(mgs)]);
    for (t, nid) in config.osts.iter().zip(&oss_nids) {
        assert_eq!(t.nids, vec![tcp_twin(*nid)], "OST {}", t.index);
    }

    support::objects_on_every_ost(&mds, 2).await;
    let c = Client::mount(&format!("{mgs}:/{}", support::FSNAME)).await.unwrap();
    let ep = c.endpoint();
    assert!(ep.o2ib().is_none());
    assert_eq!(ep.o2ib_down(), Some("no RDMA device"));
    assert_eq!(ep.id().nid.net.kind, NetType::Tcp, "the client answers over tcp");
    let mount_fallbacks = ep.stats().tcp_fallbacks.load(Ordering::Relaxed);
    assert!(mount_fallbacks >= 1, "the MGS was asked by its o2ib NID, over tcp");
    let routes = ep.peer_routes();
    assert_eq!(routes.len(), 1, "{routes:?}");
    assert_eq!(routes[0].peer, mgs);
    assert_eq!(routes[0].via, tcp_twin(mgs));
    assert!(matches!(routes[0].fallback, Some(FallbackCause::NoRdmaDevice(_))), "{routes:?}");

    let cred = process_cred();
    let spec = StripeSpec { stripe_count: Some(2), stripe_size: Some(64 << 10), stripe_offset: None };
    let (_, layout) = c.create(&cred, c.root(), "over-tcp", 0o644, spec, true).await.unwrap();
    let layout = layout.unwrap();
    let osts: std::collections::BTreeSet<u32> =
        layout.raid0().unwrap().objects.iter().map(|o| o.ost_idx).collect();
    assert_eq!(osts.len(), 2, "striped over both OSTs");
    let data: Vec<u8> = (0..(1u32 << 20) + 4321).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    c.pwrite(&layout, 0, &data, false).await.unwrap();
    let mut back = vec![0u8; data.len()];
    assert_eq!(c.pread(&layout, 0, &mut back).await.unwrap(), data.len());
    assert!(back == data, "read back what was written");
    // The data went over tcp, both ways.
    let bulk = |e: &fabric::rpc::Endpoint| {
        let s = e.tcp().stats();
        s.bulk_tx_bytes.load(Ordering::Relaxed) + s.bulk_rx_bytes.load(Ordering::Relaxed)
    };
    let moved: u64 = bulk(ep) + osses.iter().map(|o| bulk(&o.endpoint)).sum::<u64>();
    assert!(moved >= 2 * data.len() as u64, "{moved} bulk bytes over tcp");

    for o in &osses {
        o.endpoint.shutdown();
    }
    mds.endpoint.shutdown();
}
