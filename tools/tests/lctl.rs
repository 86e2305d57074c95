//! `glint lctl` against real file systems.
//!
//! In this process (an MGS/MDS, two OSSs and a library client, each
//! registered for lctl in a run directory of the test's own): `dl` lists
//! every device, stats read after I/O count it, `set_param` changes
//! `max_rpcs_in_flight` and `max_pages_per_rpc` and the client's RPCs
//! follow the new values, and bad names and values are refused with
//! nothing changed.
//!
//! With real processes (`glint up` with sized OSTs and a FUSE mount; needs
//! root): the same commands through the binary and through `lctl` as
//! argv0, the OST size as capacity, ENOSPC past it, `ping`, and the run
//! directory empty again after `glint down`.

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

#[path = "common/ports.rs"]
mod ports;
use client::{Client, process_cred};
use lctl::control::serve_in;
use lctl::mount::MountNode;
use lctl::servers::{MdsNode, OssNode};
use ports::{free, pick_port};
use proto::StripeSpec;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use support::TestFs;

const GLINT: &str = env!("CARGO_BIN_EXE_glint");

/// The lines of a stats value, as (name, count).
fn counts(stats: &str) -> Vec<(String, u64)> {
    stats
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f[2], "samples", "{l}");
            (f[0].to_string(), f[1].parse().unwrap())
        })
        .collect()
}

/// `MIN MAX SUM` after the unit of a stats line, where it has them.
fn min_max_sum(stats: &str, name: &str) -> Option<(u64, u64, u64)> {
    let line = stats.lines().find(|l| l.split_whitespace().next() == Some(name))?;
    let after = line.split(']').nth(1)?;
    let v: Vec<u64> = after.split_whitespace().map(|w| w.parse().unwrap()).collect();
    match v[..] {
        [min, max, sum] => Some((min, max, sum)),
        _ => None,
    }
}

fn count_of(stats: &str, name: &str) -> u64 {
    counts(stats).into_iter().find(|(n, _)| n == name).map(|(_, c)| c).unwrap_or(0)
}

/// `lctl` calls block on a socket; the servers answer from this runtime.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

