//! The lock manager and readahead as lctl and Prometheus show them, in
//! this process: after a sequential read, `ldlm.namespaces.*.lock_count`
//! counts the mount's locks on the OST and on the client, `llite.*.
//! read_ahead_stats` counts hits, `set_param llite.*.max_read_ahead_mb`
//! changes the mount's cache, and the metrics carry the same counts.

#[allow(dead_code)]
#[path = "../src/lctl/mod.rs"]
mod lctl;
#[allow(dead_code)]
#[path = "../src/lnetctl/mod.rs"]
mod lnetctl;
#[allow(dead_code)]
#[path = "../src/metrics/mod.rs"]
mod metrics;
#[path = "../../client/tests/support/mod.rs"]
mod support;

use client::{Client, process_cred};
use lctl::control::serve_in;
use lctl::mount::MountNode;
use lctl::servers::OssNode;
use proto::StripeSpec;
use support::TestFs;

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// Every parameter `pattern` matches, as (name, value).
fn params(dir: &std::path::Path, pattern: &str) -> Vec<(String, String)> {
    let (p, unmatched) = lctl::get_params(dir, &[pattern.to_string()]);
    assert!(unmatched.is_empty(), "{pattern} matched nothing");
    p.into_iter().map(|p| (p.name, p.value)).collect()
}

fn count_of(stats: &str, name: &str) -> u64 {
    stats
        .lines()
        .find_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some(name)).then(|| w.next().unwrap().parse().unwrap())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lock_counts_and_read_ahead_through_lctl_and_metrics() {
    let fs = TestFs::start(1).await;
    let run = tempfile::tempdir().unwrap();
    let dir = run.path().to_path_buf();
    let c = Client::mount(&fs.spec()).await.unwrap();
    let _oss =
        serve_in(&dir, OssNode::new(&fs.osses[0], metrics::oss_registry(&fs.osses[0]).unwrap())).unwrap();
    let registry = metrics::client_registry(&c).unwrap();
    let _mount = serve_in(&dir, MountNode::new(&c, registry.clone(), "0000000000000001".into())).unwrap();

    let spec = StripeSpec { stripe_count: Some(1), stripe_size: Some(1 << 20), stripe_offset: None };
    let (_, layout) = c.create(&process_cred(), c.root(), "seq", 0o644, spec, true).await.unwrap();
    let layout = layout.unwrap();
    c.pwrite(&layout, 0, &vec![3u8; 16 << 20], false).await.unwrap();
    let mut buf = vec![0u8; 1 << 20];
    for i in 0..8u64 {
        c.pread(&layout, i << 20, &mut buf).await.unwrap();
    }

    let d = dir.clone();
    let (locks, ra, max) = blocking(move || {
        (
            params(&d, "ldlm.namespaces.*.lock_count"),
            params(&d, "llite.*.read_ahead_stats"),
            params(&d, "llite.*.max_read_ahead_mb"),
        )
    })
    .await;
    let server = locks.iter().find(|(n, _)| n == "ldlm.namespaces.filter-testfs-OST0000_UUID.lock_count");
    assert_eq!(server.map(|(_, v)| v.as_str()), Some("1"), "{locks:?}");
    let mine = locks.iter().find(|(n, _)| n.starts_with("ldlm.namespaces.testfs-OST0000-osc-"));
    assert_eq!(mine.map(|(_, v)| v.as_str()), Some("1"), "{locks:?}");
    assert!(ra[0].1.starts_with("snapshot_time "), "{ra:?}");
    assert!(count_of(&ra[0].1, "hits") >= 4 * 256, "{ra:?}");
    assert!(count_of(&ra[0].1, "misses") >= 256, "{ra:?}");
    assert_eq!(max[0].1, "64");

    let d = dir.clone();
    blocking(move || lctl::set_param(&d, "llite.*.max_read_ahead_mb=16")).await.unwrap();
    assert_eq!(c.max_read_ahead_mb(), 16);
    assert_eq!(c.max_read_ahead_per_file_mb(), 16, "the per-file window stays within the whole");
    let d = dir.clone();
    let e = blocking(move || lctl::set_param(&d, "llite.*.max_read_ahead_per_file_mb=32")).await.unwrap_err();
    assert!(e.to_string().contains("more than max_read_ahead_mb"), "{e}");
    assert_eq!(c.max_read_ahead_per_file_mb(), 16);

    let value = |name: &str| {
        registry
            .gather()
            .iter()
            .filter(|f| f.name() == name)
            .flat_map(|f| f.get_metric().iter())
            .map(|m| m.get_counter().get_value() + m.get_gauge().get_value())
            .sum::<f64>()
    };
    assert!(value("glint_client_readahead_hits_total") >= 1024.0);
    assert_eq!(value("glint_client_ldlm_locks"), 1.0);
    assert!(value("glint_client_ldlm_granted_total") >= 1.0);
    let ost = metrics::oss_registry(&fs.osses[0]).unwrap();
    let granted: f64 = ost
        .gather()
        .iter()
        .filter(|f| f.name() == "glint_ost_ldlm_granted_total")
        .flat_map(|f| f.get_metric().iter())
        .map(|m| m.get_counter().get_value())
        .sum();
    assert!(granted >= 1.0);
    fs.shutdown();
}
