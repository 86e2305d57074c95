//! `glint up --net`: o2ib on a host without an RDMA device (as every build
//! host is) fails before starting anything, naming what is missing and
//! the way out; bad network arguments are refused the same way.

use std::process::Command;

const GLINT: &str = env!("CARGO_BIN_EXE_glint");

fn up(args: &[&str]) -> (bool, String) {
    let state = tempfile::tempdir().unwrap();
    let out = Command::new(GLINT)
        .arg("up")
        .arg("--state")
        .arg(state.path())
        .args(["--no-mount", "--osts", "2"])
        .args(args)
        .output()
        .unwrap();
    let pids = std::fs::read_dir(state.path().join("run")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(pids, 0, "no server was started");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn o2ib_without_an_rdma_device_says_what_is_missing() {
    if fabric::o2ib::list_devices().is_ok() {
        eprintln!("this host has an RDMA device: the soft-roce-tests VM runs `glint up --net o2ib`");
        return;
    }
    let (ok, err) = up(&["--net", "o2ib"]);
    assert!(!ok);
    assert!(err.contains("no RDMA device"), "{err}");
    assert!(err.contains("rdma-core"), "{err}");
    assert!(err.contains("use --net tcp"), "{err}");
}

#[test]
fn bad_network_arguments_are_refused() {
    let (ok, err) = up(&["--net", "ib0"]);
    assert!(!ok);
    assert!(err.contains("--net ib0: the networks are tcp and o2ib"), "{err}");
    let (ok, err) = up(&["--addr", "10.0.0.1"]);
    assert!(!ok);
    assert!(err.contains("--addr is for --net o2ib"), "{err}");
}