fn one(dir: &Path, pattern: &str) -> String {
    let (params, unmatched) = lctl::get_params(dir, &[pattern.to_string()]);
    assert!(unmatched.is_empty(), "{pattern} matched nothing");
    assert_eq!(params.len(), 1, "{pattern}: {params:?}");
    params[0].value.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lctl_reads_and_tunes_a_running_file_system() {
    let fs = TestFs::start(2).await;
    let run = tempfile::tempdir().unwrap();
    let dir = run.path().to_path_buf();
    let c = Client::mount(&fs.spec()).await.unwrap();
    let mut registered =
        vec![serve_in(&dir, MdsNode::new(&fs.mds, metrics::mds_registry(&fs.mds).unwrap())).unwrap()];
    for o in &fs.osses {
        registered.push(serve_in(&dir, OssNode::new(o, metrics::oss_registry(o).unwrap())).unwrap());
    }
    let node = MountNode::new(&c, metrics::client_registry(&c).unwrap(), "0000000000000001".into());
    let osc0 = node.osc_name(0);
    registered.push(serve_in(&dir, node).unwrap());

    // dl: every device of every process, numbered from 0.
    let d = dir.clone();
    let dl = blocking(move || lctl::device_list(&d)).await;
    let kinds: Vec<&str> = dl.lines().map(|l| l.split_whitespace().nth(2).unwrap()).collect();
    for (k, n) in [("mgs", 1), ("mdt", 1), ("obdfilter", 2), ("mdc", 1), ("osc", 2), ("llite", 1)] {
        assert_eq!(kinds.iter().filter(|x| **x == k).count(), n, "{k} in\n{dl}");
    }
    assert!(dl.starts_with("  0 UP "), "{dl}");
    assert!(dl.contains(" UP mdt testfs-MDT0000 testfs-MDT0000_UUID "), "{dl}");
    assert!(dl.contains(" UP obdfilter testfs-OST0001 testfs-OST0001_UUID "), "{dl}");
    assert!(dl.contains(&format!(" UP osc {osc0} testfs-OST0000_UUID ")), "{dl}");
    for (i, l) in dl.lines().enumerate() {
        assert!(l.starts_with(&format!("{i:>3} UP ")), "{l}");
    }

    // A file on OST 0 only, written after set_param: every RPC to OST 0
    // is counted in rpc_stats by how many were in flight beside it.
    let cred = process_cred();
    let spec = StripeSpec { stripe_count: Some(1), stripe_offset: Some(0), ..Default::default() };
    let (_, layout) = c.create(&cred, c.root(), "f", 0o644, spec, true).await.unwrap();
    let layout = layout.unwrap();
    let d = dir.clone();
    let set = blocking(move || lctl::set_param(&d, "osc.*.max_rpcs_in_flight=2")).await.unwrap();
    assert_eq!(set.len(), 2, "{set:?}");
    assert_eq!(c.max_rpcs_in_flight(0), Some(2));
    let before = c.rpc_stats(0).unwrap();
    let data = vec![7u8; 24 << 20];
    c.pwrite(&layout, 0, &data, false).await.unwrap();
    let after = c.rpc_stats(0).unwrap();
    let delta: Vec<u64> =
        (0..after.write.len()).map(|i| after.write[i] - before.write.get(i).copied().unwrap_or(0)).collect();
    assert_eq!(delta.iter().sum::<u64>(), 24, "one write RPC per MiB: {delta:?}");
    assert!(delta.iter().skip(2).all(|n| *n == 0), "more than 2 writes were in flight: {delta:?}");
    assert!(delta[1] > 0, "24 queued writes never had 2 in flight: {delta:?}");

    // get_param: the counts of that I/O on both sides, and the tunable.
    let d = dir.clone();
    let (obd, osc_stats, rif, rpc_stats) = blocking(move || {
        (
            one(&d, "obdfilter.*-OST0000.stats"),
            one(&d, &format!("osc.{}.stats", lctl_name(&d, "osc.*-OST0000-*.stats"))),
            lctl::get_params(&d, &["osc.*.max_rpcs_in_flight".into()]).0,
            one(&d, "osc.*-OST0000-*.rpc_stats"),
        )
    })
    .await;
    assert!(obd.starts_with("snapshot_time "), "{obd}");
    assert!(count_of(&obd, "write_bytes") >= 24, "{obd}");
    assert!(count_of(&obd, "write") >= 24, "{obd}");
    assert!(count_of(&osc_stats, "write") >= 24, "{osc_stats}");
    // As Lustre's: bytes per transfer and microseconds per operation, with
    // their extremes and sum.
    let mib = 1u64 << 20;
    for stats in [&obd, &osc_stats] {
        let (min, max, sum) = min_max_sum(stats, "write_bytes").unwrap_or_else(|| panic!("{stats}"));
        assert!(min == mib && max == mib && sum >= 24 * mib, "{stats}");
        let (min, max, sum) = min_max_sum(stats, "write").unwrap_or_else(|| panic!("{stats}"));
        assert!(min > 0 && min <= max && max <= sum, "{stats}");
        assert!(stats.contains("samples [usecs]"), "{stats}");
    }
    assert_eq!(rif.len(), 2);
    assert!(rif.iter().all(|p| p.value == "2" && p.writable), "{rif:?}");
    assert!(rpc_stats.contains("rpcs in flight"), "{rpc_stats}");
    let text = lctl::format_params(&rif, false, false);
    assert!(
        text.lines().all(|l| l.starts_with("osc.testfs-OST000") && l.ends_with(".max_rpcs_in_flight=2")),
        "{text}"
    );
    let md = blocking({
        let d = dir.clone();
        move || one(&d, "mdt.*.md_stats")
    })
    .await;
    assert!(count_of(&md, "create") >= 1, "{md}");

    // max_pages_per_rpc: 64 pages is 256 KiB, so 1 MiB takes 4 RPCs.
    let d = dir.clone();
    blocking(move || lctl::set_param(&d, "osc.*.max_pages_per_rpc=64")).await.unwrap();
    assert_eq!(c.rpc_size(), 256 << 10);
    let before: u64 = c.rpc_stats(0).unwrap().write.iter().sum();
    c.pwrite(&layout, 0, &data[..1 << 20], false).await.unwrap();
    let after: u64 = c.rpc_stats(0).unwrap().write.iter().sum();
    assert_eq!(after - before, 4);

    // Refusals: each names what is wrong, and nothing changes.
    let refused = |setting: &'static str| {
        let d = dir.clone();
        async move { blocking(move || lctl::set_param(&d, setting)).await.unwrap_err().to_string() }
    };
    let e = refused("osc.*.max_rpcs_in_flight=0").await;
    assert!(e.contains("max_rpcs_in_flight") && e.contains("1 to 256") && e.contains("EINVAL"), "{e}");
    let e = refused("osc.*.max_rpcs_in_flight=lots").await;
    assert!(e.contains("not a whole number"), "{e}");
    let e = refused("osc.*.max_pages_per_rpc=512").await;
    assert!(e.contains("256 pages"), "{e}");
    let e = refused("osc.*.max_pages_per_rpc=48").await;
    assert!(e.contains("power of two"), "{e}");
    let e = refused("osc.*.max_read_ahead_mb=64").await;
    assert!(e.contains("No such file or directory"), "{e}");
    let e = refused("obdfilter.*.stats=0").await;
    assert!(e.contains("read-only"), "{e}");
    let e = refused("osc.*-OST0000-*.max_pages_per_rpc=32").await;
    assert!(e.contains("every OSC"), "{e}");
    let e = refused("osc.*.max_rpcs_in_flight").await;
    assert!(e.contains("NAME=VALUE"), "{e}");
    let e = refused("osc.*.short_io_bytes=65536").await;
    assert!(e.contains("short_io_bytes") && e.contains("32768"), "{e}");
    assert_eq!(c.max_rpcs_in_flight(0), Some(2));
    assert_eq!(c.max_rpcs_in_flight(1), Some(2));
    assert_eq!(c.max_pages_per_rpc(), 64);

    // short_io_bytes, per OSC as Lustre's.
    let d = dir.clone();
    blocking(move || lctl::set_param(&d, "osc.*-OST0001-*.short_io_bytes=0")).await.unwrap();
    assert_eq!((c.short_io_bytes(0), c.short_io_bytes(1)), (Some(client::DEFAULT_SHORT_IO_BYTES), Some(0)));
    let d = dir.clone();
    let short = blocking(move || lctl::get_params(&d, &["osc.*.short_io_bytes".into()]).0).await;
    let values: Vec<&str> = short.iter().map(|p| p.value.as_str()).collect();
    assert_eq!(values, ["16384", "0"], "{short:?}");

    // Growing the bound back takes effect too.
    let d = dir.clone();
    blocking(move || lctl::set_param(&d, "osc.*-OST0000-*.max_rpcs_in_flight=16")).await.unwrap();
    assert_eq!((c.max_rpcs_in_flight(0), c.max_rpcs_in_flight(1)), (Some(16), Some(2)));
    fs.shutdown();
}

/// The device part of the one parameter `pattern` names.
fn lctl_name(dir: &Path, pattern: &str) -> String {
    let (p, _) = lctl::get_params(dir, &[pattern.to_string()]);
    assert_eq!(p.len(), 1, "{pattern}: {p:?}");
    p[0].name.split('.').nth(1).unwrap().to_string()
}

/// Stops what `glint up` started, also when the test fails.
struct Up {
    state: std::path::PathBuf,
    run: std::path::PathBuf,
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = Command::new(GLINT)
            .env("GLINT_RUN_DIR", &self.run)
            .arg("down")
            .arg("--state")
            .arg(&self.state)
            .status();
    }
}

fn glint(run: &Path, port: u16, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(GLINT)
        .env("GLINT_RUN_DIR", run)
        .env("GLINT_PORT", port.to_string())
        .args(args)
        .output()
        .expect("running glint");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn lctl_and_sized_osts_with_real_processes() {
    // SAFETY: a plain getter.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root for FUSE and loop mounts");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let mount = tmp.path().join("mnt");
    let run = tmp.path().join("run");
    let port = pick_port(|p| (1..=3).all(|i| free(&format!("127.0.0.{i}"), p)));
    let metrics = pick_port(|p| p < 65000 && (p..p + 4).all(|q| free("127.0.0.1", q)));
    let _up = Up { state: state.clone(), run: run.clone() };
    let (ok, out, err) = glint(
        &run,
        port,
        &[
            "up",
            "--osts",
            "2",
            "--ost-size",
            "64M",
            "--recovery-window",
            "7",
            "--port",
            &port.to_string(),
            "--metrics-port",
            &metrics.to_string(),
            "--state",
            state.to_str().unwrap(),
            "--mount",
            mount.to_str().unwrap(),
        ],
    );
    assert!(ok, "glint up failed: {out}{err}");

    let (ok, dl, err) = glint(&run, port, &["lctl", "dl"]);
    assert!(ok, "{err}");
    for want in [
        " UP mgs MGS MGS ",
        " UP mdt glint-MDT0000 ",
        " UP obdfilter glint-OST0000 ",
        " UP obdfilter glint-OST0001 ",
        " UP mdc glint-MDT0000-mdc-",
        " UP llite glint-",
    ] {
        assert!(dl.contains(want), "no `{want}` in\n{dl}");
    }
    assert_eq!(dl.matches(" UP osc glint-OST000").count(), 2, "{dl}");

    // Each OST is its 64 MiB image: the capacity says so (ext4 keeps a
    // little for itself).
    let (ok, kb, err) =
        glint(&run, port, &["lctl", "get_param", "-n", "obdfilter.glint-OST0000.kbytestotal"]);
    assert!(ok, "{err}");
    let kb: u64 = kb.trim().parse().unwrap();
    assert!((48 << 10..=64 << 10).contains(&kb), "kbytestotal {kb}");
    let (_, window, _) =
        glint(&run, port, &["lctl", "get_param", "-n", "obdfilter.glint-OST0001.recovery_time_soft"]);
    assert_eq!(window, "7\n", "the OSS was started with `glint up --recovery-window 7`");

    // I/O through the mount shows in the stats; `lctl` as argv0 works.
    let mut f = std::fs::File::create(mount.join("small")).unwrap();
    f.write_all(&vec![1u8; 4 << 20]).unwrap();
    f.sync_all().unwrap();
    drop(f);
    let lctl = tmp.path().join("lctl");
    std::os::unix::fs::symlink(GLINT, &lctl).unwrap();
    let out = Command::new(&lctl)
        .env("GLINT_RUN_DIR", &run)
        .args(["get_param", "obdfilter.*.stats"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("obdfilter.glint-OST0000.stats=\nsnapshot_time "), "{text}");
    assert!(text.contains("write_bytes"), "{text}");

    let (ok, out, err) = glint(&run, port, &["lctl", "set_param", "osc.*.max_rpcs_in_flight=3"]);
    assert!(ok, "{err}");
    assert_eq!(out.lines().filter(|l| l.ends_with(".max_rpcs_in_flight=3")).count(), 2, "{out}");
    let (_, out, _) = glint(&run, port, &["lctl", "get_param", "-n", "osc.*.max_rpcs_in_flight"]);
    assert_eq!(out, "3\n3\n");
    let (ok, _, err) = glint(&run, port, &["lctl", "set_param", "osc.*.max_rpcs_in_flight=999"]);
    assert!(!ok && err.contains("1 to 256"), "{err}");
    let (ok, _, err) = glint(&run, port, &["lctl", "get_param", "nothing.*.here"]);
    assert!(!ok && err.contains("param_path 'nothing.*.here': No such file or directory"), "{err}");

    // ping: the MGS answers; an address nobody serves does not.
    let (ok, out, err) = glint(&run, port, &["lctl", "ping", "127.0.0.1@tcp"]);
    assert!(ok && out.trim() == "12345-127.0.0.1@tcp", "{out}{err}");
    let (ok, _, err) = glint(&run, port, &["lctl", "ping", "127.0.0.254@tcp", "1"]);
    assert!(!ok && err.contains("failed to ping 127.0.0.254@tcp"), "{err}");

    // Past the OST's size a write fails with ENOSPC (at write or at the
    // latest when it is flushed).
    let big = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(mount.join("big"))?;
        let chunk = vec![2u8; 1 << 20];
        for _ in 0..100 {
            f.write_all(&chunk)?;
        }
        f.sync_all()
    })();
    let e = big.expect_err("100 MiB fit on a 64 MiB OST");
    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
    std::fs::remove_file(mount.join("big")).unwrap();

    let (ok, out, err) = glint(&run, port, &["down", "--state", state.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    assert!(!mounts.contains(state.to_str().unwrap()), "an image is still mounted: {mounts}");
    let (_, dl, _) = glint(&run, port, &["lctl", "dl"]);
    assert_eq!(dl, "", "processes left after down");
    assert_eq!(std::fs::read_dir(&run).unwrap().count(), 0, "run files left after down");
}
